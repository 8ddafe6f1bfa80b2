"""Session 20: is SURE right for each noise-plan candidate? Per training photo, SURE of the DN
expert (1 step) and of BM3D (the plan's profile) against their true squared error, with BM3D's
divergence scaled from a 128 px crop (the first plan) and measured on the whole photo.
Run from the repository root: python benchmarks/results/noise_plan_session20/sure_check.py"""
import sys, numpy as np
sys.path.insert(0,"benchmarks")
from real_photos import _pixels
from unires_jax.restore import adaptive, analysis
from unires_jax.restore.restorer import Restorer
model = Restorer.load(None, deblur=False).with_settings(steps=1)


def _scaled_crop_divergence(noisy, step, sigma):
    """The first session-20 plan's estimate: BM3D's divergence on the centred 128 px crop,
    scaled by the pixel count to the whole image."""
    window = adaptive.sure_window(noisy.shape)
    crop, crop_step = noisy[window], step[window]
    d = adaptive.mc_divergence(adaptive.bm3d_denoise(crop, sigma), adaptive.bm3d_denoise(crop + crop_step, sigma), crop_step)
    return d * noisy[..., 0].size / crop[..., 0].size
for case, photo in (("noise:15","twowings"),("noise:15","greenmeadow"),("noise:5","blinds")):
    lq, hq = _pixels(photo, case, 256, 0); y=np.asarray(lq,np.float64); x=np.asarray(hq,np.float64)
    true_sigma = float(case.split(":")[1])/255
    est = analysis.analyse(lq).noise/255
    rng=np.random.default_rng(0); probe=rng.standard_normal(y.shape)
    N=y.size
    for sig_name, sigma in (("est",est),("true",true_sigma)):
        eps=0.1*sigma; step=(np.clip(y+eps*probe,0,1)-y).astype(np.float32)
        f_dn = model.restore(lq.astype(np.float32), {"DN":1.0}); p_dn = model.restore((lq+step).astype(np.float32), {"DN":1.0})
        f_bm = adaptive.bm3d_denoise(lq, sigma)
        d_dn = adaptive.mc_divergence(f_dn, p_dn, step)
        d_bm_crop = _scaled_crop_divergence(np.asarray(lq,np.float32), step, sigma)
        d_bm_full = adaptive.mc_divergence(f_bm, adaptive.bm3d_denoise((lq+step).astype(np.float32), sigma), step)
        for name,f,d in (("dn",f_dn,d_dn),("bm3d crop",f_bm,d_bm_crop),("bm3d full",f_bm,d_bm_full)):
            sure = (np.sum((y-f)**2) - N*sigma**2 + 2*sigma**2*d)/N
            true = np.mean((f-x)**2)
            print(case, photo, sig_name, round(sigma*255,2), name, "div/N %.3f" % (d/N), "SURE %.3e true %.3e ratio %.3f" % (sure, true, sure/true), flush=True)

"""Session 22 exploration, recorded with its output (noise_estimates.txt): BM3D (every 4 pixels,
gamma 0, the noise plan's profile) given different noise sigmas: the plan's estimate (the mean
of the channels' `analysis._channel_sigma`), the true sigma, scikit-image's `estimate_sigma`
(as the held-out benchmark's reference BM3D), the channels weighted by their fraction of
unclipped patches, their maximum and median. Per photo: the channels' estimates, unclipped
fractions and PSNR of each; then the mean difference from the plan's estimate.
On the 12 training photos of `benchmarks/bm3d_profile.py` at sigma 25 and 50.
Run from the repository root:  python benchmarks/results/bm3d_profile_session22/noise_estimates.py
"""
import sys, numpy as np, bm3d
sys.path.insert(0, 'benchmarks')
import bm3d_profile
from unires_jax.restore import analysis as A
from skimage.restoration import estimate_sigma
def run(noisy, sigma):
    p = bm3d.BM3DProfile(); p.step_ht=p.step_wiener=4; p.gamma=0.0
    return np.clip(bm3d.bm3d_rgb(noisy, sigma, p),0,1)
def unclipped_frac(ch):
    rows=A._patch_matrix(ch, A.PATCH)
    return float(((rows.min(1)>A.CLIP_MARGIN)&(rows.max(1)<1-A.CLIP_MARGIN)).mean())
ph = bm3d_profile.photos(256)
sigmas=[25, 50]
for sigma in sigmas:
    rows = []
    for i,(name,clean) in enumerate(ph.items()):
        rng=np.random.default_rng(1000*sigma+i)
        noisy=np.clip(clean+sigma/255*rng.standard_normal(clean.shape),0,1).astype(np.float32)
        chs=[A._channel_sigma(noisy[...,c].astype(np.float64))*255 for c in range(3)]
        fr=[unclipped_frac(noisy[...,c].astype(np.float64)) for c in range(3)]
        sk=float(np.mean(estimate_sigma(noisy, channel_axis=-1)))*255
        cands={'mean':np.mean(chs),'true':sigma,'sk':sk,'wmean':np.dot(chs,fr)/max(sum(fr),1e-9),'max':max(chs),'median':np.median(chs)}
        ps={k:round(10*np.log10(1/np.mean((run(noisy,v/255)-clean)**2)),2) for k,v in cands.items()}
        rows.append(ps)
        print(sigma, name, 'ch',[round(c,1) for c in chs],'fr',[round(f,2) for f in fr],'sk',round(sk,1), ps, flush=True)
    print(sigma, 'mean difference from the plan\'s estimate (mean):', {k: round(float(np.mean([r[k] - r['mean'] for r in rows])), 3) for k in rows[0]}, flush=True)

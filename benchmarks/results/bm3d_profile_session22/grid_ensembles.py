"""Session 22 exploration, recorded with its output (grid_ensembles.txt): BM3D averaged over
reference grids shifted by a few pixels (reflect-padded), sparser grids at the time of one run
every 4 pixels (s7x2: every 7 pixels, 2 grids; s6x2; s8x3), against one run every 4 (s4); PSNR
difference from s4 per photo and on the mean.
On the 12 training photos of `benchmarks/bm3d_profile.py` at sigma 25 (sigma measured as the
noise plan does); all without the block-matching correction (gamma 0).
Run from the repository root:  python benchmarks/results/bm3d_profile_session22/grid_ensembles.py
"""
import sys, time, numpy as np
sys.path.insert(0, 'benchmarks')
import bm3d_profile
from unires_jax.restore import adaptive, analysis
def shifted(noisy, sigma, step, shift):
    if shift == 0:
        return adaptive.bm3d_denoise(noisy, sigma, step=step)
    p = np.pad(noisy, ((shift, 0), (shift, 0), (0, 0)), mode='reflect')
    return adaptive.bm3d_denoise(p, sigma, step=step)[shift:, shift:]
def ens(noisy, sigma, step, shifts):
    return np.mean([shifted(noisy, sigma, step, s) for s in shifts], axis=0)
P = {'s4': (4,(0,)), 's7x2': (7,(0,3)), 's6x2': (6,(0,3)), 's8x3':(8,(0,3,5))}
ph = bm3d_profile.photos(256)
sigma_true = 25
rows=[]
for i,(name,clean) in enumerate(ph.items()):
    rng=np.random.default_rng(1000*sigma_true+i)
    noisy=np.clip(clean+sigma_true/255*rng.standard_normal(clean.shape),0,1).astype(np.float32)
    m=analysis.analyse(noisy).noise/255
    r={k: 10*np.log10(1/np.mean((ens(noisy,m,st,sh)-clean)**2)) for k,(st,sh) in P.items()}
    rows.append(r); print(name, {k: round(v-r['s4'],3) for k,v in r.items()}, flush=True)
print(sigma_true, {k: round(float(np.mean([r[k]-r['s4'] for r in rows])),3) for k in P})

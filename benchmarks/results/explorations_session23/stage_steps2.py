"""Session 23 exploration, recorded with its output (stage_steps2.txt): BM3D with a denser
hard-thresholding grid paid for by a sparser Wiener grid (HT step / Wiener step), and a smaller
hard-thresholding stack ("s8": at most 8 blocks instead of 16); time on the 512 px astronaut at
sigma 25 and PSNR difference from 4/4 per photo and on the mean. The 12 training photos of
`benchmarks/bm3d_profile.py` at sigma 25 (sigma measured as the noise plan does); gamma 0.
Run from the repository root:  python benchmarks/results/explorations_session23/stage_steps2.py
"""
import sys, time, numpy as np, bm3d
sys.path.insert(0, 'benchmarks')
import bm3d_profile
from unires_jax.restore import analysis
from skimage import data
def run(noisy, sigma, ht, wie, stack=16):
    p=bm3d.BM3DProfile(); p.gamma=0.0; p.step_ht=ht; p.step_wiener=wie; p.max_3d_size_ht=stack
    return np.clip(bm3d.bm3d_rgb(noisy, sigma, p),0,1)
P={'4/4':(4,4),'3/4':(3,4),'3/5':(3,5),'3/6':(3,6),'4/5':(4,5),'3/5 s8':(3,5,8)}
clean = data.astronaut().astype(np.float32)/255
noisy=np.clip(clean+25/255*np.random.default_rng(0).standard_normal(clean.shape),0,1).astype(np.float32)
run(noisy[:64,:64],25/255,4,4)
for k,a in P.items():
    t=time.perf_counter(); run(noisy,25/255,*a); print(k, 'sec512', round(time.perf_counter()-t,2), flush=True)
ph = bm3d_profile.photos(256)
rows=[]
for i,(name,c) in enumerate(ph.items()):
    rng=np.random.default_rng(1000*25+i)
    n=np.clip(c+25/255*rng.standard_normal(c.shape),0,1).astype(np.float32)
    m=analysis.analyse(n).noise/255
    r={k:10*np.log10(1/np.mean((run(n,m,*a)-c)**2)) for k,a in P.items()}
    rows.append(r); print(name,{k:round(v-r['4/4'],3) for k,v in r.items()},flush=True)
print({k: round(float(np.mean([r[k]-r['4/4'] for r in rows])),3) for k in P})
print({k: round(float(np.min([r[k]-r['4/4'] for r in rows])),3) for k in P}, "(worst)")

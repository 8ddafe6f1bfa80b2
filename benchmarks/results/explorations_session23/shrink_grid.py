"""BM3D's shrinkage parameters at the noise plan's profile (39/4, gamma 0): the hard threshold
lambda (package default for white noise 3.0) and the Wiener regulariser mu2 (0.4), on training
photos (bm3d_profile.photos), Gaussian noise, sigma as the plan measures it. Free in time."""
import json, sys
import numpy as np, bm3d
sys.path.insert(0, "benchmarks")
from bm3d_profile import photos
from unires_jax.restore import adaptive, analysis

def run(image, sigma, lam=None, mu2=None):
    p = bm3d.BM3DProfile(); p.search_window_ht = p.search_window_wiener = adaptive.BM3D_SEARCH_WINDOW
    p.step_ht = p.step_wiener = adaptive.BM3D_STEP; p.gamma = adaptive.BM3D_MATCH_CORRECTION
    p.lambda_thr3d = lam; p.mu2 = mu2
    return np.clip(bm3d.bm3d_rgb(np.asarray(image, np.float32), max(sigma, 1e-4), p), 0, 1)

VARIANTS = {"base": {}, "lam 2.7": {"lam": 2.7}, "lam 3.3": {"lam": 3.3},
            "mu2 0.3": {"mu2": 0.3}, "mu2 0.55": {"mu2": 0.55}}
if __name__ == "__main__":
    out = open(sys.argv[1], "w")
    for sigma in map(int, sys.argv[2].split(",")):
        for i, (name, clean) in enumerate(photos(256).items()):
            rng = np.random.default_rng(1000 * sigma + i)
            noisy = np.clip(clean + sigma / 255.0 * rng.standard_normal(clean.shape), 0, 1).astype(np.float32)
            m = analysis.analyse(noisy).noise / 255.0
            row = {"photo": name, "sigma": sigma, "measured": m * 255}
            for k, kw in VARIANTS.items():
                r = run(noisy, m, **kw)
                row[k] = float(10 * np.log10(1 / np.mean((r.astype(np.float64) - clean) ** 2)))
            out.write(json.dumps(row) + "\n"); out.flush()
        print("sigma", sigma, "done", flush=True)

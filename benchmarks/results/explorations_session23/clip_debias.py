"""Session 23 exploration: BM3D of a clipped noisy photo estimates E[clip(y + sigma n, 0, 1)],
not y (Foi 2009, "Clipped noisy images: heteroskedastic modeling and practical denoising"):
near 0 and 1 the estimate is biased towards the middle. Inverting the expectation function
mu(y) = E[clip(y + sigma n)] maps it back. PSNR of BM3D (the noise plan's profile) with and
without the inversion, 12 training photos (bm3d_profile.photos), sigma 15/25/50, sigma measured
as the noise plan does."""
import json, sys
import numpy as np
from scipy.special import ndtr
sys.path.insert(0, "benchmarks")
from bm3d_profile import photos
from unires_jax.restore import adaptive, analysis

def clipped_mean(y, sigma):
    a, b = -y / sigma, (1 - y) / sigma
    phi = lambda t: np.exp(-0.5 * t * t) / np.sqrt(2 * np.pi)
    return (1 - ndtr(b)) + y * (ndtr(b) - ndtr(a)) + sigma * (phi(a) - phi(b))

def debias(est, sigma, lo=-0.5, hi=1.5, n=4001):
    grid = np.linspace(lo, hi, n)
    mu = clipped_mean(grid, sigma)
    return np.clip(np.interp(est, mu, grid), 0, 1).astype(np.float32)

if __name__ == "__main__":
    out = open(sys.argv[1], "w")
    for sigma in (25, 15, 50):
        for i, (name, clean) in enumerate(photos(256).items()):
            rng = np.random.default_rng(1000 * sigma + i)
            noisy = np.clip(clean + sigma / 255.0 * rng.standard_normal(clean.shape), 0, 1).astype(np.float32)
            m = analysis.analyse(noisy).noise / 255.0
            # unclipped BM3D output (bm3d_denoise clips; redo without)
            import bm3d
            p = bm3d.BM3DProfile(); p.step_ht = p.step_wiener = adaptive.BM3D_STEP; p.gamma = 0.0
            raw = bm3d.bm3d_rgb(noisy, m, p)
            ps = lambda r: float(10 * np.log10(1 / np.mean((np.asarray(r, np.float64) - clean) ** 2)))
            near = float(np.mean((clean < 2 * sigma / 255) | (clean > 1 - 2 * sigma / 255)))
            row = {"photo": name, "sigma": sigma, "measured": m * 255, "near_bounds": near,
                   "bm3d": ps(np.clip(raw, 0, 1)), "debiased": ps(debias(raw, m)),
                   "debiased true sigma": ps(debias(raw, sigma / 255))}
            out.write(json.dumps(row) + "\n"); out.flush()
            print(name, sigma, round(near, 3), {k: round(row[k] - row["bm3d"], 3) for k in ("debiased", "debiased true sigma")}, flush=True)

"""Session 23 exploration: the noise estimator's patches near black and white. Patches that
touch 0 or 1 are already left out; those whose values lie within a few sigma of a bound but
happen not to touch it have their noise truncated by that very selection. Variant: also leave
out patches whose mean is within K sigma (the current estimate) of 0 or 1. Training photos
(bm3d_profile.photos), sigma 0 (clean), 5, 15, 25, 50: measured sigma, and at 15/25/50 the PSNR
of the noise plan's BM3D (mapped back, restore/clipping.py) at each estimate."""
import sys, json
import numpy as np
from scipy.stats import gamma
sys.path.insert(0, "benchmarks")
from bm3d_profile import photos
from unires_jax.restore import adaptive, analysis as A

def channel_sigma(channel, k, iterations=6):
    rows = A._patch_matrix(channel, A.PATCH)
    unclipped = (rows.min(axis=1) > A.CLIP_MARGIN) & (rows.max(axis=1) < 1.0 - A.CLIP_MARGIN)
    if unclipped.sum() > A.MIN_UNCLIPPED * A.PATCH * A.PATCH:
        rows = rows[unclipped]
    energy = A._gradient_energy(rows, A.PATCH); means = rows.mean(axis=1)
    dims = A.PATCH * A.PATCH; trace = 4.0 * A.PATCH * (A.PATCH - 1)
    selected = np.ones(rows.shape[0], bool); variance = None
    for _ in range(iterations):
        chosen = rows[selected]
        if chosen.shape[0] <= dims: break
        centred = chosen - chosen.mean(axis=0)
        cov = centred.T @ centred / (chosen.shape[0] - 1)
        edge = (1.0 - np.sqrt(dims / chosen.shape[0])) ** 2
        new = max(float(np.linalg.eigvalsh(cov)[0]), 0.0) / edge
        if variance is not None and abs(new - variance) <= 1e-4 * max(variance, 1e-12):
            variance = new; break
        variance = new
        limit = variance * gamma.ppf(0.99, a=dims / 2.0, scale=2.0 * trace / dims)
        selected = energy < limit
        if k:
            s = np.sqrt(variance); far = (means > k * s) & (means < 1 - k * s)
            if (selected & far).sum() > A.MIN_UNCLIPPED * dims:
                selected = selected & far
    return float(np.sqrt(variance or 0.0))

def sigma_k(img, k):
    return float(np.mean([channel_sigma(img[..., c], k) for c in range(3)]))

out = open(sys.argv[1], "w")
for sigma in (0, 5, 15, 25, 50):
    for i, (name, clean) in enumerate(photos(256).items()):
        rng = np.random.default_rng(1000 * sigma + i)
        noisy = np.clip(clean + sigma / 255.0 * rng.standard_normal(clean.shape), 0, 1).astype(np.float32)
        noisy = (np.round(noisy * 255) / 255).astype(np.float32)
        row = {"photo": name, "sigma": sigma, "now": A.noise_sigma(noisy) * 255}
        assert abs(row["now"] - sigma_k(noisy, 0) * 255) < 1e-9
        for k in (2, 3):
            row[f"k{k}"] = sigma_k(noisy, k) * 255
        if sigma >= 15:
            ps = lambda r: float(10 * np.log10(1 / np.mean((r.astype(np.float64) - clean) ** 2)))
            for key in ("now", "k2", "k3"):
                row["psnr " + key] = ps(adaptive.bm3d_denoise(noisy, row[key] / 255))
            row["psnr true"] = ps(adaptive.bm3d_denoise(noisy, sigma / 255))
        out.write(json.dumps(row) + "\n"); out.flush()
        print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)

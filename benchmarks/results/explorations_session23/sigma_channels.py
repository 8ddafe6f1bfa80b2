"""Session 23 exploration: the noise sigma of a photo with a channel that is nearly all black or
white. `analysis._channel_sigma` leaves out patches touching 0 or 1, but where too few remain
it falls back to all patches, whose clipped noise measures low (a photo with a blue channel at
0.013 on average: 15 of 25). Variant "unclipped channels": the mean over the channels that had
enough unclipped patches only (all channels where none had). Training photos
(bm3d_profile.photos), 8-bit, sigma 0/5/15/25/50: measured sigma, and at 15/25/50 the PSNR of
the noise plan's BM3D (mapped back, restore/clipping.py) at each estimate and at the true one."""
import sys, json
import numpy as np
sys.path.insert(0, "benchmarks")
from bm3d_profile import photos
from unires_jax.restore import adaptive, analysis as A

def enough(channel):
    rows = A._patch_matrix(channel, A.PATCH)
    ok = (rows.min(axis=1) > A.CLIP_MARGIN) & (rows.max(axis=1) < 1.0 - A.CLIP_MARGIN)
    return ok.sum() > A.MIN_UNCLIPPED * A.PATCH * A.PATCH

def variant(img):
    s = [A._channel_sigma(img[..., c]) for c in range(3)]
    e = [enough(img[..., c]) for c in range(3)]
    kept = [x for x, f in zip(s, e) if f] or s
    return float(np.mean(kept))

out = open(sys.argv[1], "w")
for sigma in (0, 5, 25, 50, 15):
    for i, (name, clean) in enumerate(photos(256).items()):
        rng = np.random.default_rng(1000 * sigma + i)
        noisy = np.clip(clean + sigma / 255.0 * rng.standard_normal(clean.shape), 0, 1)
        noisy = (np.round(noisy * 255) / 255).astype(np.float32)
        row = {"photo": name, "sigma": sigma, "now": A.noise_sigma(noisy) * 255, "variant": variant(noisy) * 255}
        if sigma >= 15 and abs(row["now"] - row["variant"]) > 1e-6:
            ps = lambda r: float(10 * np.log10(1 / np.mean((r.astype(np.float64) - clean) ** 2)))
            for key in ("now", "variant"):
                row["psnr " + key] = ps(adaptive.bm3d_denoise(noisy, row[key] / 255))
            row["psnr true"] = ps(adaptive.bm3d_denoise(noisy, sigma / 255))
        out.write(json.dumps(row) + "\n"); out.flush()
        print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)

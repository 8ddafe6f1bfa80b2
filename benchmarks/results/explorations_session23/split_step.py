"""Luma/chroma split BM3D: luma (opponent channel 0) with its own step, the two chroma channels
with theirs (block matching on the first chroma channel), against the package's colour call
(block matching on luma, shared). Training photos only (bm3d_profile.photos)."""
import json, sys, time
import numpy as np, bm3d
sys.path.insert(0, "benchmarks")
from bm3d_profile import photos
from unires_jax.restore import adaptive, analysis

def prof(step, window=39):
    p = bm3d.BM3DProfile(); p.search_window_ht = p.search_window_wiener = window
    p.step_ht = p.step_wiener = step; p.gamma = 0.0; return p

def split(image, sigma, ls, cs, lw=39, cw=39):
    z, imax, imin, scale, a = bm3d.rgb_to(np.asarray(image, np.float32), "opp")
    s = sigma * np.sqrt(scale)
    luma = bm3d.bm3d(z[:, :, 0], s[0], prof(ls, lw))
    chroma = bm3d.bm3d(z[:, :, 1:], [s[1], s[2]], prof(cs, cw))
    y = np.concatenate([luma[:, :, None], chroma], axis=2)
    y, *_ = bm3d.rgb_to(y, "opp", True, imax, imin)
    return np.clip(y, 0, 1).astype(np.float32)

VARIANTS = {
    "shared 4": lambda y, s: adaptive.bm3d_denoise(y, s, step=4),
    "L4 C4": lambda y, s: split(y, s, 4, 4),
    "L3 C4": lambda y, s: split(y, s, 3, 4),
    "L3 C5": lambda y, s: split(y, s, 3, 5),
    "L3 C6": lambda y, s: split(y, s, 3, 6),
    "shared 3": lambda y, s: adaptive.bm3d_denoise(y, s, step=3),
}
if __name__ == "__main__":
    out = open(sys.argv[1], "w")
    for sigma in (25, 15, 50):
        for i, (name, clean) in enumerate(photos(256).items()):
            rng = np.random.default_rng(1000 * sigma + i)
            noisy = np.clip(clean + sigma / 255.0 * rng.standard_normal(clean.shape), 0, 1).astype(np.float32)
            m = analysis.analyse(noisy).noise / 255.0
            row = {"photo": name, "sigma": sigma}
            for k, f in VARIANTS.items():
                r = f(noisy, m)
                row[k] = float(10 * np.log10(1 / np.mean((r.astype(np.float64) - clean) ** 2)))
            out.write(json.dumps(row) + "\n"); out.flush()
        print("sigma", sigma, "done", flush=True)
    from skimage import data
    clean = data.astronaut().astype(np.float32) / 255.0
    noisy = np.clip(clean + 25 / 255 * np.random.default_rng(0).standard_normal(clean.shape), 0, 1).astype(np.float32)
    for k, f in VARIANTS.items():
        ts = []
        for _ in range(2):
            t = time.perf_counter(); f(noisy, 25 / 255); ts.append(time.perf_counter() - t)
        print(f"{k}: 512 px {min(ts):.2f} s", flush=True)

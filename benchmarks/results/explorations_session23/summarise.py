"""Means of the session 23 exploration rows in this folder (each script's docstring says what
it measured; all on training photos only). Run from the repository root:
python benchmarks/results/explorations_session23/summarise.py > .../summary.txt"""
import json, pathlib
import numpy as np

here = pathlib.Path(__file__).parent


def table(name, base, skip=("photo", "sigma", "measured", "near_bounds")):
    rows = [json.loads(line) for line in (here / name).open()]
    print(f"## {name}: mean difference from '{base}' (worst), per sigma")
    for sigma in sorted({r["sigma"] for r in rows}):
        group = [r for r in rows if r["sigma"] == sigma]
        keys = [k for k in group[0] if k not in skip and isinstance(group[0][k], float)]
        cells = [
            f"{k} {np.mean([r[k] - r[base] for r in group]):+.3f} "
            f"({min(r[k] - r[base] for r in group):+.3f})"
            for k in keys
            if k != base
        ]
        print(f"sigma {sigma} ({len(group)} photos): " + "; ".join(cells))
    print()


table("split_rows.jsonl", "shared 4")
table("shrink_rows.jsonl", "base")
table("clip_rows.jsonl", "bm3d")
rows = [json.loads(line) for line in (here / "sigma_channels_rows.jsonl").open()]
print("## sigma_channels_rows.jsonl: photos whose measured sigma changes")
for r in rows:
    if abs(r["now"] - r["variant"]) > 1e-6:
        extra = (
            f"; BM3D mapped back {r['psnr now']:.2f} -> {r['psnr variant']:.2f} dB "
            f"(true sigma {r['psnr true']:.2f})"
            if "psnr now" in r
            else ""
        )
        print(f"{r['photo']} sigma {r['sigma']}: {r['now']:.2f} -> {r['variant']:.2f}{extra}")
unchanged = sum(abs(r["now"] - r["variant"]) <= 1e-6 for r in rows)
print(f"unchanged: {unchanged} of {len(rows)} rows (sigma 0, 5, 15, 25, 50)")
print()
rows = [json.loads(line) for line in (here / "sigma_clip_rows.jsonl").open()]
print("## sigma_clip_rows.jsonl: patches with a mean within K sigma of 0 or 1 left out too")
for sigma in sorted({r["sigma"] for r in rows}):
    group = [r for r in rows if r["sigma"] == sigma]
    cells = [f"{k} sigma {np.mean([r[k] for r in group]):.2f}" for k in ("now", "k2", "k3")]
    if "psnr now" in group[0]:
        cells += [
            f"PSNR {k} {np.mean([r['psnr ' + k] - r['psnr now'] for r in group]):+.3f}"
            for k in ("k2", "k3", "true")
        ]
    print(f"sigma {sigma} ({len(group)} photos): " + "; ".join(cells))

"""BM3D's block-matching profile for the default restore's noise plan, on training photos: what
each search costs and scores against the package's reference profile (issue "the main job on
real photos", target noise sigma 25 >= the best classical method, within 2x time).

BM3D's time is nearly all in its collaborative filtering, one 3-D transform per reference block
and channel: it scales with 1 / step^2 and hardly with the search window (the block matching is
done once, on the first opponent channel), plus a fixed 0.26 s per channel at the 39 x 39 window
for the block-matching correction for correlated noise (gamma), whatever the image's size. The
noise plan runs BM3D on the whole photo and twice on its SURE crop, so its profile is the one
nearest the reference (the largest window, the smallest step) that keeps the default restore
within the time budget.

Photos: the training photos (`real_photos.TRAIN`, 256 px crops) and the colour photos of the sample
photos' train split, prepared the same way; never a held-out photo of either set. Per photo and
sigma (Gaussian noise, sigma measured by `restore/analysis.py` as the plan does), one JSON line:
PSNR of each profile; then the mean per sigma, and the time of each profile on a 512 x 512
photo (astronaut at sigma 25, median of 3) and on its 128 px centre crop (the SURE crop).

Run:  python benchmarks/bm3d_profile.py --output rows.jsonl [--sigmas 15,25,50]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

# name -> (search window, step, block-matching correction gamma), both stages; "reference" is the
# package's own profile ("g0": without the correction for correlated noise).
PROFILES = {
    "39/5": (39, 5, 3.0),
    "39/5 g0": (39, 5, 0.0),
    "39/4": (39, 4, 3.0),
    "39/4 g0": (39, 4, 0.0),
    "39/3 g0": (39, 3, 0.0),
    "reference": (39, 3, 3.0),
}
SAMPLE_COLOUR = ("astronaut", "china", "motorcycle_left", "ihc")


def photos(size: int) -> dict[str, np.ndarray]:
    from PIL import Image

    from unires_jax.data import real_photos, sample_photos

    out = {
        name: real_photos.load(name, size) for name in real_photos.available("train")
    }
    for name in SAMPLE_COLOUR:
        assert name in sample_photos.TRAIN
        with Image.open(sample_photos.photo_path(name)) as im:
            out[f"sample:{name}"] = real_photos.prepare(im, size)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="JSON lines (overwritten)")
    parser.add_argument("--sigmas", default="15,25,50")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)

    from skimage import data

    from unires_jax.restore import adaptive, analysis

    rows = []
    with pathlib.Path(args.output).open("w") as f:
        for sigma in map(int, args.sigmas.split(",")):
            for i, (name, clean) in enumerate(photos(args.size).items()):
                rng = np.random.default_rng(1000 * sigma + i)
                noisy = clean + sigma / 255.0 * rng.standard_normal(clean.shape)
                noisy = np.clip(noisy, 0.0, 1.0).astype(np.float32)
                measured = analysis.analyse(noisy).noise / 255.0
                row = {"photo": name, "sigma": sigma, "measured": measured * 255}
                for profile, (window, step, gamma) in PROFILES.items():
                    out = adaptive.bm3d_denoise(
                        noisy,
                        measured,
                        window=window,
                        step=step,
                        match_correction=gamma,
                    )
                    error = np.mean((out.astype(np.float64) - clean) ** 2)
                    row[profile] = float(10 * np.log10(1.0 / error))
                rows.append(row)
                f.write(json.dumps(row) + "\n")
                f.flush()
            print(f"sigma {sigma}: done", flush=True)

    clean = data.astronaut().astype(np.float32) / 255.0
    noisy = np.clip(
        clean + 25 / 255 * np.random.default_rng(0).standard_normal(clean.shape), 0, 1
    ).astype(np.float32)
    seconds, crop_seconds = {}, {}
    crop = noisy[192:320, 192:320]  # the noise plan's SURE crop of a 512 px photo
    for profile, (window, step, gamma) in PROFILES.items():
        for image, out in ((noisy, seconds), (crop, crop_seconds)):
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                adaptive.bm3d_denoise(
                    image, 25 / 255, window=window, step=step, match_correction=gamma
                )
                times.append(time.perf_counter() - t0)
            out[profile] = float(np.median(times))
    print("| sigma | photos | " + " | ".join(PROFILES) + " |")
    print("|---|---|" + "---|" * len(PROFILES))
    for sigma in sorted({r["sigma"] for r in rows}):
        group = [r for r in rows if r["sigma"] == sigma]
        cells = []
        for profile in PROFILES:
            gap = [r[profile] - r["reference"] for r in group]
            cells.append(
                f"{np.mean([r[profile] for r in group]):.2f} "
                f"({np.mean(gap):+.2f}, worst {min(gap):+.2f})"
            )
        print(f"| {sigma} | {len(group)} | " + " | ".join(cells) + " |")
    print(
        "| 512 px, seconds | | "
        + " | ".join(f"{seconds[p]:.2f}" for p in PROFILES)
        + " |"
    )
    print(
        "| its 128 px SURE crop, seconds | | "
        + " | ".join(f"{crop_seconds[p]:.2f}" for p in PROFILES)
        + " |"
    )
    print(
        f"adaptive.py: window {adaptive.BM3D_SEARCH_WINDOW}, step {adaptive.BM3D_STEP}, "
        f"gamma {adaptive.BM3D_MATCH_CORRECTION}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

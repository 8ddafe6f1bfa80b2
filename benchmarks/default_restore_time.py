"""Time of the default `unires restore` of a 512x512 photo against the previous default (the
paper's most-popular preset, DN -0.2 / DownLQ 1.2), same model, same photos, in one run.

Claim (issue "the main job on real photos"): the adaptive default stays within 2x the time of
the previous default on 2 CPU cores. The adaptive default's cost depends on what it finds: a clean
photo runs no model at all; a noisy one runs the DN expert and BM3D each twice on a 128 px crop
(SURE and its probe; one DDIM step with the embedded model), BM3D on the photo, and DN on the
photo only where SURE gives it weight; a blurred one runs MD or DD once with the deblurring
projection; so the photo is restored clean, with noise sigma 25, JPEG quality 10 (a 2-copy
ensemble of DN), a 9 px motion blur and a Gaussian blur of sigma 2. Each is timed after a
warm-up (compilation), median of --repeats, both restorers interleaved.

Run:  python benchmarks/default_restore_time.py [--size 512] [--repeats 3] [--photo astronaut]
(training photos only: the benchmark says nothing about quality, and held-out photos stay unused)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

CASES = ("clean", "noise:25", "jpeg:10", "motion:9@30", "blur:2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--photo", default="astronaut", help="a sample photo of the train split"
    )
    args = parser.parse_args(argv)

    import jax

    from unires_jax import restore
    from unires_jax.data.degradations import specs
    from unires_jax.data.sample_photos import TRAIN, load_sample_photos

    if args.photo not in TRAIN:
        raise SystemExit(f"--photo must be a training photo ({', '.join(TRAIN)})")
    image = load_sample_photos("train")[args.photo].astype(np.float32) / 255.0
    h, w = image.shape[:2]
    side = min(args.size, h, w)
    top, left = (h - side) // 2, (w - side) // 2
    photo = image[top : top + side, left : left + side]
    adaptive = restore.load()
    preset = restore.load(preset="most-popular")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}, jax {jax.__version__}; photo {args.photo} {side}x{side}"
    )
    ratios = []
    for index, case in enumerate(CASES):
        lq = (
            photo
            if case == "clean"
            else specs.parse(case).apply(photo, np.random.default_rng(index))
        )
        timings = {"adaptive": [], "preset": []}
        for name, restorer in (("adaptive", adaptive), ("preset", preset)):
            restorer.restore(lq, seed=0)  # compilation
        for _ in range(args.repeats):
            for name, restorer in (("adaptive", adaptive), ("preset", preset)):
                t0 = time.perf_counter()
                restorer.restore(lq, seed=0)
                timings[name].append(time.perf_counter() - t0)
        a, p = (
            statistics.median(timings["adaptive"]),
            statistics.median(timings["preset"]),
        )
        ratios.append(a / p)
        decided = adaptive.restore(lq, seed=0).details["weights_details"]["adaptive"]
        print(
            f"{case:12s} adaptive {a:6.2f} s ({decided['reason']}) | preset {p:6.2f} s | "
            f"ratio {a / p:.2f}"
        )
    print(f"worst ratio adaptive / preset = {max(ratios):.2f} (target <= 2.0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

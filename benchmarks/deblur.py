"""Blind deblurring (`restore/deblur.py`): how well the PSF is found, how often the gate lets it
act, and the PSNR it adds to the blur experts, against the same restorations without it.

For every photo of a split (256x256 centred squares, 8-bit like a saved photo), six inputs:
the demo's two fixed blurs (15 px straight motion at 45 degrees, disk of radius 4), a random
straight motion blur (3-25 px, any angle) and a random disk (radius 1-6 px) as in the
"canonical" training recipe, the paper's OID-Motion degradation (camera shake along a curved
path, lens blur, shot noise, JPEG: not a straight line, so the gate should mostly refuse it),
and the sharp photo itself (must be refused). Each is restored by its expert (MD for motion,
DD for defocus and the sharp photo) with `RestoreSettings.deblur` off and on, in one run.

Printed per input kind: the share of inputs the gate accepted, the PSF error where the truth
is a line or disk (length / radius in px, angle in degrees), and the mean PSNR gain over the
input without and with deblurring (for the sharp photo: PSNR against itself of the
restoration, with and without).

Decide with "--split train" (the default): the held-out photos are for `unires demo`.

Run:  python benchmarks/deblur.py [--checkpoint DIR] [--split train] [--steps 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

KINDS = ("demo_motion", "demo_defocus", "random_line", "random_disk", "camera_shake", "sharp")


def make_input(kind: str, hq: np.ndarray, rng: np.random.Generator):
    """(the degraded 8-bit input, the expert, the true PSF's parameters or None)."""
    from unires_jax.data.degradations import tasks
    from unires_jax.data.degradations.blur import convolve, disk_kernel, line_kernel

    truth = None
    if kind == "demo_motion":
        truth = ("line", tasks.FIXED_MOTION_LENGTH, tasks.FIXED_MOTION_ANGLE)
    elif kind == "demo_defocus":
        truth = ("disk", tasks.FIXED_DEFOCUS_RADIUS, 0.0)
    elif kind == "random_line":
        truth = ("line", float(rng.uniform(*tasks.CANONICAL_MOTION_LENGTH)),
                 float(rng.uniform(0, 180)))
    elif kind == "random_disk":
        truth = ("disk", float(rng.uniform(*tasks.CANONICAL_DEFOCUS_RADIUS)), 0.0)
    if truth is not None:
        family, size, angle = truth
        kernel = line_kernel(size, angle) if family == "line" else disk_kernel(size)
        degraded = convolve(hq, kernel)
    elif kind == "camera_shake":
        degraded = tasks.degrade_motion(hq, rng)
    else:
        degraded = hq
    expert = "MD" if kind in ("demo_motion", "random_line", "camera_shake") else "DD"
    image = (np.round(np.clip(degraded, 0, 1) * 255) / 255).astype(np.float32)
    return image, expert, truth


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(max(np.mean((np.clip(a, 0, 1) - b) ** 2), 1e-12)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="UniRes checkpoint (default: embedded)")
    parser.add_argument("--split", default="train", choices=("train", "heldout", "all"))
    parser.add_argument("--steps", type=int, default=4, help="DDIM steps")
    parser.add_argument("--seed", type=int, default=7, help="seed of the random blurs")
    parser.add_argument("--json", type=pathlib.Path, default=None, help="write every row here")
    args = parser.parse_args(argv)

    from unires_jax.data.sample_photos import load_sample_photos
    from unires_jax.evaluate.demo import center_square
    from unires_jax.restore.restorer import Restorer

    off = Restorer.load(args.checkpoint, deblur=False)
    on = off.with_settings(deblur=True)
    rng = np.random.default_rng(args.seed)
    rows = []
    for name, photo in load_sample_photos(args.split).items():
        hq = center_square(photo)
        for kind in KINDS:
            image, expert, truth = make_input(kind, hq, rng)
            plain = np.asarray(off.restore(image, {expert: 1.0}, steps=args.steps))
            prepared = on.prepare(image)
            deblurred = prepared.finish(plain[None])[0]
            psf = prepared.psf
            row = {
                "photo": name, "kind": kind, "expert": expert, "used": psf.confident,
                "found": psf.describe(), "fit": psf.fit, "slope": psf.slope,
                "input": psnr(image, hq) if kind != "sharp" else None,
                "without": psnr(plain, hq), "with": psnr(deblurred, hq),
            }
            if truth is not None and psf.family == truth[0]:
                row["size_error"] = abs(psf.size - truth[1])
                if truth[0] == "line":
                    d = abs(psf.angle - truth[2]) % 180.0
                    row["angle_error"] = min(d, 180.0 - d)
            rows.append(row)
            print(f"{name:18s} {kind:13s} {psf.describe():45s} used={psf.confident!s:5s} "
                  f"without {row['without']:6.2f} with {row['with']:6.2f}", flush=True)
    print(f"\n{args.split} split, {args.steps} steps: mean over photos")
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        used = np.mean([r["used"] for r in mine])
        if kind == "sharp":
            without, with_ = (np.mean([r[k] for r in mine]) for k in ("without", "with"))
            line = f"PSNR of the restoration vs the photo {without:.2f} -> {with_:.2f} dB"
        else:
            gain = {k: np.mean([r[k] - r["input"] for r in mine]) for k in ("without", "with")}
            line = f"gain over input {gain['without']:+.2f} -> {gain['with']:+.2f} dB"
        sizes = [r["size_error"] for r in mine if "size_error" in r]
        angles = [r["angle_error"] for r in mine if "angle_error" in r]
        errors = ""
        if sizes:
            errors = (f"; right family {len(sizes)}/{len(mine)}, "
                      f"size error {np.median(sizes):.2f} px")
            if angles:
                errors += f", angle error {np.median(angles):.2f} deg (medians)"
        print(f"  {kind:13s} used {used:4.0%}  {line}{errors}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    sys.exit(main())

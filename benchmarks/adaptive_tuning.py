"""The measurements the default weight choice (`restore/adaptive.py`) is tuned from, on TRAINING
photos only (`real_photos.TRAIN`: never the held-out photos of `benchmarks/real_photos.py`).

Per training photo (a 256x256 crop) and degradation case, it records what `restore/analysis.py`
and the PSF fit of `restore/deblur.py` measure on the degraded input, and the PSNR gain over the
input of each candidate the default can choose from:

- `DN@w`, `MD@w`, `DD@w`: one expert alone, without the deblurring projection, blended with
  the input as y + w (expert(y) - y) for w in BLENDS (one restore per expert; the blends are
  computed from it);
- `MD+deblur`, `DD+deblur`: the blur experts with the restorer's deblurring projection (what a
  blur plan runs);
- `default`: the current default restore (`unires_jax.restore.load()`, no options).

Printed: per case, the mean features and gains over photos with the worst photo's gain; the rows
go to OUTPUT as JSON lines (one per photo and case) for the thresholds in `restore/adaptive.py`.

Run:  python benchmarks/adaptive_tuning.py --output /tmp/adaptive_tuning.jsonl
      [--checkpoint DIR] [--photos aqua,blinds] [--cases jpeg:10,noise:25]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

CASES = (
    "clean",
    "noise:3",
    "noise:5",
    "noise:10",
    "noise:25",
    "noise:50",
    "jpeg:95",
    "jpeg:90",
    "jpeg:70",
    "jpeg:50",
    "jpeg:30",
    "jpeg:20",
    "jpeg:10",
    "blur:0.7",
    "blur:1.5",
    "blur:2.5",
    "motion:7",
    "motion:13@60",
    "shake:30",
    "defocus:2",
    "defocus:4",
    "blur:1+noise:10+jpeg:50",
    "noise:15+jpeg:40",
)
BLENDS = (0.25, 0.5, 0.75, 1.0)


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """PSNR of the 8-bit rounding of `image` against `reference` (both [0, 1]), capped at 60."""
    error = np.mean((np.round(np.clip(image, 0, 1) * 255) / 255 - reference) ** 2)
    return 60.0 if error < 1e-6 else float(min(60.0, 10 * np.log10(1 / error)))


def measure(restorers, lq: np.ndarray, hq: np.ndarray) -> dict:
    """Features of `lq` and the gain of every candidate (see the module docstring)."""
    from unires_jax.restore import analysis, deblur

    plain, no_deblur = restorers
    base = psnr(lq, hq)
    measured = analysis.analyse(lq)
    psf = deblur.fit_psf(lq.mean(axis=-1))
    row = {
        "input_psnr": base,
        "noise": measured.noise,
        "blockiness": measured.blockiness,
        "psf": {
            "family": psf.family,
            "size": psf.size,
            "fit": psf.fit,
            "confident": bool(psf.confident),
        },
        "gains": {},
    }
    for expert in ("DN", "MD", "DD"):
        out, _ = no_deblur.restorer.timed_restore(lq, {expert: 1.0}, seed=0)
        for w in BLENDS:
            row["gains"][f"{expert}@{w:g}"] = psnr(lq + w * (out - lq), hq) - base
    for expert in ("MD", "DD"):
        out, _ = plain.restorer.timed_restore(lq, {expert: 1.0}, seed=0)
        row["gains"][f"{expert}+deblur"] = psnr(out, hq) - base
    restored = plain.restore(lq, seed=0)
    row["gains"]["default"] = psnr(restored.pixels, hq) - base
    row["default_choice"] = restored.details["weights_source"]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output", required=True, help="a .jsonl file (appended; resumes)"
    )
    parser.add_argument(
        "--checkpoint", default=None, help="default: the embedded model"
    )
    parser.add_argument(
        "--photos", default=None, help="comma-separated (default: TRAIN)"
    )
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)

    from unires_jax import restore

    photos = training_photos(args.photos)
    plain = restore.load(args.checkpoint)
    no_deblur = restore.load(args.checkpoint, deblur=False)
    out = pathlib.Path(args.output)
    done = set()
    if out.exists():
        done = {
            (r["photo"], r["case"])
            for r in map(json.loads, out.read_text().splitlines())
        }
    cases = args.cases.split(",")
    t0 = time.perf_counter()
    with out.open("a") as f:
        for ci, case in enumerate(cases):
            for pi, photo in enumerate(photos):
                if (photo, case) in done:
                    continue
                lq, hq = degraded(photo, case, ci, pi, args.size)
                row = {
                    "photo": photo,
                    "case": case,
                    **measure((plain, no_deblur), lq, hq),
                }
                f.write(json.dumps(row) + "\n")
                f.flush()
            print(f"{case}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    print(table(rows, cases))
    return 0


def training_photos(names: str | None) -> list[str]:
    """The photos of a comma-separated --photos (default: all of `real_photos.TRAIN`); any
    other photo (a held-out one above all) ends the run: settings are tuned on training photos
    only."""
    from unires_jax.data import real_photos

    photos = names.split(",") if names else list(real_photos.TRAIN)
    unknown = sorted(set(photos) - set(real_photos.TRAIN))
    if unknown:
        raise SystemExit(f"training photos only; not training photos: {unknown}")
    return photos


def degraded(photo: str, case: str, case_index: int, photo_index: int, size: int):
    """(lq, hq) of one row: the photo's crop and its degradation (as the held-out benchmark
    makes them), seeded by the case's index in the run's --cases and the photo's in its
    --photos."""
    from real_photos import _pixels

    return _pixels(photo, case, size, 7919 * case_index + photo_index)


def table(rows, cases) -> str:
    """Per case: mean features, and per candidate the mean gain / the worst photo's gain."""
    names = list(rows[0]["gains"])
    lines = [
        "| case | noise | block | fit | " + " | ".join(names) + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    for case in cases:
        group = [r for r in rows if r["case"] == case]
        if not group:
            continue
        gains = {n: [r["gains"][n] for r in group] for n in names}
        cells = [f"{np.mean(v):+.2f}/{np.min(v):+.2f}" for v in gains.values()]
        lines.append(
            f"| {case} | {np.mean([r['noise'] for r in group]):.1f} | "
            f"{np.mean([r['blockiness'] for r in group]):.3f} | "
            f"{np.mean([r['psf']['fit'] for r in group]):.2f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""The default restore's noise plan on training photos: its candidates and its output against
the reference BM3D (issue "the main job on real photos", target noise sigma 25 >= the best
classical method).

Training photos only (`real_photos.TRAIN`, 256 px crops, the held-out benchmark's preparation
and degradations): the settings of the noise plan (BM3D's search, the DN's DDIM steps, the
noise estimate's clipping rule) were chosen from these rows, never from held-out photos.

Per photo and noise case, one JSON line:
- `sigma_measured`: `restore/analysis.py`'s estimate (8-bit scale);
- `candidates`: PSNR of the DN expert alone at 1 and at the model's 4 DDIM steps, non-local
  means and the noise plan's BM3D (`adaptive.bm3d_denoise`), each at the measured sigma;
- `default`: PSNR of the default chooser's output (the SURE blend) and its blend weights;
- `bm3d_reference`: `bm3d.bm3d_rgb` with its reference profile at scikit-image's
  `estimate_sigma`, exactly as `benchmarks/real_photos.py` runs its classical BM3D;
- `seconds`: wall-clock of each (2 CPU cores shared: indicative only).
Printed: the mean over photos per case.

Run:  python benchmarks/noise_plan.py --output rows.jsonl [--cases noise:25] [--photos aqua]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


def _psnr(clean: np.ndarray, image: np.ndarray) -> float:
    error = np.mean((np.asarray(image, np.float64) - clean) ** 2)
    return float(10 * np.log10(1.0 / error))


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="JSON lines, appended")
    parser.add_argument("--cases", default="noise:5,noise:15,noise:25,noise:50")
    parser.add_argument(
        "--photos", default=None, help="comma-separated training photos"
    )
    args = parser.parse_args(argv)

    import bm3d
    from adaptive_tuning import training_photos
    from real_photos import _pixels
    from skimage.restoration import estimate_sigma

    from unires_jax.restore import adaptive, analysis, unires
    from unires_jax.restore.restorer import Restorer

    photos = training_photos(args.photos)
    model = Restorer.load(None)
    dn = {s: model.with_settings(steps=s, deblur=False) for s in (1, 4)}
    chooser = unires.adaptive_weights()
    cases = args.cases.split(",")
    rows: dict[str, list[dict]] = {case: [] for case in cases}
    with open(args.output, "a") as out:
        for case in cases:
            for photo in photos:
                lq, hq = _pixels(photo, case, 256, 0)
                lq = np.asarray(lq, np.float32)
                sigma = analysis.analyse(lq).noise / 255.0
                row = {"photo": photo, "case": case, "input": _psnr(hq, lq)}
                row["sigma_measured"] = round(sigma * 255.0, 3)
                candidates, seconds = {}, {}
                for steps, restorer in dn.items():
                    image, seconds[f"dn@{steps}"] = _timed(
                        restorer.restore, lq, {"DN": 1.0}
                    )
                    candidates[f"dn@{steps}"] = _psnr(hq, image)
                for name, fn in (
                    ("nonlocal_means", adaptive.nonlocal_means),
                    ("bm3d_plan", adaptive.bm3d_denoise),
                ):
                    image, seconds[name] = _timed(fn, lq, sigma)
                    candidates[name] = _psnr(hq, image)
                t0 = time.perf_counter()
                choice = chooser(lq, model, seed=0, name=None)
                seconds["default"] = time.perf_counter() - t0
                row["candidates"] = candidates
                row["default"] = _psnr(hq, choice.image)
                row["default_plan"] = choice.details["adaptive"]
                reference = float(np.mean(estimate_sigma(lq, channel_axis=-1)))
                image, seconds["bm3d_reference"] = _timed(
                    bm3d.bm3d_rgb, lq, max(reference, 1e-3)
                )
                row["bm3d_reference"] = _psnr(hq, np.clip(image, 0, 1))
                row["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
                print(json.dumps(row), file=out, flush=True)
                rows[case].append(row)
                print(
                    f"{case} {photo}: input {row['input']:.2f}, default {row['default']:.2f}"
                    f", BM3D reference {row['bm3d_reference']:.2f}, sigma measured "
                    f"{row['sigma_measured']:.1f}",
                    flush=True,
                )
    print(
        "\ncase | photos | input | default | BM3D reference | " + " | ".join(candidates)
    )
    for case, got in rows.items():
        means = [
            np.mean([r[key] for r in got])
            for key in ("input", "default", "bm3d_reference")
        ]
        means += [np.mean([r["candidates"][k] for r in got]) for k in candidates]
        print(f"{case} | {len(got)} | " + " | ".join(f"{m:.2f}" for m in means))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

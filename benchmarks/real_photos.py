"""Default `unires restore` on held-out real photos, against the input and classical methods.

The held-out photos are `unires_jax.data.real_photos.HELDOUT` (a portrait from matplotlib's
sample data and four nature photos of Debian's mate-backgrounds: `apt-get install
mate-backgrounds`), chosen by content before any tuning, never trained on and never used to
choose a setting. Each is a 256x256 crop (see that module), degraded by every case below and
restored by the plain default: `unires_jax.restore.load()` with no options, as
`unires restore photo.png --output DIR` runs it (the x4 case adds `upscale=4`, as
`--upscale 4`). Classical methods run on the same inputs in the same script:

- noise, JPEG and the mixture: scikit-image's non-local means (the recipe of its docs: sigma
  from `estimate_sigma`, h = 0.8 sigma, 5x5 patches, distance 6) and TV (Chambolle, weight =
  the estimated sigma, at least 0.02); BM3D (`bm3d` package, estimated sigma) when it imports;
- blur (Gaussian, straight motion, curved camera shake, defocus): Richardson-Lucy (30
  iterations) with the true PSF, given to it (an upper bound for a classical deblurrer), and
  Wiener with the PSF that `restore/deblur.py` fits (when it fits one);
- x4: bicubic (the "input" of that case).

Scores (on the 8-bit images, as written): PSNR / SSIM against the clean crop, NIQE, and LPIPS
when --lpips-heads / --lpips-backbone are given. The run goes through the evaluation harness
(`evaluate/harness.py`): OUTPUT gets results.jsonl, summary.md, montages/ and images/, and a
rerun resumes. Printed: per case, the mean over photos of each method, the photos where the
default is worse than the input, and whether each target of the issue is met.

Run:  python benchmarks/real_photos.py --output /tmp/real_photos [--photos dune,wood]
      [--cases noise:25,jpeg:10] [--checkpoint DIR] [--lpips-heads F --lpips-backbone F]
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import sys
import time

import numpy as np

# The cases (degradation specs, `unires_jax.data.degradations.specs`); "clean" is the photo.
CASES = (
    "clean",
    "noise:5",
    "noise:15",
    "noise:25",
    "noise:50",
    "jpeg:90",
    "jpeg:30",
    "jpeg:10",
    "blur:1",
    "blur:2",
    "motion:9@30",
    "motion:15",
    "shake:40",
    "defocus:3",
    "blur:1+noise:15+jpeg:40",
    "down:4",
)
# PSNRs above this are the same picture (float rounding of identical 8-bit images); shown as is.
IDENTICAL_DB = 60.0
# The rule for a clean photo: it comes back at >= CLEAN_DB against itself.
CLEAN_DB = 35.0
# The targets on the mean over photos: (case, method or "input", dB over it).
TARGETS = (
    ("noise:25", "best classical", 0.0),
    ("jpeg:10", "best classical", 0.0),
    ("motion:9@30", "input", 1.0),
    ("motion:15", "input", 1.0),
    ("blur:2", "input", 1.0),
    ("down:4", "input", 0.3),
    ("blur:1+noise:15+jpeg:40", "input", 1.0),
)


def _kind(spec: str) -> set[str]:
    return (
        {part.split(":")[0] for part in spec.split("+")} if spec != "clean" else set()
    )


def classical(spec: str, lq: np.ndarray, kernel) -> dict[str, np.ndarray]:
    """The classical restorations of one input `[H, W, 3]` (see the module docstring)."""
    from skimage.restoration import (
        denoise_nl_means,
        denoise_tv_chambolle,
        estimate_sigma,
        richardson_lucy,
        wiener,
    )

    from unires_jax.restore import deblur

    kinds = _kind(spec)
    out: dict[str, np.ndarray] = {}
    if kinds & {"noise", "jpeg"}:
        sigma = float(np.mean(estimate_sigma(lq, channel_axis=-1)))
        out["nlm"] = denoise_nl_means(
            lq, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5,
            patch_distance=6, channel_axis=-1,
        )  # fmt: skip
        out["tv"] = denoise_tv_chambolle(lq, weight=max(sigma, 0.02), channel_axis=-1)
        try:
            import bm3d
        except ImportError:
            pass
        else:
            out["bm3d"] = np.clip(bm3d.bm3d_rgb(lq, max(sigma, 1e-3)), 0, 1)
    if kinds & {"blur", "motion", "shake", "defocus"} and kernel is not None:
        out["rl_true_psf"] = _deconvolve(
            lq, kernel, lambda x, k: richardson_lucy(x, k, num_iter=30)
        )
        psf = deblur.fit_psf(lq.mean(-1))
        if psf.confident:
            out["wiener_fitted_psf"] = _deconvolve(
                lq, psf.kernel(), lambda x, k: wiener(x, k, balance=0.01)
            )
    return {k: np.clip(v, 0, 1).astype(np.float32) for k, v in out.items()}


def _deconvolve(lq: np.ndarray, kernel: np.ndarray, method) -> np.ndarray:
    """A per-channel deconvolution of a reflect-padded image (the blur was made with reflected
    borders; without the padding Richardson-Lucy's zero borders ring into the photo)."""
    pad = max(kernel.shape)
    padded = np.pad(lq, ((pad, pad), (pad, pad), (0, 0)), mode="reflect").astype(
        np.float64
    )
    channels = [method(padded[..., c], kernel.astype(np.float64)) for c in range(3)]
    return np.clip(np.stack(channels, -1)[pad:-pad, pad:-pad], 0, 1)


def _pixels(photo: str, spec: str, size: int, seed: int):
    from unires_jax.data import real_photos
    from unires_jax.data.degradations import specs

    hq = real_photos.load(photo, size)
    if spec == "clean":
        return hq.copy(), hq
    degradation = specs.parse(spec)
    return degradation.apply(hq, np.random.default_rng(seed)), hq


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True)
    parser.add_argument(
        "--photos", default=None, help="comma-separated (default: HELDOUT)"
    )
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument(
        "--checkpoint", default=None, help="default: the embedded model"
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lpips-heads", default=None)
    parser.add_argument("--lpips-backbone", default=None)
    args = parser.parse_args(argv)

    from unires_jax import restore
    from unires_jax.data import real_photos
    from unires_jax.data.degradations import specs
    from unires_jax.evaluate import harness
    from unires_jax.evaluate.datasets import Sample
    from unires_jax.evaluate.metrics import MetricOptions, Metrics
    from unires_jax.restore.upscale import upscale_input

    photos = args.photos.split(",") if args.photos else list(real_photos.HELDOUT)
    missing = [
        p
        for p in photos
        if p not in real_photos.available("heldout") + real_photos.TRAIN
    ]
    if missing:
        for p in missing:
            try:
                real_photos.photo_path(p)
            except (KeyError, FileNotFoundError) as e:
                print(f"real_photos: {e}", file=sys.stderr)
        return 2
    cases = args.cases.split(",")
    names = ["psnr", "ssim", "niqe"] + (["lpips"] if args.lpips_heads else [])
    metrics = Metrics.load(
        names,
        MetricOptions(lpips_heads=args.lpips_heads, lpips_backbone=args.lpips_backbone),
    )
    restorers = {}

    def restorer(scale: int):
        if scale not in restorers:
            options = {"upscale": scale} if scale > 1 else {}
            restorers[scale] = restore.load(args.checkpoint, **options)
        return restorers[scale]

    samples = []
    for case in cases:
        scale = 1 if case == "clean" else specs.parse(case).scale
        for index, photo in enumerate(photos):
            seed = args.seed + 1000 * cases.index(case) + index
            samples.append(
                Sample(
                    id=f"{case}/{photo}",
                    degradation=case,
                    source=f"real_photos:{photo}",
                    load=functools.partial(_pixels, photo, case, args.size, seed),
                    scale=scale,
                )
            )

    def produce(sample, lq, hq):
        case = sample.degradation
        t0 = time.perf_counter()
        restored = restorer(sample.scale).restore(lq, seed=0, name=sample.id)
        seconds = time.perf_counter() - t0
        images = {"input": upscale_input(lq, sample.scale), "unires": restored.pixels}
        if case != "clean":
            images.update(classical(case, lq, specs.parse(case).kernel))
        details = {k: v for k, v in restored.details.items() if k != "timings"}
        return harness.Produced(images, {**details, "unires_seconds": seconds})

    report = harness.evaluate(
        samples,
        produce,
        metrics,
        args.output,
        run_config={
            "benchmark": "real_photos",
            "checkpoint": args.checkpoint,
            "size": args.size,
            "seed": args.seed,
        },
        main_output="unires",
        label="real_photos",
    )
    table = _table(report.rows, cases)
    print(table)
    out = pathlib.Path(args.output)
    (out / "real_photos.md").write_text(table + "\n")
    (out / "real_photos.json").write_text(
        json.dumps(_means(report.rows), indent=1) + "\n"
    )
    return 0


def _means(rows):
    """case -> method -> {psnr, ssim, niqe, ...} means over photos, and the worse-than-input
    photos of the default."""
    out = {}
    for row in rows:
        entry = out.setdefault(
            row["degradation"], {"photos": 0, "worse": [], "methods": {}}
        )
        entry["photos"] += 1
        m = row["metrics"]
        # Above 60 dB two 8-bit images differ by float rounding only: the same picture.
        unires_psnr = min(m["unires"].get("psnr") or IDENTICAL_DB, IDENTICAL_DB)
        # A clean photo cannot be made better; "worse" there means below CLEAN_DB against itself.
        floor = CLEAN_DB if row["degradation"] == "clean" else None
        if floor is None:
            floor = min(m["input"].get("psnr") or IDENTICAL_DB, IDENTICAL_DB) - 1e-6
        if unires_psnr < floor:
            entry["worse"].append(row["id"].split("/", 1)[1])
        for method, scores in m.items():
            acc = entry["methods"].setdefault(method, {})
            for column, value in scores.items():
                if value is not None:
                    acc.setdefault(column, []).append(value)
    for entry in out.values():
        for method, acc in entry["methods"].items():
            entry["methods"][method] = {k: float(np.mean(v)) for k, v in acc.items()}
    return out


def _table(rows, cases) -> str:
    means = _means(rows)
    lines = [
        (
            "| case | input | unires (default) | classical (best) | unires worse than input on "
            "| target | met? |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    targets = {case: (base, margin) for case, base, margin in TARGETS}
    for case in cases:
        if case not in means:
            continue
        entry = means[case]
        methods = entry["methods"]
        # PSNR of an image identical to the reference is infinite (recorded as null).
        psnr = {
            k: min(v.get("psnr", IDENTICAL_DB), IDENTICAL_DB)
            for k, v in methods.items()
        }
        classic = {k: v for k, v in psnr.items() if k not in ("input", "unires")}
        best = max(classic, key=classic.get) if classic else None
        best_text = f"{classic[best]:.2f} ({best})" if best else "-"
        target, met = "never below input", not entry["worse"]
        if case == "clean":
            target = f">= {CLEAN_DB:g} dB on every photo"
        if case in targets:
            base, margin = targets[case]
            reference = (
                psnr["input"] if base == "input" else (classic[best] if best else 0.0)
            )
            target = f"{base} + {margin:g} dB" if margin else f">= {base}"
            met = met and psnr["unires"] >= reference + margin
        worse = ", ".join(entry["worse"]) or "none"
        lines.append(
            f"| {case} | {psnr['input']:.2f} | {psnr['unires']:.2f} | {best_text} | {worse} | "
            f"{target} | {'yes' if met else '**no**'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

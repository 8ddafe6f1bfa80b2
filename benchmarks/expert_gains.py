"""Each task expert's PSNR gain over its degraded input, for a UniRes checkpoint (#9 targets).

The four single-task cases of `unires demo` (Gaussian noise sigma 25, 15 px motion blur at 45
degrees, disk defocus of radius 4, bicubic x4), each restored with its own expert alone (DN, MD,
DD, SR) by `Restorer.restore`, as the demo does; the baseline is the degraded input itself
(for x4 SR: bicubic upsampling). x4 SR is given as the 64x64 image and restored with
`RestoreSettings.upscale=4` (upscale, restore, project onto the input) as the demo does; with
--no-consistency the projection is left out, for comparison. The noise draw is seeded per
case, not as in the demo, so denoise figures can differ from the demo's in the second decimal.
Blurred inputs are deblurred with their fitted PSF as `unires restore` does
(`RestoreSettings.deblur`); --no-deblur leaves that out, for comparison.
Photos are a split of the sample photos, as 256x256 centred squares (the demo's preparation)
or, with --native, 256x256 centre crops at the photo's own scale (the training crops' scale).

Use "--split train" to compare training recipes without looking at the held-out photos: the
training photos were seen in training, so their gains are higher than held-out ones, but they
rank recipes without spending the held-out split.

With --ensemble 1,8 each step count is also measured with the geometric self-ensemble
(`RestoreSettings.ensemble`), and --niqe adds the mean NIQE of the restored images (lower is
more natural), the texture side of the fidelity trade-off.

Run:  python benchmarks/expert_gains.py [--checkpoint DIR] [--split heldout] [--steps 1,4]
      [--ensemble 1] [--niqe] [--native] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

CASES = ("denoise", "motion", "defocus", "sr_x4")
SIZE = 256


def native_crop(image: np.ndarray, size: int = SIZE) -> np.ndarray:
    """The centred size x size crop of a uint8 photo at its own scale -> float [0, 1]."""
    h, w = image.shape[:2]
    if min(h, w) < size:
        raise ValueError(f"photo of {h}x{w} is smaller than the {size}x{size} crop")
    top, left = (h - size) // 2, (w - size) // 2
    return image[top : top + size, left : left + size].astype(np.float32) / 255.0


def case_restorers(restorer) -> dict[int, object]:
    """{upscale factor: Restorer} for the cases: `restorer` and its upscaling variants."""
    from unires_jax.evaluate.demo import UPSCALE_CASES

    factors = {UPSCALE_CASES.get(case, 1) for case in CASES} - {1}
    return {1: restorer, **{f: restorer.with_settings(upscale=f) for f in factors}}


def expert_gains(
    restorers: dict, photos: dict, steps: int, native: bool, niqe=None
) -> dict[str, dict[str, float]]:
    """{case: {photo: PSNR(expert) - PSNR(input)}} for one step count (`restorers` from
    `case_restorers`); with a NIQE model `niqe`, also {"niqe/" + case: {photo: NIQE(expert)}}."""
    from unires_jax.evaluate.demo import CASES as DEMO_CASES
    from unires_jax.evaluate.demo import UPSCALE_CASES, case_input, center_square
    from unires_jax.quality import fidelity

    gains: dict[str, dict[str, float]] = {case: {} for case in CASES}
    if niqe is not None:
        gains.update({f"niqe/{case}": {} for case in CASES})
    for name, photo in photos.items():
        hq = native_crop(photo) if native else center_square(photo)
        for seed, case in enumerate(CASES):
            expert = DEMO_CASES[case][1]
            given, lq = case_input(hq, case, seed=seed)
            restored = restorers[UPSCALE_CASES.get(case, 1)].restore(
                given, {expert: 1.0}, steps=steps
            )
            psnr_in, psnr_out = (
                float(fidelity.psnr(hq[None], x[None])[0]) for x in (lq, restored)
            )
            gains[case][name] = psnr_out - psnr_in
            if niqe is not None:
                gains[f"niqe/{case}"][name] = float(np.asarray(niqe.score(restored[None]))[0])
    return gains


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", default=None, help="UniRes checkpoint (default: embedded)"
    )
    parser.add_argument(
        "--split", default="heldout", choices=("heldout", "train", "all")
    )
    parser.add_argument(
        "--steps", default="1,4", help="comma-separated DDIM step counts"
    )
    parser.add_argument(
        "--ensemble", default="1", help="comma-separated self-ensemble sizes (1, 2, 4, 8)"
    )
    parser.add_argument(
        "--niqe", action="store_true", help="also report the NIQE of the restored images"
    )
    parser.add_argument(
        "--native", action="store_true", help="crops at the photos' own scale"
    )
    parser.add_argument(
        "--no-consistency",
        action="store_true",
        help="x4 SR without the projection onto the small input",
    )
    parser.add_argument(
        "--no-deblur",
        action="store_true",
        help="no consistency with a PSF fitted to blurred inputs (restore/deblur.py)",
    )
    parser.add_argument(
        "--json", type=pathlib.Path, default=None, help="write all gains here"
    )
    args = parser.parse_args(argv)

    from unires_jax.data.sample_photos import load_sample_photos
    from unires_jax.restore.restorer import Restorer

    niqe = None
    if args.niqe:
        from unires_jax import quality

        niqe = quality.get("niqe")
    photos = load_sample_photos(args.split)
    report = {
        "checkpoint": args.checkpoint or "embedded default",
        "split": args.split,
        "native": args.native,
        "consistency": not args.no_consistency,
        "deblur": not args.no_deblur,
        "photos": sorted(photos),
        "steps": {},
    }
    for size in (int(s) for s in args.ensemble.split(",")):
        restorers = case_restorers(
            Restorer.load(
                args.checkpoint,
                ensemble=size,
                consistency=not args.no_consistency,
                deblur=not args.no_deblur,
            )
        )
        for steps in (int(s) for s in args.steps.split(",")):
            gains = expert_gains(restorers, photos, steps, args.native, niqe)
            means = {case: float(np.mean(list(v.values()))) for case, v in gains.items()}
            # Keys stay the step count alone for ensemble 1, as before the option existed.
            key = str(steps) if size == 1 else f"{steps}/ensemble{size}"
            report["steps"][key] = {"mean": means, "per_photo": gains}
            line = " / ".join(f"{case} {means[case]:+.2f}" for case in CASES)
            if niqe is not None:
                line += " | NIQE " + " / ".join(f"{means['niqe/' + c]:.2f}" for c in CASES)
            print(
                f"{args.split}{' native' if args.native else ''} steps={steps} "
                f"ensemble={size}: mean PSNR gain (dB) {line}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())

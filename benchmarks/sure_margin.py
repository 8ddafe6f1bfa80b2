"""The noise plan's SURE margin, on training photos: how far below the classical denoiser's own
SURE a blend (with the DN expert, with the input) must be on the SURE crop before the plan takes
it (issue "the main job on real photos", target noise sigma 25 >= the best classical method).

The noise plan measures SURE on a 128 px centre crop from one Monte-Carlo probe: an estimate
with its own error, which picks a blend that is better on the crop's estimate but worse on the
photo about as often as one that is better (session 21: -0.08 to +0.10 dB against BM3D alone
per training photo, +-0 on the mean). `adaptive.blend_weights` keeps BM3D alone unless the
minimiser's SURE is below BM3D's by more than `margin` times its magnitude.

Training photos only (`real_photos.TRAIN`, 256 px crops, the held-out benchmark's preparation
and degradations, two noise seeds); never a held-out photo. Per row, one JSON line: the crop's
SURE terms (`adaptive.crop_sure_terms`, exactly as the plan measures them) and the whole
photo's true squared error of every blend, as the quadratic a'Qa + c'a + e0 of the two
whole-image restorations (DN, BM3D) on the values where the plan blends (`adaptive.unclipped`;
e0 includes BM3D's error elsewhere); then, per margin, the mean PSNR of the blend the plan
would pick and its gain over BM3D alone, per case and over all rows.

Run:  python benchmarks/sure_margin.py --output rows.jsonl [--cases noise:25] [--seeds 0,1]
      python benchmarks/sure_margin.py --output rows.jsonl --summarise   (the rows again)
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

MARGINS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.15, 0.2, 1.0)


def _psnr_of(truth: dict, weights: np.ndarray) -> float:
    """PSNR of the blend y + sum_k a_k (f_k - y) from the whole photo's error quadratic (before
    clipping to [0, 1], which only lowers the error)."""
    q, c = np.asarray(truth["q"]), np.asarray(truth["c"])
    error = (weights @ q @ weights + c @ weights + truth["e0"]) / truth["n"]
    return float(10 * np.log10(1.0 / error))


def row_for(lq, hq, model, seed: int) -> dict:
    from unires_jax.restore import adaptive, analysis

    sigma = analysis.analyse(lq).noise / 255.0
    step = adaptive.sure_probe(lq, sigma, seed)

    def expert(image):
        return np.asarray(model.restore(image, {"DN": 1.0}, seed=seed))

    terms = adaptive.crop_sure_terms(lq, step, sigma, expert, adaptive.bm3d_denoise)
    classical = adaptive.bm3d_denoise(lq, sigma)
    # The plan blends on the unclipped values only (`adaptive.blend_unclipped`) and keeps the
    # classical estimate elsewhere: the quadratic is over the former, the latter's error a
    # constant.
    inside = adaptive.unclipped(classical, sigma).ravel()
    clean = np.asarray(hq, np.float64).ravel()
    y = np.asarray(lq, np.float64).ravel()
    diffs = np.stack(
        [
            expert(lq).astype(np.float64).ravel()[inside] - y[inside],
            classical.astype(np.float64).ravel()[inside] - y[inside],
        ]
    )
    noise = y[inside] - clean[inside]
    outside = float(np.sum((classical.ravel()[~inside] - clean[~inside]) ** 2))
    return {
        "sigma_measured": round(sigma * 255.0, 3),
        "terms": {
            "gram": terms.gram.tolist(),
            "linear": terms.linear.tolist(),
            "n": terms.n,
            "sigma": terms.sigma,
        },
        "truth": {
            "q": (diffs @ diffs.T).tolist(),
            "c": (2.0 * diffs @ noise).tolist(),
            "e0": float(noise @ noise) + outside,
            "n": int(y.size),
        },
    }


def summary(rows: list[dict]) -> str:
    from unires_jax.restore import adaptive

    bm3d_alone = np.array([0.0, 1.0])
    cases = sorted({r["case"] for r in rows}, key=lambda c: float(c.split(":")[1]))
    lines = [
        "| margin | "
        + " | ".join(cases)
        + " | all rows: mean gain (worst, rows < BM3D) |",
        "|---|" + "---|" * (len(cases) + 1),
    ]
    for margin in MARGINS:
        cells, gains = [], []
        for case in cases:
            psnrs = []
            for r in (r for r in rows if r["case"] == case):
                terms = adaptive.SureTerms(
                    gram=np.asarray(r["terms"]["gram"]),
                    linear=np.asarray(r["terms"]["linear"]),
                    n=r["terms"]["n"],
                    sigma=r["terms"]["sigma"],
                )
                weights = adaptive.blend_weights(
                    terms, prefer=bm3d_alone, margin=margin
                )
                psnrs.append(_psnr_of(r["truth"], weights))
                gains.append(psnrs[-1] - _psnr_of(r["truth"], bm3d_alone))
            cells.append(f"{np.mean(psnrs):.3f}")
        below = sum(g < -1e-9 for g in gains)
        cells.append(f"{np.mean(gains):+.3f} ({min(gains):+.3f}, {below})")
        lines.append(f"| {margin:g} | " + " | ".join(cells) + " |")
    oracle = []
    for r in rows:
        grid = np.arange(21) / 20
        best = max(
            _psnr_of(r["truth"], np.array([a, b]))
            for a in grid
            for b in grid
            if a + b <= 1 + 1e-9
        )
        oracle.append(best - _psnr_of(r["truth"], bm3d_alone))
    lines.append(
        f"(margin 1 = BM3D alone; the best blend of each row, known from the clean photo: "
        f"{np.mean(oracle):+.3f} dB over BM3D alone on the mean; {len(rows)} rows)"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="JSON lines (overwritten)")
    parser.add_argument("--cases", default="noise:5,noise:15,noise:25,noise:50")
    parser.add_argument("--seeds", default="0,1", help="noise seeds per photo and case")
    parser.add_argument(
        "--photos", default=None, help="comma-separated training photos"
    )
    parser.add_argument(
        "--summarise",
        action="store_true",
        help="only print the summary of the rows already in --output",
    )
    args = parser.parse_args(argv)
    if args.summarise:
        with open(args.output) as f:
            print(summary([json.loads(line) for line in f]))
        return 0

    from adaptive_tuning import training_photos
    from real_photos import _pixels

    from unires_jax.restore import adaptive
    from unires_jax.restore.restorer import Restorer

    photos = training_photos(args.photos)
    # The noise plan's DN: the embedded default, without deblurring, at its DDIM steps for a
    # model that predicts the clean image.
    model = Restorer.load(None).with_settings(
        steps=adaptive.SAMPLE_PREDICTION_STEPS, deblur=False
    )
    rows = []
    with pathlib.Path(args.output).open("w") as out:
        for case in args.cases.split(","):
            for seed in map(int, args.seeds.split(",")):
                for i, photo in enumerate(photos):
                    lq, hq = _pixels(photo, case, 256, 1000 * seed + i)
                    row = {"photo": photo, "case": case, "seed": seed}
                    row.update(row_for(np.asarray(lq, np.float32), hq, model, seed))
                    rows.append(row)
                    print(json.dumps(row), file=out, flush=True)
            print(f"{case}: done", flush=True)
    print(summary(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

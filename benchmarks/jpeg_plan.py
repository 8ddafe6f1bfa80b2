"""The default restore's JPEG plan on training photos: how much of the DN expert a compressed
photo should get, and the rule `restore/adaptive.py` uses for it (issue "the main job on real
photos", target: the noise + blur + JPEG mixture at least input + 1 dB).

Training photos only (`real_photos.TRAIN`, 256 px crops, the held-out benchmark's preparation;
degraded as `benchmarks/adaptive_tuning.py` degrades them): compressed photos, with and without
noise (and blur) before the compression, at several qualities and noise levels. Per photo and
case the JPEG plan's restoration (the DN expert, a self-ensemble of `adaptive.JPEG_ENSEMBLE`
copies, no deblurring) is made once; the blend y + w (DN(y) - y), moved into the input's
quantisation constraint set as the plan does, is scored for w = 0, 0.1, ..., 1.

The rule: w = max(blockiness ramp, clip((g - act) / ramp, 0, 1)) of the half-resolution noise
sigma g (`adaptive.jpeg_weight`). Over a grid of (act, ramp) the script keeps the rules under
which no row falls below its input, also with act moved by +-0.1 (both inside the grid), and
picks the one with the largest mean gain (ties: the larger act). Printed: per case the mean gain of the blockiness ramp
alone, of the chosen rule and of the best w per photo (an oracle), then the choice.

Run:  python benchmarks/jpeg_plan.py --output rows.jsonl [--photos aqua,blinds]
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

CASES = (
    "jpeg:10",
    "jpeg:20",
    "jpeg:30",
    "jpeg:50",
    "jpeg:70",
    "noise:3+jpeg:30",
    "noise:5+jpeg:50",
    "noise:10+jpeg:70",
    "noise:15+jpeg:40",
    "noise:25+jpeg:30",
    "blur:1+noise:10+jpeg:50",
    "blur:1+noise:15+jpeg:40",
)
WEIGHTS = tuple(round(w, 1) for w in np.linspace(0.0, 1.0, 11))
ACTS = tuple(round(a, 1) for a in np.arange(0.0, 2.51, 0.1))
RAMPS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="JSON lines (overwritten)")
    parser.add_argument(
        "--photos", default=None, help="comma-separated training photos"
    )
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)

    from adaptive_tuning import degraded, psnr, training_photos

    from unires_jax import restore
    from unires_jax.restore import adaptive, jpeg_consistency

    photos = training_photos(args.photos)
    expert = restore.load(deblur=False, ensemble=adaptive.JPEG_ENSEMBLE).restorer

    def blend(item, w):
        out = item["lq"] + w * (item["dn"] - item["lq"])
        return jpeg_consistency.project(out, item["lq"], item["quantisation"])

    items, rows = [], []
    with pathlib.Path(args.output).open("w") as f:
        for ci, case in enumerate(CASES):
            for pi, photo in enumerate(photos):
                lq, hq = degraded(photo, case, ci, pi, args.size)
                decided = adaptive.plan(lq)
                row = {
                    "photo": photo,
                    "case": case,
                    "input": psnr(lq, hq),
                    "plan": decided.to_json(),
                }
                if decided.blend == "blocking":
                    dn, _ = expert.timed_restore(lq, {"DN": 1.0}, seed=0)
                    item = {
                        "lq": lq,
                        "hq": hq,
                        "dn": np.asarray(dn, np.float32),
                        "quantisation": decided.jpeg,
                        "blockiness": decided.analysis.blockiness,
                        "coarse": decided.coarse_noise,
                    }
                    row["gain"] = {
                        f"{w:g}": psnr(blend(item, w), hq) - row["input"]
                        for w in WEIGHTS
                    }
                    items.append((row, item))
                rows.append(row)
                f.write(json.dumps(row) + "\n")
                f.flush()
            print(f"{case}: done", flush=True)

    scored = {}  # (row, weight) -> gain: rules often give a row the same weight

    def gains(act, ramp):
        out = []
        for i, (row, item) in enumerate(items):
            w = adaptive.jpeg_weight(
                item["blockiness"], item["coarse"], act=act, ramp=ramp
            )
            if (i, w) not in scored:
                scored[(i, w)] = psnr(blend(item, w), item["hq"]) - row["input"]
            out.append(scored[(i, w)])
        return np.array(out)

    blocking_only = gains(np.inf, 1.0)
    grid = {(a, r): gains(a, r) for a, r in itertools.product(ACTS, RAMPS)}

    def safe(a, r):
        near = [(round(a + d, 1), r) for d in (-0.1, 0.0, 0.1)]
        return all(n in grid and grid[n].min() >= -1e-9 for n in near)

    allowed = sorted(
        ((g.mean(), a, r) for (a, r), g in grid.items() if safe(a, r)), reverse=True
    )
    _, act, ramp = allowed[0]
    print(
        "best safe rules (mean gain, act, ramp):",
        [(round(float(m), 3), float(a), r) for m, a, r in allowed[:8]],
    )
    chosen = grid[(act, ramp)]
    oracle = np.array([max(row["gain"].values()) for row, _ in items])
    skipped = [r for r in rows if "gain" not in r]
    print(
        "| case | photos | input | blockiness ramp | chosen rule | best w per photo |"
    )
    print("|---|---|---|---|---|---|")
    for case in CASES:
        idx = [i for i, (row, _) in enumerate(items) if row["case"] == case]
        if not idx:
            continue
        print(
            f"| {case} | {len(idx)} | "
            f"{np.mean([items[i][0]['input'] for i in idx]):.2f} | "
            f"{blocking_only[idx].mean():+.2f} (worst {blocking_only[idx].min():+.2f}) | "
            f"{chosen[idx].mean():+.2f} (worst {chosen[idx].min():+.2f}) | "
            f"{oracle[idx].mean():+.2f} |"
        )
    print(
        f"chosen: act {act}, ramp {ramp}: mean gain {chosen.mean():+.3f} dB over "
        f"{len(items)} rows (blockiness ramp alone {blocking_only.mean():+.3f}), worst "
        f"{chosen.min():+.3f}; rows below the blockiness ramp alone: "
        f"{int((chosen - blocking_only < -0.005).sum())}; rows the JPEG plan did not take: "
        f"{len(skipped)} {[(r['photo'], r['case'], r['plan']['reason']) for r in skipped]}"
    )
    print(
        f"adaptive.py: COARSE_NOISE_ACT {adaptive.COARSE_NOISE_ACT}, "
        f"COARSE_NOISE_RAMP {adaptive.COARSE_NOISE_RAMP}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

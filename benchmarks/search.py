"""Weight-search strategies vs the exhaustive grid: UNet evaluations, wall time and regret.

Claim (issue 8): a cheap strategy (successive halving, or the remix climb) finds the exhaustive grid's best weights (regret <= 0.1 % of
the Q range over the grid's candidates) for <= 0.5 % of the exhaustive UNet evaluations.

Setup: the held-out sample photos (unires_jax.data.sample_photos, split "heldout"), centre-
cropped to 1:2 and resized to --size x 2 --size px, each degraded by a seeded mixture (blur, downscale-upscale,
noise, JPEG); Q = NIQE (the bundled model; lower is better); the paper's grid (-0.2 .. 1.2 by
0.2, one negative: 1512 candidates) unless --grid-* say otherwise. The model is a UniRes
checkpoint (--checkpoint; default: the embedded default model, a tiny UniRes trained on the
sample photos' training split) or, with --random, the tiny UniRes layout with random weights
(mechanics only: its Q landscape means nothing).

Per image: the exhaustive search scores every candidate (its best is the reference); then each
strategy runs from scratch (no shared cache or log). `frequent` and `predict` learn from the
exhaustive logs of the *other* images (leave-one-out). Regret = Q(chosen) - Q(exhaustive best)
(a grid point's Q as the exhaustive search scored it, so float noise between batch layouts does
not count) in NIQE units (>= 0 unless refine leaves the grid and does better), also as % of the Q range
(max - min over the grid's finite scores). Every program is compiled on a warm-up pass first.

Run:  python benchmarks/search.py [--images 4] [--size 96] [--steps N] [--budget 0.5%] [--random]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import platform
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # configs/

import jax
import numpy as np
from PIL import Image

from configs.unires_common import SD_SCHEDULER
from unires_jax import quality as quality_lib
from unires_jax.convert.clip import read_tokenizer
from unires_jax.data.degradations import compose
from unires_jax.data.sample_photos import load_sample_photos
from unires_jax.models import configs, text
from unires_jax.models.ldm import LatentDiffusion, LDMConfig, random_ldm_modules
from unires_jax.restore.restorer import Restorer, RestoreSettings
from unires_jax.search import (
    CandidateSampler,
    GridSpec,
    PredictorConfig,
    SearchConfig,
    candidates,
    learn_presets,
    search,
    train_predictor,
)
from unires_jax.search.log import CandidateLog

TOKENIZER = (
    pathlib.Path(__file__).resolve().parents[1]
    / "unires_jax"
    / "assets"
    / "clip_tokenizer"
)


def random_tiny_unires(seed: int = 0) -> LatentDiffusion:
    """The tiny UniRes layout with random weights written into abstract modules (fast: no
    per-op initialiser compilations)."""
    cfg = LDMConfig(
        unet=configs.tiny_unet(in_channels=8),
        vae=configs.tiny_vae(),
        text=text.tiny_text(),
        lq_channels=4,
    )
    modules = random_ldm_modules(cfg, seed)
    return LatentDiffusion(
        **modules,
        tokenizer=read_tokenizer(TOKENIZER),
        scheduler_config=dict(SD_SCHEDULER),
        lq_channels=4,
        tokenizer_dir=TOKENIZER,
        source=f"random tiny UniRes (seed {seed})",
    )


def degraded_photos(count: int, size: int, seed: int) -> dict[str, np.ndarray]:
    """Held-out photos, centre-cropped to 1:2, resized to size x 2 size, with a seeded mixed
    degradation."""
    photos = load_sample_photos("heldout")
    chain = compose(["blur", "resize", "noise", "compression"])
    out = {}
    for i, (name, photo) in enumerate(list(photos.items())[:count]):
        h, w = photo.shape[:2]
        ch, cw = min(h, w // 2), 2 * min(h, w // 2)
        top, left = (h - ch) // 2, (w - cw) // 2
        crop = photo[top : top + ch, left : left + cw]
        hq = Image.fromarray(crop).resize((2 * size, size), Image.BICUBIC)
        hq = np.asarray(hq, np.float32) / 255
        lq = chain(hq, np.random.default_rng(seed + i))
        out[name] = (np.clip(lq, 0, 1) * 255).round().astype(np.uint8)
    return out


def setup_line(restorer, images: dict, size: int, steps: int) -> str:
    """The first line a benchmark on these photos prints: machine, devices, model, photos."""
    return (
        f"{platform.node()} | {jax.devices()[0].platform} x{jax.device_count()} | "
        f"{restorer.ldm.source} | {len(images)} photos {size}x{2 * size} px | steps {steps}"
    )


def _records_by_weights(result) -> dict[tuple, dict]:
    return {
        tuple(sorted(r["weights"].items())): r
        for r in result.records
        if r["stage"] == r["steps"]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="UniRes checkpoint (default: the embedded default model)",
    )
    parser.add_argument(
        "--random", action="store_true", help="random tiny UniRes instead"
    )
    parser.add_argument(
        "--images", type=int, default=4, help="held-out photos (at most 4)"
    )
    parser.add_argument(
        "--size",
        type=int,
        default=96,
        help="image height in px; the width is twice that (NIQE needs two 96 px blocks)",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="DDIM steps (default: the model's)"
    )
    parser.add_argument("--grid-min", type=float, default=-0.2, help="smallest weight")
    parser.add_argument("--grid-max", type=float, default=1.2, help="largest weight")
    parser.add_argument(
        "--grid-step", type=float, default=0.2, help="weight grid spacing"
    )
    parser.add_argument(
        "--budget",
        default="0.5%",
        help="budget(s) of halving, refine and remix, comma-separated (e.g. 0.5%%,2%%,10%%)",
    )
    parser.add_argument(
        "--halving-rounds",
        default="3",
        help="successive-halving rounds after the first round, comma-separated variants",
    )
    parser.add_argument(
        "--halving-first-round",
        default="mixture,x0",
        help="how halving's first round ranks the grid (mixture, x0), comma-separated variants",
    )
    parser.add_argument(
        "--refine-base-share",
        default="0.5",
        help="share(s) of refine's budget its base strategy gets, comma-separated variants",
    )
    parser.add_argument(
        "--remix-radius",
        default="0.8",
        help="remix's trust radius(es), L1 distance of the weights, comma-separated variants",
    )
    parser.add_argument(
        "--remix-start",
        default="mixture,expert",
        help="remix's first centre (mixture, expert), comma-separated variants",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="degradation and sampling seed"
    )
    parser.add_argument(
        "--out", default=None, help="keep the logs and a JSON summary here"
    )
    args = parser.parse_args()

    settings = {} if args.steps is None else {"steps": args.steps}
    if args.random:
        restorer = Restorer(
            random_tiny_unires(args.seed), settings=RestoreSettings(**settings)
        )
    else:
        restorer = Restorer.load(args.checkpoint, **settings)
    args.steps = restorer.settings.steps
    sampler = CandidateSampler(restorer)
    q = quality_lib.get("niqe")
    grid = GridSpec(args.grid_min, args.grid_max, args.grid_step)
    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="search_bench_"))
    logs = out / "exhaustive_logs"
    images = degraded_photos(args.images, args.size, args.seed)
    print(
        f"{setup_line(restorer, images, args.size, args.steps)} | "
        f"grid {args.grid_min}..{args.grid_max} by {args.grid_step} | Q niqe | budget {args.budget}",
        flush=True,
    )

    # Warm-up: compile every program the timed runs use.
    first = next(iter(images.values()))
    warm = SearchConfig(steps=args.steps, seed=args.seed, grid=grid)
    t0 = time.perf_counter()
    budgets = [b.strip() for b in args.budget.split(",") if b.strip()]
    for strategy in ("halving", "refine", "remix"):
        search(
            first,
            strategy,
            q,
            budgets[0],
            sampler=sampler,
            config=warm,
            return_image=False,
        )
    print(f"warm-up (compilation) {time.perf_counter() - t0:.1f} s", flush=True)

    # Exhaustive reference for every image (logged for the leave-one-out learners; a rerun
    # with the same --out reads the scores back instead of sampling again).
    full_cost = sampler.cost(
        candidates(sampler.experts, warm), start=0, stop=args.steps
    )
    exhaustive = {}
    for name, image in images.items():
        result = search(
            image,
            "exhaustive",
            q,
            sampler=sampler,
            config=warm,
            log_dir=logs,
            return_image=False,
        )
        exhaustive[name] = result
        scores = np.array([r["score"] for r in _records_by_weights(result).values()])
        print(
            f"exhaustive {name}: best NIQE {result.score:.4f} {result.weights} | "
            f"{np.isfinite(scores).sum()}/{len(scores)} finite, range "
            f"{np.nanmin(scores):.4f}..{np.nanmax(scores):.4f} | "
            f"{result.unet_evaluations} UNet evals | {result.seconds:.1f} s",
            flush=True,
        )

    rounds = [int(r) for r in args.halving_rounds.split(",")]
    firsts = [f.strip() for f in args.halving_first_round.split(",") if f.strip()]
    runs = [
        (
            f"halving{r}-{f}@{b}",
            "halving",
            b,
            {"halving_rounds": r, "halving_first_round": f},
        )
        for f in firsts
        for r in rounds
        for b in budgets
    ]
    shares = [float(x) for x in args.refine_base_share.split(",")]
    runs += [
        (
            f"refine{share:g}@{b}",
            "refine",
            b,
            {
                "halving_rounds": rounds[0],
                "halving_first_round": firsts[0],
                "refine_base_share": share,
            },
        )
        for share in shares
        for b in budgets
    ]
    runs += [
        (
            f"remix{radius:g}-{start}@{b}",
            "remix",
            b,
            {"remix_radius": radius, "remix_start": start},
        )
        for radius in (float(x) for x in args.remix_radius.split(","))
        for start in (x.strip() for x in args.remix_start.split(",") if x.strip())
        for b in budgets
    ]
    runs += [("frequent", "frequent", None, {}), ("predict", "predict", None, {})]
    rows = {label: [] for label in ["exhaustive"] + [r[0] for r in runs]}
    for name, image in images.items():
        ref = exhaustive[name]
        finite = [
            r["score"]
            for r in _records_by_weights(ref).values()
            if np.isfinite(r["score"])
        ]
        q_range = max(finite) - min(finite)
        truth = _records_by_weights(ref)
        # Seconds only when it really ran (not read back from the logs).
        seconds = ref.seconds if ref.unet_evaluations else float("nan")
        rows["exhaustive"].append((full_cost, seconds, 0.0, 0.0))
        others = [
            CandidateLog(p)
            for p in sorted(logs.glob("*.jsonl"))
            if p != pathlib.Path(ref.log_path)
        ]
        presets = predictor = None
        if others:  # leave-one-out learners need another image
            presets = learn_presets(others, quality="niqe")
            predictor = train_predictor(others, config=PredictorConfig(grid=grid))
        for label, strategy, budget, options in runs:
            if strategy in ("frequent", "predict") and not others:
                continue
            result = search(
                image,
                strategy,
                q,
                budget,
                sampler=sampler,
                config=dataclasses.replace(warm, **options),
                presets=presets,
                predictor=predictor,
                return_image=False,
            )
            # A grid point is scored as the exhaustive search scored it: the same weights give
            # floats that differ with the batch layout (and remix's remixed last step), and
            # that noise must not count as regret, positive or negative.
            on_grid = truth.get(tuple(sorted(result.weights.items())))
            score = result.score if on_grid is None else on_grid["score"]
            regret = score - ref.score  # NIQE: lower is better
            rows[label].append(
                (
                    result.unet_evaluations,
                    result.seconds,
                    regret,
                    100 * regret / q_range,
                )
            )
            print(
                f"{label:>15} {name}: NIQE {score:.4f} (own {result.score:.4f}) "
                f"{result.weights} | regret "
                f"{regret:+.4f} ({100 * regret / q_range:+.3f} % of range {q_range:.4f}) | "
                f"{result.unet_evaluations} UNet evals "
                f"({100 * result.unet_evaluations / full_cost:.3f} %) | "
                f"{result.seconds:.2f} s",
                flush=True,
            )

    print(
        "\nstrategy         UNet evals/img  % of exhaustive   s/img  mean regret  mean % range  "
        "max % range  zero-regret images"
    )
    summary = {}
    base = full_cost
    for strategy, values in rows.items():
        if not values:
            continue
        evals, secs, regret, pct = (np.array(v, np.float64) for v in zip(*values))
        summary[strategy] = {
            "unet_evaluations_per_image": float(evals.mean()),
            "percent_of_exhaustive": float(100 * evals.mean() / base),
            "seconds_per_image": float(secs.mean()),
            "mean_regret": float(regret.mean()),
            "mean_regret_percent_of_range": float(pct.mean()),
            "max_regret_percent_of_range": float(pct.max()),
            "zero_regret_images": int((regret <= 0).sum()),
        }
        s = summary[strategy]
        print(
            f"{strategy:<16} {s['unet_evaluations_per_image']:>14.0f} "
            f"{s['percent_of_exhaustive']:>16.3f} {s['seconds_per_image']:>7.1f} "
            f"{s['mean_regret']:>12.4f} {s['mean_regret_percent_of_range']:>13.3f} "
            f"{s['max_regret_percent_of_range']:>12.3f} {s['zero_regret_images']:>4d}/{len(values)}"
        )
    (out / "summary.json").write_text(
        json.dumps({"args": vars(args), "summary": summary}, indent=1)
    )
    print(f"logs and summary.json in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""How finely NIQE ranks the weight search's candidates, against issue 8's regret target.

Issue 8 asks `halving` for a regret <= 0.1 % of the Q range over the grid's candidates at
<= 0.5 % of the exhaustive UNet evaluations. Every cheap strategy ranks most candidates by a
prediction of their finished images (halving's first round: the weighted sum of the finished
single experts' latents) and finishes a handful. This script measures, on the setup of
`benchmarks/search.py` (held-out photos, seeded mixed degradation, the embedded default model,
NIQE), how far NIQE moves under changes to a finished candidate that nobody can see, and how far
under the first round's prediction error, each as % of the NIQE range over the grid:

- image noise with standard deviation 1e-6, 1e-4 and 1e-3 (full scale 1; one 8-bit level is
  3.9e-3), and the 8-bit rounding of the file `unires restore` writes for an 8-bit input;
- the finished latent moved in a random direction by 1e-4 .. 1e-1 of its distance to the mean of
  the sampled candidates' latents (how far apart candidates are);
- the first round's prediction of the same candidates (no UNet evaluation per candidate).

NIQE, like the MATLAB reference and BasicSR, rounds the luminance to whole 8-bit levels before
its statistics, so it is piecewise constant in the image with jumps between the pieces;
`--oracle` repeats the image-noise rows with BasicSR's own `calculate_niqe` (test-only
dependency) to show that this is the reference's behaviour and not ours.

The NIQE range is the grid's (all 1512 candidates) when `--logs` points at the exhaustive logs of
`benchmarks/search.py --out DIR` (DIR/exhaustive_logs) for the same model, size and seed; the gap
from the grid's best to its runner-up is printed too. Without logs it is the range over the
sampled candidates (smaller, so the percentages come out larger).

Run:  python benchmarks/niqe_resolution.py [--images 4] [--size 96] [--candidates 48]
          [--logs DIR/exhaustive_logs] [--oracle] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # configs/
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# benchmarks/search.py: the same photos and degradation.
from search import degraded_photos, setup_line

from unires_jax import quality as quality_lib
from unires_jax.restore.restorer import Restorer
from unires_jax.search import CandidateSampler, GridSpec, SearchConfig, candidates
from unires_jax.search.evaluator import run_fingerprint
from unires_jax.search.log import CandidateLog

IMAGE_NOISE = (1e-6, 1e-4, 1e-3)
LATENT_MOVES = (1e-4, 1e-3, 1e-2, 1e-1)
TARGET_PERCENT = 0.1  # issue 8's regret target, % of the Q range


def grid_scores(
    logs: pathlib.Path, image_hash: str, run: str, steps: int
) -> np.ndarray | None:
    """The finished NIQE of every grid candidate the exhaustive log of this image holds."""
    path = logs / f"{image_hash}.jsonl"
    if not path.is_file():
        return None
    log = CandidateLog(path)
    scores = [
        r["score"]
        for r in log.candidates()
        if r["run"] == run and r["stage"] == steps and r["steps"] == steps
    ]
    return np.array(scores, np.float64) if scores else None


def basicsr_niqe():
    """BasicSR's calculate_niqe and its pristine parameters' path (the test suite's loader)."""
    sys.path.insert(0, str(ROOT / "tests" / "quality"))
    # Only with --oracle: it needs the test dependencies.
    import test_niqe

    module, _ = test_niqe._load_basicsr_niqe()

    def score(images: np.ndarray) -> np.ndarray:
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for im in images:
                bgr = (np.asarray(im, np.float64) * 255)[..., ::-1].copy()
                out.append(module.calculate_niqe(bgr, 0, input_order="HWC"))
        return np.array(out, np.float64)

    return score


def median_percent(changed: np.ndarray, base: np.ndarray, q_range: float) -> float:
    return float(100 * np.median(np.abs(changed - base)) / q_range)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint", default=None, help="UniRes checkpoint (default: embedded)"
    )
    parser.add_argument(
        "--images", type=int, default=4, help="held-out photos (at most 4)"
    )
    parser.add_argument(
        "--size", type=int, default=96, help="image height in px (width 2x)"
    )
    parser.add_argument(
        "--candidates", type=int, default=48, help="grid candidates per photo"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="degradation, sampling and choice seed"
    )
    parser.add_argument(
        "--logs", default=None, help="exhaustive logs of benchmarks/search.py"
    )
    parser.add_argument("--oracle", action="store_true", help="also BasicSR's NIQE")
    parser.add_argument(
        "--out", default=None, help="write resolution.json and resolution.png"
    )
    args = parser.parse_args()

    restorer = Restorer.load(args.checkpoint)
    steps = restorer.settings.steps
    sampler = CandidateSampler(restorer)
    q = quality_lib.get("niqe")
    run = run_fingerprint(sampler, q)
    oracle = basicsr_niqe() if args.oracle else None
    config = SearchConfig(steps=steps, seed=args.seed, grid=GridSpec(-0.2, 1.2, 0.2))
    grid = candidates(sampler.experts, config)
    eye = np.eye(len(sampler.experts))
    images = degraded_photos(args.images, args.size, args.seed)
    print(
        f"{setup_line(restorer, images, args.size, steps)} | "
        f"{args.candidates} of {len(grid)} grid candidates each | Q niqe",
        flush=True,
    )
    rng = np.random.default_rng(args.seed)
    rows = {}
    for name, image in images.items():
        t0 = time.perf_counter()
        target = sampler.prepare(image)
        weights = grid[rng.choice(len(grid), args.candidates, replace=False)]

        def latents(w, target=target):
            return sampler.sample(
                target, w, steps=steps, seed=args.seed, decode=None
            ).latents

        finished = latents(weights)
        proxy = np.einsum("nk,k...->n...", weights, latents(eye))
        decoded = sampler.decode(target, finished)
        base = np.asarray(q.score(decoded), np.float64)
        full = (
            None
            if args.logs is None
            else grid_scores(pathlib.Path(args.logs), target.hash, run, steps)
        )
        scores = full if full is not None else base
        scores = np.sort(scores[np.isfinite(scores)])
        q_range = float(scores[-1] - scores[0])
        row = {
            "range_over": "grid"
            if full is not None
            else f"{len(base)} sampled candidates",
            "niqe_range": q_range,
        }
        if full is not None:
            row["best_to_runner_up_percent"] = float(
                100 * (scores[1] - scores[0]) / q_range
            )
            row["candidates_within_target"] = int(
                np.sum(scores - scores[0] <= TARGET_PERCENT / 100 * q_range)
            )
        for sd in IMAGE_NOISE:
            noisy = np.clip(decoded + sd * rng.standard_normal(decoded.shape), 0, 1)
            row[f"image_noise_{sd:g}"] = median_percent(
                q.score(noisy.astype(np.float32)), base, q_range
            )
        eight_bit = np.round(decoded * 255) / 255
        row["8_bit_file"] = median_percent(
            q.score(eight_bit.astype(np.float32)), base, q_range
        )
        spread = np.linalg.norm(
            (finished - finished.mean(0)).reshape(len(finished), -1), axis=1
        )
        for move in LATENT_MOVES:
            direction = rng.standard_normal(finished.shape).astype(np.float32)
            direction /= np.linalg.norm(direction.reshape(len(direction), -1), axis=1)[
                :, None, None, None
            ]
            moved = finished + (move * spread)[:, None, None, None] * direction
            row[f"latent_move_{move:g}"] = median_percent(
                q.score(sampler.decode(target, moved)), base, q_range
            )
        proxy_error = np.linalg.norm(
            (proxy - finished).reshape(len(finished), -1), axis=1
        )
        row["first_round_latent_error"] = float(np.median(proxy_error / spread))
        row["first_round"] = median_percent(
            q.score(sampler.decode(target, proxy)), base, q_range
        )
        if oracle is not None:
            ref = oracle(decoded)
            ref_range = float(np.ptp(ref))  # its own pristine model: its own scale
            row["basicsr_range_over_sample"] = ref_range
            for sd in IMAGE_NOISE[:1]:
                noisy = np.clip(decoded + sd * rng.standard_normal(decoded.shape), 0, 1)
                row[f"basicsr_image_noise_{sd:g}"] = median_percent(
                    oracle(noisy), ref, ref_range
                )
            row["basicsr_8_bit_file"] = median_percent(
                oracle(eight_bit), ref, ref_range
            )
        row["seconds"] = time.perf_counter() - t0
        rows[name] = row
        print(
            f"{name}: "
            + json.dumps(
                {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
            ),
            flush=True,
        )

    names = list(rows)
    print("\n" + f"{'':<32}" + "".join(f"{n:>10}" for n in names) + f"{'mean':>10}")

    def line(label, key):
        values = [rows[n].get(key, float("nan")) for n in names]
        print(
            f"{label:<32}"
            + "".join(f"{v:>10.3f}" for v in values)
            + f"{np.mean(values):>10.3f}"
        )

    line("NIQE range", "niqe_range")
    if "best_to_runner_up_percent" in rows[names[0]]:
        line("best to runner-up, % of range", "best_to_runner_up_percent")
        line("candidates within 0.1 % of best", "candidates_within_target")
    line("first round's latent error", "first_round_latent_error")
    print(f"median |NIQE change|, % of the range (target {TARGET_PERCENT} %):")
    for sd in IMAGE_NOISE:
        line(f"  image noise sd {sd:g}", f"image_noise_{sd:g}")
    line("  8-bit file", "8_bit_file")
    for move in LATENT_MOVES:
        line(f"  latent moved {move:g}", f"latent_move_{move:g}")
    line("  first round's prediction", "first_round")
    if oracle is not None:
        print("BasicSR's NIQE, % of its range over the sampled candidates:")
        line("  image noise sd 1e-06", "basicsr_image_noise_1e-06")
        line("  8-bit file", "basicsr_8_bit_file")
    if args.out:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "resolution.json").write_text(
            json.dumps({"args": vars(args), "photos": rows}, indent=1)
        )
        figure(rows, out / "resolution.png")
        print(f"resolution.json and resolution.png in {out}", file=sys.stderr)


def figure(rows: dict, path: pathlib.Path) -> None:
    """NIQE change (% of range) against the size of the latent move, per photo, with the
    first round's prediction and the 8-bit file as points and the target as a line."""
    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (name, row) in enumerate(rows.items()):
        colour = f"C{i}"
        ax.plot(
            LATENT_MOVES,
            [row[f"latent_move_{m:g}"] for m in LATENT_MOVES],
            "o-",
            color=colour,
            label=name,
        )
        ax.plot(
            [row["first_round_latent_error"]],
            [row["first_round"]],
            "s",
            color=colour,
            markersize=9,
        )
        ax.axhline(row["8_bit_file"], color=colour, linestyle=":", linewidth=1)
    ax.axhline(TARGET_PERCENT, color="k", linestyle="--", label="target 0.1 %")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("latent moved by (fraction of the distance between candidates)")
    ax.set_ylabel("median |NIQE change|, % of range")
    ax.set_title("NIQE resolution (dotted: 8-bit file; squares: halving's first round)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()

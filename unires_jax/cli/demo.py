"""`unires demo [--output DIR]`: restore held-out sample photos with the embedded default model."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="restore held-out sample photos (each task, mixed degradations, weight search)",
        description=(
            "Degrades the held-out sample photos (never seen in training), restores them with "
            "each single expert and with searched weights, and writes side-by-side PNGs, "
            "report.json and a table of PSNR / SSIM / NIQE."
        ),
    )
    parser.add_argument("--output", default="unires_demo", help="output folder")
    parser.add_argument(
        "--checkpoint", default=None, help="a UniRes checkpoint (default: embedded)"
    )
    parser.add_argument(
        "--strategy",
        default="refine",
        help="weight-search strategy (default: refine from the best single expert)",
    )
    parser.add_argument(
        "--refine-base", default="experts", help="the strategy `refine` starts from"
    )
    parser.add_argument(
        "--budget",
        default="0.35%",
        help="search budget: UNet evaluations or a share of the paper grid's exhaustive cost, like '0.5%%'",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="DDIM steps (default: the model's)"
    )
    parser.add_argument(
        "--photos", nargs="*", default=None, help="held-out photo names"
    )
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from unires_jax.evaluate.demo import DemoSettings, run_demo
    from unires_jax.restore.restorer import Restorer

    try:
        restorer = Restorer.load(args.checkpoint)
    except (FileNotFoundError, ValueError) as e:
        print(f"unires demo: error: {e}", file=sys.stderr)
        return 1
    budget = args.budget
    if budget is not None and budget.isdigit():
        budget = int(budget)
    settings = DemoSettings(
        photos=tuple(args.photos) if args.photos else None,
        strategy=args.strategy,
        refine_base=args.refine_base,
        budget=budget,
        steps=args.steps,
        seed=args.seed,
    )
    run_demo(args.output, restorer=restorer, settings=settings)
    return 0

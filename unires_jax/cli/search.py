"""`unires search learn-presets|train-predictor`: learn the cheap weight-search strategies.

    unires search learn-presets photos/ --out presets.json --logs search_logs/ --n 8
    unires search train-predictor --logs search_logs/ --out predictor.json

learn-presets runs the exhaustive grid search on every image (resumable: the per-image logs in
--logs are reused) and keeps the N most frequent optimal weight sets; train-predictor fits
the random-forest weight predictor on the same logs. Use the files with
`unires restore --search frequent|predict` (or `unires_jax.search.search`).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from unires_jax.cli import model_options


def _add_grid_args(parser: argparse.ArgumentParser) -> None:
    grid = parser.add_argument_group("weight grid (paper defaults)")
    grid.add_argument("--grid-min", type=float, default=-0.2, help="smallest weight")
    grid.add_argument("--grid-max", type=float, default=1.2, help="largest weight")
    grid.add_argument("--grid-step", type=float, default=0.2, help="grid spacing")
    grid.add_argument(
        "--max-negative",
        type=int,
        default=1,
        help="negative weights allowed per vector (-1: any)",
    )
    grid.add_argument(
        "--experts",
        default=None,
        help="comma-separated experts the grid spans, the others fixed at 0 (default: all)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="learn presets / a weight predictor for the cheap weight searches",
        description=__doc__.split("\n\n")[0],
    )
    cmds = parser.add_subparsers(
        dest="search_command", metavar="COMMAND", required=True
    )

    learn = cmds.add_parser(
        "learn-presets",
        help="exhaustive search on a folder of images, keep the N most frequent optima",
    )
    learn.add_argument("inputs", nargs="+", help="image files or folders of images")
    learn.add_argument("--out", required=True, help="presets JSON to write")
    learn.add_argument(
        "--logs",
        default=None,
        help="folder of resumable per-image search logs (default: <out without .json>_logs)",
    )
    learn.add_argument(
        "--n", type=int, default=8, help="number of presets to keep (paper: 8)"
    )
    learn.add_argument(
        "--checkpoint", default=None, help="UniRes checkpoint (default: embedded model)"
    )
    learn.add_argument(
        "--quality", default="niqe", help="quality model Q: niqe, brisque, piqe, musiq"
    )
    learn.add_argument(
        "--quality-checkpoint", default=None, help="the quality model's parameter file"
    )
    learn.add_argument(
        "--steps", type=int, default=None, help="DDIM steps (default: the checkpoint's)"
    )
    learn.add_argument("--seed", type=int, default=0, help="start-noise seed")
    learn.add_argument(
        "--max-pairs",
        type=int,
        default=None,
        help="(candidate, expert) pairs per device per UNet call: bounds memory (default: the checkpoint's)",
    )
    learn.add_argument(
        "--plots", default=None, help="write each image's Q-landscape PNGs here"
    )
    model_options.add(learn)
    _add_grid_args(learn)

    train = cmds.add_parser(
        "train-predictor", help="fit the random-forest weight predictor on search logs"
    )
    train.add_argument(
        "--logs", required=True, help="folder of search logs (from learn-presets)"
    )
    train.add_argument("--out", required=True, help="predictor JSON to write")
    train.add_argument(
        "--quality", default=None, help="use only searches scored with this Q"
    )
    train.add_argument(
        "--n-estimators", type=int, default=100, help="trees in the forest"
    )
    train.add_argument("--seed", type=int, default=0, help="forest random state")
    train.add_argument(
        "--min-candidates",
        type=int,
        default=1,
        help="ignore searches with fewer finished candidates (interrupted ones)",
    )
    _add_grid_args(train)


def _grid_spec(args):
    from unires_jax.search.grid import GridSpec

    return GridSpec(
        args.grid_min,
        args.grid_max,
        args.grid_step,
        None if args.max_negative < 0 else args.max_negative,
    )


def _experts(args) -> tuple[str, ...] | None:
    if args.experts is None:
        return None
    return tuple(e.strip() for e in args.experts.split(",") if e.strip())


def _fail(command: str, message: str) -> int:
    print(
        f"unires search {command}: error: {' '.join(str(message).split())}",
        file=sys.stderr,
    )
    return 2


def _learn_presets(args) -> int:
    from unires_jax import quality as quality_lib
    from unires_jax.evaluate.scoring import expand_paths
    from unires_jax.restore.image_io import ImageReadError, read_image
    from unires_jax.restore.restorer import Restorer
    from unires_jax.search import interface
    from unires_jax.search.engine import CandidateSampler
    from unires_jax.search.frequent import learn_presets
    from unires_jax.search.plots import write_plots

    out = pathlib.Path(args.out)
    logs = pathlib.Path(args.logs) if args.logs else out.with_name(out.stem + "_logs")
    try:
        q_kwargs = (
            {}
            if args.quality_checkpoint is None
            else {"checkpoint": args.quality_checkpoint}
        )
        q = quality_lib.get(args.quality, **q_kwargs)
        settings = (
            {} if args.max_pairs is None else {"max_pairs_per_call": args.max_pairs}
        )
        if problem := model_options.problem(args):
            return _fail("learn-presets", problem)
        restorer = Restorer.load(
            args.checkpoint, **model_options.load_kwargs(args), **settings
        )
        config = interface.SearchConfig(
            steps=args.steps,
            seed=args.seed,
            grid=_grid_spec(args),
            experts=_experts(args),
        )
        grid_size = len(interface.candidates(restorer.experts, config))
    except (OSError, ValueError, KeyError) as e:
        return _fail(
            "learn-presets", e.args[0] if isinstance(e, KeyError) and e.args else e
        )
    paths = expand_paths(args.inputs)
    if not paths:
        return _fail("learn-presets", f"no images in {' '.join(args.inputs)}")
    sampler = CandidateSampler(restorer)
    failed = 0
    for i, path in enumerate(paths, 1):
        try:
            image = read_image(path).pixels
            result = interface.search(
                image,
                "exhaustive",
                q,
                sampler=sampler,
                config=config,
                log_dir=logs,
                image_path=str(path),
                return_image=False,
            )
        except (ImageReadError, ValueError) as e:
            print(f"[{i}/{len(paths)}] {path}: skipped: {e}", file=sys.stderr)
            failed += 1
            continue
        weights = ", ".join(f"{k}={v:g}" for k, v in result.weights.items())
        print(
            f"[{i}/{len(paths)}] {path}: {q.name}={result.score:.4f} with {weights} "
            f"({result.unet_evaluations} UNet evaluations, {result.seconds:.1f} s)"
        )
        if args.plots:
            write_plots(
                result.records,
                restorer.experts,
                args.plots,
                path.stem,
                quality=q.name,
                higher_is_better=q.higher_is_better,
            )
    try:
        presets = learn_presets(
            logs, n=args.n, quality=q.name, min_candidates=grid_size
        )
    except ValueError as e:
        return _fail("learn-presets", e)
    presets.save(out)
    print(
        f"wrote {out}: {len(presets.entries)} presets from {presets.images} images (logs in {logs})"
    )
    for weights, count in presets.entries:
        print(f"  {count:4d}  " + ", ".join(f"{k}={v:g}" for k, v in weights.items()))
    return 1 if failed else 0


def _train_predictor(args) -> int:
    from unires_jax.search.predict import PredictorConfig, train_predictor

    config = PredictorConfig(
        n_estimators=args.n_estimators, random_state=args.seed, grid=_grid_spec(args)
    )
    try:
        predictor = train_predictor(
            args.logs,
            searched=_experts(args),
            config=config,
            quality=args.quality,
            min_candidates=args.min_candidates,
        )
    except (OSError, ValueError) as e:
        return _fail("train-predictor", e)
    predictor.save(args.out)
    print(
        f"wrote {args.out}: random forest on {len(predictor.features)} searched images"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.search_command == "learn-presets":
        return _learn_presets(args)
    return _train_predictor(args)

"""`unires eval`: restore a dataset or a GT/LQ folder pair and score it, per degradation type.

    unires eval --dataset sample_photos:heldout --degrade noise:25,jpeg:10 --output ev/
    unires eval --pairs FoundIR_test/ --metrics psnr,ssim,lpips --lpips-heads alex.pth \\
        --lpips-backbone alexnet-owt-7be5be79.pth --checkpoint my_model/ --output ev/

Writes per-image JSON lines, a summary per degradation type (Markdown, CSV, JSON), the restored
images and montage PNGs of the best and worst cases (`unires_jax/evaluate/harness.py`). A rerun of
the same command into the same folder resumes: nothing already recorded is computed again.

Exit status: 0 when every sample was evaluated, 1 when some failed (named on stderr and in
errors.jsonl; a rerun retries them), 2 when nothing could start.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

from unires_jax.cli import interrupts, restore_options

DEFAULT_METRICS = "psnr,ssim,niqe"
# On the FoundIR test layout: the paper's protocol first (`unires_jax/evaluate/published.py`).
FOUNDIR_METRICS = "pyiqa,psnr,ssim"
# Paper layouts of `--paper-table` (`unires_jax/evaluate/paper_tables.py`).
PAPER_TABLES = ("anyir3", "anyir5")
# The split evaluated when `--dataset NAME` names none, first one the dataset has.
SPLIT_PREFERENCE = ("test", "heldout", "validation", "train")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="restore a dataset or GT/LQ folders and score it per degradation type",
        description=(
            "Restores every sample of a dataset (a TFDS builder of `unires data list`, clean "
            "images degraded with --degrade) or of GT/ and LQ/ folders, scores it against the "
            "ground truth, and writes results.jsonl, summary.md/csv, images/ and montages/. "
            "Rerunning the same command resumes."
        ),
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--dataset",
        action="append",
        help="NAME[:SPLIT] of a dataset (see `unires data list`); repeat it to evaluate "
        "several in one run (e.g. a paper's whole benchmark; --degrade applies to the clean "
        "ones)",
    )
    where.add_argument(
        "--pairs",
        help="folder with GT/ and LQ/ (matching names), or <type>/GT and <type>/LQ",
    )
    parser.add_argument(
        "--output", "-o", required=True, help="output folder (resumable)"
    )
    parser.add_argument(
        "--metrics",
        default=None,
        help=f"comma-separated: psnr, ssim, pyiqa, lpips, niqe, brisque, piqe, musiq "
        f"(default: {DEFAULT_METRICS}; on the FoundIR test layout NN<Type>/GT|LQ: "
        f"{FOUNDIR_METRICS}, and the paper's averages are printed beside ours); psnr and ssim "
        "are also reported on the luma channel; pyiqa is PSNR on RGB and SSIM on luma as "
        "pyiqa computes them (FoundIR's cal_metrics.py)",
    )
    parser.add_argument(
        "--degrade",
        default=None,
        help="degradations for a dataset of clean images, comma-separated, e.g. "
        "'noise:25,jpeg:10,blur:2,motion:9,defocus:4,down:4,blur:1+noise:15+jpeg:40'",
    )
    parser.add_argument(
        "--crop",
        type=int,
        default=None,
        metavar="PX",
        help="centre-crop dataset images to at most PX x PX",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="evaluate the first N images (of each degradation type)",
    )
    parser.add_argument(
        "--data-dir", default=None, help="where datasets are built (TFDS data_dir)"
    )
    parser.add_argument(
        "--crop-border",
        type=int,
        default=0,
        metavar="PX",
        help="pixels dropped at each edge before PSNR / SSIM / LPIPS (default 0)",
    )
    parser.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex")
    parser.add_argument(
        "--lpips-heads",
        default=None,
        help="the lpips package's lpips/weights/v0.1/<net>.pth",
    )
    parser.add_argument(
        "--lpips-backbone",
        default=None,
        help="torchvision's alexnet-owt-7be5be79.pth or vgg16-397923af.pth",
    )
    parser.add_argument(
        "--musiq-checkpoint",
        default=None,
        help="MUSIQ weights (official .npz) for --metrics musiq",
    )
    parser.add_argument(
        "--montage",
        type=int,
        default=3,
        metavar="N",
        help="best and worst N samples per degradation type in montages/",
    )
    parser.add_argument(
        "--paper-table",
        choices=sorted(PAPER_TABLES),
        default=None,
        help="also write paper_table.md: the summary in a paper's layout (anyir3: AnyIR "
        "Table 1, SOTS / Rain100L / BSD68 sigma 15, 25, 50; anyir5: Table 2, SOTS / "
        "Rain100L / BSD68 sigma 25 / GoPro / LOL), beside the paper's numbers",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    restore_options.add(parser)


def _fail(message: str) -> int:
    print(f"unires eval: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def _samples(args):
    from unires_jax.data.degradations import specs
    from unires_jax.evaluate import datasets

    degradations = specs.parse_list(args.degrade) if args.degrade else []
    if args.pairs:
        if degradations:
            raise datasets.DatasetError(
                "--degrade applies to --dataset, not to --pairs"
            )
        return datasets.pair_folder(args.pairs, limit=args.limit)
    several = len(args.dataset) > 1
    samples = []
    for dataset in args.dataset:
        name, _, split = dataset.partition(":")
        if not split:
            split = _default_split(name, args.data_dir)
        found = datasets.built_dataset(  # paired datasets leave --degrade to clean ones
            name,
            split,
            data_dir=args.data_dir,
            degradations=degradations,
            crop=args.crop,
            limit=args.limit,
            seed=args.seed,
        )
        # Several datasets: ids carry the dataset, so equal file names do not collide.
        samples += (
            [dataclasses.replace(s, id=f"{name}/{s.id}") for s in found]
            if several
            else found
        )
    return samples


def _default_split(name: str, data_dir) -> str:
    from unires_jax.data.builders import catalog

    if name not in catalog.BUILDERS:
        return "test"  # built_dataset names the known datasets
    builder = catalog.get_builder(name, data_dir=data_dir)
    splits = list(builder.info.splits) or [s for s in SPLIT_PREFERENCE]
    return next((s for s in SPLIT_PREFERENCE if s in splits), splits[0])


def _check_scale(samples, scale: int) -> None:
    """Synthetic super-resolution inputs need a restorer that upscales by their factor."""
    from unires_jax.evaluate.datasets import DatasetError

    wrong = sorted({(s.degradation, s.scale) for s in samples if s.scale != scale})
    if wrong:
        named = ", ".join(f"{d} (x{f})" for d, f in wrong)
        raise DatasetError(
            f"the restorer outputs x{scale} its input, but {named} give inputs smaller by another "
            "factor: evaluate each super-resolution factor in its own run with --upscale N"
        )


def run(args: argparse.Namespace) -> int:
    from unires_jax import restore
    from unires_jax.data.degradations.specs import SpecError
    from unires_jax.evaluate import harness
    from unires_jax.evaluate.datasets import DatasetError
    from unires_jax.evaluate.metrics import (
        MetricError,
        MetricOptions,
        Metrics,
        parse_names,
    )
    from unires_jax.evaluate.published import published_rows

    output = pathlib.Path(args.output)
    if problem := restore_options.output_folder_problem(
        output
    ) or restore_options.problem(args):
        return _fail(problem)
    try:
        if args.metrics:  # a misspelt name fails before any dataset is built
            parse_names(args.metrics)
        samples = _samples(args)
        if not samples:
            return _fail("the dataset has no samples")
        published = published_rows(s.degradation for s in samples)
        names = args.metrics or (FOUNDIR_METRICS if published else DEFAULT_METRICS)
        metrics = Metrics.load(
            names,
            MetricOptions(
                crop_border=args.crop_border,
                lpips_net=args.lpips_net,
                lpips_heads=args.lpips_heads,
                lpips_backbone=args.lpips_backbone,
                quality_checkpoints={"musiq": args.musiq_checkpoint}
                if args.musiq_checkpoint
                else {},
            ),
        )
        _check_scale(
            samples, args.upscale or 1
        )  # before the model loads, when it can be told
        options = restore_options.collect(args)
        restorer = restore.load(
            args.checkpoint, workdir=output, route=args.route, **options
        )
        _check_scale(samples, restorer.scale)
    except (
        MetricError,
        SpecError,
        DatasetError,
        OSError,
        ValueError,
        KeyError,
        TypeError,
    ) as e:
        return _fail(e.args[0] if isinstance(e, KeyError) and e.args else e)
    run_config = {
        "checkpoint": str(pathlib.Path(args.checkpoint).resolve())
        if args.checkpoint
        else None,
        "family": restorer.family,
        "options": options,
        "seed": args.seed,
        # One dataset: its name as before (a rerun into an older output folder resumes).
        "dataset": args.dataset[0]
        if args.dataset and len(args.dataset) == 1
        else args.dataset,
        "pairs": str(pathlib.Path(args.pairs).resolve()) if args.pairs else None,
        "degrade": args.degrade,
        "crop": args.crop,
        "limit": args.limit,
        "crop_border": args.crop_border,
        "lpips_net": args.lpips_net if "lpips" in metrics.names else None,
        "route": args.route,
    }
    try:
        with interrupts.sigterm_interrupts():
            report = harness.evaluate(
                samples,
                harness.restorer_producer(restorer, seed=args.seed),
                metrics,
                output,
                run_config=run_config,
                montage_count=args.montage,
                progress=False if args.no_progress else None,
                published=published,
            )
    except harness.EvalError as e:
        return _fail(e)
    except KeyboardInterrupt:
        print(
            f"unires eval: interrupted; every finished row is in {output / harness.RESULTS}: rerun "
            "the same command to go on",
            file=sys.stderr,
        )
        return 130
    print(report.text())
    if args.paper_table:
        from unires_jax.evaluate import paper_tables
        from unires_jax.restore import image_io

        text = paper_tables.format_table(args.paper_table, report.summary)
        image_io.write_atomic(output / "paper_table.md", text.encode("utf-8"))
        print(text)
    return 1 if report.failed else 0

"""`unires restore INPUTS... --output DIR`: restore image files and folders with any model family.

Exit status: 0 when every input was restored, 1 when some inputs failed (each is named on
stderr and in `restore_log.jsonl`; the others are still written), 2 when nothing could start
(no model, invalid weights or settings).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from unires_jax.cli import restore_options


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "restore",
        help="restore images (default: the embedded UniRes model, a weighted mix of experts)",
        description=(
            "Restore image files (PNG, JPEG, WebP, TIFF; 8/16-bit, grey, RGBA, palette). "
            "Folders are searched recursively and every non-hidden file in them is an input. "
            "Each output is written atomically next to a JSON sidecar (<name>.json); "
            "OUTPUT/restore_log.jsonl gets one line per input."
        ),
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files or folders"
    )
    parser.add_argument(
        "--output", "-o", required=True, help="output folder (created if missing)"
    )
    restore_options.add(parser)
    parser.add_argument(
        "--format",
        choices=("png", "same"),
        default="png",
        help="output format: png (default; keeps 16 bits) or the input's format",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (default: on a terminal)",
    )
    return parser


def _fail(message: str) -> int:
    print(f"unires restore: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from unires_jax import restore
    from unires_jax.restore import batch
    from unires_jax.restore.inputs import collect_inputs

    output_dir = pathlib.Path(args.output)
    if output_dir.exists() and not output_dir.is_dir():
        return _fail(f"{output_dir}: --output must be a folder")
    if problem := restore_options.problem(args):
        return _fail(problem)
    try:
        restorer = restore.load(
            args.checkpoint, workdir=output_dir, **restore_options.collect(args)
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        return _fail(" ".join(str(message).split()))  # one line, even for long messages

    inputs = collect_inputs(args.inputs, exclude=[output_dir])
    if not inputs:
        return _fail(f"no input files found in {' '.join(args.inputs)}")
    report = batch.restore_files(
        restorer,
        inputs,
        output_dir,
        seed=args.seed,
        output_format=args.format,
        progress=False if args.no_progress else None,
    )
    print(report.summary())
    return 1 if report.failed else 0

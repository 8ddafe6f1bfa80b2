"""`unires restore INPUTS... --output DIR`: restore image files and folders with any model family.

Exit status: 0 when every input was restored, 1 when some inputs failed (each is named on
stderr and in `restore_log.jsonl`; the others are still written), 2 when nothing could start
(no model, invalid options, outputs that would replace inputs or other files), 130 when
interrupted (SIGINT / SIGTERM: the current image is abandoned, complete outputs are kept, and
rerunning the same command finishes the rest).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from unires_jax.cli import interrupts, restore_options


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
        "--overwrite",
        action="store_true",
        help="replace existing files in the output folder, and redo images an earlier run "
        "completed (default: refuse to replace files this command did not write; skip "
        "complete outputs of an earlier run with the same settings, so a rerun resumes)",
    )
    parser.add_argument(
        "--suffix",
        default="",
        help="added to every output name, e.g. _restored; lets the output folder be an input "
        "folder (outputs never replace inputs)",
    )
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
    print(f"unires restore: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from unires_jax import restore
    from unires_jax.restore import batch
    from unires_jax.restore.inputs import collect_inputs

    output_dir = pathlib.Path(args.output)
    if problem := restore_options.output_folder_problem(
        output_dir
    ) or restore_options.problem(args):
        return _fail(problem)
    inputs = collect_inputs(args.inputs, exclude=[output_dir])
    if args.suffix:
        # Outputs of earlier runs into an input folder are not inputs of this one.
        inputs = [
            i
            for i in inputs
            if not i.path.stem.endswith(args.suffix) and i.path.name != batch.LOG_NAME
        ]
    if not inputs:
        return _fail(f"no input files found in {' '.join(args.inputs)}")
    try:
        # Every output name is decided and checked before the (slow) model load.
        plan = batch.plan(
            inputs,
            output_dir,
            output_format=args.format,
            name_suffix=args.suffix,
            overwrite=args.overwrite,
        )
        restorer = restore.load(
            args.checkpoint,
            workdir=output_dir,
            route=args.route,
            **restore_options.collect(args),
        )
        plan.check_earlier(restorer.describe(), args.seed)
    except (OSError, ValueError, KeyError, TypeError) as e:
        return _fail(e.args[0] if isinstance(e, KeyError) and e.args else e)
    except KeyboardInterrupt:
        print(
            "unires restore: interrupted before any image was restored", file=sys.stderr
        )
        return 130
    with interrupts.sigterm_interrupts():
        report = batch.restore_files(
            restorer,
            plan,
            seed=args.seed,
            progress=False if args.no_progress else None,
        )
    print(report.summary())
    if report.interrupted:
        return 130
    return 1 if report.failed else 0

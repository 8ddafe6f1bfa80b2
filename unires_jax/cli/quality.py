"""`unires quality score|fit-niqe`: image-quality scores of files, and NIQE model fitting."""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import tempfile


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quality",
        help="no-reference image quality (NIQE, BRISQUE, PIQE, MUSIQ)",
        description="Score images with a no-reference quality model, or fit a NIQE model.",
    )
    cmds = parser.add_subparsers(
        dest="quality_command", metavar="COMMAND", required=True
    )
    score = cmds.add_parser("score", help="score image files and folders")
    score.add_argument("images", nargs="+", help="image files or folders of images")
    score.add_argument(
        "--metric",
        required=True,
        help="niqe, brisque, piqe or musiq (see unires_jax.quality)",
    )
    score.add_argument(
        "--checkpoint",
        default=None,
        help="model file: NIQE parameters (.npz/.mat), BRISQUE model (.npz), MUSIQ checkpoint (.npz)",
    )
    score.add_argument(
        "--crop-border", type=int, default=0, help="NIQE: pixels cropped per edge"
    )
    score.add_argument(
        "--json", default=None, help="also write the scores to this JSON file"
    )
    fit = cmds.add_parser(
        "fit-niqe", help="fit a NIQE pristine model on a folder of clean images"
    )
    fit.add_argument("dir", help="folder of pristine images")
    fit.add_argument("out", help="output .npz (BasicSR's key names)")
    fit.add_argument(
        "--sharpness", type=float, default=0.75, help="patch sharpness threshold"
    )


def _print_table(report) -> None:
    width = max([len(p) for p in report.scores] + [5])
    arrow = "higher is better" if report.higher_is_better else "lower is better"
    print(f"{'image':<{width}}  {report.metric} ({arrow})")
    for path, value in report.scores.items():
        print(f"{path:<{width}}  {value:.4f}")
    if report.scores:
        print(
            f"{'mean':<{width}}  {report.mean:.4f}"
            if not math.isnan(report.mean)
            else "mean  nan"
        )


def _unwritable(path: pathlib.Path) -> str | None:
    """Why a file cannot be written at `path`, or None if it can (checked by creating a
    temporary file next to it, so read-only folders and file systems are caught, as root too)."""
    if path.is_dir():
        return "it is a folder"
    folder = path.parent
    if not folder.is_dir():
        return (
            f"{folder} is not a folder"
            if folder.exists()
            else f"{folder} does not exist"
        )
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is read-only"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        return f"cannot create files in {folder} ({e.strerror or e})"
    return None


def run(args: argparse.Namespace) -> int:
    from unires_jax import quality
    from unires_jax.evaluate import scoring as files
    from unires_jax.quality import niqe
    from unires_jax.restore.image_io import write_atomic

    if args.quality_command == "fit-niqe":
        reason = _unwritable(pathlib.Path(args.out))
        if reason:
            print(
                f"unires quality fit-niqe: error: cannot write {args.out}: {reason}",
                file=sys.stderr,
            )
            return 2
        try:
            model, errors = files.fit_niqe_from_folder(args.dir, args.sharpness)
        except (ValueError, FileNotFoundError) as e:
            print(f"unires quality fit-niqe: error: {e}", file=sys.stderr)
            return 1
        for message in errors.values():
            print(f"skipped {message}", file=sys.stderr)
        niqe.save_niqe_model(model, args.out)
        print(f"wrote {args.out}")
        return 1 if errors else 0

    # Cheap checks first: nothing is loaded or scored if the results could not be written.
    reason = args.json and _unwritable(pathlib.Path(args.json))
    if reason:
        print(
            f"unires quality score: error: cannot write --json {args.json}: {reason}",
            file=sys.stderr,
        )
        return 2
    inputs = files.expand_paths(args.images)
    if not inputs:
        print(
            f"unires quality score: error: no input files in {', '.join(args.images)} "
            "(folders are searched recursively; names starting with '.' are skipped)",
            file=sys.stderr,
        )
        return 2
    kwargs = {} if args.checkpoint is None else {"checkpoint": args.checkpoint}
    if args.crop_border:
        if args.metric != "niqe":
            print(
                "unires quality score: error: --crop-border applies to niqe only",
                file=sys.stderr,
            )
            return 2
        kwargs["crop_border"] = args.crop_border
    try:
        model = quality.get(args.metric, **kwargs)
    except (KeyError, ValueError, FileNotFoundError, ModuleNotFoundError) as e:
        print(f"unires quality score: error: {e}", file=sys.stderr)
        return 2
    report = files.score_files(model, inputs)
    _print_table(report)
    for message in report.errors.values():
        print(f"skipped {message}", file=sys.stderr)
    if args.json:
        text = json.dumps(report.to_json(), indent=2) + "\n"
        try:
            write_atomic(args.json, text.encode())
        except OSError as e:
            print(
                f"unires quality score: error: cannot write --json {args.json}: {e}",
                file=sys.stderr,
            )
            return 2
    return 1 if report.errors or not report.scores else 0

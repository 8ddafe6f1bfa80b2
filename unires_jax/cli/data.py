"""`unires data build NAME [--manual_dir DIR] [--data_dir DIR]` and `unires data list`."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="build and list datasets",
        description="Build datasets (TFDS array_record, no TensorFlow needed) and list them.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build",
        help="build one dataset from its downloaded files",
        description="Build one dataset into --data_dir from the files in --manual_dir. "
        "`unires data list` names the datasets and the folder layout each expects.",
    )
    build.add_argument("name", help="dataset name, e.g. gopro, df2k, sample_photos")
    build.add_argument(
        "--manual_dir", default=None, help="folder with the downloaded files"
    )
    build.add_argument(
        "--data_dir",
        default=None,
        help="where to write (default: ~/tensorflow_datasets)",
    )
    listing = actions.add_parser(
        "list",
        help="list the datasets, whether each is built, and the layout each expects",
    )
    listing.add_argument("--data_dir", default=None, help="where datasets are built")
    listing.add_argument(
        "--layouts",
        action="store_true",
        help="also print each dataset's download instructions",
    )


def run(args: argparse.Namespace) -> int:
    from unires_jax.data import builders

    if args.action == "list":
        from absl import logging

        # TFDS warns about every dataset folder that does not exist yet; the listing says so.
        logging.set_verbosity(logging.ERROR)
        print(_listing(builders, args.data_dir, args.layouts))
        return 0
    try:
        report = builders.build(
            args.name, manual_dir=args.manual_dir, data_dir=args.data_dir
        )
    # LayoutError is a FileNotFoundError; an unwritable --data_dir raises PermissionError or
    # NotADirectoryError before TFDS starts.
    except (KeyError, FileNotFoundError, PermissionError, NotADirectoryError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"unires data build: error: {message}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _listing(builders, data_dir: str | None, layouts: bool) -> str:
    lines = []
    for name, cls in builders.BUILDERS.items():
        builder = builders.get_builder(name, data_dir=data_dir)
        if builder.is_prepared():
            sizes = ", ".join(
                f"{s}: {i.num_examples}" for s, i in sorted(builder.info.splits.items())
            )
            status = f"built ({sizes})"
        else:
            status = "not built" + (
                "" if cls.MANUAL_DOWNLOAD_INSTRUCTIONS else " (no download needed)"
            )
        lines.append(f"{name:15s} {status:40s} {cls.DESCRIPTION}")
        if layouts and cls.MANUAL_DOWNLOAD_INSTRUCTIONS:
            lines.extend(
                "    " + line for line in cls.MANUAL_DOWNLOAD_INSTRUCTIONS.splitlines()
            )
    return "\n".join(lines)

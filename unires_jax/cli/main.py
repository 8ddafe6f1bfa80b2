"""The `unires` command: one thin sub-command module per job.

Each sub-command module exposes `add_parser(subparsers)` and `run(args) -> int`; this file only
dispatches. Sub-commands are listed explicitly (no registry by string import).
"""

from __future__ import annotations

import argparse
import sys

import unires_jax
from unires_jax.cli import compilation_cache
from unires_jax.cli import convert as convert_cmd
from unires_jax.cli import data as data_cmd
from unires_jax.cli import demo as demo_cmd
from unires_jax.cli import eval as eval_cmd
from unires_jax.cli import quality as quality_cmd
from unires_jax.cli import restore as restore_cmd
from unires_jax.cli import search as search_cmd
from unires_jax.cli import train as train_cmd

# name -> module; each later feature adds its own line here.
COMMANDS = {
    "convert": convert_cmd,
    "data": data_cmd,
    "demo": demo_cmd,
    "eval": eval_cmd,
    "quality": quality_cmd,
    "restore": restore_cmd,
    "search": search_cmd,
    "train": train_cmd,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unires",
        description="Universal image restoration with latent diffusion (UniRes) in JAX/Flax.",
    )
    parser.add_argument(
        "--version", action="version", version=f"unires-jax {unires_jax.__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    compilation_cache.enable()
    return int(COMMANDS[args.command].run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""`unires convert diffusers SRC DST`: a diffusers Stable Diffusion folder -> unires-jax checkpoint."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert checkpoints from other frameworks",
        description="Convert checkpoints from other frameworks into unires-jax checkpoints.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    diffusers = kinds.add_parser(
        "diffusers",
        help="a diffusers Stable Diffusion folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/)",
    )
    diffusers.add_argument("src", help="diffusers folder (with model_index.json)")
    diffusers.add_argument("dst", help="output folder (must not exist)")
    diffusers.add_argument(
        "--lq-channels",
        type=int,
        default=0,
        help="extra zero-initialised UNet input channels for the LQ latent (UniRes: 4)",
    )
    diffusers.add_argument(
        "--allow-pickle", action="store_true", help="allow reading .bin (pickle) weight files"
    )
    diffusers.add_argument("--variant", default=None, help="weight variant, e.g. fp16")


def run(args: argparse.Namespace) -> int:
    from unires_jax.convert import diffusers as diffusers_convert

    try:
        ldm = diffusers_convert.load_ldm(
            args.src,
            lq_channels=args.lq_channels,
            allow_pickle=args.allow_pickle,
            variant=args.variant,
        )
        diffusers_convert.save_ldm(ldm, args.dst)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"unires convert: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.dst}")
    return 0

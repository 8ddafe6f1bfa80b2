"""`unires convert diffusers SRC DST`: a diffusers Stable Diffusion folder -> unires-jax checkpoint.

`unires convert upgrade SRC DST`: a checkpoint in the earlier unires-jax format (`unires_ldm.json`
and an orbax `params/` folder, no content hashes) -> the current format.

`unires convert foundir CKPT DST`: an official FoundIR `model-N.pt` (or a safetensors export of it)
-> a residual-diffusion ("residual") checkpoint; EMA weights by default.

`unires convert anyir CKPT DST`: an official AnyIR Lightning `.ckpt` (or a `.pth` / safetensors
state dict) -> an "anyir" checkpoint (parameters and BatchNorm statistics).
"""

from __future__ import annotations

import argparse
import pathlib
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
        "--allow-pickle",
        action="store_true",
        help="allow reading .bin (pickle) weight files",
    )
    diffusers.add_argument("--variant", default=None, help="weight variant, e.g. fp16")
    upgrade = kinds.add_parser(
        "upgrade",
        help="an earlier unires-jax checkpoint (unires_ldm.json + orbax params/) -> current format",
    )
    upgrade.add_argument("src", help="folder with unires_ldm.json")
    upgrade.add_argument("dst", help="output folder (must not exist)")
    foundir = kinds.add_parser(
        "foundir",
        help="an official FoundIR checkpoint (model-N.pt, or .safetensors) -> residual checkpoint",
    )
    foundir.add_argument(
        "src", metavar="CKPT", help="model-N.pt or a .safetensors file"
    )
    foundir.add_argument("dst", help="output folder (must not exist)")
    foundir.add_argument(
        "--weights",
        choices=("ema", "model"),
        default="ema",
        help="the EMA weights (default, as the official test) or the raw training weights",
    )
    foundir.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow reading a .pt (pickle) file; only for files you trust",
    )
    anyir = kinds.add_parser(
        "anyir",
        help="an official AnyIR checkpoint (Lightning .ckpt, .pth or .safetensors) -> anyir "
        "checkpoint",
    )
    anyir.add_argument(
        "src",
        metavar="CKPT",
        help="epoch=E-step=S.ckpt, a .pth state dict or .safetensors",
    )
    anyir.add_argument("dst", help="output folder (must not exist)")
    anyir.add_argument(
        "--version",
        choices=("v2", "v1"),
        default=None,
        help="insist on this network version (default: the one the weights are; the released "
        "code's is v2)",
    )
    anyir.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow reading a .ckpt / .pth (pickle) file; only for files you trust",
    )


def run(args: argparse.Namespace) -> int:
    if args.kind == "foundir":
        return _run_foundir(args)
    if args.kind == "anyir":
        return _run_anyir(args)
    from unires_jax.convert import ldm as ldm_convert

    try:
        if (
            args.kind == "upgrade"
            and not (pathlib.Path(args.src) / ldm_convert.LEGACY_META).is_file()
        ):
            raise FileNotFoundError(
                f"{args.src}: no {ldm_convert.LEGACY_META}; only checkpoints in the earlier format "
                "need upgrading"
            )
        ldm = ldm_convert.load_ldm(
            args.src,
            lq_channels=getattr(args, "lq_channels", 0),
            allow_pickle=getattr(args, "allow_pickle", False),
            variant=getattr(args, "variant", None),
        )
        ldm_convert.save_ldm(ldm, args.dst)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"unires convert: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.dst}")
    return 0


def _run_foundir(args: argparse.Namespace) -> int:
    from unires_jax.convert import foundir

    try:
        foundir.convert_foundir(
            args.src, args.dst, weights=args.weights, allow_pickle=args.allow_pickle
        )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"unires convert: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.dst}")
    return 0


def _run_anyir(args: argparse.Namespace) -> int:
    from unires_jax.convert import anyir

    try:
        anyir.convert_anyir(
            args.src, args.dst, version=args.version, allow_pickle=args.allow_pickle
        )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"unires convert: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.dst}")
    return 0

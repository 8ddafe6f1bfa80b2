"""`--dtype` and `--attention`: how the commands that load a UniRes model run its UNet."""

from __future__ import annotations

import argparse

# unires_jax.models.layers.ATTENTION_IMPLEMENTATIONS (not imported here: it loads jax).
ATTENTION_CHOICES = ("chunked", "dot_product", "cudnn", "naive")


def add(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> list[str]:
    """Adds --dtype and --attention; returns their dests."""
    dtype = parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default=None,
        help="model weights and compute: bfloat16 halves memory and is faster on GPU/TPU "
        "(on CPU it is slower; default: float32)",
    )
    attention = parser.add_argument(
        "--attention",
        choices=ATTENTION_CHOICES,
        default=None,
        help="UNet attention kernel: chunked (fast on CPU), dot_product (XLA; TPU), cudnn "
        "(cuDNN flash attention, NVIDIA GPU with --dtype bfloat16) or naive (default: the "
        "fastest correct one on this backend)",
    )
    return [dtype.dest, attention.dest]


def problem(args: argparse.Namespace) -> str | None:
    """Why these options cannot run here (checked before the slow model load), or None."""
    if args.attention != "cudnn":
        return None
    import jax

    if jax.default_backend() != "gpu":
        return (
            f"--attention cudnn needs an NVIDIA GPU; jax's backend here is "
            f"{jax.default_backend()!r}: use --attention chunked on CPU"
        )
    if args.dtype != "bfloat16":
        return "--attention cudnn runs in bfloat16: add --dtype bfloat16"
    return None


def load_kwargs(args: argparse.Namespace) -> dict:
    """`Restorer.load` keyword arguments for these options."""
    return {"dtype": args.dtype or "float32", "attention": args.attention}

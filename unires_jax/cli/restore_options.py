"""The model options shared by `unires restore` and `unires eval`: which checkpoint, and how it
restores (passed to `unires_jax.restore.load`, which hands them to the checkpoint's family).

Options left out keep the checkpoint's settings, so only those the user gave are passed: a family
refuses options it does not take (e.g. `--weights` for a model without experts).
"""

from __future__ import annotations

import argparse
import os
import pathlib

from unires_jax.cli import model_options

PRESET_CHOICES = ("most-popular", "average")
# unires_jax.restore.color.COLOR_FIXES, spelled out so `--help` does not import JAX.
COLOR_FIX_CHOICES = ("adain", "wavelet", "none")
# unires_jax.search.STRATEGIES, spelled out for the same reason.
SEARCH_CHOICES = (
    "exhaustive",
    "frequent",
    "predict",
    "halving",
    "remix",
    "refine",
    "experts",
)
# unires_jax.restore.upscale.MAX_UPSCALE (that module loads the degradation library).
MAX_UPSCALE = 8
# unires_jax.restore.ensemble.ENSEMBLE_SIZES (importing the restore package loads JAX).
ENSEMBLE_SIZES = (1, 2, 4, 8)
# Where `collect` finds the dests of the options `add` declared (set as a parser default).
_DESTS = "_restore_option_dests"


def add(parser: argparse.ArgumentParser) -> None:
    """Adds --checkpoint, --seed and the restore options."""
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint folder of any model family (default: the UniRes model embedded in the "
        "package); the options below that a family does not take are refused",
    )
    parser.add_argument(
        "--route",
        default=None,
        metavar="TABLE",
        help="restore some degradation types with other checkpoints: 'rain=DIR,lowlight=DIR2' "
        "or a file of TYPE=DIR lines; a type matches the folder names of an input's path "
        "(FoundIR's 12NightRain/LQ/x.png is 'nightrain', routed by 'rain')",
    )
    parser.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help=f"sampling seed, 0 to {MAX_SEED} (default: 0)",
    )
    group = parser.add_argument_group(
        "restore options",
        "passed to the checkpoint's family, which refuses those it does not take",
    )
    dests: list[str] = []

    def option(*flags, container=group, **kwargs):
        dests.append(container.add_argument(*flags, **kwargs).dest)

    weights = group.add_mutually_exclusive_group()
    option(
        "--weights",
        container=weights,
        default=None,
        help="fixed expert weights summing to 1, e.g. 'DN=1' or 'DN=-0.2,DownLQ=1.2'; unnamed "
        "experts get 0. The experts (one UNet, one prompt each): BR blind restoration (no "
        "prompt), SR super-resolution, MD motion deblur, DD defocus deblur, DN denoise (also "
        "JPEG artefacts in the embedded model), DownLQ super-resolution conditioned on a "
        "downscaled input (smooths harder). Default: none of --weights / --preset / --search "
        "measures noise, JPEG blocking and blur per image, runs the expert it calls for and "
        "leaves clean photos unchanged",
    )
    option(
        "--preset",
        container=weights,
        choices=PRESET_CHOICES,
        default=None,
        help="weights reported in the paper (most-popular: DN=-0.2,DownLQ=1.2, tuned for the "
        "paper's SD-2.1 model; average)",
    )
    option(
        "--steps",
        type=int,
        default=None,
        help="DDIM steps (default: the checkpoint's stored setting: 4 for the embedded model, "
        "50 for a diffusers folder; fewer steps trade texture for PSNR)",
    )
    option(
        "--tile",
        type=int,
        default=None,
        metavar="PX",
        help="images with a side longer than this run as overlapping tiles (default: the "
        "checkpoint's setting; 256 for the embedded model, 512 for a diffusers folder)",
    )
    option(
        "--tile-overlap",
        type=int,
        default=None,
        metavar="PX",
        help="tile overlap (default: the checkpoint's; 32 for the embedded model, 64 otherwise)",
    )
    option(
        "--blend",
        choices=("average", "smooth"),
        default=None,
        help="how overlapping tiles are joined, for families that tile whole images "
        "(residual / FoundIR): average (the official) or smooth (cross-fade)",
    )
    option(
        "--color-fix",
        choices=COLOR_FIX_CHOICES,
        default=None,
        help="colour correction toward the input: adain (per-channel mean/std, the paper's), "
        "wavelet (StableSR's: the input's low frequencies) or none (default: the model's)",
    )
    option(
        "--no-color-fix",
        dest="color_fix",
        action="store_const",
        const="none",
        help="same as --color-fix none",
    )
    option(
        "--ensemble",
        type=int,
        choices=ENSEMBLE_SIZES,
        default=None,
        metavar="N",
        help="geometric self-ensemble: average N (2, 4 or 8) flipped / rotated restorations, "
        "each with its own seed; higher PSNR and smoother texture at N times the cost "
        "(default: 1, none). With --search the weights are chosen on the plain restoration",
    )
    option(
        "--upscale",
        type=int,
        choices=range(1, MAX_UPSCALE + 1),
        default=None,
        metavar="N",
        help=f"super-resolution: restore at N times the input's size (2 to {MAX_UPSCALE}); the "
        "input is upscaled by bicubic interpolation, and the output is made consistent with "
        "it (its antialiased bicubic downscale equals the input; default: 1, same size)",
    )
    option(
        "--no-consistency",
        dest="consistency",
        action="store_false",
        default=None,
        help="with --upscale: skip the consistency projection (for noisy or compressed small "
        "inputs, whose noise it would keep)",
    )
    option(
        "--no-deblur",
        dest="deblur",
        action="store_false",
        default=None,
        help="do not fit a motion / defocus blur to the input (by default, when a straight "
        "motion or a defocus blur fits the input's spectrum confidently, the output is made "
        "consistent with it; the sidecar says what was found)",
    )
    option(
        "--max-negative",
        type=int,
        default=None,
        metavar="N",
        help="reject weights with more than N negative entries",
    )
    option(
        "--quality-words",
        action="store_true",
        default=None,
        help="add the positive/negative quality-word experts (+1 / -1)",
    )
    dests += model_options.add(group)
    option(
        "--search",
        choices=SEARCH_CHOICES,
        default=None,
        help="choose the weights per image by maximising a quality score (instead of fixed ones)",
    )
    option(
        "--quality",
        default=None,
        help="Q for --search: niqe (default), brisque, piqe or musiq",
    )
    option(
        "--quality-checkpoint",
        default=None,
        help="weights file of the quality model (MUSIQ npz)",
    )
    option(
        "--budget",
        default=None,
        help="--search budget: UNet evaluations or a share of the exhaustive grid's cost like "
        "'0.5%%' (default: 0.5%%, about 90 UNet evaluations of the image; exhaustive: its whole "
        "grid, 1512 candidates, minutes to hours per image)",
    )
    option("--presets", default=None, help="presets JSON for --search frequent")
    option("--predictor", default=None, help="predictor file for --search predict")
    parser.set_defaults(**{_DESTS: tuple(dict.fromkeys(dests))})


MAX_SEED = 2**32 - 1


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..{MAX_SEED}")
    return value


def output_folder_problem(folder: pathlib.Path) -> str | None:
    """Why `folder` cannot be (or become) the output folder, checked before any work, or None."""
    if folder.exists():
        if not folder.is_dir():
            return f"--output {folder}: exists and is not a folder"
        existing = folder
    else:
        existing = next((p for p in folder.absolute().parents if p.exists()), None)
        if existing is None or not existing.is_dir():
            return f"--output {folder}: cannot be created, {existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"--output {folder}: {existing} is not writable"
    return None


def collect(args: argparse.Namespace) -> dict:
    """The restore options the user gave (for `unires_jax.restore.load`)."""
    return {
        name: getattr(args, name)
        for name in getattr(args, _DESTS)
        if getattr(args, name) is not None
    }


def problem(args: argparse.Namespace) -> str | None:
    """Why these options cannot run here (checked before the slow model load), or None."""
    return model_options.problem(args)

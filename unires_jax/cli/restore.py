"""`unires restore INPUTS... --output DIR`: restore image files and folders with a UniRes model.

Exit status: 0 when every input was restored, 1 when some inputs failed (each is named on
stderr and in `restore_log.jsonl`; the others are still written), 2 when nothing could start
(no model, invalid weights or settings).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from unires_jax.cli import model_options
from unires_jax.restore.ensemble import ENSEMBLE_SIZES

PRESET_CHOICES = ("most-popular", "average")
# unires_jax.restore.color.COLOR_FIXES, spelled out so `--help` does not import JAX.
COLOR_FIX_CHOICES = ("adain", "wavelet", "none")
# unires_jax.search.STRATEGIES, spelled out for the same reason.
SEARCH_CHOICES = ("exhaustive", "frequent", "predict", "halving", "remix", "refine", "experts")
# unires_jax.restore.upscale.MAX_UPSCALE (that module loads the degradation library).
MAX_UPSCALE = 8
DEFAULT_PRESET = "most-popular"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "restore",
        help="restore images with a weighted mix of UniRes experts",
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
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="UniRes checkpoint folder (default: the model embedded in the package)",
    )
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument(
        "--weights",
        default=None,
        help="expert weights summing to 1, e.g. 'DN=-0.2,DownLQ=1.2' (experts: BR, SR, MD, DD, "
        "DN, DownLQ; unnamed ones get 0)",
    )
    weights.add_argument(
        "--preset",
        choices=PRESET_CHOICES,
        default=None,
        help=f"weights reported in the paper (default: {DEFAULT_PRESET})",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="DDIM steps (default: the checkpoint's stored setting: 4 for the embedded model, "
        "50 for a diffusers folder; fewer steps trade texture for PSNR)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="sampling seed (default: 0)"
    )
    parser.add_argument(
        "--tile",
        type=int,
        default=None,
        metavar="PX",
        help="images with a side longer than this run as overlapping tiles (default: 512)",
    )
    parser.add_argument(
        "--tile-overlap",
        type=int,
        default=None,
        metavar="PX",
        help="tile overlap (default: 64)",
    )
    parser.add_argument(
        "--color-fix",
        choices=COLOR_FIX_CHOICES,
        default=None,
        help="colour correction toward the input: adain (per-channel mean/std, the paper's), "
        "wavelet (StableSR's: the input's low frequencies) or none (default: the model's)",
    )
    parser.add_argument(
        "--no-color-fix",
        dest="color_fix",
        action="store_const",
        const="none",
        help="same as --color-fix none",
    )
    parser.add_argument(
        "--ensemble",
        type=int,
        choices=ENSEMBLE_SIZES,
        default=None,
        metavar="N",
        help="geometric self-ensemble: average N (2, 4 or 8) flipped / rotated restorations, "
        "each with its own seed; higher PSNR and smoother texture at N times the cost "
        "(default: 1, none). With --search the weights are chosen on the plain restoration",
    )
    parser.add_argument(
        "--upscale",
        type=int,
        choices=range(1, MAX_UPSCALE + 1),
        default=None,
        metavar="N",
        help=f"super-resolution: restore at N times the input's size (2 to {MAX_UPSCALE}); the "
        "input is upscaled by bicubic interpolation, and the output is made consistent with "
        "it (its antialiased bicubic downscale equals the input; default: 1, same size)",
    )
    parser.add_argument(
        "--no-consistency",
        dest="consistency",
        action="store_false",
        default=None,
        help="with --upscale: skip the consistency projection (for noisy or compressed small "
        "inputs, whose noise it would keep)",
    )
    parser.add_argument(
        "--no-deblur",
        dest="deblur",
        action="store_false",
        default=None,
        help="do not fit a motion / defocus blur to the input (by default, when a straight "
        "motion or a defocus blur fits the input's spectrum confidently, the output is made "
        "consistent with it; the sidecar says what was found)",
    )
    parser.add_argument(
        "--max-negative",
        type=int,
        default=None,
        metavar="N",
        help="reject weights with more than N negative entries",
    )
    parser.add_argument(
        "--quality-words",
        action="store_true",
        default=None,
        help="add the positive/negative quality-word experts (+1 / -1)",
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
    model_options.add(parser)
    parser.add_argument(
        "--search",
        choices=SEARCH_CHOICES,
        default=None,
        help="choose the weights per image by maximising a quality score (instead of fixed ones)",
    )
    parser.add_argument(
        "--quality", default="niqe", help="Q for --search: niqe, brisque, piqe or musiq"
    )
    parser.add_argument(
        "--quality-checkpoint", default=None, help="weights file of the quality model (MUSIQ npz)"
    )
    parser.add_argument(
        "--budget", default=None, help="--search budget: UNet evaluations or a share like '0.5%%'"
    )
    parser.add_argument("--presets", default=None, help="presets JSON for --search frequent")
    parser.add_argument("--predictor", default=None, help="predictor file for --search predict")
    return parser


def restore_settings(args: argparse.Namespace) -> dict:
    """`RestoreSettings` fields the user set (the others keep the checkpoint's defaults)."""
    given = {
        "steps": args.steps,
        "tile": args.tile,
        "tile_overlap": args.tile_overlap,
        "color_fix": args.color_fix,
        "max_negative": args.max_negative,
        "quality_words": args.quality_words,
        "ensemble": args.ensemble,
        "upscale": args.upscale,
        "consistency": args.consistency,
        "deblur": args.deblur,
    }
    return {k: v for k, v in given.items() if v is not None}


def fixed_weights(args: argparse.Namespace) -> tuple[dict[str, float], str]:
    """The weights named by `--weights` or `--preset` (default preset), and their source."""
    from unires_jax.restore import experts

    if args.weights is not None:
        return experts.parse_weights(args.weights), "--weights"
    preset = args.preset or DEFAULT_PRESET
    return dict(experts.PRESETS[preset]), f"preset {preset}"


def weight_chooser(args: argparse.Namespace, restorer):
    """The per-image weight chooser for these arguments; a weight search plugs in here.

    Raises:
      WeightError: invalid fixed weights (checked before any file is touched).
    """
    from unires_jax.restore import batch

    if getattr(args, "search", None):
        from unires_jax import quality, search
        from unires_jax.search.interface import weight_chooser as search_chooser

        budget = args.budget
        if budget is not None and str(budget).isdigit():
            budget = int(budget)
        kwargs = {"checkpoint": args.quality_checkpoint} if args.quality_checkpoint else {}
        output = pathlib.Path(args.output)
        return search_chooser(
            args.search,
            quality.get(args.quality, **kwargs),
            budget,
            log_dir=output / "search_logs",
            config=search.SearchConfig(steps=args.steps, seed=args.seed),
            presets=args.presets,
            predictor=args.predictor,
            plot_dir=output / "search_plots",
        )
    weights, source = fixed_weights(args)
    restorer.weights_matrix(weights)
    return batch.fixed_weights(weights, source)


def _fail(message: str) -> int:
    print(f"unires restore: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from unires_jax.restore import batch
    from unires_jax.restore.experts import WeightError
    from unires_jax.restore.restorer import Restorer

    output_dir = pathlib.Path(args.output)
    if output_dir.exists() and not output_dir.is_dir():
        return _fail(f"{output_dir}: --output must be a folder")
    try:
        fixed_weights(args)  # syntax errors show before the (slow) model load
    except WeightError as e:
        return _fail(str(e))
    if problem := model_options.problem(args):
        return _fail(problem)
    try:
        restorer = Restorer.load(
            args.checkpoint, **model_options.load_kwargs(args), **restore_settings(args)
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        return _fail(" ".join(str(message).split()))  # one line, even for long messages
    try:
        chooser = weight_chooser(args, restorer)
    except WeightError as e:
        return _fail(str(e))

    inputs = batch.collect_inputs(args.inputs, exclude=[output_dir])
    if not inputs:
        return _fail(f"no input files found in {' '.join(args.inputs)}")
    report = batch.restore_files(
        restorer,
        inputs,
        output_dir,
        choose_weights=chooser,
        seed=args.seed,
        output_format=args.format,
        checkpoint=args.checkpoint,
        progress=False if args.no_progress else None,
    )
    print(report.summary())
    return 1 if report.failed else 0

"""UniRes as an `ImageRestorer`: the `Restorer` plus the per-image choice of the experts' weights.

The weights of each image come from a `WeightChooser`: `fixed_weights` gives every image the same
ones (a preset or `weights="DN=1"`); a weight search (`unires_jax.search.weight_chooser`) scores
candidates with a quality model and hands back the image it chose with them, which is then the
output (nothing is sampled twice; with a self-ensemble the chosen image is its first copy).

`load(checkpoint, **options)` is this family's entry in `unires_jax.restore.FAMILIES`.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from unires_jax.diffusion import experts as experts_lib
from unires_jax.restore import adaptive, jpeg_consistency
from unires_jax.restore.interface import (
    OptionError,
    Restored,
    check_options,
    checkpoint_label,
)
from unires_jax.restore.restorer import Restorer, RestoreSettings, to_float_image

FAMILY = "unires"
# A search's budget when none is given (exhaustive searches the whole grid): a share of the
# exhaustive grid's UNet evaluations; 0.5% is about 90 evaluations of a 4-step model.
DEFAULT_SEARCH_BUDGET = "0.5%"


@dataclasses.dataclass(frozen=True)
class WeightChoice:
    """The mixing weights for one image.

    Attributes:
      weights: weight by expert name (experts not named get 0).
      source: where they come from, e.g. "preset most-popular" or "--weights".
      details: facts for the sidecar (e.g. a search's scores).
      image: the restoration with these weights, when the chooser made it (a search does);
        `[H, W, 3]` float32, settings.upscale times the input's size.
      unet_evaluations: UNet image-evaluations the choice spent.
      deblur: what the restorer's blind deblurring fitted to the image, when the chooser ran it.
      complete: `image` is the finished restoration (self-ensemble included); otherwise it is
        the first copy of a self-ensemble.
      score_output: scores the written output file (its path) with the chooser's quality
        model, recorded as `weights_details.output_score` (None, with `output_score_error`,
        when it fails: the output is kept). A search scores the restored image before it is
        rounded to the file's bit depth (and compressed, for JPEG and WebP), and quality models
        like NIQE move by more than their differences between good candidates under that
        rounding (BENCHMARKS.md, #8), so the sidecar carries both.
    """

    weights: Mapping[str, float]
    source: str
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    image: np.ndarray | None = None
    unet_evaluations: int = 0
    deblur: Mapping[str, Any] | None = None
    complete: bool = False
    score_output: Callable[[pathlib.Path], float] | None = None


# Chooses the weights of one image: (pixels, restorer, seed, name) -> WeightChoice.
WeightChooser = Callable[..., WeightChoice]


def fixed_weights(weights: Mapping[str, float], source: str) -> WeightChooser:
    """A chooser giving every image the same weights."""
    choice = WeightChoice(dict(weights), source)
    return lambda pixels, restorer, *, seed, name: choice


def adaptive_weights() -> WeightChooser:
    """The default chooser: measure the degradation, run the one expert it calls for (if any) and
    blend its output with the input as `restore/adaptive.py` says. Only a blur plan runs with
    the restorer's blind deblurring; the others run without it, so a texture that the PSF fit
    mistakes for blur is never deconvolved. The JPEG plan runs a self-ensemble of
    `adaptive.JPEG_ENSEMBLE` copies unless the restorer already has one."""
    variants: dict[tuple, Restorer] = {}  # the restorer with a plan's settings changed

    def choose(
        pixels, restorer: Restorer, *, seed: int, name: str | None
    ) -> WeightChoice:
        y = to_float_image(pixels)
        decided = adaptive.plan(y, upscale=restorer.settings.upscale)
        details = {"adaptive": decided.to_json()}
        source = f"{adaptive.SOURCE}: {decided.reason}"
        if decided.expert is None:
            return WeightChoice({}, source, details, image=y, complete=True)
        changes = {}
        if decided.expert not in ("MD", "DD") and restorer.settings.deblur:
            changes["deblur"] = False
        if decided.blend == "blocking" and restorer.settings.ensemble == 1:
            changes["ensemble"] = adaptive.JPEG_ENSEMBLE
        if decided.blend == "sure" and _predicts_sample(restorer):
            changes["steps"] = adaptive.SAMPLE_PREDICTION_STEPS
        if changes:
            key = (id(restorer), tuple(sorted(changes.items())))
            if key not in variants:
                variants[key] = restorer.with_settings(**changes)
            restorer = variants[key]
        weights = {decided.expert: 1.0}
        if decided.blend == "sure":
            return _sure_blend(y, decided, restorer, weights, seed, source, details)
        restored, timing = restorer.timed_restore(y, weights, seed=seed)
        evaluations = timing["unet_evaluations"]
        if decided.blend == "none":
            # The expert's output as it is (for SR at the upscaled size, not the input's).
            image = np.asarray(restored, np.float32)
        else:
            weight = adaptive.jpeg_weight(
                decided.analysis.blockiness, decided.coarse_noise
            )
            image = (y + weight * (restored - y)).astype(np.float32)
            details["adaptive"]["blend_weight"] = round(weight, 4)
            if decided.jpeg is not None:
                image = jpeg_consistency.project(image, y, decided.jpeg)
        return WeightChoice(
            weights,
            source,
            details,
            image=image,
            unet_evaluations=evaluations,
            deblur=timing.get("deblur"),
            complete=True,
        )

    return choose


def _sure_blend(
    y: np.ndarray,
    decided: adaptive.Plan,
    restorer: Restorer,
    weights: dict[str, float],
    seed: int,
    source: str,
    details: dict,
) -> WeightChoice:
    """The noise plan: the expert and the classical denoiser blended with the input by the
    weights SURE picks on the centred crop (`adaptive.crop_sure_terms`, `noise_plan_weights`),
    on the values of the classical estimate away from black and white, that estimate elsewhere
    (`adaptive.blend_unclipped`); the expert restores the whole photo only where it gets
    weight."""
    sigma = decided.analysis.noise / 255.0
    step = adaptive.sure_probe(y, sigma, seed)
    evaluations = 0

    def expert(image):
        nonlocal evaluations
        restored, timing = restorer.timed_restore(image, weights, seed=seed)
        evaluations += timing["unet_evaluations"]
        return restored

    name, denoise = adaptive.classical_denoiser()
    blend = adaptive.noise_plan_weights(
        adaptive.crop_sure_terms(y, step, sigma, expert, denoise)
    )
    details["adaptive"]["blend_weights"] = {
        decided.expert: round(float(blend[0]), 4),
        name: round(float(blend[1]), 4),
    }
    image = adaptive.blend_unclipped(
        y, expert(y) if blend[0] > 0 else None, denoise(y, sigma), blend, sigma
    )
    return WeightChoice(
        weights,
        source,
        details,
        image=np.clip(image, 0.0, 1.0).astype(np.float32),
        unet_evaluations=evaluations,
        complete=True,
    )


def _predicts_sample(restorer: Restorer) -> bool:
    """Whether the model predicts the clean image (diffusers' "sample" prediction type)."""
    return restorer.ldm.scheduler_config.get("prediction_type") == "sample"


class UniResRestorer:
    """A UniRes model with its weight choice, as the family-blind `ImageRestorer`."""

    family = FAMILY

    def __init__(
        self,
        restorer: Restorer,
        choose_weights: WeightChooser,
        *,
        checkpoint: str | os.PathLike | None = None,
    ):
        self.restorer = restorer
        self.choose_weights = choose_weights
        self.checkpoint = checkpoint

    @property
    def scale(self) -> int:
        return self.restorer.settings.upscale

    def describe(self) -> dict[str, Any]:
        return {
            "family": FAMILY,
            "checkpoint": checkpoint_label(self.checkpoint) or "embedded default",
            "experts": self.restorer.experts,
            "steps": self.restorer.settings.steps,
            "settings": dataclasses.asdict(self.restorer.settings),
            "unet": self.restorer.unet_record,
        }

    def restore(
        self, image: np.ndarray, *, seed: int = 0, name: str | None = None
    ) -> Restored:
        t0 = time.perf_counter()
        choice = self.choose_weights(image, self.restorer, seed=seed, name=name)
        # A choice made without the experts (the adaptive choice leaving the image alone) has
        # no weights, only its image.
        unmixed = choice.image is not None and not choice.weights
        weights = {} if unmixed else weights_by_name(self.restorer, choice.weights)
        t_chosen = time.perf_counter()
        evaluations, deblur = choice.unet_evaluations, choice.deblur
        if choice.image is not None and (
            self.restorer.settings.ensemble == 1 or unmixed
        ):
            pixels = choice.image
        else:
            pixels, timing = self.restorer.timed_restore(
                image, weights, seed=seed, first_copy=choice.image
            )
            evaluations += timing["unet_evaluations"]
            deblur = timing.get("deblur", deblur)
        details: dict[str, Any] = {
            "weights": weights,
            "weights_source": choice.source,
            "weights_details": dict(choice.details),
            "unet_evaluations": evaluations,
            "timings": {
                "choose_seconds": t_chosen - t0,
                "sample_seconds": time.perf_counter() - t_chosen,
            },
        }
        if deblur is not None:
            details["deblur"] = dict(deblur)
        check = None
        if choice.score_output is not None:
            check = _output_scorer(choice.score_output, details["weights_details"])
        return Restored(np.asarray(pixels, np.float32), details, check)


def weights_by_name(
    restorer: Restorer, weights: Mapping[str, float]
) -> dict[str, float]:
    """Every expert's weight by name, as given (validated first: raises WeightError)."""
    restorer.weights_matrix(dict(weights))
    return {name: float(weights.get(name, 0.0)) for name in restorer.experts}


def _output_scorer(
    score: Callable[[pathlib.Path], float], weights_details: Mapping[str, Any]
):
    def check(path: pathlib.Path) -> dict[str, Any]:
        details = dict(weights_details)
        try:
            details["output_score"] = float(score(path))
        except Exception as e:  # noqa: BLE001 - the restored image is still good
            details["output_score"] = None
            details["output_score_error"] = f"{type(e).__name__}: {e}"
        return {"weights_details": details}

    return check


# --- the family's loader ---------------------------------------------------------------------------

SETTINGS_OPTIONS = {f.name for f in dataclasses.fields(RestoreSettings)}
MODEL_OPTIONS = {"dtype", "attention"}
WEIGHT_OPTIONS = {"weights", "preset"}
SEARCH_OPTIONS = {
    "search",
    "quality",
    "quality_checkpoint",
    "budget",
    "presets",
    "predictor",
}
OPTIONS = SETTINGS_OPTIONS | MODEL_OPTIONS | WEIGHT_OPTIONS | SEARCH_OPTIONS


def load(
    checkpoint: str | os.PathLike | None = None,
    *,
    workdir: str | os.PathLike | None = None,
    **options: Any,
) -> UniResRestorer:
    """Loads a UniRes checkpoint (None: the embedded default) as an `ImageRestorer`.

    Options (all optional):
      RestoreSettings fields (steps, tile, tile_overlap, color_fix, max_negative, quality_words,
        ensemble, upscale, consistency, deblur, ...): override the checkpoint's settings.
      dtype, attention: how the UNet runs (`Restorer.load`).
      weights: fixed weights, a dict or "DN=-0.2,DownLQ=1.2"; preset: a paper preset name.
        When neither they nor `search` is given, the weights adapt to each image
        (`restore/adaptive.py`).
      search: a weight-search strategy per image (`unires_jax.search.STRATEGIES`), with quality
        (default "niqe"), quality_checkpoint, budget, presets and predictor; the search logs
        and plots go into `workdir` (search_logs/, search_plots/) when it is given.

    Raises:
      OptionError: unknown options, or invalid weights / presets / settings (before any weights
        are read).
    """
    check_options(FAMILY, options, OPTIONS)
    given = {k: v for k, v in options.items() if v is not None}
    settings = {k: v for k, v in given.items() if k in SETTINGS_OPTIONS}
    fixed = _fixed_choice(given)
    try:
        RestoreSettings(**settings)
    except (TypeError, ValueError) as e:
        raise OptionError(str(e)) from None
    # The quality model of a search is loaded before the (slower) UniRes model, so a missing
    # quality checkpoint is reported first.
    if fixed is not None:
        chooser = fixed_weights(*fixed)
    elif "search" in given:
        chooser = _search_chooser(given, workdir)
    else:
        chooser = adaptive_weights()
    model = {k: v for k, v in given.items() if k in MODEL_OPTIONS}
    restorer = Restorer.load(checkpoint, **model, **settings)
    if fixed is not None:
        try:
            weights_by_name(restorer, fixed[0])
        except experts_lib.WeightError as e:
            raise OptionError(str(e)) from None
    return UniResRestorer(restorer, chooser, checkpoint=checkpoint)


def _fixed_choice(given: Mapping[str, Any]) -> tuple[dict[str, float], str] | None:
    """The fixed weights and their source, or None when a search or the adaptive choice
    chooses them."""
    chosen = [k for k in ("weights", "preset", "search") if k in given]
    if len(chosen) > 1:
        raise OptionError(
            f"give one of weights, preset and search, not {' and '.join(chosen)}"
        )
    search_only = sorted(set(given) & (SEARCH_OPTIONS - {"search"}))
    if search_only and "search" not in given:
        raise OptionError(
            f"{', '.join(search_only)} apply only with a weight search (search=...)"
        )
    if "search" in given:
        from unires_jax.search.interface import STRATEGIES

        if given["search"] not in STRATEGIES:
            raise OptionError(
                f"unknown search strategy {given['search']!r}; choose one of {list(STRATEGIES)}"
            )
        return None
    try:
        if "weights" in given:
            weights = given["weights"]
            if isinstance(weights, str):
                weights = experts_lib.parse_weights(weights)
            return dict(weights), "--weights"
    except experts_lib.WeightError as e:
        raise OptionError(str(e)) from None
    if "preset" not in given:
        return None  # the adaptive choice
    preset = given["preset"]
    if preset not in experts_lib.PRESETS:
        raise OptionError(
            f"unknown preset {preset!r}; choose one of {list(experts_lib.PRESETS)}"
        )
    return dict(experts_lib.PRESETS[preset]), f"preset {preset}"


def _search_chooser(given: Mapping[str, Any], workdir) -> WeightChooser:
    # The search is UniRes's inference-time weight choice; it samples with the Restorer, so it
    # lives above it (unires_jax/search) and is imported only when asked for.
    from unires_jax import quality
    from unires_jax.search.interface import weight_chooser

    budget = given.get("budget")
    if budget is None and given["search"] != "exhaustive":
        budget = DEFAULT_SEARCH_BUDGET
    if isinstance(budget, str) and budget.strip().isdigit():
        budget = int(budget)
    kwargs = (
        {"checkpoint": given["quality_checkpoint"]}
        if "quality_checkpoint" in given
        else {}
    )
    try:
        q = quality.get(given.get("quality", "niqe"), **kwargs)
    except (KeyError, ValueError, FileNotFoundError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise OptionError(str(message)) from None
    workdir = None if workdir is None else pathlib.Path(workdir)
    return weight_chooser(
        given["search"],
        q,
        budget,
        log_dir=None if workdir is None else workdir / "search_logs",
        presets=given.get("presets"),
        predictor=given.get("predictor"),
        plot_dir=None if workdir is None else workdir / "search_plots",
    )

"""One entry point for every weight-search strategy: `search(image, strategy, quality, budget)`.

    restorer = Restorer.load(checkpoint)
    result = search(image, "halving", "niqe", budget="0.5%", restorer=restorer, log_dir="logs")
    result.weights, result.score, result.image, result.unet_evaluations, result.seconds

Budgets are UNet image-evaluations (an int), or a percentage of the exhaustive grid's cost
("0.5%"). Strategies: exhaustive (the paper's grid search), frequent (the N most frequent
optima learned from other images), predict (a random forest from image features), halving
(successive halving along the DDIM trajectory), remix (a climb over the grid guided by each
finished candidate's last step remixed), experts (each single expert), refine (a base
strategy, then a local search on finer steps around its best point).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import numpy as np

from unires_jax import quality as quality_lib
from unires_jax.quality.base import QualityModel
from unires_jax.restore import image_io
from unires_jax.restore.restorer import Restorer
from unires_jax.search.engine import CandidateSampler
from unires_jax.search.evaluator import Evaluator, SearchResult
from unires_jax.search.exhaustive import exhaustive
from unires_jax.search.frequent import Presets, frequent
from unires_jax.search.grid import GridSpec, embed
from unires_jax.search.halving import halving
from unires_jax.search.plots import write_plots
from unires_jax.search.predict import WeightPredictor, predict
from unires_jax.search.refine import refine
from unires_jax.search.remix import remix


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Search options besides the strategy, Q and budget.

    Attributes:
      steps: DDIM steps per sample (None: the restorer's).
      seed: start-noise seed (the same for every candidate).
      grid: the weight grid (paper: -0.2 .. 1.2 by 0.2, one negative).
      experts: the experts the grid spans, the others fixed at 0 (None: all).
      presets: N, the number of preset sets `frequent` tries (paper: 8).
      halving_eta: successive halving keeps at most 1/eta of the candidates per round.
      halving_rounds: rounds after the first round.
      halving_first_round: how halving's first round ranks the whole grid: "mixture" (the
        finished single experts' latents, mixed) or "x0" (the first step's x0 prediction).
      refine_base: the strategy whose best point `refine` starts from.
      refine_levels: step halvings of the local search.
      refine_base_share: the share of the budget the base strategy gets.
      remix_radius: L1 distance of the weights within which `remix` trusts a finished
        candidate's remixed last step to rank the grid.
      remix_start: "mixture" (finish the mixture proxy's best first) or "expert" (climb from
        the best single expert).
    """

    steps: int | None = None
    seed: int = 0
    grid: GridSpec = dataclasses.field(default_factory=GridSpec)
    experts: tuple[str, ...] | None = None
    presets: int = 8
    halving_eta: float = 4.0
    # Measured on the held-out photos (BENCHMARKS.md): after a mixture first round, scoring
    # intermediate x0 predictions of the 4-step default model only loses the best candidates.
    halving_rounds: int = 1
    halving_first_round: str = "mixture"
    refine_base: str = "halving"
    refine_levels: int = 2
    refine_base_share: float = 0.75
    remix_radius: float = 0.8
    remix_start: str = "mixture"


def candidates(experts: list[str], config: SearchConfig) -> np.ndarray:
    """The grid `[M, K]` over the searched experts, zeros for the others."""
    searched = list(config.experts or experts)
    return embed(config.grid.vectors(len(searched)), searched, experts)


def resolve_budget(
    budget: int | str | None, sampler: CandidateSampler, config: SearchConfig
) -> int | None:
    """An int budget, or "p%" of the exhaustive grid's UNet evaluations, as an int."""
    if budget is None or isinstance(budget, (int, np.integer)):
        if budget is not None and budget < 1:
            raise ValueError(f"budget must be >= 1 UNet evaluation, got {budget}")
        return None if budget is None else int(budget)
    text = str(budget).strip()
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else int(text)
    except ValueError:
        raise ValueError(
            f"budget {budget!r}: give UNet evaluations (e.g. 2000) or a share of the exhaustive "
            "grid's cost (e.g. '0.5%')"
        ) from None
    if not text.endswith("%"):
        return resolve_budget(int(value), sampler, config)
    steps = config.steps or sampler.restorer.settings.steps
    full = sampler.cost(candidates(sampler.experts, config), start=0, stop=steps)
    return max(1, int(value * full))


def _as_quality(quality: str | QualityModel) -> QualityModel:
    return quality_lib.get(quality) if isinstance(quality, str) else quality


def _as_presets(presets: Presets | str | pathlib.Path | None) -> Presets:
    if presets is None:
        raise ValueError(
            "strategy 'frequent' needs presets: learn them with "
            "`unires search learn-presets DIR --out presets.json` and pass presets=PATH"
        )
    return presets if isinstance(presets, Presets) else Presets.load(presets)


def _as_predictor(
    predictor: WeightPredictor | str | pathlib.Path | None,
) -> WeightPredictor:
    if predictor is None:
        raise ValueError(
            "strategy 'predict' needs a predictor: train one with "
            "`unires search train-predictor --logs DIR --out predictor.json` and pass predictor=PATH"
        )
    return (
        predictor
        if isinstance(predictor, WeightPredictor)
        else WeightPredictor.load(predictor)
    )


@dataclasses.dataclass(frozen=True)
class _Run:
    """What a strategy is run with besides the Evaluator (one image's search)."""

    budget: int | None
    grid: np.ndarray  # [M, K] candidate vectors
    config: SearchConfig
    presets: Presets | str | pathlib.Path | None
    predictor: WeightPredictor | str | pathlib.Path | None


def _exhaustive(ev: Evaluator, run: _Run) -> None:
    exhaustive(ev, run.grid, run.budget)


def _halving(ev: Evaluator, run: _Run) -> None:
    c = run.config
    halving(
        ev,
        run.grid,
        run.budget,
        eta=c.halving_eta,
        rounds=c.halving_rounds,
        first_round=c.halving_first_round,
    )


def _remix(ev: Evaluator, run: _Run) -> None:
    remix(
        ev,
        run.grid,
        run.budget,
        radius=run.config.remix_radius,
        start=run.config.remix_start,
    )


def _experts(ev: Evaluator, run: _Run) -> None:
    # Each searched expert alone: the baseline every mixture should beat, and with `refine` on
    # top a cheap image-adaptive search that cannot end below it.
    searched = [ev.experts.index(e) for e in (run.config.experts or ev.experts)]
    singles = np.eye(len(ev.experts), dtype=np.float64)[searched]
    cost = ev.cost(singles)
    if run.budget is not None and cost > run.budget:
        raise ValueError(
            f"the experts strategy finishes {len(searched)} single experts for {cost} UNet "
            f"evaluations, more than the budget of {run.budget}; raise the budget"
        )
    ev.finish_experts(np.array(searched))


def _frequent(ev: Evaluator, run: _Run) -> None:
    frequent(ev, _as_presets(run.presets), run.config.presets, run.budget)


def _predict(ev: Evaluator, run: _Run) -> None:
    predict(ev, _as_predictor(run.predictor), run.budget)


def _refine(ev: Evaluator, run: _Run) -> None:
    c = run.config
    if c.refine_base == "refine":
        raise ValueError("refine_base cannot be 'refine'")
    base_budget = None if run.budget is None else int(run.budget * c.refine_base_share)
    _run_strategy(ev, c.refine_base, dataclasses.replace(run, budget=base_budget))
    ev.strategy = "refine"
    left = None if run.budget is None else run.budget - ev.unet_evaluations
    refine(
        ev,
        ev.best_vector(),
        list(c.experts or ev.experts),
        c.grid,
        levels=c.refine_levels,
        budget=left,
    )


# Every strategy by name: run(evaluator, run) finishes and scores candidates through `ev`.
STRATEGY_RUNNERS = {
    "exhaustive": _exhaustive,
    "frequent": _frequent,
    "predict": _predict,
    "halving": _halving,
    "remix": _remix,
    "refine": _refine,
    "experts": _experts,
}
STRATEGIES = tuple(STRATEGY_RUNNERS)


def _run_strategy(ev: Evaluator, strategy: str, run: _Run) -> None:
    if strategy not in STRATEGY_RUNNERS:
        raise ValueError(
            f"unknown search strategy {strategy!r}; choose one of {list(STRATEGIES)}"
        )
    ev.strategy = strategy
    STRATEGY_RUNNERS[strategy](ev, run)


def search(
    image: np.ndarray,
    strategy: str = "exhaustive",
    quality: str | QualityModel = "niqe",
    budget: int | str | None = None,
    *,
    restorer: Restorer | None = None,
    sampler: CandidateSampler | None = None,
    config: SearchConfig = SearchConfig(),
    presets: Presets | str | pathlib.Path | None = None,
    predictor: WeightPredictor | str | pathlib.Path | None = None,
    log_dir: str | pathlib.Path | None = None,
    image_path: str | None = None,
    return_image: bool = True,
    keep_images: bool = False,
) -> SearchResult:
    """Finds mixing weights for one image by maximising a no-reference quality Q.

    Args:
      image: `[H, W, 3]` uint8/uint16 or float in [0, 1].
      strategy: one of `STRATEGIES`.
      quality: a `unires_jax.quality` name ("niqe", "brisque", "musiq", ...) or a model.
      budget: UNet evaluations (int) or a share of the exhaustive cost ("0.5%"); None: the
        strategy's natural cost.
      restorer: the model (needed unless `sampler` is given).
      sampler: a `CandidateSampler` to reuse across images (it holds the model replicated on
        every device); built from `restorer` when None.
      config: grid, steps, seed and strategy options.
      presets: for "frequent": a `Presets` or its JSON path.
      predictor: for "predict": a `WeightPredictor` or its JSON path.
      log_dir: folder of resumable per-image candidate logs (None: no log).
      image_path: recorded in the log.
      return_image: also return the restored image of the chosen weights.
      keep_images: also return every finished candidate's image (`finished_images`).

    Returns:
      A `SearchResult`.
    """
    if sampler is None:
        if restorer is None:
            raise ValueError("search() needs restorer= (or sampler=)")
        sampler = CandidateSampler(restorer)
    if strategy not in STRATEGIES:
        raise ValueError(
            f"unknown search strategy {strategy!r}; choose one of {list(STRATEGIES)}"
        )
    q = _as_quality(quality)
    steps = config.steps or sampler.restorer.settings.steps
    budget = resolve_budget(budget, sampler, config)
    ev = Evaluator(
        sampler,
        image,
        q,
        steps=steps,
        seed=config.seed,
        log_dir=log_dir,
        strategy=strategy,
        image_path=image_path,
        keep_images=keep_images,
    )
    run = _Run(budget, candidates(sampler.experts, config), config, presets, predictor)
    _run_strategy(ev, strategy, run)
    return ev.result(return_image=return_image)


def choose_weights(
    restorer: Restorer,
    image: np.ndarray,
    strategy: str,
    quality: str | QualityModel,
    budget: int | str | None = None,
    log_dir: str | pathlib.Path | None = None,
    *,
    config: SearchConfig = SearchConfig(),
    presets: Presets | str | pathlib.Path | None = None,
    predictor: WeightPredictor | str | pathlib.Path | None = None,
    plot_dir: str | pathlib.Path | None = None,
    plot_stem: str = "search",
    image_path: str | None = None,
    sampler: CandidateSampler | None = None,
    return_image: bool = False,
) -> tuple[dict[str, float], dict[str, Any], SearchResult]:
    """`search` for `unires restore --search ...`: the weights, a JSON-ready summary, the result.

    Returns:
      (weights by expert name, info, the SearchResult) where info has strategy, quality, score,
      objective, candidates_evaluated, candidates_finished, unet_evaluations, seconds, log and
      plots; the result's `image` is the chosen restoration when `return_image`.
    """
    q = _as_quality(quality)
    result = search(
        image,
        strategy,
        q,
        budget,
        restorer=restorer,
        sampler=sampler,
        config=config,
        presets=presets,
        predictor=predictor,
        log_dir=log_dir,
        image_path=image_path,
        return_image=return_image,
    )
    plots = []
    if plot_dir is not None:
        plots = [
            str(p)
            for p in write_plots(
                result.records,
                restorer.experts,
                plot_dir,
                plot_stem,
                quality=q.name,
                higher_is_better=q.higher_is_better,
            )
        ]
    info = {
        "strategy": result.strategy,
        "quality": result.quality,
        "score": result.score,
        "objective": result.objective,
        "candidates_evaluated": result.candidates_evaluated,
        "candidates_finished": result.candidates_finished,
        "unet_evaluations": result.unet_evaluations,
        "seconds": result.seconds,
        "log": result.log_path,
        "plots": plots,
    }
    return result.weights, info, result


def weight_chooser(
    strategy: str,
    quality: str | QualityModel,
    budget: int | str | None = None,
    log_dir: str | pathlib.Path | None = None,
    *,
    config: SearchConfig = SearchConfig(),
    presets: Presets | str | pathlib.Path | None = None,
    predictor: WeightPredictor | str | pathlib.Path | None = None,
    plot_dir: str | pathlib.Path | None = None,
    sampler: CandidateSampler | None = None,
):
    """A per-image `WeightChooser` for the UniRes restorer (`unires_jax.restore.unires`) that
    runs a search and hands back the image it chose.

    The returned callable takes `(pixels, restorer, *, seed, name)` and returns a `WeightChoice`
    with the chosen weights, the restored image they gave (so it is not sampled again), the UNet
    evaluations spent and `choose_weights`'s info; plots are named after `name` (the input
    file). The search samples with the restore `seed` (`config.seed` is replaced by it). The
    model is placed on the devices once (on the first image) and reused. Pass `sampler` to reuse
    one (it must wrap the restorer the chooser is called with).
    """
    from unires_jax.restore.unires import WeightChoice

    q = _as_quality(quality)
    # Loaded once, not per image.
    presets = _as_presets(presets) if strategy == "frequent" else presets
    predictor = _as_predictor(predictor) if strategy == "predict" else predictor
    samplers: dict[int, CandidateSampler] = {}
    if sampler is not None:
        samplers[id(sampler.restorer)] = sampler

    def choose(pixels, restorer: Restorer, *, seed: int = 0, name: str | None = None):
        if id(restorer) not in samplers:
            samplers[id(restorer)] = CandidateSampler(restorer)
        weights, info, result = choose_weights(
            restorer,
            pixels,
            strategy,
            q,
            budget,
            log_dir,
            config=dataclasses.replace(config, seed=seed),
            presets=presets,
            predictor=predictor,
            plot_dir=plot_dir,
            plot_stem=pathlib.Path(name).stem if name else "search",
            image_path=name,
            sampler=samplers[id(restorer)],
            return_image=True,
        )
        return WeightChoice(
            weights,
            f"search {strategy} ({q.name})",
            info,
            image=result.image,
            unet_evaluations=result.unet_evaluations,
            deblur=result.deblur,
            score_output=score_file,
        )

    def score_file(path: pathlib.Path) -> float:
        # Read as `unires quality` reads files, so the two report the same number.
        return float(q.score([image_io.read_image(path).to_float()])[0])

    return choose

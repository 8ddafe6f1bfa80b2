"""Choosing the UniRes mixing weights per image by maximising a no-reference quality Q.

- grid.py       the paper's weight grid (exact enumeration; 1512 vectors by default)
- engine.py     sharded many-candidate sampling with the shared first step cached
- programs.py   its jitted shard_map programs (advance, first-step mix, decode)
- evaluator.py  sample + decode + score + resumable log + best tracking for one image
- log.py        the JSON-lines candidate log
- exhaustive.py, frequent.py, predict.py, halving.py, remix.py, refine.py   the strategies
- features.py   degradation statistics (the predictor's input)
- plots.py      Q-landscape PNGs
- interface.py  `search(image, strategy, quality, budget)` and `choose_weights` for the CLI
"""

from unires_jax.search.engine import CandidateSampler
from unires_jax.search.evaluator import Evaluator, SearchResult
from unires_jax.search.frequent import Presets, learn_presets
from unires_jax.search.grid import GridSpec, embed, grid
from unires_jax.search.interface import (
    STRATEGIES,
    SearchConfig,
    candidates,
    choose_weights,
    resolve_budget,
    search,
    weight_chooser,
)
from unires_jax.search.log import CandidateLog, read_logs
from unires_jax.search.plots import write_plots
from unires_jax.search.predict import PredictorConfig, WeightPredictor, train_predictor

__all__ = [
    "STRATEGIES",
    "CandidateLog",
    "CandidateSampler",
    "Evaluator",
    "GridSpec",
    "PredictorConfig",
    "Presets",
    "SearchConfig",
    "SearchResult",
    "WeightPredictor",
    "candidates",
    "choose_weights",
    "embed",
    "grid",
    "learn_presets",
    "read_logs",
    "resolve_budget",
    "search",
    "train_predictor",
    "weight_chooser",
    "write_plots",
]

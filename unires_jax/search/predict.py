"""The `predict` strategy: a random forest maps image features to weights (one sample per image).

Trained on exhaustive-search logs: each searched image gives (its degradation features, its
best weights). The forest's multi-output prediction is an average of training optima, so it
sums to one, but it may leave the grid or have too many negative weights; it is projected to
the nearest grid vector (Euclidean), which satisfies every grid constraint.

The predictor file stores the training set, not a pickled forest: loading refits the forest
(fixed seed, so the same predictions) in well under a second for hundreds of images, and the
file stays readable and independent of the scikit-learn version.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from collections.abc import Sequence

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from unires_jax.search.evaluator import Evaluator
from unires_jax.search.features import FEATURE_NAMES, degradation_features
from unires_jax.search.grid import GridSpec, embed
from unires_jax.search.log import best_per_run, read_logs

PREDICTOR_FORMAT = "unires-search-predictor/1"


@dataclasses.dataclass(frozen=True)
class PredictorConfig:
    """Random-forest settings and the grid that predictions are projected onto."""

    n_estimators: int = 100
    min_samples_leaf: int = 1
    random_state: int = 0
    grid: GridSpec = dataclasses.field(default_factory=GridSpec)


class WeightPredictor:
    """Image -> weight vector on the grid.

    Args:
      experts: all expert names, in weight order.
      searched: the experts the grid spans (the others are predicted as 0).
      features: `[M, F]` training features (`FEATURE_NAMES` order).
      targets: `[M, K]` the best weights of each training image.
      config: forest and grid settings.
    """

    def __init__(
        self,
        experts: Sequence[str],
        searched: Sequence[str],
        features: np.ndarray,
        targets: np.ndarray,
        config: PredictorConfig = PredictorConfig(),
    ):
        self.experts = list(experts)
        self.searched = list(searched)
        self.features = np.asarray(features, np.float64)
        self.targets = np.asarray(targets, np.float64)
        self.config = config
        if self.features.ndim != 2 or self.features.shape[1] != len(FEATURE_NAMES):
            raise ValueError(
                f"features must be [M, {len(FEATURE_NAMES)}], got {self.features.shape}"
            )
        if self.targets.shape != (len(self.features), len(self.experts)):
            raise ValueError(
                f"targets must be [{len(self.features)}, {len(self.experts)}], got {self.targets.shape}"
            )
        if len(self.features) == 0:
            raise ValueError("a weight predictor needs at least one training image")
        self.forest = RandomForestRegressor(
            n_estimators=config.n_estimators,
            min_samples_leaf=config.min_samples_leaf,
            random_state=config.random_state,
        ).fit(self.features, self.targets)

    @functools.cached_property
    def _grid(self) -> np.ndarray:
        return embed(
            self.config.grid.vectors(len(self.searched)), self.searched, self.experts
        )

    def predict_raw(self, image: np.ndarray) -> np.ndarray:
        """The forest's `[K]` prediction (sums to one; may be off the grid)."""
        return self.forest.predict(degradation_features(image)[None])[0]

    def predict(self, image: np.ndarray) -> np.ndarray:
        """The grid vector `[K]` nearest to the forest's prediction."""
        raw = self.predict_raw(image)
        return self._grid[np.argmin(((self._grid - raw) ** 2).sum(axis=1))]

    def save(self, path: str | pathlib.Path) -> None:
        g = self.config.grid
        data = {
            "format": PREDICTOR_FORMAT,
            "experts": self.experts,
            "searched": self.searched,
            "feature_names": list(FEATURE_NAMES),
            "features": self.features.tolist(),
            "targets": self.targets.tolist(),
            "forest": {
                "n_estimators": self.config.n_estimators,
                "min_samples_leaf": self.config.min_samples_leaf,
                "random_state": self.config.random_state,
            },
            "grid": {
                "vmin": g.vmin,
                "vmax": g.vmax,
                "step": g.step,
                "max_negative": g.max_negative,
            },
        }
        pathlib.Path(path).write_text(json.dumps(data) + "\n")

    @classmethod
    def load(cls, path: str | pathlib.Path) -> WeightPredictor:
        path = pathlib.Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: cannot read predictor JSON ({e})") from e
        if data.get("format") != PREDICTOR_FORMAT:
            raise ValueError(
                f"{path}: not a weight-predictor file (format {data.get('format')!r}); train one "
                "with `unires search train-predictor --logs DIR --out FILE`"
            )
        if data["feature_names"] != list(FEATURE_NAMES):
            raise ValueError(
                f"{path}: trained on features {data['feature_names']}, but this version computes "
                f"{list(FEATURE_NAMES)}; retrain it from the search logs"
            )
        config = PredictorConfig(**data["forest"], grid=GridSpec(**data["grid"]))
        return cls(
            data["experts"], data["searched"], data["features"], data["targets"], config
        )


def train_predictor(
    logs: str | pathlib.Path | Sequence,
    experts: Sequence[str] | None = None,
    *,
    searched: Sequence[str] | None = None,
    config: PredictorConfig = PredictorConfig(),
    quality: str | None = None,
    min_candidates: int = 1,
) -> WeightPredictor:
    """Fits a predictor on the exhaustive-search optima in a folder of search logs.

    Args:
      logs: a folder of `*.jsonl` logs (or a list of `CandidateLog`); each image line carries
        the image's features.
      experts: all expert names, in weight order (default: as recorded in the logs).
      searched: the experts the projection grid spans (default: all).
      config: forest and grid settings.
      quality: use only searches scored with this quality model.
      min_candidates: ignore searches with fewer finished candidates (interrupted ones).

    Raises:
      ValueError: no usable search in the logs.
    """
    logs = read_logs(logs) if isinstance(logs, (str, pathlib.Path)) else list(logs)
    optima = [
        (best, image)
        for best, image, _ in best_per_run(
            logs, quality=quality, min_candidates=min_candidates
        )
        if image is not None and "features" in image
    ]
    if not optima:
        raise ValueError(
            "no finished exhaustive search with image features in the logs; run "
            "`unires search learn-presets DIR --logs LOGS` (or search with strategy='exhaustive' "
            "and a log_dir) first"
        )
    if experts is None:
        recorded = {tuple(image.get("experts", ())) for _, image in optima}
        if len(recorded) != 1 or not next(iter(recorded)):
            raise ValueError(
                f"the logs record {len(recorded)} different expert lists; pass experts=[...]"
            )
        experts = list(next(iter(recorded)))
    rows, targets = [], []
    for best, image in optima:
        if set(image["features"]) != set(FEATURE_NAMES):
            raise ValueError(
                f"search log for image {best['image']}: features {sorted(image['features'])} differ "
                f"from this version's {list(FEATURE_NAMES)}; rerun the search to refresh them"
            )
        rows.append([image["features"][n] for n in FEATURE_NAMES])
        targets.append([best["weights"].get(e, 0.0) for e in experts])
    return WeightPredictor(
        experts, searched or experts, np.array(rows), np.array(targets), config
    )


def predict(
    ev: Evaluator, predictor: WeightPredictor, budget: int | None = None
) -> None:
    """Finishes and scores the one predicted weight vector."""
    if predictor.experts != list(ev.experts):
        raise ValueError(
            f"the predictor was trained for experts {predictor.experts}, this model has "
            f"{list(ev.experts)}"
        )
    vector = predictor.predict(ev.image)[None]
    if budget is not None and ev.cost(vector) > budget:
        raise ValueError(
            f"a budget of {budget} UNet evaluations does not cover one sample "
            f"({ev.cost(vector)} needed)"
        )
    ev.evaluate(vector)

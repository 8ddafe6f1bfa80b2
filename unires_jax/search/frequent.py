"""The `frequent` strategy: try only the N weight sets most often optimal on other images.

`learn_presets` counts the exhaustive-search optima in a folder of search logs (written by
`unires search learn-presets DIR`, which runs the searches) and saves them most frequent first
as a small JSON file; the paper keeps N = 8 sets learned on 120 images.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

from unires_jax.search.evaluator import Evaluator
from unires_jax.search.log import best_per_run, read_logs, weights_key

PRESETS_FORMAT = "unires-search-presets/1"


@dataclasses.dataclass(frozen=True)
class Presets:
    """Weight sets with how many images each was optimal for, most frequent first.

    Attributes:
      entries: (weights by expert name, count) pairs.
      images: number of searched images counted.
      quality: the quality model the optima maximised.
    """

    entries: tuple[tuple[dict[str, float], int], ...]
    images: int
    quality: str

    def vectors(self, experts: Sequence[str], n: int | None = None) -> np.ndarray:
        """The top-n sets as `[n, K]` over `experts` (all sets when n is None)."""
        entries = self.entries if n is None else self.entries[:n]
        unknown = sorted({name for w, _ in entries for name in w} - set(experts))
        if unknown:
            raise ValueError(
                f"presets name expert(s) {unknown} that this model does not have ({list(experts)})"
            )
        return np.array(
            [[w.get(e, 0.0) for e in experts] for w, _ in entries], np.float64
        )

    def save(self, path: str | pathlib.Path) -> None:
        data = {
            "format": PRESETS_FORMAT,
            "images": self.images,
            "quality": self.quality,
            "presets": [{"weights": w, "count": c} for w, c in self.entries],
        }
        pathlib.Path(path).write_text(json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | pathlib.Path) -> Presets:
        path = pathlib.Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: cannot read presets JSON ({e})") from e
        if data.get("format") != PRESETS_FORMAT:
            raise ValueError(
                f"{path}: not a presets file (format {data.get('format')!r}, expected "
                f"{PRESETS_FORMAT!r}); write one with `unires search learn-presets DIR --out FILE`"
            )
        entries = tuple((dict(p["weights"]), int(p["count"])) for p in data["presets"])
        return cls(entries, int(data["images"]), str(data["quality"]))


def learn_presets(
    logs: str | pathlib.Path | Sequence,
    *,
    n: int | None = None,
    quality: str | None = None,
    min_candidates: int = 1,
) -> Presets:
    """Counts the exhaustive-search optimum of every image in a folder of search logs.

    Args:
      logs: a folder of `*.jsonl` logs or a list of `CandidateLog`.
      n: keep the n most frequent sets (None: all).
      quality: count only searches scored with this quality model.
      min_candidates: ignore searches with fewer finished candidates (interrupted ones).

    Raises:
      ValueError: no finished exhaustive search in the logs.
    """
    logs = read_logs(logs) if isinstance(logs, (str, pathlib.Path)) else list(logs)
    optima = best_per_run(logs, quality=quality, min_candidates=min_candidates)
    if not optima:
        raise ValueError(
            "no finished exhaustive search in the logs; run `unires search learn-presets DIR` "
            "(or search with strategy='exhaustive' and a log_dir) first"
        )
    qualities = sorted({best["quality"] for best, _, _ in optima})
    if len(qualities) > 1:
        raise ValueError(
            f"the logs mix quality models {qualities}; choose one with quality=..."
        )
    counts = Counter(weights_key(best["weights"]) for best, _, _ in optima)
    # Most frequent first; ties in a fixed (sorted) order so the file is reproducible.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if n is not None:
        ranked = ranked[:n]
    entries = tuple((dict(key), count) for key, count in ranked)
    return Presets(entries, len(optima), qualities[0])


def frequent(
    ev: Evaluator, presets: Presets, n: int = 8, budget: int | None = None
) -> None:
    """Finishes and scores the n most frequent preset weight sets (fewer if the budget says so).

    Raises:
      ValueError: the budget does not cover even the most frequent set.
    """
    vectors = presets.vectors(ev.experts, n)
    if budget is not None:
        keep = 0
        while keep < len(vectors) and ev.cost(vectors[: keep + 1]) <= budget:
            keep += 1
        if keep == 0:
            raise ValueError(
                f"a budget of {budget} UNet evaluations does not cover one preset "
                f"({ev.cost(vectors[:1])} needed)"
            )
        vectors = vectors[:keep]
    ev.evaluate(vectors)

"""Exhaustive search: sample and score every candidate, keep the best (the paper's method)."""

from __future__ import annotations

import numpy as np

from unires_jax.search.evaluator import Evaluator


def exhaustive(
    ev: Evaluator, candidates: np.ndarray, budget: int | None = None
) -> None:
    """Finishes and scores every candidate (logged ones are not sampled again).

    Args:
      ev: the image's evaluator.
      candidates: `[N, K]` weight vectors (e.g. `grid(...)` embedded over the experts).
      budget: UNet evaluations allowed; the search refuses to start when the grid costs more.

    Raises:
      ValueError: the grid costs more than `budget`.
    """
    if budget is not None:
        cost = ev.cost(candidates)
        if cost > budget:
            raise ValueError(
                f"exhaustive search over {len(candidates)} candidates costs {cost} UNet "
                f"evaluations, more than the budget of {budget}; raise the budget, use a coarser "
                "grid, or a cheaper strategy (halving, frequent, predict)"
            )
    ev.evaluate(candidates)

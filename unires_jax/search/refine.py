"""The `refine` strategy's local step: pattern search around a good weight vector on finer grids.

From a starting vector (the best of a coarse strategy), try every move of h weight from one
searched expert to another (K (K - 1) neighbours, all still summing to one), with h half the
grid step; move to the best neighbour while it improves Q, then halve h, for `levels` levels.
Neighbours must stay in [vmin, vmax] with at most `max_negative` negative weights, and are
sampled in batches like any other candidates (already-scored ones are free).
"""

from __future__ import annotations

import numpy as np

from unires_jax.search.evaluator import Evaluator
from unires_jax.search.grid import GridSpec

# Weights are rounded to this many decimals after each move so sums stay exact to ~1e-9.
_DECIMALS = 9


def neighbours(
    center: np.ndarray, movable: list[int], h: float, spec: GridSpec
) -> np.ndarray:
    """Vectors center + h (e_i - e_j) for i != j in `movable` that respect the grid's limits.

    Returns:
      `[M, K]` float64 (possibly M = 0).
    """
    out = []
    slack = 1e-9
    for i in movable:
        for j in movable:
            if i == j:
                continue
            v = center.copy()
            v[i] += h
            v[j] -= h
            v = np.round(v, _DECIMALS) + 0.0
            if v.min() < spec.vmin - slack or v.max() > spec.vmax + slack:
                continue
            if spec.max_negative is not None and (v < -1e-5).sum() > spec.max_negative:
                continue
            out.append(v)
    return np.array(out, np.float64).reshape(-1, len(center))


def refine(
    ev: Evaluator,
    start: np.ndarray,
    searched: list[str],
    spec: GridSpec,
    *,
    levels: int = 2,
    budget: int | None = None,
) -> None:
    """Hill-climbs from `start` with steps spec.step / 2, / 4, ... (`levels` of them).

    Args:
      ev: the image's evaluator (the start's score is reused if it was already computed).
      start: `[K]` the starting weights.
      searched: the experts whose weights may change.
      spec: the coarse grid (its step, bounds and max_negative).
      levels: number of step halvings.
      budget: UNet evaluations for the refinement (None: no limit); neighbours that do not fit
        are not tried.
    """
    movable = [ev.experts.index(e) for e in searched]
    spent_before = ev.unet_evaluations

    def left() -> float:
        return (
            np.inf if budget is None else budget - (ev.unet_evaluations - spent_before)
        )

    center = np.asarray(start, np.float64)
    if ev.cost(center[None]) > left() and not ev.seen(center):
        return
    center_objective = ev.evaluate(center[None])[0][0]
    h = float(spec.step)
    for _ in range(levels):
        h /= 2
        while True:
            around = neighbours(center, movable, h, spec)
            known = [v for v in around if ev.seen(v)]  # scored already: free
            fitting: list[np.ndarray] = []
            for v in (v for v in around if not ev.seen(v)):
                if ev.cost(np.array(fitting + [v])) > left():
                    break
                fitting.append(v)
            tried = np.array(known + fitting).reshape(-1, len(center))
            if not len(tried):
                break
            objectives, _ = ev.evaluate(tried)
            best = int(np.argmax(np.nan_to_num(objectives, nan=-np.inf)))
            if not objectives[best] > center_objective:
                break
            center, center_objective = tried[best], objectives[best]

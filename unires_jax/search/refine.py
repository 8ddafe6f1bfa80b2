"""The `refine` strategy's local step: pattern search around a good weight vector on finer grids.

From a starting vector (the best of a coarse strategy), try every move of h weight from one
searched expert to another (K (K - 1) neighbours, all still summing to one), with h half the
grid step; move to the best neighbour while it improves Q, then halve h, for `levels` levels.
Neighbours must stay in [vmin, vmax] with at most `max_negative` negative weights, and are
sampled in batches like any other candidates (already-scored ones are free). When the single
experts have been finished (the `experts` and `halving` strategies do), the neighbours are
ranked by the mixture proxy (`Evaluator.mixture_proxy`, no UNet evaluation) and finished best
first, a few at a time, so a small budget goes to the promising moves.
"""

from __future__ import annotations

from collections.abc import Iterator

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
    chunk: int = 4,
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
      chunk: when the mixture proxy ranks the neighbours, how many are finished before the
        search moves to the best of them if it improves.
    """
    movable = [ev.experts.index(e) for e in searched]
    left = ev.allowance(budget)

    center = np.asarray(start, np.float64)
    if ev.cost(center[None]) > left() and not ev.seen(center):
        return
    center_objective = ev.evaluate(center[None])[0][0]
    h = float(spec.step)
    for _ in range(levels):
        h /= 2
        while True:
            around = neighbours(center, movable, h, spec)
            moved = False
            for tried in _batches(ev, around, chunk, left):
                objectives, _ = ev.evaluate(tried)
                best = int(np.argmax(np.nan_to_num(objectives, nan=-np.inf)))
                if objectives[best] > center_objective:
                    center, center_objective = tried[best], objectives[best]
                    moved = True
                    break
            if not moved:
                break


def _batches(
    ev: Evaluator, around: np.ndarray, chunk: int, left
) -> Iterator[np.ndarray]:
    """The neighbours to try, in batches: the already-scored ones (free) with the first batch;
    the others most promising first when the mixture proxy can rank them (the single experts
    were finished), `chunk` at a time, while the budget pays for them."""
    known: list[np.ndarray] = []
    unseen: list[np.ndarray] = []
    for v in around:
        (known if ev.seen(v) else unseen).append(v)
    if unseen and min(ev.cost(v[None]) for v in unseen) > left():
        # None of them can be finished: ranking them would decode and score each for nothing.
        unseen = []
    proxy = ev.mixture_proxy(np.array(unseen)) if unseen else None
    if proxy is None:
        chunk = max(1, len(unseen))  # no ranking: everything that fits, in one batch
    else:
        order = np.argsort(-np.nan_to_num(proxy, nan=-np.inf), kind="stable")
        unseen = [unseen[i] for i in order]
    first = True
    while first or unseen:
        fitting: list[np.ndarray] = []
        while unseen and len(fitting) < chunk:
            if ev.cost(np.array(fitting + [unseen[0]])) > left():
                unseen = []  # the budget is spent: no later batch fits either
                break
            fitting.append(unseen.pop(0))
        tried = np.array((known if first else []) + fitting).reshape(
            -1, around.shape[1]
        )
        first = False
        if not len(tried):
            return
        yield tried

"""The paper's search grid: weight vectors on a regular grid that sum to one.

Each weight takes a value vmin + i * step (i = 0, 1, ... while the value is <= vmax), the K
weights sum to 1 and at most `max_negative` of them are negative. The defaults
(-0.2 .. 1.2 by 0.2, K = 6, one negative) give the paper's 1512 vectors.

The enumeration is exact: the bounds and step are read as decimal fractions (0.2 is 1/5, not
the double nearest to it) and every vector is a tuple of integer step counts, so no value or
sum drifts the way `np.arange` plus float sums can. The tolerances are the paper snippet's
(supplementary A.2): a sum counts as 1 when |1 - sum| < 1e-5, a value as negative when it is
below -1e-5. The order is the snippet's `itertools.product` order (first weight slowest).
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np

SUM_TOLERANCE = Fraction(1, 10**5)
NEGATIVE_TOLERANCE = Fraction(1, 10**5)
# Refuse grids whose vectors would not fit comfortably in memory (or a search budget).
MAX_VECTORS = 5_000_000


@dataclasses.dataclass(frozen=True)
class GridSpec:
    """The grid parameters except K (the number of searched experts)."""

    vmin: float = -0.2
    vmax: float = 1.2
    step: float = 0.2
    max_negative: int | None = 1

    def vectors(self, k: int) -> np.ndarray:
        """`grid(...)` for K = k experts."""
        return grid(self.vmin, self.vmax, self.step, k, self.max_negative)


def _exact(name: str, value: float | Fraction) -> Fraction:
    """A bound or step as an exact fraction (floats by their shortest decimal repr)."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, (int, np.integer)):
        return Fraction(int(value))
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"search grid: {name}={value} must be a finite number")
    return Fraction(repr(value))


def _check(
    lo: Fraction, hi: Fraction, step: Fraction, k: int, max_negative: int | None
) -> None:
    if step <= 0:
        raise ValueError(f"search grid: step must be > 0, got {float(step)}")
    if lo > hi:
        raise ValueError(f"search grid: vmin={float(lo)} is above vmax={float(hi)}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(
            f"search grid: k (the number of experts) must be an integer >= 1, got {k!r}"
        )
    if max_negative is not None and (
        not isinstance(max_negative, (int, np.integer)) or max_negative < 0
    ):
        raise ValueError(
            f"search grid: max_negative must be None (no limit) or an integer >= 0, got {max_negative!r}"
        )


def _levels(lo: Fraction, hi: Fraction, step: Fraction) -> int:
    """Number of grid values minus one: the largest n with lo + n * step <= hi."""
    return math.floor((hi - lo) / step)


def _target_sums(lo: Fraction, step: Fraction, k: int, n: int) -> list[int]:
    """Integer step-count totals S (0 <= S <= k n) with |k lo + S step - 1| < tolerance."""
    # Solve for S: (1 - tol - k lo) / step < S < (1 + tol - k lo) / step.
    low = (1 - SUM_TOLERANCE - k * lo) / step
    high = (1 + SUM_TOLERANCE - k * lo) / step
    first = max(0, math.floor(low) + 1)
    last = min(k * n, math.ceil(high) - 1)
    return list(range(first, last + 1))


def _explain_empty(lo, hi, step, k, n, max_negative) -> str:
    values = [lo + i * step for i in range(n + 1)]
    shown = ", ".join(f"{float(v):g}" for v in values[:10]) + (
        ", ..." if len(values) > 10 else ""
    )
    settings = (
        f"vmin={float(lo):g}, vmax={float(hi):g}, step={float(step):g}, k={k}, "
        f"max_negative={max_negative}"
    )
    if k * values[0] > 1 + SUM_TOLERANCE:
        why = f"even k * vmin = {float(k * values[0]):g} is above 1; lower vmin"
    elif k * values[-1] < 1 - SUM_TOLERANCE:
        why = f"even k * (largest value) = {float(k * values[-1]):g} is below 1; raise vmax"
    elif not _target_sums(lo, step, k, n):
        why = "no sum of k grid values equals 1 (step too coarse for this range); change step or vmin"
    else:
        why = "every vector summing to 1 has too many negative weights; raise max_negative or vmin"
    return f"search grid ({settings}) is empty: values {{{shown}}}; {why}."


def _count(
    n: int, k: int, targets: set[int], negative_levels: int, max_negative: int | None
) -> int:
    """Number of valid vectors, by dynamic programming over (sum, negatives)."""
    cap = k if max_negative is None else max_negative
    # ways[s][m]: vectors of the weights so far with step-count sum s and m negatives.
    ways = {(0, 0): 1}
    for _ in range(k):
        nxt: dict[tuple[int, int], int] = {}
        for (s, m), c in ways.items():
            for i in range(n + 1):
                m2 = m + (i < negative_levels)
                if m2 <= cap:
                    nxt[(s + i, m2)] = nxt.get((s + i, m2), 0) + c
        ways = nxt
    return sum(c for (s, _), c in ways.items() if s in targets)


def grid(
    vmin: float = -0.2,
    vmax: float = 1.2,
    step: float = 0.2,
    k: int = 6,
    max_negative: int | None = 1,
) -> np.ndarray:
    """All weight vectors on the grid that sum to one.

    Args:
      vmin, vmax: the range of each weight (vmax is included when it is on the grid).
      step: grid spacing (> 0); values are vmin + i * step.
      k: number of weights (experts).
      max_negative: at most this many weights below zero per vector (None: no limit).

    Returns:
      float64 `[M, k]`, in `itertools.product` order; M = 1512 for the defaults.

    Raises:
      ValueError: invalid settings, a grid with no vector summing to 1 (the message says why),
        or more than `MAX_VECTORS` vectors.
    """
    lo, hi, h = _exact("vmin", vmin), _exact("vmax", vmax), _exact("step", step)
    _check(lo, hi, h, k, max_negative)
    k = int(k)
    n = _levels(lo, hi, h)
    targets = set(_target_sums(lo, h, k, n))
    # Levels i < negative_levels are the negative values (below -1e-5, as the snippet counts).
    negative_levels = sum(1 for i in range(n + 1) if lo + i * h < -NEGATIVE_TOLERANCE)
    count = _count(n, k, targets, negative_levels, max_negative) if targets else 0
    if count == 0:
        raise ValueError(_explain_empty(lo, hi, h, k, n, max_negative))
    if count > MAX_VECTORS:
        raise ValueError(
            f"search grid: vmin={float(lo):g}, vmax={float(hi):g}, step={float(h):g}, k={k} has "
            f"{count} vectors (more than {MAX_VECTORS}); use a coarser step or fewer experts"
        )
    cap = k if max_negative is None else int(max_negative)
    out = np.empty((count, k), np.int64)
    prefix = [0] * k
    row = 0
    min_target, max_target = min(targets), max(targets)

    def fill(pos: int, total: int, negatives: int) -> None:
        nonlocal row
        remaining = k - pos
        if remaining == 0:
            if total in targets:
                out[row] = prefix
                row += 1
            return
        for i in range(n + 1):
            neg = negatives + (i < negative_levels)
            if neg > cap:
                continue
            t = total + i
            # Prune: the remaining weights add between 0 and (remaining - 1) * n steps.
            if t > max_target:
                break
            if t + (remaining - 1) * n < min_target:
                continue
            prefix[pos] = i
            fill(pos + 1, t, neg)

    fill(0, 0, 0)
    assert row == count, (row, count)
    values = np.array([float(lo + i * h) for i in range(n + 1)], np.float64)
    return values[out]


def embed(vectors: np.ndarray, searched: list[str], experts: list[str]) -> np.ndarray:
    """Places `[M, k]` vectors over the `searched` experts into `[M, K]` over all `experts`.

    The experts that are not searched get weight 0.
    """
    missing = [e for e in searched if e not in experts]
    if missing:
        raise ValueError(
            f"search grid: unknown expert(s) {missing}; the experts are {experts}"
        )
    if len(set(searched)) != len(searched):
        raise ValueError(f"search grid: an expert is listed twice in {searched}")
    vectors = np.asarray(vectors, np.float64)
    out = np.zeros((vectors.shape[0], len(experts)), np.float64)
    out[:, [experts.index(e) for e in searched]] = vectors
    return out

"""The `halving` strategy: successive halving over the candidates along the DDIM trajectory.

Round 0 ranks every candidate almost for free. By default ("mixture") it finishes each single
expert the grid uses (K samples), then scores every candidate on the image decoded from its
weighted sum of those experts' final latents: no UNet evaluation per candidate, and with the
shared start noise a good predictor of the finished mixture (on the held-out photos its rank
correlation with the finished NIQE is 0.93-0.98). The alternative ("x0") scores the x0
prediction after the shared first step, which costs at most K UNet evaluations for the whole
grid but says little about the finished image when a model samples in few steps.

Each later round keeps the best-ranked candidates (at most 1/eta of them, and no more than the
remaining budget pays for), continues them from their current latents to the next stage, and
scores the new x0 prediction; the last round finishes the survivors, which are scored on their
final images like any other strategy's candidates. With one round the survivors of round 0 are
finished straight away.

Stages grow geometrically (1, ~steps^(1/R), ~steps^(2/R), ..., steps), so early rounds are
short and many candidates can afford them. The number kept is chosen against the budget with
an upper bound on the cost of the rest of the plan, so the search never overspends.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from unires_jax.search.evaluator import Evaluator

FIRST_ROUNDS = ("mixture", "x0")


def stage_schedule(steps: int, rounds: int) -> list[int]:
    """Stages 1 = s_0 < ... < s_R = steps, geometric in between (duplicates dropped)."""
    if steps < 1 or rounds < 1:
        raise ValueError(
            f"need steps >= 1 and rounds >= 1, got steps={steps}, rounds={rounds}"
        )
    inner = {min(steps, max(1, round(steps ** (r / rounds)))) for r in range(1, rounds)}
    return sorted({1, steps} | inner)


def _plan_cost(nnz_top: np.ndarray, n: int, stages: list[int], eta: float) -> int:
    """Upper bound on the UNet evaluations of keeping n candidates now and 1/eta of them each
    later round: later rounds are charged the largest pair counts among the n kept."""
    desc = np.sort(nnz_top[:n])[::-1]
    cums = np.cumsum(desc)
    cost, m = 0, n
    for a, b in itertools.pairwise(stages):
        cost += int(cums[m - 1]) * (b - a)
        m = max(1, math.ceil(m / eta))
    return cost


def _affordable(
    nnz_ranked: np.ndarray, stages: list[int], left: float, eta: float, cap: int
) -> int:
    """Largest n <= cap whose plan cost fits `left` (0 if not even n = 1 fits)."""
    lo, hi = 0, cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _plan_cost(nnz_ranked, mid, stages, eta) <= left:
            lo = mid
        else:
            hi = mid - 1
    return lo


def halving(
    ev: Evaluator,
    candidates: np.ndarray,
    budget: int | None = None,
    *,
    eta: float = 4.0,
    rounds: int = 3,
    stages: list[int] | None = None,
    first_round: str = "mixture",
) -> None:
    """Successive halving; the best finished candidate is the result.

    Args:
      ev: the image's evaluator.
      candidates: `[N, K]` weight vectors.
      budget: UNet evaluations allowed (None: no limit, keep 1/eta per round).
      eta: at most ceil(n / eta) of n candidates survive a round.
      rounds: rounds after round 0 (the last one finishes the survivors).
      stages: explicit stages (first 1, last `ev.steps`, increasing) instead of the schedule.
      first_round: how round 0 ranks every candidate: "mixture" finishes each expert the
        grid uses (K finished samples), then scores every candidate on the image decoded from
        its weighted sum of their final latents (`Evaluator.score_mixtures`); "x0" scores the
        x0 prediction after the shared first step (the cheapest, and a poor predictor of the
        finished image when there are few steps).

    Raises:
      ValueError: the budget cannot finish even one candidate, or bad stages.
    """
    steps = ev.steps
    stages = stages or stage_schedule(steps, rounds)
    if stages[0] != 1 or stages[-1] != steps or list(stages) != sorted(set(stages)):
        raise ValueError(f"stages must increase from 1 to steps={steps}, got {stages}")
    if eta <= 1:
        raise ValueError(f"eta must be > 1, got {eta}")
    if first_round not in FIRST_ROUNDS:
        raise ValueError(
            f"first_round must be one of {FIRST_ROUNDS}, got {first_round!r}"
        )
    candidates = np.asarray(candidates, np.float64)
    nnz = np.count_nonzero(ev.sampler.full_weights(candidates), axis=1)
    left = ev.allowance(budget)
    used = np.flatnonzero(np.any(candidates != 0, axis=0))  # experts the grid spans
    if first_round == "mixture":
        singles = np.eye(candidates.shape[1])[used]
        first, what = ev.cost(singles), f"finishing the {len(used)} single experts"
    else:
        first, what = ev.cost(candidates, start=0, stop=1), "the shared first step"
    if budget is not None:
        need = first + int(nnz.max()) * (steps - 1)
        if need > budget:
            raise ValueError(
                f"a budget of {budget} UNet evaluations cannot finish one candidate: {what} "
                f"costs {first} and finishing a candidate up to {need - first} more"
            )

    if first_round == "mixture":
        ev.finish_experts(used)
        objectives, latents = ev.mixture_proxy(candidates), None
    else:
        objectives, latents = ev.evaluate(candidates, start=0, stop=stages[0])
    alive = np.arange(len(candidates))
    for r in range(1, len(stages)):
        # Best first; failed (NaN) scores last; ties keep the candidate order.
        ranking = np.lexsort(
            (np.arange(len(alive)), -np.nan_to_num(objectives, nan=-np.inf))
        )
        cap = max(1, math.ceil(len(alive) / eta))
        n = _affordable(nnz[alive[ranking]], stages[r - 1 :], left(), eta, cap)
        n = max(n, 1)  # guaranteed affordable by the check above and the plan bound
        keep = ranking[:n]
        alive = alive[keep]
        if latents is None:
            # After a mixture round: the survivors' latents after the shared first step
            # (mixtures of the cached expert predictions, no UNet evaluation).
            x = ev.sampler.sample(
                ev.target,
                candidates[alive],
                steps=steps,
                seed=ev.seed,
                start=0,
                stop=stages[0],
                decode=None,
            ).latents
        else:
            x = latents[keep]
        objectives, latents = ev.evaluate(
            candidates[alive], x=x, start=stages[r - 1], stop=stages[r]
        )

"""The `remix` strategy: a trust-region climb over the grid, guided by remixed last steps.

The DDIM step is affine in the noise prediction and the weights sum to one, so a candidate
stepped from a given latent ends at the same weighted sum of every expert's step from that
latent. `Evaluator.last_step_basis` takes a finished candidate's last step once per expert;
remixing those E latents predicts every other weight vector's finished image as if its last
step started where this candidate's did. The prediction is exact at the candidate and
first-order close around it, where the mixture proxy of `halving` (the single experts'
separate trajectories, remixed) is not exact anywhere but at the single experts.

1. Finish each single expert the grid uses (as `halving`'s mixture round) and rank the grid by
   the mixture proxy. The centre is the best single expert; with `start="mixture"` the
   mixture proxy's best candidate is finished first and becomes the centre if it is better.
2. Repeat while the budget pays: take the last-step basis of the centre (once per centre),
   predict the unfinished grid vectors within `radius` (L1 distance of the weights) of it, and
   finish the best predicted one, taking its own basis on the way (E minus its nonzero count
   extra evaluations), so that it can become the next centre at no further cost. It becomes
   the centre if it beats the current one. When the radius holds nothing unfinished, the
   mixture proxy's best unfinished candidate is finished instead.

The result is the best finished candidate, as for every strategy.
"""

from __future__ import annotations

import numpy as np

from unires_jax.search.evaluator import Evaluator

START_POINTS = ("mixture", "expert")


def remix(
    ev: Evaluator,
    candidates: np.ndarray,
    budget: int | None = None,
    *,
    radius: float = 0.8,
    max_finishes: int | None = None,
    start: str = "mixture",
) -> None:
    """Climbs the grid from the best single expert with remixed-last-step predictions.

    Args:
      ev: the image's evaluator.
      candidates: `[N, K]` weight vectors (the grid).
      budget: UNet evaluations allowed (None: until `max_finishes` or nothing is left).
      radius: L1 distance (sum of |w - centre|) within which the centre's prediction is used;
        one move of a grid step between two experts is 2 * step.
      max_finishes: stop after finishing this many candidates besides the single experts
        (None: only the budget limits; one of the two must be given).
      start: "mixture": the first candidate finished is the mixture proxy's best (it becomes
        the centre if it beats the best single expert); "expert": the climb starts from the
        best single expert's own prediction.

    Raises:
      ValueError: no limit at all, or a budget that cannot finish the single experts.
    """
    if budget is None and max_finishes is None:
        raise ValueError("remix needs a budget or max_finishes")
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    if start not in START_POINTS:
        raise ValueError(f"start must be one of {START_POINTS}, got {start!r}")
    candidates = np.asarray(candidates, np.float64)
    used = np.flatnonzero(np.any(candidates != 0, axis=0))
    singles = np.eye(candidates.shape[1])[used]
    left = ev.allowance(budget)
    first = ev.cost(singles)
    if budget is not None and first > budget:
        raise ValueError(
            f"a budget of {budget} UNet evaluations cannot finish the {len(used)} single "
            f"experts remix starts from ({first} evaluations)"
        )

    single_objectives = ev.finish_experts(used)
    mixture = np.nan_to_num(ev.mixture_proxy(candidates), nan=-np.inf)
    finished = np.array([ev.seen(v) for v in candidates])
    ranked_singles = np.nan_to_num(single_objectives, nan=-np.inf)  # failed scores last
    center = singles[int(np.argmax(ranked_singles))]
    center_objective = float(np.max(ranked_singles))
    bases: dict[tuple, np.ndarray] = {}
    predictions: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    finishes = 0
    while max_finishes is None or finishes < max_finishes:
        if not (~finished).any():
            break
        if finishes == 0 and start == "mixture":
            pick = _best_open(mixture, finished)
        else:
            key = tuple(np.round(center, 9))
            if key not in bases:
                if ev.last_step_basis_cost(center, used) > left():
                    break
                bases[key] = ev.last_step_basis(center, used)
            if key not in predictions:
                near = np.flatnonzero(
                    np.abs(candidates - center).sum(axis=1) <= radius + 1e-9
                )
                predictions[key] = (
                    near,
                    ev.local_proxy(candidates[near], used, bases[key]),
                )
            near, predicted = predictions[key]
            if (~finished[near]).any():
                pick = near[_best_open(predicted, finished[near])]
            else:
                pick = _best_open(mixture, finished)
        vector = candidates[pick]
        if ev.last_step_basis_cost(vector, used) > left():
            break
        basis = ev.last_step_basis(vector, used)
        objective = ev.finish_from_basis(vector, used, basis)
        bases[tuple(np.round(vector, 9))] = basis
        finished[pick] = True
        finishes += 1
        if objective > center_objective:
            center, center_objective = vector, objective


def _best_open(objectives: np.ndarray, finished: np.ndarray) -> int:
    """Index of the highest objective among the unfinished (NaN counts as lowest)."""
    values = np.where(finished, -np.inf, np.nan_to_num(objectives, nan=-np.inf))
    order = np.lexsort((np.arange(len(values)), -values))
    return int(next(i for i in order if not finished[i]))

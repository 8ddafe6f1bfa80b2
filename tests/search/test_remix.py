"""The `remix` strategy and the evaluator's last-step basis, on the micro model."""

import dataclasses

import numpy as np
import pytest
from search_helpers import SEARCHED, SMALL, STEPS, Sharpness

from unires_jax.search import search
from unires_jax.search.evaluator import Evaluator
from unires_jax.search.interface import candidates
from unires_jax.search.remix import remix


def _used(sampler):
    return np.array([sampler.experts.index(e) for e in SEARCHED])


def _key(weights):
    return tuple(sorted((e, round(w, 6)) for e, w in weights.items() if w))


@pytest.fixture(scope="module")
def exhaustive(sampler, images):
    return search(images[1], "exhaustive", Sharpness(), sampler=sampler, config=SMALL)


def test_last_step_basis_remixes_to_the_candidate_sampled_outright(sampler, images):
    ev = Evaluator(sampler, images[0], Sharpness(), steps=STEPS)
    used = _used(sampler)
    grid = candidates(sampler.experts, SMALL)
    vector = grid[np.argmax(np.count_nonzero(grid, axis=1))]  # a three-expert mixture
    assert np.count_nonzero(vector) == 3
    cost = ev.last_step_basis_cost(vector, used)
    before = sampler.unet_evaluations
    basis = ev.last_step_basis(vector, used)
    assert sampler.unet_evaluations - before == cost
    # 3 experts for the first step (nothing cached yet), 3 pairs for the middle step, then
    # every expert once from the candidate's last latent.
    assert cost == 3 + 3 * (STEPS - 2) + len(used)
    outright = sampler.sample(
        ev.target, vector[None], steps=STEPS, seed=ev.seed, decode=None
    )
    remixed = np.einsum("e,e...->...", vector[used].astype(np.float32), basis)
    np.testing.assert_allclose(remixed, outright.latents[0], atol=1e-5)
    # The local proxy at the candidate is its finished score; scoring it costs no UNet call.
    before = sampler.unet_evaluations
    objective = ev.finish_from_basis(vector, used, basis)
    proxy = ev.local_proxy(grid, used, basis)
    assert sampler.unet_evaluations == before
    (row,) = np.flatnonzero((grid == vector).all(axis=1))
    assert proxy[row] == pytest.approx(objective, rel=1e-6)
    finished, _ = Evaluator(sampler, images[0], Sharpness(), steps=STEPS).evaluate(
        vector[None]
    )
    assert objective == pytest.approx(finished[0], rel=1e-5)
    with pytest.raises(ValueError, match="outside"):
        ev.last_step_basis(vector, used[:2])
    with pytest.raises(ValueError, match="without a basis"):
        ev.local_proxy(grid, used[:2], basis[:2])


@pytest.mark.parametrize("start", ["mixture", "expert"])
def test_remix_finishes_with_exact_scores_inside_its_budget(
    sampler, images, exhaustive, start
):
    full = sampler.cost(candidates(sampler.experts, SMALL), start=0, stop=STEPS)
    budget = 30
    config = dataclasses.replace(SMALL, remix_start=start)
    result = search(
        images[1], "remix", Sharpness(), budget=budget, sampler=sampler, config=config
    )
    assert result.unet_evaluations <= budget < full
    # The single experts and at least one candidate of the climb.
    assert result.candidates_finished > len(SEARCHED)
    truth = {_key(r["weights"]): r["objective"] for r in exhaustive.records}
    finished = [r for r in result.records if r["stage"] == STEPS]
    for r in finished:
        assert r["objective"] == pytest.approx(truth[_key(r["weights"])], rel=1e-5)
    best_single = max(r["objective"] for r in finished if len(_key(r["weights"])) == 1)
    assert result.objective >= best_single


def test_remix_climbs_within_its_radius_and_can_reach_everything(
    sampler, images, exhaustive
):
    ev = Evaluator(sampler, images[1], Sharpness(), steps=STEPS)
    grid = candidates(sampler.experts, SMALL)
    radius = 1.0  # one move of the 0.5 step
    remix(ev, grid, max_finishes=3, radius=radius, start="expert")
    finished = ev.finished()
    singles = [r for r in finished if len(_key(r["weights"])) == 1]
    climb = [r for r in finished if len(_key(r["weights"])) > 1]
    assert len(climb) == 3
    vector = np.array([[climb[0]["weights"].get(e, 0.0) for e in ev.experts]])
    best_single = max(singles, key=lambda r: r["objective"])
    start = np.array([best_single["weights"].get(e, 0.0) for e in ev.experts])
    assert np.abs(vector - start).sum() <= radius + 1e-9
    # Without a budget and enough finishes, every grid vector is finished: the exhaustive best.
    everything = Evaluator(sampler, images[1], Sharpness(), steps=STEPS)
    remix(everything, grid, max_finishes=len(grid))
    assert len(everything.finished()) == len(grid)
    assert _key(everything.result(return_image=False).weights) == _key(
        exhaustive.weights
    )


def test_remix_refuses_bad_settings(sampler, images):
    ev = Evaluator(sampler, images[0], Sharpness(), steps=STEPS)
    grid = candidates(sampler.experts, SMALL)
    with pytest.raises(ValueError, match="budget or max_finishes"):
        remix(ev, grid)
    with pytest.raises(ValueError, match="radius"):
        remix(ev, grid, budget=100, radius=0)
    with pytest.raises(ValueError, match="start"):
        remix(ev, grid, budget=100, start="middle")
    with pytest.raises(ValueError, match="cannot finish the 3 single"):
        remix(ev, grid, budget=2)


def test_the_cli_offers_every_strategy():
    from unires_jax.cli.restore_options import SEARCH_CHOICES
    from unires_jax.search import STRATEGIES

    assert SEARCH_CHOICES == STRATEGIES

"""Exhaustive search: the same argmax as one-by-one restores, device-count independence, the
shared first step, and resuming a killed search from its log."""

import jax
import numpy as np
import pytest
from search_helpers import PAIRS_PER_DEVICE, SMALL, STEPS, Sharpness

from unires_jax.search import search
from unires_jax.search.engine import CandidateSampler
from unires_jax.search.interface import candidates


def _objectives(result):
    return {tuple(sorted(r["weights"].items())): r["objective"] for r in result.records}


def test_exhaustive_search_finds_the_argmax_of_scoring_every_candidate_one_by_one(
    restorer, sampler, images
):
    image = images[1]
    result = search(image, "exhaustive", Sharpness(), sampler=sampler, config=SMALL)
    grid = candidates(restorer.experts, SMALL)
    assert result.candidates_finished == len(grid) == 18

    q = Sharpness()
    one_by_one = np.array([q.score(restorer.restore(image, w)[None])[0] for w in grid])
    best = grid[np.argmax(one_by_one)]
    assert result.weights == {e: w for e, w in zip(restorer.experts, best) if w != 0}
    assert result.score == pytest.approx(one_by_one.max(), rel=1e-5)
    np.testing.assert_allclose(result.image, restorer.restore(image, best), atol=1e-5)
    ours = _objectives(result)
    for w, score in zip(grid, one_by_one):
        key = tuple(
            sorted((e, float(v)) for e, v in zip(restorer.experts, w) if v != 0)
        )
        assert ours[key] == pytest.approx(score, rel=1e-5)


def test_sharding_over_8_devices_gives_identical_scores_to_1_device(
    restorer, sampler, images
):
    assert sampler.devices == 8
    one = CandidateSampler(
        restorer, devices=jax.devices()[:1], pairs_per_device=PAIRS_PER_DEVICE
    )
    r8 = search(images[0], "exhaustive", Sharpness(), sampler=sampler, config=SMALL)
    r1 = search(images[0], "exhaustive", Sharpness(), sampler=one, config=SMALL)
    assert _objectives(r8) == _objectives(r1)  # bitwise: float equality of every score
    np.testing.assert_array_equal(r8.image, r1.image)


def test_first_step_is_computed_once_and_zero_weight_experts_never_run(
    restorer, sampler, images
):
    grid = candidates(restorer.experts, SMALL)
    nonzero_pairs = int(np.count_nonzero(grid))
    target = sampler.prepare(images[2])
    before = sampler.unet_evaluations
    for batch in sampler.run(target, grid, steps=STEPS, decode=None):
        assert batch.latents.shape[0] == len(batch.indices)
    # Three active experts evaluated once at step 0, then one evaluation per nonzero pair.
    assert sampler.unet_evaluations - before == 3 + (STEPS - 1) * nonzero_pairs
    assert sorted(target.first_step[(0, STEPS)]) == sorted(
        restorer.experts.index(e) for e in SMALL.experts
    )
    # A second pass over the same image reuses the cached first step.
    before = sampler.unet_evaluations
    sampler.sample(target, grid[:5], steps=STEPS, decode=None)
    assert sampler.unet_evaluations - before == (STEPS - 1) * int(
        np.count_nonzero(grid[:5])
    )


class _Killed(RuntimeError):
    pass


class _DiesAfter(Sharpness):
    """Q that 'kills the process' once it has scored `n` images."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def score(self, images):
        if self.scored >= self.n:
            raise _Killed
        return super().score(images)


def test_a_killed_search_resumes_without_rescoring_finished_candidates(
    sampler, images, tmp_path
):
    reference = search(
        images[1], "exhaustive", Sharpness(), sampler=sampler, config=SMALL
    )
    dying = _DiesAfter(5)
    with pytest.raises(_Killed):
        search(
            images[1],
            "exhaustive",
            dying,
            sampler=sampler,
            config=SMALL,
            log_dir=tmp_path,
        )
    (log,) = tmp_path.glob("*.jsonl")
    logged = sum('"candidate"' in line for line in log.read_text().splitlines())
    assert 5 <= logged < 18

    q = Sharpness()
    resumed = search(
        images[1], "exhaustive", q, sampler=sampler, config=SMALL, log_dir=tmp_path
    )
    assert q.scored == 18 - logged
    assert resumed.weights == reference.weights and resumed.score == reference.score
    lines = [line for line in log.read_text().splitlines() if '"candidate"' in line]
    assert len(lines) == 18  # nothing scored twice

    # A third run finds everything logged: nothing is scored; only the best image is re-sampled.
    q = Sharpness()
    again = search(
        images[1], "exhaustive", q, sampler=sampler, config=SMALL, log_dir=tmp_path
    )
    assert again.weights == reference.weights
    # Re-sampled alone, in a smaller UNet batch than the one it was first packed into: XLA's
    # CPU kernels may round differently per batch size (measured up to 8e-7), not more.
    np.testing.assert_allclose(again.image, reference.image, rtol=0, atol=1e-5)
    assert q.scored == 0
    assert (
        again.unet_evaluations <= STEPS * 3
    )  # one candidate (first step may be cached)


def test_exhaustive_refuses_a_budget_below_its_cost(sampler, images):
    with pytest.raises(ValueError, match="more than the budget"):
        search(
            images[0],
            "exhaustive",
            Sharpness(),
            budget=10,
            sampler=sampler,
            config=SMALL,
        )


def test_the_sharded_programs_use_no_cross_device_collective(sampler, images):
    # XLA's CPU collectives abort when one of many fake devices sharing few cores arrives late
    # (seen with 8 devices on 2 cores); on accelerators they would only cost time. The search
    # needs none: every device works on its own candidates.
    image = sampler.prepare(images[0])
    weights = candidates(sampler.experts, SMALL)[:5]
    programs = sampler._programs
    names = ("advance", "decode", "mix_first")
    real = {name: getattr(programs, name) for name in names}
    calls = {}

    def spy(name):
        def call(*args, **kwargs):
            calls[name] = (args, kwargs)
            return real[name](*args, **kwargs)

        return call

    for name in names:
        object.__setattr__(programs, name, spy(name))
    try:
        list(sampler.run(image, weights, steps=STEPS, decode="latents"))
    finally:
        for name in names:
            object.__setattr__(programs, name, real[name])
    assert set(calls) == set(names)
    for name, (args, kwargs) in calls.items():
        text = real[name].lower(*args, **kwargs).compile().as_text()
        for op in ("all-gather", "all-reduce", "all-to-all", "collective-permute"):
            assert op not in text, f"{name} compiles to a {op}"


def test_upscaling_search_scores_the_projected_restorations(restorer):
    # With RestoreSettings.upscale the engine's decoded candidates are projected onto the
    # small input exactly as Restorer.restore's outputs are, so the search ranks (and returns)
    # what the user gets.
    up = restorer.with_settings(upscale=2)
    sampler = CandidateSampler(up, pairs_per_device=PAIRS_PER_DEVICE)
    yy, xx = np.mgrid[0:16, 0:16] / 15.0
    small = np.stack([0.3 + 0.4 * xx, 0.3 + 0.4 * yy, 0.5 + 0.1 * np.sin(5 * xx)], axis=-1)
    result = search(small, "exhaustive", Sharpness(), sampler=sampler, config=SMALL)
    grid = candidates(up.experts, SMALL)
    q = Sharpness()
    restored = [up.restore(small, w) for w in grid]
    assert restored[0].shape == (32, 32, 3)
    one_by_one = np.array([q.score(x[None])[0] for x in restored])
    np.testing.assert_allclose(
        sorted(_objectives(result).values()), sorted(one_by_one), rtol=1e-5
    )
    best = grid[np.argmax(one_by_one)]
    np.testing.assert_allclose(result.image, up.restore(small, best), atol=1e-5)
    # ... and those differ from the unprojected ones.
    raw = restorer.with_settings(upscale=2, consistency=False).restore(small, best)
    assert np.abs(raw - result.image).max() > 1e-3

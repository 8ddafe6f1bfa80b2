"""Composition under the GIR rule: rain / snow / haze may only come first."""

import pickle

import numpy as np
import pytest

from unires_jax.data import degradations as deg


def _image() -> np.ndarray:
    return np.random.default_rng(0).uniform(size=(48, 48, 3)).astype(np.float32)


def test_rain_after_blur_is_rejected_naming_rain():
    with pytest.raises(ValueError, match="'rain'"):
        deg.compose(["blur", "rain"])
    with pytest.raises(ValueError, match="'haze'"):
        deg.compose(
            [
                deg.OPERATORS["noise"],
                deg.OPERATORS["compression"],
                deg.OPERATORS["haze"],
            ]
        )


def test_weather_first_is_accepted_and_applied_in_order():
    chain = deg.compose(["rain", "blur", "noise"])
    assert chain.names == ("rain", "blur", "noise")
    rng = np.random.default_rng(0)
    params = chain.sample(rng)
    out = chain.apply(_image(), params, np.random.default_rng(1))
    manual_rng = np.random.default_rng(1)
    manual = _image()
    for op, p in zip(chain.operators, params):
        manual = op.apply(manual, p, manual_rng)
    np.testing.assert_array_equal(out, manual)
    assert deg.compose(["haze", "rain", "blur"]).names == ("haze", "rain", "blur")


def test_unknown_names_and_empty_chains_fail_clearly():
    with pytest.raises(KeyError, match="known operators"):
        deg.compose(["fog"])
    with pytest.raises(ValueError, match="at least one"):
        deg.compose([])
    chain = deg.compose(["blur", "noise"])
    with pytest.raises(ValueError, match="parameter sets"):
        chain.apply(_image(), chain.sample(np.random.default_rng(0))[:1], None)


@pytest.mark.parametrize("order_k", [1, 2, 3, 4, 5])
def test_sampled_mixtures_are_valid_and_keep_shape(order_k):
    seen_weather_first = False
    for seed in range(40):
        chain = deg.sample_mixture(np.random.default_rng(seed), order_k)
        assert len(chain.operators) == order_k
        assert all(not op.capture_time for op in chain.operators[1:])
        assert set(chain.names) <= set(deg.GIR_OPERATORS)
        seen_weather_first |= chain.operators[0].capture_time
    assert seen_weather_first
    rng = np.random.default_rng(5)
    chain = deg.sample_mixture(rng, order_k)
    out = chain(_image(), rng)
    assert out.shape == (48, 48, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_mixture_is_deterministic_for_a_seed_and_varies_across_seeds():
    def run(seed):
        rng = np.random.default_rng(seed)
        return deg.sample_mixture(rng, 3)(_image(), rng)

    np.testing.assert_array_equal(run(11), run(11))
    assert not np.array_equal(run(11), run(12))
    names = {deg.sample_mixture(np.random.default_rng(s), 3).names for s in range(30)}
    assert len(names) > 20


def test_compositions_pickle_for_worker_processes():
    chain = deg.compose(["snow", "ringing", "compression"])
    restored = pickle.loads(pickle.dumps(chain))
    params = chain.sample(np.random.default_rng(0))
    np.testing.assert_array_equal(
        restored.apply(_image(), params, np.random.default_rng(1)),
        chain.apply(_image(), params, np.random.default_rng(1)),
    )

"""The training objective's timestep draw."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unires_jax.diffusion import objectives, schedules

T = 1000


def test_no_skew_is_the_uniform_integer_draw():
    key = jax.random.key(3)
    np.testing.assert_array_equal(
        objectives.sample_timesteps(key, 64, T, 0.0),
        jax.random.randint(key, (64,), 0, T, jnp.int32),
    )


@pytest.mark.parametrize("skew", [0.0, 1.0, 2.0])
def test_skewed_draw_follows_its_density(skew):
    t = np.asarray(objectives.sample_timesteps(jax.random.key(0), 200_000, T, skew))
    assert t.dtype == np.int32 and t.min() >= 0 and t.max() <= T - 1
    # Mass of each quarter of [0, T) under a density proportional to t ** skew.
    edges = np.linspace(0.0, 1.0, 5)
    expected = np.diff(edges ** (skew + 1.0))
    observed = np.histogram(t, bins=4, range=(0, T))[0] / t.size
    np.testing.assert_allclose(observed, expected, atol=0.005)


def test_the_loss_draws_its_timesteps_with_the_configured_skew():
    s = schedules.make_schedule(prediction_type="sample")
    hq = jnp.zeros((512, 2, 2, 4))
    kwargs = {
        "context": jnp.zeros((512, 3, 8)),
        "rng": jax.random.key(1),
        "empty_context": jnp.zeros((3, 8)),
    }

    def mean_t(skew):
        _, aux = objectives.unires_loss(
            lambda x, t, c: x[..., :4],
            s,
            hq,
            hq,
            **kwargs,
            settings=objectives.ObjectiveSettings(timestep_skew=skew),
        )
        return float(jnp.mean(aux["timesteps"]))

    assert abs(mean_t(0.0) - T / 2) < 40
    assert abs(mean_t(1.0) - 2 * T / 3) < 40


def test_negative_skew_is_refused():
    with pytest.raises(ValueError, match="timestep_skew"):
        objectives.ObjectiveSettings(timestep_skew=-1.0)

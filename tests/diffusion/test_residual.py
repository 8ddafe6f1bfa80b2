"""Residual diffusion (FoundIR): schedule values, forward process, loss and the 4-step sampler."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unires_jax.diffusion import residual


@pytest.fixture(scope="module")
def sched():
    return residual.residual_schedule()


def _formula_tables(num_steps=1000, delta_end=1.4e-3):
    """alpha_bar, beta_bar, sigma straight from the paper's formulas, in float64."""
    c = np.cumprod(1 - np.linspace(1e-4, 0.02, num_steps))
    beta_bar = np.cumsum(np.linspace(1e-6, delta_end, num_steps))
    return 1 - np.sqrt(c), beta_bar, np.sqrt(1 - c)


def test_schedule_end_values_match_foundir(sched):
    assert sched.alpha_bar.shape == sched.beta_bar.shape == sched.sigma.shape == (1000,)
    assert sched.alpha_bar.dtype == np.float32
    assert round(float(sched.alpha_bar[-1]), 6) == 0.993647
    assert round(float(sched.beta_bar[-1]), 4) == 0.7005
    # The sampler's start weight on the LQ, as the official float32 code computes it.
    assert np.float32(1) - sched.beta_bar[-1] == np.float32(0.29950005)
    a, b, s = _formula_tables()
    np.testing.assert_allclose(sched.alpha_bar, a, atol=1e-6)
    np.testing.assert_allclose(sched.beta_bar, b, atol=1e-6)
    # float32 rounding of 1 - c_t, then the square root, as the official float32 buffers.
    np.testing.assert_allclose(sched.sigma, s, atol=5e-6)


def test_four_steps_visit_the_official_timesteps_and_time_inputs(sched):
    t = residual.sampling_timesteps(4)
    assert t.tolist() == [999, 749, 499, 249]
    times = np.asarray(residual.time_input(sched, t))
    assert [round(float(v), 4) for v in times] == [
        993.6472,
        942.1161,
        719.6659,
        276.0626,
    ]


@pytest.mark.parametrize(
    "steps, expected",
    [(1, [999]), (2, [999, 499]), (3, [999, 665, 332]), (5, [999, 799, 599, 399, 199])],
)
def test_other_step_counts_follow_the_official_linspace(steps, expected):
    assert residual.sampling_timesteps(steps).tolist() == expected


def test_step_count_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="steps=0"):
        residual.sampling_timesteps(0)
    with pytest.raises(ValueError, match="steps=1001"):
        residual.sampling_timesteps(1001)


def test_forward_process_is_the_rddm_formula(sched):
    rng = np.random.default_rng(0)
    hq, lq, eps = (
        rng.uniform(-1, 1, (4, 5, 6, 3)).astype(np.float32) for _ in range(3)
    )
    t = np.array([0, 249, 700, 999], np.int32)
    got = np.asarray(residual.add_noise(sched, hq, lq, eps, t))
    a, b, s = (x[t][:, None, None, None] for x in _formula_tables())
    want = (1 - a) * hq + (a - b) * lq + s * eps
    np.testing.assert_allclose(got, want, atol=2e-6)
    # At t = T: 0.006353 HQ + 0.293147 LQ + 0.999980 eps (spec, read in the official code).
    one = np.ones((1, 1, 1, 1), np.float32)
    zero = np.zeros_like(one)
    weights = [
        float(residual.add_noise(sched, *args, np.int32(999))[0, 0, 0, 0])
        for args in ((one, zero, zero), (zero, one, zero), (zero, zero, one))
    ]
    np.testing.assert_allclose(weights, [0.006353, 0.293147, 0.999980], atol=1e-6)


def test_forward_process_rejects_mismatched_shapes(sched):
    x = jnp.zeros((1, 4, 4, 3))
    with pytest.raises(ValueError, match="one shape"):
        residual.add_noise(
            sched, x, x, jnp.zeros((1, 4, 4, 1)), jnp.zeros((1,), jnp.int32)
        )


def test_l1_residual_objective():
    rng = np.random.default_rng(1)
    hq, lq = (rng.uniform(-1, 1, (2, 4, 4, 3)).astype(np.float32) for _ in range(2))
    assert float(residual.residual_loss(lq - hq, hq, lq)) == 0.0
    np.testing.assert_allclose(
        float(residual.residual_loss(lq - hq + 0.25, hq, lq)), 0.25, rtol=1e-6
    )
    np.testing.assert_array_equal(residual.residual_target(hq, lq), lq - hq)


@pytest.mark.parametrize("steps", [4, 7])
def test_true_residual_makes_the_sampler_return_the_hq_image(sched, steps):
    rng = np.random.default_rng(2)
    hq = rng.uniform(-0.9, 0.9, (2, 8, 10, 3)).astype(np.float32)
    lq = np.clip(hq + rng.uniform(-0.5, 0.5, hq.shape), -1, 1).astype(np.float32)
    noise = rng.standard_normal(hq.shape).astype(np.float32)

    def oracle(x_in, time):
        assert x_in.shape == hq.shape[:3] + (6,) and time.shape == (2,)
        return jnp.asarray(lq - hq)

    run = jax.jit(
        lambda lq, n: residual.sample(oracle, lq, sched, noise=n, steps=steps)
    )
    np.testing.assert_allclose(np.asarray(run(lq, noise)), hq, atol=1e-6)


def test_sampler_clips_the_residual_and_the_result(sched):
    lq = np.full((1, 2, 2, 3), 0.9, np.float32)
    hq = np.full_like(lq, -0.8)  # residual 1.7: clipped to 1, the result to LQ - 1
    out = residual.sample(
        lambda x, t: jnp.asarray(lq - hq), lq, sched, noise=np.zeros_like(lq)
    )
    np.testing.assert_allclose(np.asarray(out), lq - 1.0, atol=1e-6)


def _official_loop(predict, lq, noise, steps):
    """The official ddim_sample (eta = 0, pred_res) written out in numpy float32."""
    a, b, _ = _formula_tables()
    a, b = a.astype(np.float32), b.astype(np.float32)
    times = [int(v) for v in np.linspace(-1, 999, steps + 1)][::-1]
    x = (1 - b[-1]) * lq + 0.1 * noise
    for t, t_next in itertools.pairwise(times):
        res = np.clip(
            predict(np.concatenate([x, lq], -1), np.full((1,), a[t] * 1000)), -1, 1
        )
        x0 = np.clip(lq - res, -1, 1)
        if t_next < 0:
            return x0
        x = x - (a[t] - a[t_next]) * res + (b[t] - b[t_next]) * lq


@pytest.mark.parametrize("steps", [4, 3])
def test_sampler_follows_the_official_update(sched, steps):
    """A predictor that depends on x_t (first channels) and the time checks the whole chain."""
    rng = np.random.default_rng(3)
    lq = rng.uniform(-1, 1, (1, 6, 5, 3)).astype(np.float32)
    noise = rng.standard_normal(lq.shape).astype(np.float32)

    def predict(x_in, time):
        x_t, cond = x_in[..., :3], x_in[..., 3:]
        return 0.7 * x_t - 0.4 * cond + (time / 1000.0)[:, None, None, None] - 0.5

    want = _official_loop(lambda x, t: np.asarray(predict(x, t)), lq, noise, steps)
    got = residual.sample(predict, lq, sched, noise=noise, steps=steps)
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-5)


def test_start_is_lq_weighted_plus_scaled_noise(sched):
    lq = np.ones((1, 2, 2, 3), np.float32)
    noise = np.full_like(lq, 2.0)
    start = residual.initial_sample(sched, lq, noise)
    np.testing.assert_allclose(np.asarray(start), 0.29950005 + 0.2, rtol=1e-6)

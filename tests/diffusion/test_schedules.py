"""Noise schedules and forward-process math against diffusers' DDPMScheduler (test-only oracle)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from unires_jax.diffusion import (
    add_noise,
    make_schedule,
    predict_x0_and_eps,
    schedule_from_diffusers_config,
    training_target,
    velocity,
)

SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


def _diffusers(beta_schedule, **kw):
    return DDPMScheduler(
        beta_schedule=beta_schedule, beta_start=0.00085, beta_end=0.012, **kw
    )


@pytest.mark.parametrize("beta_schedule", SCHEDULES)
@pytest.mark.parametrize("zero_snr", [False, True])
def test_tables_match_diffusers(beta_schedule, zero_snr):
    ref = _diffusers(beta_schedule, rescale_betas_zero_snr=zero_snr)
    s = make_schedule(beta_schedule=beta_schedule, rescale_betas_zero_snr=zero_snr)
    ab = ref.alphas_cumprod.numpy()
    assert s.betas.dtype == jnp.float32 and s.betas.shape == (1000,)
    # Ours is computed in float64 then rounded; diffusers accumulates in float32, hence ~1e-7.
    # diffusers' zero-SNR rescale recovers betas as 1 - ab_t / ab_{t-1} in float32, losing
    # ~4 digits to cancellation; ours does it in float64, hence the looser bound there.
    atol = 1e-5 if zero_snr else 1e-8
    np.testing.assert_allclose(s.betas, ref.betas.numpy(), rtol=2e-6, atol=atol)
    np.testing.assert_allclose(
        s.alphas, ref.alphas.numpy(), rtol=2e-6, atol=max(atol, 1e-7)
    )
    np.testing.assert_allclose(s.alphas_cumprod, ab, rtol=0, atol=1e-6)
    np.testing.assert_allclose(s.sqrt_alphas_cumprod, np.sqrt(ab), rtol=0, atol=1e-6)
    # sqrt(1 - ab) near t=0 is ill-conditioned (ab ~ 1 in float32), so compare its square.
    np.testing.assert_allclose(
        s.sqrt_one_minus_alphas_cumprod**2, 1 - ab, rtol=0, atol=1e-6
    )
    if zero_snr:
        assert float(s.alphas_cumprod[-1]) == pytest.approx(0.0, abs=1e-12)


def test_schedule_is_a_pytree_with_static_metadata():
    s = make_schedule(prediction_type="v_prediction")
    leaves, treedef = jax.tree_util.tree_flatten(s)
    assert len(leaves) == 5
    s2 = jax.tree_util.tree_unflatten(treedef, leaves)
    assert s2.prediction_type == "v_prediction" and s2.num_train_timesteps == 1000

    @jax.jit
    def f(s, x0, eps, t):
        assert s.prediction_type == "v_prediction"  # static under jit
        return training_target(s, x0, eps, t)

    x0 = jnp.ones((2, 3, 3, 1))
    np.testing.assert_allclose(
        f(s, x0, x0, jnp.array([1, 2])), velocity(s, x0, x0, jnp.array([1, 2]))
    )


@pytest.mark.parametrize("beta_schedule", SCHEDULES)
def test_add_noise_and_velocity_match_diffusers(beta_schedule):
    ref = _diffusers(beta_schedule)
    s = make_schedule(beta_schedule=beta_schedule)
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((4, 5, 6, 3)).astype(np.float32)
    eps = rng.standard_normal((4, 5, 6, 3)).astype(np.float32)
    t = np.array([0, 17, 500, 999], dtype=np.int32)
    to_nchw = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2)
    from_nchw = lambda a: a.permute(0, 2, 3, 1).numpy()
    tt = torch.from_numpy(t.astype(np.int64))
    # At t=0 diffusers takes sqrt(1 - ab) of a float32 ab ~ 0.99996, good to only ~3e-6 (ours
    # keeps sqrt(1 - ab) from float64), so the bound is 1e-5 rather than float32 epsilon.
    want = from_nchw(ref.add_noise(to_nchw(x0), to_nchw(eps), tt))
    np.testing.assert_allclose(add_noise(s, x0, eps, t), want, atol=1e-5)
    want_v = from_nchw(ref.get_velocity(to_nchw(x0), to_nchw(eps), tt))
    np.testing.assert_allclose(velocity(s, x0, eps, t), want_v, atol=1e-5)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_predict_x0_and_eps_inverts_the_training_target(prediction_type):
    s = make_schedule(prediction_type=prediction_type)
    k0, k1 = jax.random.split(jax.random.key(0))
    x0 = jax.random.normal(k0, (3, 4, 4, 2))
    eps = jax.random.normal(k1, (3, 4, 4, 2))
    t = jnp.array([1, 400, 950], jnp.int32)
    x_t = add_noise(s, x0, eps, t)
    target = training_target(s, x0, eps, t)
    x0_hat, eps_hat = predict_x0_and_eps(s, target, x_t, t)
    # x0 from eps divides by sqrt(ab_950) ~ 0.08, amplifying float32 rounding.
    np.testing.assert_allclose(x0_hat, x0, atol=1e-4)
    np.testing.assert_allclose(
        eps_hat, eps, atol=1e-4 if prediction_type == "sample" else 1e-5
    )


def test_scalar_timestep_broadcasts():
    s = make_schedule()
    x0 = jnp.ones((2, 3, 3, 4))
    eps = jnp.zeros_like(x0)
    np.testing.assert_allclose(
        add_noise(s, x0, eps, 10), add_noise(s, x0, eps, jnp.array([10, 10]))
    )


def test_from_diffusers_config_reads_sd_configs():
    sd15 = {  # runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json
        "_class_name": "PNDMScheduler",
        "_diffusers_version": "0.6.0",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "num_train_timesteps": 1000,
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "trained_betas": None,
        "clip_sample": False,
    }
    s = schedule_from_diffusers_config(sd15)
    ref = make_schedule()
    np.testing.assert_array_equal(s.alphas_cumprod, ref.alphas_cumprod)
    assert s.prediction_type == "epsilon"
    sd21 = dict(sd15, _class_name="DDIMScheduler", prediction_type="v_prediction")
    assert schedule_from_diffusers_config(sd21).prediction_type == "v_prediction"
    betas = np.linspace(1e-4, 2e-2, 10)
    s = schedule_from_diffusers_config(
        {"num_train_timesteps": 10, "trained_betas": betas.tolist()}
    )
    np.testing.assert_allclose(s.betas, betas, rtol=1e-6)


@pytest.mark.parametrize(
    "bad, named",
    [
        ({"beta_schedule": "sigmoid"}, "sigmoid"),
        ({"prediction_type": "flow"}, "flow"),
        ({"use_karras_sigmas": True}, "use_karras_sigmas"),
        ({"shift": 3.0}, "shift"),
        ({"trained_betas": [0.1, 0.2]}, "trained_betas"),
    ],
)
def test_from_diffusers_config_rejects_unsupported_math(bad, named):
    with pytest.raises(ValueError, match=named):
        schedule_from_diffusers_config(bad)

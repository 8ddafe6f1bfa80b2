"""DDIM timesteps, steps and whole trajectories against diffusers' DDIMScheduler (test-only oracle)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from unires_jax.diffusion import (
    DDIMSettings,
    ddim_sample,
    ddim_settings_from_diffusers_config,
    ddim_step,
    ddim_timesteps,
    make_schedule,
    step_noise,
)

SHAPE = (2, 4, 5, 3)  # [B, H, W, C]


def _eps_fn(x, t, a=0.9, b=0.1):
    """A deterministic stand-in for a UNet: model output = a x + b sin(t / 100).

    With a=0.9 the output is close to the true noise at large t, so samples stay O(1) as with
    a real model; with a=0.1, b=1 (far from any real model) x0 predictions reach ~30.
    """
    return a * x + b * jnp.sin(t.astype(jnp.float32) / 100.0)[:, None, None, None]


def _eps_fn_torch(x, t, a=0.9, b=0.1):
    return a * x + b * torch.sin(torch.tensor(float(t)) / 100.0)


def _diffusers_ddim(
    prediction_type,
    set_alpha_to_one,
    spacing="leading",
    steps_offset=1,
    clip_sample=False,
    **kw,
):
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=clip_sample,
        prediction_type=prediction_type,
        set_alpha_to_one=set_alpha_to_one,
        steps_offset=steps_offset,
        timestep_spacing=spacing,
        **kw,
    )


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [1, 7, 20, 50, 999])
@pytest.mark.parametrize("steps_offset", [0, 1])
def test_timesteps_match_set_timesteps(spacing, steps, steps_offset):
    ref = _diffusers_ddim("epsilon", False, spacing, steps_offset)
    ref.set_timesteps(steps)
    ours = ddim_timesteps(1000, steps, spacing, steps_offset)
    np.testing.assert_array_equal(ours, ref.timesteps.numpy())


def test_timesteps_reject_bad_arguments():
    with pytest.raises(ValueError, match="num_inference_steps"):
        ddim_timesteps(1000, 1001)
    with pytest.raises(ValueError, match="spacing"):
        ddim_timesteps(1000, 10, "karras")


def _run_diffusers(ref, steps, x, eta, noises, a=0.9, b=0.1):
    ref.set_timesteps(steps)
    xt = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2)
    x0s = []
    for i, t in enumerate(ref.timesteps):
        vn = None if eta == 0 else torch.from_numpy(noises[i]).permute(0, 3, 1, 2)
        out = ref.step(_eps_fn_torch(xt, t, a, b), t, xt, eta=eta, variance_noise=vn)
        xt = out.prev_sample
        x0s.append(out.pred_original_sample.permute(0, 2, 3, 1).numpy())
    return xt.permute(0, 2, 3, 1).numpy(), np.stack(x0s)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("set_alpha_to_one", [False, True])
@pytest.mark.parametrize("eta", [0.0, 0.7])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("a, b", [(0.9, 0.1), (0.1, 1.0)])
def test_trajectory_matches_diffusers(
    prediction_type, set_alpha_to_one, eta, spacing, a, b
):
    steps = 12
    s = make_schedule(prediction_type=prediction_type)
    ts = ddim_timesteps(1000, steps, spacing, steps_offset=1)
    x_T = jax.random.normal(jax.random.key(1), SHAPE)
    rng = jax.random.key(2)
    noises = [np.array(step_noise(rng, i, SHAPE)) for i in range(steps)]

    @jax.jit
    def run(x_T, rng):
        return ddim_sample(
            lambda x, t: _eps_fn(x, t, a, b),
            x_T,
            s,
            ts,
            set_alpha_to_one=set_alpha_to_one,
            eta=eta,
            rng=rng,
            return_x0_predictions=True,
        )

    x, x0s = run(x_T, rng)
    ref = _diffusers_ddim(prediction_type, set_alpha_to_one, spacing, steps_offset=1)
    want, want_x0s = _run_diffusers(ref, steps, x_T, eta, noises, a, b)
    assert x.shape == SHAPE and x0s.shape == (steps, *SHAPE)
    # Both sides round in float32 (and diffusers' float32 cumprod differs from ours by ~1e-6
    # relative), so the bound is 1e-5 on unit-scale samples and relative beyond that.
    scale = max(1.0, float(np.abs(want).max()))
    assert np.abs(np.asarray(x) - want).max() <= 1e-5 * scale
    np.testing.assert_allclose(x0s, want_x0s, atol=1e-5 * scale, rtol=1e-5)


def test_single_step_matches_with_clip_sample():
    s = make_schedule()
    ref = _diffusers_ddim("epsilon", False, clip_sample=True, clip_sample_range=0.5)
    ref.set_timesteps(10)
    x = np.asarray(jax.random.normal(jax.random.key(3), SHAPE)) * 3
    t, t_prev = 501, 401
    out = _eps_fn(jnp.asarray(x), jnp.full((SHAPE[0],), t))
    ours, x0 = ddim_step(
        s,
        out,
        t,
        t_prev,
        jnp.asarray(x),
        final_alpha_cumprod=s.alphas_cumprod[0],
        clip_sample_range=0.5,
        return_x0=True,
    )
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    want = ref.step(_eps_fn_torch(xt, t), t, xt)
    np.testing.assert_allclose(
        ours, want.prev_sample.permute(0, 2, 3, 1).numpy(), atol=1e-5
    )
    assert float(jnp.abs(x0).max()) <= 0.5


def test_split_run_equals_full_run():
    s = make_schedule(prediction_type="v_prediction")
    ts = ddim_timesteps(1000, 10, "leading", 1)
    x_T = jax.random.normal(jax.random.key(4), SHAPE)
    rng = jax.random.key(5)
    kw = {"eta": 0.5, "rng": rng}
    full, full_x0 = ddim_sample(_eps_fn, x_T, s, ts, return_x0_predictions=True, **kw)
    mid, x0_a = ddim_sample(
        _eps_fn, x_T, s, ts, stop=3, return_x0_predictions=True, **kw
    )
    mid = ddim_sample(_eps_fn, mid, s, ts, start=3, stop=7, **kw)
    end, x0_c = ddim_sample(
        _eps_fn, mid, s, ts, start=7, return_x0_predictions=True, **kw
    )
    np.testing.assert_allclose(end, full, atol=1e-6)
    np.testing.assert_allclose(x0_a, full_x0[:3], atol=1e-6)
    np.testing.assert_allclose(x0_c, full_x0[7:], atol=1e-6)
    same = ddim_sample(_eps_fn, x_T, s, ts, start=4, stop=4, **kw)
    np.testing.assert_array_equal(same, x_T)


def test_sampler_traces_model_once_and_keeps_dtype():
    calls = []

    def model(x, t):
        calls.append(t.shape)
        return _eps_fn(x, t)

    s = make_schedule()
    x_T = jax.random.normal(jax.random.key(6), SHAPE, jnp.bfloat16)
    x = jax.jit(lambda x: ddim_sample(model, x, s, ddim_timesteps(1000, 25)))(x_T)
    assert calls == [(SHAPE[0],)]  # one trace of the scan body, t passed as [B]
    assert x.dtype == jnp.bfloat16 and x.shape == SHAPE


def test_sampler_validates_arguments():
    s = make_schedule()
    ts = ddim_timesteps(1000, 5)
    x = jnp.zeros(SHAPE)
    with pytest.raises(ValueError, match="rng"):
        ddim_sample(_eps_fn, x, s, ts, eta=1.0)
    with pytest.raises(ValueError, match="start"):
        ddim_sample(_eps_fn, x, s, ts, start=4, stop=2)
    with pytest.raises(ValueError, match="noise"):
        ddim_step(s, x, 10, 0, x, final_alpha_cumprod=1.0, eta=0.3)


def test_settings_from_diffusers_config():
    sd21 = {
        "_class_name": "DDIMScheduler",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": False,
        "num_train_timesteps": 1000,
        "prediction_type": "v_prediction",
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "trained_betas": None,
    }
    assert ddim_settings_from_diffusers_config(sd21) == DDIMSettings(
        timestep_spacing="leading",
        steps_offset=1,
        set_alpha_to_one=False,
        clip_sample_range=None,
    )
    assert ddim_settings_from_diffusers_config({}).clip_sample_range == 1.0
    with pytest.raises(ValueError, match="thresholding"):
        ddim_settings_from_diffusers_config({"thresholding": True})
    with pytest.raises(ValueError, match="timestep_spacing"):
        ddim_settings_from_diffusers_config({"timestep_spacing": "karras"})

"""DDIM sampling (Song et al. 2021) as pure functions, matching diffusers' DDIMScheduler.

`ddim_timesteps` reproduces `DDIMScheduler.set_timesteps`, `ddim_step` reproduces
`DDIMScheduler.step`, and `ddim_sample` runs the whole loop (or a slice of it) as one
`jax.lax.scan`, so a jitted sampler makes no host round trip per step.

Timestep convention: as in diffusers, the "previous" timestep of step i is
`timesteps[i] - num_train_timesteps // num_inference_steps`, which for "trailing" and
"linspace" spacings can differ from `timesteps[i + 1]` by a few; `ddim_prev_timesteps`
computes it, and a negative value means "use final_alpha_cumprod".

Shapes: samples `x` are `[B, H, W, C]`; per-step timesteps are int32 scalars or `[B]`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from unires_jax.diffusion.schedules import (
    Schedule,
    at_timesteps,
    check_diffusers_config_keys,
    predict_x0_and_eps,
)

TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")


@dataclasses.dataclass(frozen=True)
class DDIMSettings:
    """Sampler options of a diffusers DDIMScheduler config (defaults: Stable Diffusion's).

    Attributes:
        timestep_spacing: "leading", "trailing" or "linspace" (see `ddim_timesteps`).
        steps_offset: added to "leading" timesteps (SD 1.x/2.x use 1).
        set_alpha_to_one: alpha-bar after the last step is 1 (True) or alpha-bar_0 (False;
            SD's choice).
        clip_sample_range: clip predicted x0 to [-r, r]; None disables clipping (SD's choice:
            latents are not bounded).
    """

    timestep_spacing: str = "leading"
    steps_offset: int = 1
    set_alpha_to_one: bool = False
    clip_sample_range: float | None = None


def ddim_settings_from_diffusers_config(config: Mapping[str, Any]) -> DDIMSettings:
    """Reads the DDIM sampler options from a diffusers `scheduler_config.json` dict.

    Missing keys take diffusers' DDIMScheduler defaults (leading spacing, steps_offset 0,
    set_alpha_to_one True, clip_sample True with range 1.0), as diffusers would.

    Raises:
        ValueError: `thresholding=True` (dynamic thresholding is for pixel-space models and
            is not implemented), an unknown spacing, or any other unsupported key.
    """
    check_diffusers_config_keys(config)
    if config.get("thresholding", False):
        raise ValueError(
            "unires_jax/diffusion/ddim.py: scheduler config sets thresholding=True; dynamic "
            "thresholding is not implemented (it is meant for pixel-space models). Set it "
            "to false in scheduler_config.json."
        )
    spacing = str(config.get("timestep_spacing", "leading"))
    if spacing not in TIMESTEP_SPACINGS:
        raise ValueError(
            f"unires_jax/diffusion/ddim.py: timestep_spacing {spacing!r} is not supported; "
            f"use one of {TIMESTEP_SPACINGS}."
        )
    clip = bool(config.get("clip_sample", True))
    return DDIMSettings(
        timestep_spacing=spacing,
        steps_offset=int(config.get("steps_offset", 0)),
        set_alpha_to_one=bool(config.get("set_alpha_to_one", True)),
        clip_sample_range=float(config.get("clip_sample_range", 1.0)) if clip else None,
    )


def ddim_timesteps(
    num_train_timesteps: int,
    num_inference_steps: int,
    spacing: str = "leading",
    steps_offset: int = 0,
) -> np.ndarray:
    """The descending timesteps of a DDIM run, exactly as `DDIMScheduler.set_timesteps`.

    Args:
        num_train_timesteps: T of the schedule.
        num_inference_steps: number of sampler steps n (1 <= n <= T).
        spacing: "leading" (arange(n) * (T // n) + steps_offset), "trailing"
            (round(arange(T, 0, -T/n)) - 1) or "linspace" (round(linspace(0, T-1, n))).
        steps_offset: added to "leading" timesteps only (diffusers ignores it for the others).

    Returns:
        `[n]` int64 timesteps, largest first.

    Raises:
        ValueError: n out of range or unknown spacing.
    """
    T, n = int(num_train_timesteps), int(num_inference_steps)
    if not 1 <= n <= T:
        raise ValueError(
            f"unires_jax/diffusion/ddim.py: num_inference_steps={n} must be in [1, {T}] "
            "(num_train_timesteps)."
        )
    if spacing == "linspace":
        return np.linspace(0, T - 1, n).round()[::-1].copy().astype(np.int64)
    if spacing == "leading":
        ts = (np.arange(0, n) * (T // n)).round()[::-1].copy().astype(np.int64)
        return ts + int(steps_offset)
    if spacing == "trailing":
        return np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1
    raise ValueError(
        f"unires_jax/diffusion/ddim.py: timestep spacing {spacing!r} is not supported; use "
        f"one of {TIMESTEP_SPACINGS}."
    )


def ddim_prev_timesteps(timesteps: np.ndarray, num_train_timesteps: int) -> np.ndarray:
    """diffusers' previous timestep of each step: t - T // n (negative = past the end).

    Args:
        timesteps: the full `[n]` timesteps of the run (from `ddim_timesteps`).
        num_train_timesteps: T of the schedule.

    Returns:
        `[n]` int64.
    """
    timesteps = np.asarray(timesteps, dtype=np.int64)
    return timesteps - int(num_train_timesteps) // len(timesteps)


def final_alpha_cumprod(s: Schedule, set_alpha_to_one: bool) -> jax.Array:
    """alpha-bar used when the previous timestep is negative: 1.0 or alpha-bar_0."""
    return jnp.float32(1.0) if set_alpha_to_one else s.alphas_cumprod[0]


def ddim_step(
    s: Schedule,
    model_output: jax.Array,
    t: jax.Array,
    t_prev: jax.Array,
    x_t: jax.Array,
    *,
    final_alpha_cumprod: jax.Array | float,
    eta: jax.Array | float = 0.0,
    noise: jax.Array | None = None,
    clip_sample_range: float | None = None,
    return_x0: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """One DDIM update x_t -> x_{t_prev}, as `DDIMScheduler.step`.

    Args:
        s: the schedule (its prediction_type says how to read `model_output`).
        model_output: model output at (x_t, t), `[B, H, W, C]`.
        t: current timestep, int32 scalar or `[B]`.
        t_prev: previous timestep, same shape as `t`; a negative value uses
            `final_alpha_cumprod` (see `final_alpha_cumprod(s, set_alpha_to_one)`).
        x_t: current sample `[B, H, W, C]`.
        final_alpha_cumprod: alpha-bar past the last step (scalar).
        eta: 0 = deterministic DDIM, 1 = DDPM-like ancestral noise. May be traced.
        noise: standard normal `[B, H, W, C]`, required when eta != 0.
        clip_sample_range: clip predicted x0 to [-r, r] (diffusers' clip_sample); None = off.
        return_x0: also return the (clipped) x0 prediction.

    Returns:
        x_prev `[B, H, W, C]` (dtype of `x_t`), and the x0 prediction if `return_x0`.

    Raises:
        ValueError: a nonzero Python `eta` without `noise`.
    """
    if noise is None and not (isinstance(eta, (int, float)) and eta == 0):
        raise ValueError(
            "unires_jax/diffusion/ddim.py: ddim_step with eta != 0 needs `noise` (standard "
            "normal, shaped like x_t); pass noise or eta=0.0."
        )
    t = jnp.asarray(t, jnp.int32)
    t_prev = jnp.asarray(t_prev, jnp.int32)
    xf = x_t.astype(jnp.promote_types(x_t.dtype, jnp.float32))
    x0, eps = predict_x0_and_eps(s, model_output.astype(xf.dtype), xf, t)
    if clip_sample_range is not None:
        x0 = jnp.clip(x0, -clip_sample_range, clip_sample_range)
        # diffusers (use_clipped_model_output=False) keeps the unclipped eps; so do we.
    ab_t = at_timesteps(s.alphas_cumprod, t, xf)
    ab_prev = jnp.where(
        t_prev >= 0,
        s.alphas_cumprod[jnp.maximum(t_prev, 0)],
        jnp.float32(final_alpha_cumprod),
    )
    ab_prev = ab_prev.reshape(ab_prev.shape + (1,) * (xf.ndim - ab_prev.ndim))
    variance = (1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)
    std = eta * jnp.sqrt(variance)
    # Clamped at 0: with eta > 1 the direction term would be the sqrt of a negative number.
    direction = jnp.sqrt(jnp.maximum(1 - ab_prev - std**2, 0.0)) * eps
    x_prev = jnp.sqrt(ab_prev) * x0 + direction
    if noise is not None:
        x_prev = x_prev + std * noise
    x_prev = x_prev.astype(x_t.dtype)
    return (x_prev, x0) if return_x0 else x_prev


def step_noise(
    rng: jax.Array, step_index: jax.Array, shape, dtype=jnp.float32
) -> jax.Array:
    """The ancestral noise `ddim_sample` adds at global step `step_index` (for eta > 0).

    Keyed by the step's index in the full run, so a run split with start/stop draws the same
    noise as an unsplit run.
    """
    return jax.random.normal(jax.random.fold_in(rng, step_index), shape, dtype)


def mixed_ddim_step(
    s: Schedule,
    eps: jax.Array,
    i: jax.Array,
    x_t: jax.Array,
    timesteps: jax.Array,
    prev_timesteps: jax.Array,
    *,
    final_alpha_cumprod: jax.Array | float,
    eta: float = 0.0,
    rng: jax.Array | None = None,
    pair_n: jax.Array | None = None,
    pair_w: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Step i of a K-expert UniRes DDIM run: x_t -> x_prev with the weighted mix of predictions.

    The one mixed step of the restorer's sampler and of the weight search's sharded programs,
    so both compute the same update.

    Args:
      s: the noise schedule.
      eps: the predictions, `[P, h, w, c]` for P (vector, expert) pairs given by `pair_n` /
        `pair_w`, or `[N, h, w, c]` already mixed (pair_n None).
      i: the step's index in the full run (traced or static).
      x_t: latents `[N, h, w, c]`.
      timesteps, prev_timesteps: the full run's `[n]` DDIM timesteps and their predecessors.
      final_alpha_cumprod: alpha-bar past the last step.
      eta: DDIM eta; the ancestral noise of step i is `step_noise(rng, i)` for one latent,
        shared by every vector (so N vectors in a batch give what N separate runs give).
      rng: PRNG key, needed when eta != 0.
      pair_n: `[P]` int32, the vector of each pair (sorted); pair_w: `[P]` its weight.

    Returns:
      (x_prev, x0 prediction), both `[N, h, w, c]` float32.
    """
    if pair_n is not None:
        eps = jax.ops.segment_sum(
            eps.astype(jnp.float32) * pair_w[:, None, None, None],
            pair_n,
            num_segments=x_t.shape[0],
            indices_are_sorted=True,
        )
    noise = None
    if eta != 0:
        if rng is None:
            raise ValueError("eta > 0 needs an rng key")
        noise = jnp.broadcast_to(step_noise(rng, i, x_t.shape[1:]), x_t.shape)
    x_prev, x0 = ddim_step(
        s,
        eps.astype(jnp.float32),
        timesteps[i],
        prev_timesteps[i],
        x_t,
        final_alpha_cumprod=final_alpha_cumprod,
        eta=eta,
        noise=noise,
        return_x0=True,
    )
    return x_prev, x0.astype(jnp.float32)


def ddim_sample(
    model_fn: Callable[[jax.Array, jax.Array], jax.Array],
    x: jax.Array,
    s: Schedule,
    timesteps: np.ndarray | jax.Array,
    *,
    set_alpha_to_one: bool = False,
    eta: jax.Array | float = 0.0,
    rng: jax.Array | None = None,
    prev_timesteps: np.ndarray | jax.Array | None = None,
    clip_sample_range: float | None = None,
    start: int = 0,
    stop: int | None = None,
    return_x0_predictions: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Runs DDIM steps `start .. stop-1` of a run as one `lax.scan`.

    Call it inside `jax.jit` (with `model_fn` closed over); `start`, `stop`,
    `set_alpha_to_one`, `clip_sample_range` and `return_x0_predictions` are static, while
    `eta`, `rng` and the timestep values may be traced. Splitting a run, e.g.
    `x = ddim_sample(..., stop=k)` then `ddim_sample(f, x, ..., start=k)`, gives the same
    result as one call (the eta > 0 noise is keyed by the global step index).

    Args:
        model_fn: `(x_t [B, H, W, C], t [B] int32) -> model output [B, H, W, C]` (eps, v or
            x0 according to `s.prediction_type`).
        x: the sample entering step `start`: x_T (standard normal noise) when start=0.
        s: the schedule.
        timesteps: the FULL `[n]` descending timesteps of the run (`ddim_timesteps`), even
            when running only a slice.
        set_alpha_to_one: alpha-bar after the final step is 1 (True) or alpha-bar_0 (False).
        eta: DDIM eta; > 0 needs `rng`.
        rng: PRNG key for the eta > 0 noise (see `step_noise`).
        prev_timesteps: `[n]` previous timesteps; default diffusers' `t - T // n`
            (`ddim_prev_timesteps`). Pass `timesteps[1:] + [-1]` for the textbook chain.
        clip_sample_range: clip x0 predictions to [-r, r]; None = off.
        start: first step index to run (0-based).
        stop: one past the last step index to run; default n.
        return_x0_predictions: also return the x0 prediction of every step run.

    Returns:
        The sample after step `stop - 1`, `[B, H, W, C]`; with `return_x0_predictions`
        also the x0 predictions `[stop - start, B, H, W, C]` (float32).

    Raises:
        ValueError: bad start/stop, mismatched prev_timesteps, or eta > 0 without rng.
    """
    n = len(timesteps)
    stop = n if stop is None else stop
    if not 0 <= start <= stop <= n:
        raise ValueError(
            f"unires_jax/diffusion/ddim.py: need 0 <= start <= stop <= {n} (the number of "
            f"timesteps), got start={start}, stop={stop}."
        )
    eta_is_zero = isinstance(eta, (int, float)) and eta == 0
    if not eta_is_zero and rng is None:
        raise ValueError(
            "unires_jax/diffusion/ddim.py: ddim_sample with eta != 0 needs rng (a PRNG key)."
        )
    if prev_timesteps is None:
        prev_timesteps = ddim_prev_timesteps(
            np.asarray(timesteps), s.num_train_timesteps
        )
    if len(prev_timesteps) != n:
        raise ValueError(
            f"unires_jax/diffusion/ddim.py: prev_timesteps has {len(prev_timesteps)} entries "
            f"but timesteps has {n}."
        )
    final_ab = final_alpha_cumprod(s, set_alpha_to_one)
    batch = x.shape[0]
    xs = (
        jnp.arange(start, stop, dtype=jnp.int32),
        jnp.asarray(timesteps, jnp.int32)[start:stop],
        jnp.asarray(prev_timesteps, jnp.int32)[start:stop],
    )

    def body(x_t, step):
        i, t, t_prev = step
        out = model_fn(x_t, jnp.full((batch,), t, jnp.int32))
        noise = None if eta_is_zero else step_noise(rng, i, x_t.shape, jnp.float32)
        x_prev, x0 = ddim_step(
            s,
            out,
            t,
            t_prev,
            x_t,
            final_alpha_cumprod=final_ab,
            eta=eta,
            noise=noise,
            clip_sample_range=clip_sample_range,
            return_x0=True,
        )
        return x_prev, (x0.astype(jnp.float32) if return_x0_predictions else None)

    x, x0s = jax.lax.scan(body, x, xs)
    return (x, x0s) if return_x0_predictions else x

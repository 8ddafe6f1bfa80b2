"""DDPM noise schedules (as in Stable Diffusion) and the pure forward-process math.

A `Schedule` holds the per-timestep tables of a discrete DDPM with `num_train_timesteps`
steps; every function here is pure and jit-friendly. The tables are computed in float64 and
cast to float32, as the original LDM code does (CompVis `make_beta_schedule` + numpy cumprod);
they agree with diffusers' float32 tables to about 1e-7.

Shapes: images/latents `x` are `[B, H, W, C]` (any trailing dims work); timesteps `t` are
`[B]` int32 or a scalar, broadcast over the trailing dims of `x`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Per-timestep tables of a discrete DDPM, all `[num_train_timesteps]` float32.

    A pytree: the arrays are leaves, `num_train_timesteps` and `prediction_type` are static,
    so a `Schedule` can be passed straight into `jax.jit`-ed functions.

    Attributes:
        betas: beta_t.
        alphas: 1 - beta_t.
        alphas_cumprod: alpha-bar_t = prod_{s<=t} alpha_s.
        sqrt_alphas_cumprod: sqrt(alpha-bar_t).
        sqrt_one_minus_alphas_cumprod: sqrt(1 - alpha-bar_t).
        num_train_timesteps: number of training timesteps T (timesteps are 0 .. T-1).
        prediction_type: what the model predicts: "epsilon", "v_prediction" or "sample".
    """

    betas: jax.Array
    alphas: jax.Array
    alphas_cumprod: jax.Array
    sqrt_alphas_cumprod: jax.Array
    sqrt_one_minus_alphas_cumprod: jax.Array
    num_train_timesteps: int
    prediction_type: str


jax.tree_util.register_dataclass(
    Schedule,
    data_fields=[
        "betas",
        "alphas",
        "alphas_cumprod",
        "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod",
    ],
    meta_fields=["num_train_timesteps", "prediction_type"],
)


def _betas_for_alpha_bar(
    num_train_timesteps: int, max_beta: float = 0.999
) -> np.ndarray:
    """Cosine ("squaredcos_cap_v2") betas of Nichol & Dhariwal, as diffusers computes them."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return np.array(
        [
            min(
                1
                - alpha_bar((i + 1) / num_train_timesteps)
                / alpha_bar(i / num_train_timesteps),
                max_beta,
            )
            for i in range(num_train_timesteps)
        ],
        dtype=np.float64,
    )


def _rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Rescales betas so that alpha-bar_{T-1} = 0 (Lin et al. 2023, Algorithm 1)."""
    alphas_bar_sqrt = np.sqrt(np.cumprod(1.0 - betas))
    first, last = alphas_bar_sqrt[0], alphas_bar_sqrt[-1]
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * first / (first - last)
    alphas_bar = alphas_bar_sqrt**2
    alphas = np.concatenate([alphas_bar[:1], alphas_bar[1:] / alphas_bar[:-1]])
    return 1.0 - alphas


def make_schedule(
    num_train_timesteps: int = 1000,
    beta_start: float = 0.00085,
    beta_end: float = 0.012,
    beta_schedule: str = "scaled_linear",
    prediction_type: str = "epsilon",
    *,
    trained_betas: Sequence[float] | np.ndarray | None = None,
    rescale_betas_zero_snr: bool = False,
) -> Schedule:
    """Builds a DDPM schedule the way diffusers' DDPMScheduler/DDIMScheduler do.

    The defaults are Stable Diffusion's (scaled-linear betas from 0.00085 to 0.012, 1000 steps).

    Args:
        num_train_timesteps: number of training timesteps T.
        beta_start: first beta (ignored by "squaredcos_cap_v2").
        beta_end: last beta (ignored by "squaredcos_cap_v2").
        beta_schedule: "linear" (betas evenly spaced), "scaled_linear" (square roots of the
            betas evenly spaced, SD's choice) or "squaredcos_cap_v2" (cosine alpha-bar, betas
            capped at 0.999).
        prediction_type: "epsilon", "v_prediction" or "sample".
        trained_betas: explicit betas `[num_train_timesteps]`; overrides `beta_schedule`.
        rescale_betas_zero_snr: rescale so the last timestep has zero signal (terminal SNR 0).
            Note alpha-bar_{T-1} is then exactly 0, so an epsilon-prediction model cannot
            recover x0 at t = T-1; use it with v-prediction as the paper does.

    Returns:
        The `Schedule`.

    Raises:
        ValueError: unknown `beta_schedule` or `prediction_type`, or `trained_betas` of the
            wrong length.
    """
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(
            f"unires_jax/diffusion/schedules.py: prediction_type {prediction_type!r} is not "
            f"supported; use one of {PREDICTION_TYPES}."
        )
    if trained_betas is not None:
        betas = np.asarray(trained_betas, dtype=np.float64)
        if betas.shape != (num_train_timesteps,):
            raise ValueError(
                f"unires_jax/diffusion/schedules.py: trained_betas has shape {betas.shape}, "
                f"expected ({num_train_timesteps},) to match num_train_timesteps."
            )
    elif beta_schedule == "linear":
        betas = np.linspace(beta_start, beta_end, num_train_timesteps, dtype=np.float64)
    elif beta_schedule == "scaled_linear":
        betas = (
            np.linspace(
                beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=np.float64
            )
            ** 2
        )
    elif beta_schedule == "squaredcos_cap_v2":
        betas = _betas_for_alpha_bar(num_train_timesteps)
    else:
        raise ValueError(
            f"unires_jax/diffusion/schedules.py: beta_schedule {beta_schedule!r} is not "
            f"supported; use one of {BETA_SCHEDULES} or pass trained_betas."
        )
    if rescale_betas_zero_snr:
        betas = _rescale_zero_terminal_snr(betas)
    alphas = 1.0 - betas
    alphas_cumprod = np.cumprod(alphas)
    f32 = lambda a: jnp.asarray(a, dtype=jnp.float32)
    return Schedule(
        betas=f32(betas),
        alphas=f32(alphas),
        alphas_cumprod=f32(alphas_cumprod),
        sqrt_alphas_cumprod=f32(np.sqrt(alphas_cumprod)),
        sqrt_one_minus_alphas_cumprod=f32(np.sqrt(1.0 - alphas_cumprod)),
        num_train_timesteps=int(num_train_timesteps),
        prediction_type=prediction_type,
    )


# Keys of a diffusers scheduler_config.json that define the noise schedule (read here).
_SCHEDULE_KEYS = (
    "num_train_timesteps",
    "beta_start",
    "beta_end",
    "beta_schedule",
    "prediction_type",
    "trained_betas",
    "rescale_betas_zero_snr",
)
# Keys that configure the DDIM sampler (read by ddim.ddim_settings_from_diffusers_config).
DDIM_CONFIG_KEYS = (
    "set_alpha_to_one",
    "steps_offset",
    "timestep_spacing",
    "clip_sample",
    "clip_sample_range",
    "thresholding",
    "dynamic_thresholding_ratio",
    "sample_max_value",
)
# Sampler options of other diffusers schedulers (SD checkpoints ship PNDM, Euler, DPM-Solver
# configs). They do not change the training noise schedule, and we always sample with DDIM,
# so they are accepted, but only at values whose meaning does not conflict with DDIM.
_OTHER_SAMPLER_KEYS: dict[str, tuple[Any, ...] | None] = {
    "skip_prk_steps": None,  # PNDM: which multistep warm-up PNDM uses
    "variance_type": None,  # DDPM ancestral sampling variance; unused by DDIM
    "interpolation_type": ("linear",),
    "use_karras_sigmas": (False, None),
    "use_exponential_sigmas": (False, None),
    "use_beta_sigmas": (False, None),
    "timestep_type": ("discrete",),
    "sigma_min": (None,),
    "sigma_max": (None,),
    "final_sigmas_type": None,
    "solver_order": None,
    "solver_type": None,
    "algorithm_type": None,
    "lower_order_final": None,
    "euler_at_final": None,
    "lambda_min_clipped": None,
    "variance_normalizing": None,
}


def check_diffusers_config_keys(config: Mapping[str, Any]) -> None:
    """Raises ValueError for scheduler-config keys this library would silently ignore.

    Keys starting with "_" (e.g. "_class_name") are metadata and always accepted.
    """
    known = set(_SCHEDULE_KEYS) | set(DDIM_CONFIG_KEYS)
    bad = []
    for key, value in config.items():
        if key.startswith("_") or key in known:
            continue
        if key not in _OTHER_SAMPLER_KEYS:
            bad.append(f"{key}={value!r} (unknown key)")
        elif (
            _OTHER_SAMPLER_KEYS[key] is not None
            and value not in _OTHER_SAMPLER_KEYS[key]
        ):
            bad.append(f"{key}={value!r} (allowed: {_OTHER_SAMPLER_KEYS[key]})")
    if bad:
        raise ValueError(
            "unires_jax/diffusion/schedules.py: the scheduler config has settings that would "
            f"change the diffusion math but are not implemented: {', '.join(bad)}. Remove them "
            "from scheduler_config.json if the checkpoint does not depend on them."
        )


def schedule_from_diffusers_config(config: Mapping[str, Any]) -> Schedule:
    """Builds the `Schedule` described by a diffusers `scheduler_config.json` dict.

    Missing keys take diffusers' DDIMScheduler defaults (note: those are NOT Stable
    Diffusion's: beta_start=0.0001, beta_end=0.02, beta_schedule="linear"), as diffusers
    would when loading the same file.

    Args:
        config: the parsed JSON dict (e.g. from `<checkpoint>/scheduler/scheduler_config.json`).

    Returns:
        The `Schedule`. Sampler settings (steps_offset, set_alpha_to_one, timestep spacing)
        are read by `unires_jax.diffusion.ddim.ddim_settings_from_diffusers_config`.

    Raises:
        ValueError: a key or value that would change the math and is not implemented.
    """
    check_diffusers_config_keys(config)
    return make_schedule(
        num_train_timesteps=int(config.get("num_train_timesteps", 1000)),
        beta_start=float(config.get("beta_start", 0.0001)),
        beta_end=float(config.get("beta_end", 0.02)),
        beta_schedule=str(config.get("beta_schedule", "linear")),
        prediction_type=str(config.get("prediction_type", "epsilon")),
        trained_betas=config.get("trained_betas"),
        rescale_betas_zero_snr=bool(config.get("rescale_betas_zero_snr", False)),
    )


def at_timesteps(table: jax.Array, t: jax.Array, x: jax.Array) -> jax.Array:
    """Gathers `table[t]` shaped to broadcast against `x`.

    Args:
        table: a `[T]` schedule table (e.g. `s.alphas_cumprod`).
        t: timesteps `[B]` int32 or a scalar.
        x: the array to broadcast against, `[B, H, W, C]`.

    Returns:
        `[B, 1, 1, 1]` (or a scalar for a scalar `t`).
    """
    t = jnp.asarray(t)
    values = table[t]
    return values.reshape(values.shape + (1,) * (x.ndim - values.ndim))


def add_noise(s: Schedule, x0: jax.Array, eps: jax.Array, t: jax.Array) -> jax.Array:
    """Samples q(x_t | x_0) = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps.

    Args:
        s: the schedule.
        x0: clean samples `[B, H, W, C]`.
        eps: standard normal noise, same shape as `x0`.
        t: timesteps `[B]` int32 (or a scalar).

    Returns:
        x_t `[B, H, W, C]`, dtype of `x0`.
    """
    sqrt_ab = at_timesteps(s.sqrt_alphas_cumprod, t, x0)
    sqrt_1mab = at_timesteps(s.sqrt_one_minus_alphas_cumprod, t, x0)
    out = sqrt_ab * x0 + sqrt_1mab * eps
    return out.astype(x0.dtype)


def velocity(s: Schedule, x0: jax.Array, eps: jax.Array, t: jax.Array) -> jax.Array:
    """The v-prediction target v = sqrt(ab_t) eps - sqrt(1 - ab_t) x0 (Salimans & Ho 2022).

    Args:
        s: the schedule.
        x0: clean samples `[B, H, W, C]`.
        eps: the noise used to make x_t, same shape.
        t: timesteps `[B]` int32 (or a scalar).

    Returns:
        v `[B, H, W, C]`, dtype of `x0`.
    """
    sqrt_ab = at_timesteps(s.sqrt_alphas_cumprod, t, x0)
    sqrt_1mab = at_timesteps(s.sqrt_one_minus_alphas_cumprod, t, x0)
    out = sqrt_ab * eps - sqrt_1mab * x0
    return out.astype(x0.dtype)


def training_target(
    s: Schedule, x0: jax.Array, eps: jax.Array, t: jax.Array
) -> jax.Array:
    """What the model should output for `s.prediction_type`: eps, v or x0.

    Args:
        s: the schedule.
        x0: clean samples `[B, H, W, C]`.
        eps: the noise used to make x_t, same shape.
        t: timesteps `[B]` int32 (or a scalar).

    Returns:
        The regression target `[B, H, W, C]`.
    """
    if s.prediction_type == "epsilon":
        return eps
    if s.prediction_type == "v_prediction":
        return velocity(s, x0, eps, t)
    return x0


def predict_x0_and_eps(
    s: Schedule, model_output: jax.Array, x_t: jax.Array, t: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Converts a model output into predictions of x0 and eps, per `s.prediction_type`.

    The formulas are diffusers' DDIMScheduler.step (step 3). With a "sample" model and
    alpha-bar_t = 1 the eps prediction is undefined (division by zero), as in diffusers.

    Args:
        s: the schedule.
        model_output: the model's output `[B, H, W, C]` (eps, v or x0).
        x_t: the noisy input the model saw, same shape.
        t: timesteps `[B]` int32 (or a scalar).

    Returns:
        (x0_pred, eps_pred), each `[B, H, W, C]` float32 (at least).
    """
    sqrt_ab = at_timesteps(s.sqrt_alphas_cumprod, t, x_t)
    sqrt_1mab = at_timesteps(s.sqrt_one_minus_alphas_cumprod, t, x_t)
    if s.prediction_type == "epsilon":
        x0 = (x_t - sqrt_1mab * model_output) / sqrt_ab
        eps = model_output
    elif s.prediction_type == "v_prediction":
        x0 = sqrt_ab * x_t - sqrt_1mab * model_output
        eps = sqrt_ab * model_output + sqrt_1mab * x_t
    else:
        x0 = model_output
        eps = (x_t - sqrt_ab * model_output) / sqrt_1mab
    return x0, jnp.asarray(eps, dtype=x0.dtype)

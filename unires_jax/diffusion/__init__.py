"""Pure diffusion math: DDPM noise schedules, forward noising and the DDIM sampler."""

from unires_jax.diffusion.ddim import (
    DDIMSettings,
    ddim_prev_timesteps,
    ddim_sample,
    ddim_settings_from_diffusers_config,
    ddim_step,
    ddim_timesteps,
    final_alpha_cumprod,
    step_noise,
)
from unires_jax.diffusion.schedules import (
    Schedule,
    add_noise,
    at_timesteps,
    make_schedule,
    predict_x0_and_eps,
    schedule_from_diffusers_config,
    training_target,
    velocity,
)

__all__ = [
    "DDIMSettings",
    "Schedule",
    "add_noise",
    "at_timesteps",
    "ddim_prev_timesteps",
    "ddim_sample",
    "ddim_settings_from_diffusers_config",
    "ddim_step",
    "ddim_timesteps",
    "final_alpha_cumprod",
    "make_schedule",
    "predict_x0_and_eps",
    "schedule_from_diffusers_config",
    "step_noise",
    "training_target",
    "velocity",
]

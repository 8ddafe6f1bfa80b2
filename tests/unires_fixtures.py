"""Test helper: a randomly initialised tiny UniRes model (UNet with 4 LQ channels)."""

from __future__ import annotations

import pathlib

from clip_vocab import write_clip_tokenizer
from flax import nnx

from unires_jax.convert.clip import read_tokenizer
from unires_jax.models import configs, text
from unires_jax.models.ldm import LatentDiffusion, LDMConfig, init_ldm_modules

SD_SCHEDULER = {
    "_class_name": "DDIMScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
}


def tiny_unires_config(**unet_overrides) -> LDMConfig:
    return LDMConfig(
        unet=configs.tiny_unet(in_channels=8, **unet_overrides),
        vae=configs.tiny_vae(),
        text=text.tiny_text(),
        lq_channels=4,
    )


def tiny_unires_ldm(folder: pathlib.Path, *, seed: int = 0, **unet_overrides) -> LatentDiffusion:
    tokenizer_dir = pathlib.Path(folder) / "tokenizer"
    if not tokenizer_dir.exists():
        write_clip_tokenizer(tokenizer_dir)
    cfg = tiny_unires_config(**unet_overrides)
    return LatentDiffusion(
        **init_ldm_modules(cfg, nnx.Rngs(seed)),
        tokenizer=read_tokenizer(tokenizer_dir),
        scheduler_config=dict(SD_SCHEDULER),
        lq_channels=cfg.lq_channels,
        tokenizer_dir=tokenizer_dir,
        source="random init",
    )

"""Stable Diffusion 2.1-sized latent diffusion model (UNet 865,910,724 parameters at 4 input
channels: linear projections, per-level head counts, upcast attention; OpenCLIP-H text).
"""

import ml_collections

from unires_jax.convert.config_io import config_fields
from unires_jax.models import configs, text


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(
        dict(
            unet=config_fields(configs.sd21_unet()),
            vae=config_fields(configs.sd_vae()),
            text=config_fields(text.sd21_text()),
            lq_channels=0,
        )
    )
    return c

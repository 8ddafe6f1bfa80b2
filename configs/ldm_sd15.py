"""Stable Diffusion 1.5-sized latent diffusion model (UNet 859,520,964 parameters at 4 input
channels; UniRes adds 4 LQ-latent channels). Build: `unires_jax.models.ldm.build_ldm(c.model)`.
Weights normally come from a diffusers folder: `unires convert diffusers SRC DST --lq-channels 4`.
"""

import ml_collections

from unires_jax.convert.config_io import config_fields
from unires_jax.models import configs, text


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(
        dict(
            unet=config_fields(configs.sd15_unet()),
            vae=config_fields(configs.sd_vae()),
            text=config_fields(text.sd15_text()),
            lq_channels=0,
        )
    )
    return c

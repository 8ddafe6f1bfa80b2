"""A few-million-parameter latent diffusion model with the SD layout, for tests and the embedded
default UniRes model (trained from scratch on CPU)."""

import ml_collections

from unires_jax.convert.config_io import config_fields
from unires_jax.models import configs, text


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(
        dict(
            unet=config_fields(configs.tiny_unet()),
            vae=config_fields(configs.tiny_vae()),
            text=config_fields(text.tiny_text()),
            lq_channels=0,
        )
    )
    return c

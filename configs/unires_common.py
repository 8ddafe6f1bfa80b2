"""UniRes pieces shared by the configs/unires_*.py experiments."""

import ml_collections

from configs import common
from unires_jax.data.pipeline import default_config as data_default_config

# Stable Diffusion's DDIM scheduler settings (scheduler/scheduler_config.json of SD 1.5 / 2.1).
SD_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="epsilon",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    timestep_spacing="leading",
)


def unires_base(model: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Trainer defaults + the UniRes task + the paper's data mixture around an LDM `model`."""
    c = common.base_config()
    c.model = model
    c.task = ml_collections.ConfigDict(
        dict(
            family="unires",
            pretrained="",  # diffusers SD folder or unires-jax checkpoint; "" = random init
            tokenizer_dir="",  # "" = the pretrained folder's tokenizer/ (or the bundled CLIP one)
            scheduler=SD_SCHEDULER,
            objective=dict(
                lq_dropout=0.1, text_dropout=0.1, positive_words=0.0, negative_words=0.0,
                timestep_skew=0.0,
            ),
            restore=dict(steps=50, downlq_factor=4),  # inference defaults stored at export
        )
    )
    c.data = data_default_config()
    c.ema.decay = 0.9999
    return c

"""A CPU-trainable UniRes: the tiny LDM trained on the package's sample photos, the four tasks
synthesised by the degradation library.

Run: unires train --config=configs/unires_tiny.py --workdir=/tmp/unires_tiny
Expected: a few seconds per step on 2 CPU cores.
"""

import ml_collections

from configs import unires_common
from unires_jax.convert.config_io import config_fields
from unires_jax.data.pipeline import sample_photos_config
from unires_jax.models import configs, text


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    model = ml_collections.ConfigDict(
        dict(
            unet=config_fields(configs.tiny_unet(in_channels=8)),
            vae=config_fields(configs.tiny_vae()),
            text=config_fields(text.tiny_text()),
            lq_channels=4,
        )
    )
    c = unires_common.unires_base(model)
    c.data = sample_photos_config()
    c.data.update(crop_size=64, batch_size=8, num_workers=0)
    c.train.update(steps=300, batch_size=8)
    c.optim.update(lr=2e-4, schedule="cosine", warmup_steps=20)
    c.ema.decay = 0.99
    c.checkpoint.every = 100
    c.log.update(every=25)
    c.task.restore = dict(steps=20, downlq_factor=4)
    if arg == "test":  # a few steps, for the test suite
        c.train.update(steps=4, batch_size=8)
        c.checkpoint.every = 1000
        c.log.update(every=1, progress_bar=False)
        c.train.compiler_options = {"xla_backend_optimization_level": 0}
    return c

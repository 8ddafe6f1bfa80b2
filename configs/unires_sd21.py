"""UniRes fine-tune of Stable Diffusion 2.1 with the paper's settings.

Paper: global batch 256, lr 8e-5, 200K steps, 512 px crops, task mixture SR 0.32 / motion 0.28 /
defocus 0.18 / denoise 0.22, 32 TPU-v5 chips. Weights: `task.pretrained` = a diffusers SD 2.1
folder (the UNet gets 4 zero-initialised LQ channels). Data: build the TFDS sets first
(`unires data build df2k|lsdir|gopro|oid_motion|dpdd|sidd --manual_dir ...`).

Run: ./run_tpu.sh --tpu-type v5litepod-32 train --config=configs/unires_sd21.py \
       --config.task.pretrained=/path/to/stable-diffusion-2-1
Expected: ~2.3 s/step at batch 256 on v5e-32 (about 5 days for 200K steps).
"""

import ml_collections

from configs import unires_common
from unires_jax.convert.config_io import config_fields
from unires_jax.models import configs, text


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    model = ml_collections.ConfigDict(
        dict(
            unet=config_fields(configs.sd21_unet(in_channels=8, remat=True)),
            vae=config_fields(configs.sd_vae()),
            text=config_fields(text.sd21_text()),
            lq_channels=4,
        )
    )
    c = unires_common.unires_base(model)
    c.train.update(steps=200_000, batch_size=256)
    c.optim.update(lr=8e-5, schedule="constant", warmup_steps=1000, weight_decay=0.01)
    c.precision.compute_dtype = "bfloat16"
    c.mesh.update(data=-1, fsdp=4)
    c.checkpoint.every = 2000
    c.log.update(every=100, sample_every=5000)
    c.data.update(
        crop_size=512,
        batch_size=256,
        sources={
            "sr": "df2k:train,lsdir:train",
            "motion": "gopro:train,oid_motion:train",
            "defocus": "dpdd:train",
            "denoise": "sidd:train",
        },
    )
    if arg == "local":  # a smoke run of the same pipeline on one host
        c.train.update(steps=10, batch_size=8)
        c.data.update(crop_size=256, num_workers=2)
    return c

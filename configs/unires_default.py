"""The embedded default UniRes model that ships inside the package (`unires restore` without
--checkpoint, `unires demo`).

A small UNet over a fixed space-to-depth codec (4x4 pixel blocks -> 48 channels; no VAE to
train), trained from scratch by `unires train` on the sample photos' training split with the four
UniRes tasks synthesised by the degradation library. The UNet predicts x0 ("sample"
parameterisation: for a model this small it learns far faster than epsilon; the expert mixing is
unchanged, since with one x_t the eps and x0 predictions are affine in each other with weights
summing to 1).

Run: scripts/train_default_model.sh   (20000 steps, about 55 minutes on an idle 2-core CPU)
"""

import ml_collections

from configs import unires_common
from unires_jax.convert.config_io import config_fields
from unires_jax.data.pipeline import sample_photos_config
from unires_jax.models import configs, pixel_codec, text

FACTOR = 4


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    codec = pixel_codec.SpaceToDepthConfig(factor=FACTOR)
    latent = codec.latent_channels
    unet = configs.tiny_unet(
        in_channels=2 * latent,
        out_channels=latent,
        block_out_channels=(48, 96, 96),
        # Attention only at the middle level: full-resolution self-attention would not
        # generalise from 64 px training crops to whole photos.
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        num_attention_heads=4,
        norm_num_groups=16,
        # Cache-sized attention blocks: several times faster than XLA's unfused attention on CPU.
        # One block per 32x32 sequence (a 256 px tile's attention level) ran the whole UNet 9%
        # faster than blocks of 256 query rows on a 2-core Xeon (BENCHMARKS.md, #9).
        attention="chunked",
        attention_chunk=1024,
    )
    model = ml_collections.ConfigDict(
        dict(
            unet=config_fields(unet),
            vae=config_fields(codec),
            vae_kind="space_to_depth",
            text=config_fields(text.tiny_text()),
            lq_channels=latent,
        )
    )
    c = unires_common.unires_base(model)
    # Trailing spacing: with few inference steps the first one must start at t = T-1 (pure
    # noise); "leading" starts much later and wrecks x0-prediction. set_alpha_to_one: the last
    # step lands on the clean image; SD's alpha_cumprod[0] would leave noise of std 0.029 in
    # the latent, invisible through SD's VAE but here 3.7/255 per pixel (-0.5 dB on every
    # task). Inference-only settings.
    c.task.scheduler = dict(
        c.task.scheduler,
        prediction_type="sample",
        timestep_spacing="trailing",
        steps_offset=0,
        set_alpha_to_one=True,
    )
    # StableSR's wavelet colour fix: the output keeps its own detail and takes the LQ image's
    # low frequencies, which blur, downscaling and noise leave nearly intact; a model this
    # small gets them wrong by more than the global colour AdaIN corrects.
    c.task.restore = dict(
        steps=4, downlq_factor=4, tile=256, tile_overlap=32, color_fix="wavelet"
    )
    c.data = sample_photos_config()
    # Both the paper's camera-realistic degradations and textbook ones (plain bicubic x4,
    # straight motion blur, disk defocus, Gaussian noise), half each.
    c.data.update(crop_size=64, batch_size=8, num_workers=0, degradation_recipe="mixed")
    # The six experts never condition on a zero LQ latent, and the paper's 10% LQ dropout makes
    # the model also generate whole images, whose loss dwarfs the conditioned examples'.
    # Training timesteps lean toward the noisy end (density ~ t): there the x0 estimate rests on
    # the LQ alone, which is the restoration the few sampling steps build on. Both, and the
    # higher learning rate, were chosen in 1500-step trials (BENCHMARKS.md, #9).
    c.task.objective = dict(c.task.objective, lq_dropout=0.0, timestep_skew=1.0)
    c.train.update(steps=20000, batch_size=8)
    c.optim.update(lr=1e-3, schedule="cosine", warmup_steps=100, min_lr_ratio=0.05)
    c.ema.decay = 0.995
    c.checkpoint.every = 250
    c.log.update(every=50)
    if arg == "smoke":
        c.train.update(steps=3)
        c.log.update(every=1, progress_bar=False)
    return c

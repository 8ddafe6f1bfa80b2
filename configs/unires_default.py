"""The embedded default UniRes model that ships inside the package (`unires restore` without
--checkpoint, `unires demo`).

A small UNet over a fixed space-to-depth codec (4x4 pixel blocks -> 48 channels; no VAE to
train), trained from scratch by `unires train` with the four UniRes tasks synthesised by the
degradation library. The UNet predicts x0 ("sample" parameterisation: for a model this small it
learns far faster than epsilon; the expert mixing is unchanged, since with one x_t the eps and
x0 predictions are affine in each other with weights summing to 1).

Data (issue "the main job on real photos"): 70% real photos, 30% procedural dead leaves, for
every task, degraded by the "broad" recipe (noise sigma 0-50 Gaussian and signal-dependent,
JPEG 10-95, straight and camera-shake motion, disk and Gaussian defocus, x2-x4 downscaling with
several kernels, their mixtures, and nearly clean inputs). The photos are every training photo
installed offline (`photos:train`: the sample photos' train split plus mate-backgrounds' nature
training photos, each at short sides 256-768 px); never the held-out ones of either set. The
70/30 split is a judgement, not a measured optimum: real photos stay the majority because only
they carry the textures, colours and scene structure that users restore; the dead leaves
(unlimited, never repeated) add edges, occlusions and colours at every scale so that the model
cannot memorise the 21 photos, and denoisers trained on dead leaves alone come close to ones
trained on natural images (Achddou et al., SSVM 2021), so their share costs little.

Run: scripts/train_default_model.sh   (24000 steps, about 82 minutes on an idle 2-core CPU)
Measured on this project's 2-core Intel Xeon, idle (batch 8, 64 px crops + 16 px degradation
margin, 2026-12-07): 0.204 s/step mean over 400-step runs (0.201-0.205, checkpoints included),
the same as the previous data (sample photos, "mixed" recipe: 0.200-0.211 s/step in the same
alternating runs); about 25 s of start-up, photo loading, compilation and export. The data
pipeline alone gives 37-47 batches/s (23-29 ms of CPU per batch, against 18.5-22 ms before;
a 128 px dead-leaves image takes 4.7 ms), so its read threads in the trainer's process keep up
without worker processes. 24000 x 0.204 s + 25 s is
82 minutes, 8 minutes under the 90-minute limit (the session-5 AMD machine ran the old recipe
at 0.162 s/step, where this takes about 65 minutes). On a busy machine it takes longer.
With a GPU or TPU the script passes `:accelerator`: a 4x longer schedule with 4 data workers
(not measured: no accelerator was available when it was written).
"""

import ml_collections

from configs import unires_common
from unires_jax.convert.config_io import config_fields
from unires_jax.data.pipeline import sample_photos_config
from unires_jax.models import configs, pixel_codec, text

FACTOR = 4
# 70% real photos (each at several scales), 30% procedural dead leaves of 128 px.
DATA_SOURCES = "photos:train@0.7,dead_leaves:128@0.3"


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
        {
            "unet": config_fields(unet),
            "vae": config_fields(codec),
            "vae_kind": "space_to_depth",
            "text": config_fields(text.tiny_text()),
            "lq_channels": latent,
        }
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
    c.task.restore = {
        "steps": 4,
        "downlq_factor": 4,
        "tile": 256,
        "tile_overlap": 32,
        "color_fix": "wavelet",
    }
    c.data = sample_photos_config()
    c.data.sources = {task: DATA_SOURCES for task in c.data.tasks}
    # The margin lets blur kernels and resampling see the crop's real surroundings (most
    # camera-shake PSFs are under 33 px wide). Threads in the trainer's process keep up with
    # the trainer (see the docstring), so no worker processes.
    c.data.update(
        crop_size=64,
        degradation_margin=16,
        batch_size=8,
        num_workers=0,
        degradation_recipe="broad",
    )
    # The six experts never condition on a zero LQ latent, and the paper's 10% LQ dropout makes
    # the model also generate whole images, whose loss dwarfs the conditioned examples'.
    # Training timesteps lean toward the noisy end (density ~ t): there the x0 estimate rests on
    # the LQ alone, which is the restoration the few sampling steps build on. Both, and the
    # higher learning rate, were chosen in 1500-step trials (BENCHMARKS.md, #9).
    c.task.objective = dict(c.task.objective, lq_dropout=0.0, timestep_skew=1.0)
    c.train.update(steps=24000, batch_size=8)
    c.optim.update(lr=1e-3, schedule="cosine", warmup_steps=100, min_lr_ratio=0.05)
    c.ema.decay = 0.995
    c.checkpoint.every = 250
    c.log.update(every=50)
    if arg == "accelerator":
        # A GPU / TPU runs the same recipe on a 4x longer schedule.
        c.train.steps *= 4
        c.checkpoint.every = 1000
        c.data.num_workers = 4
    if arg == "smoke":
        c.train.update(steps=3)
        c.log.update(every=1, progress_bar=False)
    return c

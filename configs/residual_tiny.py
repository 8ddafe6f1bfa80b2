"""A CPU-trainable residual diffusion model: a tiny DiffUIR UNet (199,827 parameters) trained
on the package's sample photos (train split) with synthetic noise and blur.

Model: `tiny_diffuir()` (widths 16, 32) with attentions of 2 heads x 16 instead of the official
4 x 32: at 16 channels the official attention width (128) is most of a step's time on CPU.
Data: the degradation library's "canonical" recipe on the sample photos' train split: Gaussian
noise of sigma U(1, 50)/255 (half the batches), straight motion blur and disk defocus (a quarter
each, 30% of them with mild noise), 48 px crops degraded with 16 px of surrounding photo.
Everything else is the FoundIR recipe of configs/residual_foundir.py (Adam 0.9/0.99, clip 1.0,
the official objective and 4-step sampler) except what a few hundred CPU steps need: lr 3e-3
with a short warm-up and a cosine decay, batch 8 in one pass, and a per-step EMA of decay 0.98
(FoundIR's 0.995 every 10 steps averages over ~2000 steps, longer than this run).
The held-out photos (chelsea, coffee, flower, rocket) are never trained on; `eval_sources`
reads them when `--config.train.eval_every` is set.

Run: unires train --config=configs/residual_tiny.py --workdir=/tmp/residual_tiny --export=/tmp/rt
Expected: 300 steps, about 0.6 s each on 2 CPU cores shared with other jobs (load average ~8);
the exported model raises the held-out photos' PSNR under sigma-25 noise from ~20.7 dB to
~27 dB (+6.6 dB on average, +3.3 dB on the worst photo, flower), measured by
tests/train/test_residual_task.py::test_tiny_config_trains_and_improves_heldout_psnr_on_sigma25_noise.
"""

import ml_collections

from configs import residual_foundir
from unires_jax.data.pipeline import sample_photos_config
from unires_jax.models.configs import tiny_diffuir


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = residual_foundir.residual_base(tiny_diffuir(heads=2, head_dim=16))
    c.data = sample_photos_config()
    tasks = ("denoise", "motion", "defocus")
    # Assigned, not `update`d: update merges dicts and would keep the "sr" task.
    c.data.tasks = tasks
    c.data.weights = {"denoise": 0.5, "motion": 0.25, "defocus": 0.25}
    c.data.sources = {t: "sample_photos:train" for t in tasks}
    c.data.update(
        degradation_recipe="canonical",
        crop_size=48,
        degradation_margin=16,
        batch_size=8,
        num_workers=0,
    )
    c.task.eval_sources = "sample_photos:heldout"
    c.task.sample_crop = 96
    # Whole photos run as 256 px tiles: the middle attention of larger tiles is slow on CPU.
    c.task.restore.update(tile=256, tile_overlap=128)
    c.train.update(
        steps=300, batch_size=8, grad_accum_steps=1, eval_every=0, eval_steps=1
    )
    c.optim.update(lr=3e-3, schedule="cosine", warmup_steps=20, min_lr_ratio=0.05)
    c.ema.update(decay=0.98, every=1)
    c.checkpoint.every = 300
    c.log.update(every=50, sample_every=0)
    if arg == "test":  # a few steps, for the test suite
        c.train.update(steps=2, batch_size=8)
        c.data.crop_size = 32
        c.checkpoint.every = 1000
        c.log.update(every=1, progress_bar=False)
        c.train.compiler_options = {"xla_backend_optimization_level": 0}
    return c

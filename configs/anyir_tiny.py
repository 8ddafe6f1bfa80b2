"""A CPU-trainable AnyIR: a tiny v2 network trained to denoise the package's sample photos.

Data: the sample photos' train split with Gaussian noise of sigma 15, 25 and 50 (the official
denoising tasks, equal weights), 48 px crops, batch 8; the held-out photos (chelsea, coffee,
flower, rocket) are never trained on (`eval_sources` reads them when
`--config.train.eval_every` is set). Loss and optimiser as configs/anyir_released.py (L1 + 0.1
FFT L1, AdamW) except what a few hundred CPU steps need: lr 2e-3 with a 10-step warm-up and a
cosine decay over the run, and an EMA of decay 0.9.

Run: unires train --config=configs/anyir_tiny.py --workdir=/tmp/anyir_tiny --export=/tmp/at
Expected: see tests/train/test_anyir_task.py (the slow test trains this config and measures the
held-out PSNR gain at sigma 25).
"""

import ml_collections

from configs import anyir_released
from unires_jax.data.pipeline import sample_photos_config
from unires_jax.models.anyir import tiny_anyir


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = anyir_released.anyir_base(tiny_anyir(), "3deg", 1, batch_size=8)
    c.data = sample_photos_config()
    tasks = ("denoise15", "denoise25", "denoise50")
    c.data.tasks = tasks
    c.data.weights = {t: 1.0 for t in tasks}
    c.data.sources = {t: "sample_photos:train" for t in tasks}
    c.data.update(crop_size=48, batch_size=8, num_workers=0)
    c.task.eval_sources = "sample_photos:heldout"
    c.task.restore.update(tile=512, tile_overlap=64)
    c.train.update(steps=200, batch_size=8, eval_every=0, eval_steps=1)
    c.optim.update(lr=2e-3, warmup_steps=10, min_lr_ratio=0.05)
    c.ema.update(decay=0.9, every=1)
    c.checkpoint.update(every=1000)
    c.log.update(every=50, sample_every=0)
    if arg == "test":  # a few steps, for the test suite
        c.train.update(steps=2)
        c.data.crop_size = 32
        c.log.update(every=1, progress_bar=False)
        c.train.compiler_options = {"xla_backend_optimization_level": 0}
    return c

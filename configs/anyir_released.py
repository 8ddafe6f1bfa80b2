"""AnyIR, the released code's recipe (Amazingren/AnyIR train.py, options.py, train_*deg.sh) on the
released network (v2, 5,736,376 parameters).

Run (build the datasets first with `unires data build NAME --manual_dir DIR`, see
data_builders/: bsd400_wed, rain100l, reside_ots, gopro, lol):

    unires train --config=configs/anyir_released.py:3deg --workdir=W --export=MODEL
    unires train --config=configs/anyir_released.py:5deg,150 --workdir=W --export=MODEL

The argument is `MIXTURE[,EPOCHS]`: "3deg" (denoise sigma 15/25/50 on BSD400+WED, derain
Rain100L, dehaze RESIDE OTS) or "5deg" (+ deblur GoPro, low light LOL), and the epoch count
(default: the released scripts', 130 for 3deg and 150 for 5deg).

Recipe:
- AdamW, lr 2e-4, torch's defaults (betas 0.9 / 0.999, eps 1e-8, weight decay 0.01; ours
  decays kernels only, not biases, norm scales, temperatures, tau or lam: torch decays all).
  No gradient clipping, no EMA (Lightning's defaults): the EMA here is a copy (decay 0).
- Learning rate: linear warm-up over 15 epochs, then cosine to 0 at the END OF THE RUN. The
  released train.py hard-codes `LinearWarmupCosineAnnealingLR(warmup_epochs=15,
  max_epochs=150)` whatever `--epochs` is (the 3-degradation script trains 130 epochs, so its
  cosine never reaches 0; a 170-epoch run would restart it). Here the schedule follows the
  epoch count: `train.steps` = epochs x steps per epoch and the cosine ends there. The official
  schedule also steps once per epoch (a staircase, lr 0 in the first epoch); ours changes every
  step.
- Global batch 32 of 128 px crops with random horizontal flips (official: 8 flips/rotations).
- Loss: L1 + 0.1 L1 on the stacked real / imaginary parts of rfft2 (`task.fft_loss_weight`).
- Mixture: the official dataset concatenation (`AnyIRTrainDataset`), one epoch = one pass over
  it: each denoising sigma 3 x 5,144 clean photos (BSD400 + WED), Rain100L's 200 training
  pairs x 120, the dehazing list (68,520 pairs: the size that makes an epoch 4,338 steps of 32,
  as the released script's `epoch=78-step=342702.ckpt` shows), GoPro's 2,103 pairs x 5, LOL's
  485 x 20. Sampling weights are these counts.
- Dehazing training data: RESIDE OTS as the official list `hazy_outside.txt` names it, built by
  `unires data build reside_ots` (data_builders/reside_ots.py: the official Train/Dehaze folder,
  synthetic/ + original/, with the list copied into it); `data.sources.dehaze` is
  "reside_ots:train". PromptIR's copy of the list names 72,135 pairs (2,061 scenes x 35); the
  weight above stays 68,520, the count the released step numbers imply (AnyIR's own copy of
  the list could not be checked). SOTS outdoor (`sots:outdoor`) is the TEST set, never
  trained on.

Expected runtime: not measured here (the official runs used one H200 for 48-96 hours).
"""

import ml_collections

from configs import common
from unires_jax.convert.anyir import DEFAULT_SETTINGS
from unires_jax.convert.config_io import config_fields
from unires_jax.data.pipeline import default_config as data_default_config
from unires_jax.models.anyir import AnyIRConfig, anyir_v2

# Examples per epoch of each task in the official concatenated dataset.
EPOCH_EXAMPLES = {
    "denoise15": 3 * 5_144,
    "denoise25": 3 * 5_144,
    "denoise50": 3 * 5_144,
    "derain": 120 * 200,
    "dehaze": 68_520,
    "deblur": 5 * 2_103,
    "lowlight": 20 * 485,
}
MIXTURES = {
    "3deg": ("denoise15", "denoise25", "denoise50", "derain", "dehaze"),
    "5deg": (
        "denoise15",
        "denoise25",
        "denoise50",
        "derain",
        "dehaze",
        "deblur",
        "lowlight",
    ),
}
SOURCES = {
    "denoise15": "bsd400_wed:train",
    "denoise25": "bsd400_wed:train",
    "denoise50": "bsd400_wed:train",
    "derain": "rain100l:train",
    "dehaze": "reside_ots:train",  # RESIDE OTS, the official hazy_outside.txt pairs
    "deblur": "gopro:train",
    "lowlight": "lol:train",
}
RELEASED_EPOCHS = {"3deg": 130, "5deg": 150}
WARMUP_EPOCHS = 15


def steps_per_epoch(tasks, batch_size: int) -> int:
    """Optimiser steps in one pass over the mixture (the official loader drops the last batch)."""
    return sum(EPOCH_EXAMPLES[t] for t in tasks) // batch_size


def anyir_base(
    model: AnyIRConfig, mixture: str, epochs: int, batch_size: int
) -> ml_collections.ConfigDict:
    """Trainer defaults + the AnyIR task + an official mixture, the run length in epochs."""
    if mixture not in MIXTURES:
        raise ValueError(
            f"AnyIR mixture {mixture!r}: expected one of {sorted(MIXTURES)}"
        )
    tasks = MIXTURES[mixture]
    c = common.base_config()
    c.model = ml_collections.ConfigDict(config_fields(model))
    c.task = ml_collections.ConfigDict(
        {
            "family": "anyir",
            "fft_loss_weight": 0.1,
            "restore": dict(DEFAULT_SETTINGS),
            "eval_sources": "",
            "epochs": float(epochs),
        }
    )
    c.data = data_default_config()
    # Assigned, not `update`d: update merges dicts and would keep the UniRes tasks.
    c.data.tasks = tasks
    c.data.weights = {t: float(EPOCH_EXAMPLES[t]) for t in tasks}
    c.data.sources = {t: SOURCES[t] for t in tasks}
    c.data.update(crop_size=128, flip=True, batch_size=batch_size, degradation_margin=0)
    per_epoch = steps_per_epoch(tasks, batch_size)
    c.train.update(batch_size=batch_size, grad_accum_steps=1, steps=epochs * per_epoch)
    c.optim.update(
        lr=2e-4,
        schedule="cosine",
        warmup_steps=WARMUP_EPOCHS * per_epoch,
        min_lr_ratio=0.0,
        b1=0.9,
        b2=0.999,
        eps=1e-8,
        weight_decay=0.01,
        clip_norm=0.0,
    )
    c.ema.update(decay=0.0, every=1)
    c.checkpoint.update(every=per_epoch, best_metric="loss")
    c.log.update(every=100)
    return c


def parse_arg(arg: str | None, default_mixture: str = "3deg") -> tuple[str, int]:
    """'MIXTURE[,EPOCHS]' -> (mixture, epochs)."""
    mixture, _, epochs = (arg or default_mixture).partition(",")
    mixture = mixture or default_mixture
    if mixture not in MIXTURES:
        raise ValueError(f"config argument {arg!r}: expected 3deg or 5deg[,EPOCHS]")
    return mixture, int(epochs) if epochs else RELEASED_EPOCHS[mixture]


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    mixture, epochs = parse_arg(arg)
    return anyir_base(anyir_v2(), mixture, epochs, batch_size=32)

"""AnyIR, the paper's recipe (Sec. 4, implementation details) on the paper's network (v1, the
reconstruction of models/anyir.py: 6,250,986 parameters).

Run:  unires train --config=configs/anyir_paper.py:3deg --workdir=W --export=MODEL
      (argument `MIXTURE[,EPOCHS]` as in configs/anyir_released.py; default 130 epochs)

Recipe: Adam (no weight decay), lr 2e-4 with a cosine decay to 0 at the end of the run (no
warm-up), 130 epochs, batch 16, L1 loss only, 128 px crops with random flips. The schedule
follows the epoch count (`train.steps` = epochs x steps per epoch of the official mixture).
Everything else (the mixtures, their sources and weights, dehazing on RESIDE OTS:
`reside_ots:train`) as configs/anyir_released.py. Expected runtime: not measured.
"""

import ml_collections

from configs import anyir_released
from unires_jax.models.anyir import anyir_v1

PAPER_EPOCHS = 130


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    mixture, _, epochs = (arg or "3deg").partition(",")
    epochs = int(epochs) if epochs else PAPER_EPOCHS
    c = anyir_released.anyir_base(anyir_v1(), mixture or "3deg", epochs, batch_size=16)
    c.task.fft_loss_weight = 0.0
    c.optim.update(warmup_steps=0, weight_decay=0.0)
    return c

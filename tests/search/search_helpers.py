"""Helpers for the weight-search tests: a micro UniRes model, a small grid, a stand-in Q.

The model is the tiny UniRes layout cut to two UNet levels and a narrow VAE, with random
weights written straight into the abstract modules (the NNX initialisers compile op by op,
which costs tens of seconds on a loaded 2-core machine; the values do not matter here). Every
test uses the same steps, image size and sampler settings, so the jitted programs compile once
per session.
"""

from __future__ import annotations

import numpy as np
from clip_vocab import write_clip_tokenizer
from unires_fixtures import SD_SCHEDULER

from unires_jax.convert.clip import read_tokenizer
from unires_jax.models import configs, text
from unires_jax.models.ldm import LatentDiffusion, LDMConfig, random_ldm_modules
from unires_jax.search.grid import GridSpec
from unires_jax.search.interface import SearchConfig

STEPS = 3
PAIRS_PER_DEVICE = 4
SEARCHED = ("SR", "DN", "DownLQ")
# 18 vectors over three experts, one to three nonzero weights each.
SMALL_GRID = GridSpec(vmin=-0.5, vmax=1.5, step=0.5, max_negative=1)
SMALL = SearchConfig(grid=SMALL_GRID, experts=SEARCHED)


def micro_unires_ldm(folder) -> LatentDiffusion:
    cfg = LDMConfig(
        unet=configs.tiny_unet(
            in_channels=8,
            block_out_channels=(16, 32),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            layers_per_block=1,
        ),
        vae=configs.tiny_vae(block_out_channels=(8, 8, 16, 16), norm_num_groups=4),
        text=text.tiny_text(),
        lq_channels=4,
    )
    modules = random_ldm_modules(cfg, seed=0)
    write_clip_tokenizer(folder / "tokenizer")
    return LatentDiffusion(
        **modules,
        tokenizer=read_tokenizer(folder / "tokenizer"),
        scheduler_config=dict(SD_SCHEDULER),
        lq_channels=4,
        tokenizer_dir=folder / "tokenizer",
        source="random micro UniRes (search tests)",
    )


class Sharpness:
    """A stand-in Q for 32 px images (NIQE needs 96 px): mean absolute horizontal gradient."""

    name = "sharpness"
    higher_is_better = True

    def __init__(self):
        self.scored = 0  # images scored, to check what a resumed search re-scores

    def score(self, images):
        images = np.asarray(images, np.float64)
        self.scored += len(images)
        return np.abs(np.diff(images, axis=2)).mean(axis=(1, 2, 3))

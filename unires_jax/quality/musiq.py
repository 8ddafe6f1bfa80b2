"""MUSIQ no-reference quality score (higher is better), batched and bucketed under `jit`.

    scorer = musiq.load("koniq_ckpt.npz")                      # official TF behaviour
    scorer = musiq.load("koniq_ckpt.npz", preprocessing="pyiqa")  # matches pyiqa's port
    scores = scorer.score(images)                               # [N, H, W, 3] in [0, 1] -> [N]

Images are turned into patch sequences on the host (NumPy, any size, no recompilation); the
sequences are padded to a bucket length (`MusiqConfig.seq_buckets`) and the batch to a power of
two up to `max_batch`, so a stream of differently sized images compiles only a few shapes.
Padding tokens are masked out of attention, so they do not change any score.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.convert import musiq as convert_musiq
from unires_jax.quality import musiq_preprocess
from unires_jax.quality.musiq_model import (
    HEADS,
    PREPROCESSING,
    MusiqConfig,
    MusiqModel,
    logits_to_score,
    musiq_config,
)

__all__ = [
    "HEADS",
    "PREPROCESSING",
    "MusiqConfig",
    "MusiqModel",
    "MusiqScorer",
    "load",
    "musiq_config",
]


class MusiqScorer:
    """Scores images with a MusiqModel.

    Attributes:
        name: "musiq".
        higher_is_better: True.
        cfg: the model's MusiqConfig.
    """

    name = "musiq"
    higher_is_better = True

    def __init__(self, model: MusiqModel):
        self.cfg = model.cfg
        graphdef, state = nnx.split(model)

        def forward(state, patches, spatial, scale, mask):
            return logits_to_score(
                nnx.merge(graphdef, state)(patches, spatial, scale, mask)
            )

        self._state = state
        self._forward = jax.jit(forward)

    def sequences(self, images) -> list[musiq_preprocess.PatchSequence]:
        """Patch sequences of images in [0, 1]: [N, H, W, C] array or a list of [H, W, C], C in {1, 3}."""
        if isinstance(images, (np.ndarray, jax.Array)):
            if images.ndim != 4:
                raise ValueError(
                    f"MUSIQ scores [N, H, W, 3] images; got shape {tuple(images.shape)}"
                )
            images = list(np.asarray(images, np.float32))
        cfg = self.cfg
        out = []
        for i, img in enumerate(images):
            img = np.asarray(img, np.float32)
            if img.ndim == 3 and img.shape[-1] == 1:
                # Grey images as RGB, as pyiqa's loader (PIL convert("RGB")) feeds them.
                img = np.repeat(img, 3, axis=-1)
            if img.ndim != 3 or img.shape[-1] != 3:
                raise ValueError(
                    f"image {i}: MUSIQ needs [H, W, 3] (or grey [H, W, 1]) in [0, 1]; "
                    f"got shape {img.shape}"
                )
            out.append(
                musiq_preprocess.multiscale_patches(
                    img * 2.0 - 1.0,  # [0, 1] -> [-1, 1], as both references normalise
                    patch_size=cfg.patch_size,
                    grid_size=cfg.grid_size,
                    longer_side_lengths=cfg.longer_side_lengths,
                    method=cfg.resize_method,
                    antialias=cfg.resize_antialias,
                )
            )
        return out

    def score_sequences(
        self, seqs: Sequence[musiq_preprocess.PatchSequence]
    ) -> np.ndarray:
        """[N] scores of prepared sequences, grouped by bucket length and run max_batch at a time."""
        cfg = self.cfg
        scores = np.zeros((len(seqs),), np.float32)
        by_bucket: dict[int, list[int]] = {}
        for i, s in enumerate(seqs):
            by_bucket.setdefault(
                musiq_preprocess.bucket_length(len(s), cfg.seq_buckets), []
            ).append(i)
        for length, idx in sorted(by_bucket.items()):
            for start in range(0, len(idx), cfg.max_batch):
                chunk = idx[start : start + cfg.max_batch]
                batch = min(1 << (len(chunk) - 1).bit_length(), cfg.max_batch)
                arrays = musiq_preprocess.stack_sequences(
                    [seqs[i] for i in chunk], length, batch
                )
                out = self._forward(
                    self._state,
                    *(
                        jnp.asarray(arrays[k])
                        for k in ("patches", "spatial", "scale", "mask")
                    ),
                )
                scores[chunk] = np.asarray(out)[: len(chunk)]
        return scores

    def score(self, images) -> np.ndarray:
        """MUSIQ scores.

        Args:
            images: [N, H, W, 3] float in [0, 1] (NumPy or JAX), or a list of [H, W, 3] arrays of
                different sizes; grey [.., 1] images are repeated to RGB.

        Returns:
            [N] float32 scores (about 0-100 for KonIQ / SPAQ / PaQ-2-PiQ, 1-10 for AVA).
        """
        return self.score_sequences(self.sequences(images))


def load(
    checkpoint: str | None = None,
    *,
    preprocessing: str = "official",
    head: str = "koniq",
    **overrides,
) -> MusiqScorer:
    """Loads an official MUSIQ checkpoint as a scorer.

    Args:
        checkpoint: path to an official .npz (e.g. koniq_ckpt.npz). Nothing is downloaded.
        preprocessing: "official" (TF Gaussian resize, tanh GELU, population std) or "pyiqa"
            (bicubic resize, exact GELU, sample std) to reproduce pyiqa's scores.
        head: "koniq", "spaq", "paq2piq" (score) or "ava" (10-bin distribution -> mean).
        **overrides: MusiqConfig fields (e.g. max_batch=8).

    Raises:
        ValueError: checkpoint is None, or an unknown preprocessing / head.
        unires_jax.convert.musiq.MusiqCheckpointError: the file is unreadable or its keys do not
            match the configuration.
    """
    cfg = musiq_config(preprocessing, head, **overrides)
    if checkpoint is None:
        raise ValueError(
            f"MUSIQ needs an official checkpoint and never downloads one. Get {HEADS[head][0]} (head={head!r}; "
            f"others: {', '.join(f for f, _ in HEADS.values())}) from the google-research MUSIQ release "
            "(https://github.com/google-research/google-research/tree/master/musiq, 'gresearch/musiq' "
            "storage bucket) and pass load(checkpoint='path/to/"
            + HEADS[head][0]
            + "')."
        )
    return MusiqScorer(convert_musiq.load_official_npz(checkpoint, cfg))

"""PIQE, the Perception-based Image Quality Evaluator (Venkatanath et al., NCC 2015).

Follows MATLAB's `piqe` (as ported by pypiqe and pyiqa): grey image scaled so its maximum is 255
and rounded, padded symmetrically to a multiple of 16, MSCN coefficients (7x7 Gaussian, sigma 7/6,
replicate border), then per 16x16 block: a block is active when the variance of its coefficients
exceeds 0.1; an active block counts as distorted by blocking/blur when any run of 6 pixels along
one of its edges has standard deviation below 0.1, and as noisy when its deviation exceeds twice
the centre-surround measure. Score = 100 (1 + sum of block distortion) / (1 + active blocks).
Needs no model. Lower is better (0-100).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from unires_jax.quality import base, nss

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
IMPAIRED_THRESHOLD = 0.1
SEGMENT = 6


def _blocks(norm: np.ndarray) -> np.ndarray:
    """[H, W] (multiples of 16) -> [blocks, 16, 16], row-major block order."""
    h, w = norm.shape
    t = norm.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(0, 2, 1, 3)
    return t.reshape(-1, BLOCK, BLOCK)


def _edge_impaired(blocks: np.ndarray) -> np.ndarray:
    """[n, 16, 16] -> [n] bool: some 6-pixel run on a block edge is nearly constant."""
    edges = np.stack(
        [blocks[:, 0, :], blocks[:, :, -1], blocks[:, -1, :], blocks[:, :, 0]], axis=1
    )  # [n, 4, 16]
    runs = np.lib.stride_tricks.sliding_window_view(
        edges, SEGMENT, axis=-1
    )  # [n, 4, 11, 6]
    return (np.std(runs, axis=-1, ddof=1) < IMPAIRED_THRESHOLD).any(axis=(1, 2))


def _centre_surround(blocks: np.ndarray) -> np.ndarray:
    """[n, 16, 16] -> [n] std of the two centre columns over std of the rest.

    The reference deletes column 8 and then column 9 of what remains (1-based), i.e. original
    columns 8 and 10; this keeps that.
    """
    c1 = BLOCK // 2 - 1  # 0-based column 7
    centre = blocks[:, :, [c1, c1 + 1]].transpose(0, 2, 1).reshape(len(blocks), -1)
    surround = np.delete(np.delete(blocks, c1, axis=2), c1 + 1, axis=2).reshape(
        len(blocks), -1
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.std(centre, axis=1, ddof=1) / np.std(surround, axis=1, ddof=1)
    return np.nan_to_num(ratio, nan=0.0)


def piqe_gray(img: np.ndarray) -> float:
    """PIQE of one grey image [H, W] (any positive scale; it is normalised to max 255)."""
    img = np.asarray(img, np.float64)
    h, w = img.shape
    img = np.pad(img, ((0, -h % BLOCK), (0, -w % BLOCK)), mode="symmetric")
    peak = img.max()
    img = np.round(255 * (img / peak)) if peak > 0 else img
    norm, _ = nss.mscn(img, nss.gaussian_window(), mode="nearest")
    blocks = _blocks(norm)
    var = np.var(blocks, axis=(1, 2), ddof=1)
    active = var > ACTIVITY_THRESHOLD
    sigma = np.sqrt(var)
    csd = _centre_surround(blocks)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = np.abs(sigma - csd) / np.maximum(sigma, csd)
    noisy = sigma > 2 * beta
    impaired = _edge_impaired(blocks)
    dist = np.where(active, impaired * (1 - var) + noisy * var, 0.0).sum()
    return float((dist + 1) / (1 + active.sum()) * 100)


def score(
    images: np.ndarray | Sequence[np.ndarray], convert_to: str = "gray"
) -> np.ndarray:
    """PIQE of each image (lower is better).

    Args:
        images: [N, H, W, C] or a list of [H, W, C], C = 1 or 3, floats in [0, 1].
        convert_to: "gray" (MATLAB `rgb2gray`, the reference) or "y" (BT.601 luma).

    Returns:
        [N] float64 scores in [0, 100].
    """
    return np.array(
        [
            piqe_gray(nss.to_luma(im[None], convert_to)[0])
            for im in base.as_image_list(images)
        ]
    )


@dataclasses.dataclass(frozen=True)
class Piqe:
    """PIQE as a `QualityModel` (lower is better)."""

    convert_to: str = "gray"
    name: str = "piqe"
    higher_is_better: bool = False

    def score(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        return score(images, self.convert_to)


def load(checkpoint: None = None, convert_to: str = "gray") -> Piqe:
    """PIQE. It has no model file; `checkpoint` exists only to reject one clearly."""
    if checkpoint is not None:
        raise ValueError(
            f"PIQE needs no model file, got checkpoint={checkpoint!r}; drop it"
        )
    return Piqe(convert_to=convert_to)

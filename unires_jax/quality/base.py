"""The interface every image-quality function Q implements, and input checks shared by them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class QualityModel(Protocol):
    """A no-reference image-quality function.

    Attributes:
        name: registry name ("niqe", "brisque", "piqe", "musiq").
        higher_is_better: True when a larger score means a better image.
    """

    name: str
    higher_is_better: bool

    def score(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Scores images [N, H, W, C] (or a list of [H, W, C]) with floats in [0, 1]; returns [N]."""
        ...


def objective(model: QualityModel, scores: np.ndarray) -> np.ndarray:
    """Turns scores into a higher-is-better value for maximisation (e.g. -NIQE).

    Args:
        model: the model that produced `scores`.
        scores: [N] raw scores.

    Returns:
        [N] float64, `scores` or `-scores`.
    """
    s = np.asarray(scores, np.float64)
    return s if model.higher_is_better else -s


def as_image_list(images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """Validates NHWC images in [0, 1] and returns them as a list of [H, W, C] float64 arrays.

    Accepts one [N, H, W, C] array (numpy or jax) or a sequence of [H, W, C] arrays of any sizes.
    """
    if hasattr(images, "ndim") and images.ndim == 4:
        items = list(np.asarray(images, np.float64))
    elif hasattr(images, "ndim"):
        raise ValueError(
            f"images must be [N, H, W, C] or a list of [H, W, C], got shape {images.shape}"
        )
    else:
        items = [np.asarray(im, np.float64) for im in images]
    for i, im in enumerate(items):
        if im.ndim != 3 or im.shape[-1] not in (1, 3):
            raise ValueError(
                f"image {i}: expected [H, W, 1 or 3], got shape {im.shape}"
            )
        lo, hi = float(im.min()), float(im.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(
                f"image {i}: values span [{lo:.3g}, {hi:.3g}]; quality models take floats in "
                "[0, 1] (divide uint8 images by 255)"
            )
    return items

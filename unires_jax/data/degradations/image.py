"""Image array conventions shared by every degradation operator.

Operators take and return float32 arrays [H, W, 3] with values in [0, 1]. These helpers check
that contract at the entry of each operator (so a uint8 image in 0..255 fails loudly instead of
being silently treated as very bright) and map to and from 8-bit codes.
"""

from __future__ import annotations

import numpy as np


def check_image(image: np.ndarray, where: str) -> np.ndarray:
    """Validates an operator input and returns it as float32 [H, W, 3].

    Args:
        image: [H, W, 3] floating-point array, values in [0, 1].
        where: name of the calling operator, used in the error message.

    Returns:
        The same pixels as a float32 array (no copy when already float32).

    Raises:
        ValueError: wrong rank, channel count or an integer dtype.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"unires_jax/data/degradations ({where}): expected an RGB image [H, W, 3], got shape "
            f"{image.shape}. Convert grayscale with np.repeat(img[..., None], 3, axis=-1)."
        )
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(
            f"unires_jax/data/degradations ({where}): expected a float image in [0, 1], got dtype "
            f"{image.dtype}. Convert 8-bit images with img.astype(np.float32) / 255."
        )
    return image.astype(np.float32, copy=False)


def clip_unit(image: np.ndarray) -> np.ndarray:
    """Clips to [0, 1] and returns float32 (the output contract of every operator)."""
    return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Maps [0, 1] floats to 8-bit codes by rounding to nearest: [H, W, C] -> uint8."""
    return np.clip(np.rint(np.asarray(image, np.float32) * 255.0), 0, 255).astype(
        np.uint8
    )


def from_uint8(image: np.ndarray) -> np.ndarray:
    """Maps 8-bit codes back to float32 in [0, 1]."""
    return image.astype(np.float32) / np.float32(255.0)


def quantize_8bit(image: np.ndarray) -> np.ndarray:
    """Rounds to the nearest 8-bit level and clips, staying float32 in [0, 1]."""
    return from_uint8(to_uint8(image))


def luma(image: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB image: [H, W, 3] -> [H, W] float32."""
    # Elementwise rather than `image @ weights`, which would go through (threaded) BLAS.
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    return (
        np.float32(0.299) * r + np.float32(0.587) * g + np.float32(0.114) * b
    ).astype(np.float32, copy=False)

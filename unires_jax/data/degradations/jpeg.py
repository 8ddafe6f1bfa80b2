"""JPEG compression through Pillow's encoder (the GIR reference), and the GIR "compression" op.

The image is rounded to 8-bit, encoded with `PIL.Image.save(format="JPEG", quality=q)` (Pillow's
defaults otherwise: 4:2:0 chroma subsampling, standard tables) and decoded again, so the result is
exactly what a Pillow user gets. Real-ESRGAN uses a differentiable JPEG with real-valued quality;
here quality is rounded to an integer, which is all a JPEG encoder accepts.
"""

from __future__ import annotations

import dataclasses
import io
from typing import ClassVar

import numpy as np
from PIL import Image

from unires_jax.data.degradations.image import check_image, from_uint8, to_uint8


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """Encodes a [H, W, 3] float image in [0, 1] to JPEG bytes at `quality` (1..100)."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"jpeg.py: JPEG quality must be in [1, 100], got {quality}.")
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decodes JPEG bytes to [H, W, 3] float32 in [0, 1]."""
    with Image.open(io.BytesIO(data)) as img:
        return from_uint8(np.asarray(img.convert("RGB")))


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Compresses and decompresses: [H, W, 3] -> [H, W, 3] float32 on the 8-bit grid."""
    return decode_jpeg(encode_jpeg(image, quality))


@dataclasses.dataclass(frozen=True)
class JpegParams:
    """JPEG compression (GIR "compression").

    Ranges (GIR appendix A.1 and Real-ESRGAN): quality integer in [30, 95]. Representative: 50.
    """

    quality: int

    RANGES: ClassVar[dict] = {"quality": (30, 95)}


def sample_jpeg_params(rng: np.random.Generator) -> JpegParams:
    """Draws quality uniformly from the integers 30..95."""
    lo, hi = JpegParams.RANGES["quality"]
    return JpegParams(quality=int(rng.integers(lo, hi + 1)))


def apply_jpeg(
    image: np.ndarray, params: JpegParams, rng: np.random.Generator
) -> np.ndarray:
    """JPEG round trip: [H, W, 3] -> [H, W, 3] float32 in [0, 1]. `rng` is unused."""
    return jpeg_roundtrip(check_image(image, "compression"), params.quality)

"""JPEG goes through Pillow exactly: same bytes and same decoded pixels as a direct Pillow call."""

import io

import numpy as np
import pytest
from PIL import Image

from unires_jax.data.degradations import jpeg


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64] / 64.0
    smooth = np.stack([x, y, 0.5 * (x + y)], -1)
    return np.clip(smooth + 0.1 * rng.standard_normal((48, 64, 3)), 0, 1).astype(
        np.float32
    )


@pytest.mark.parametrize("quality", [30, 50, 75, 95])
def test_jpeg_is_byte_identical_to_pillow(quality):
    image = _image()
    codes = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(codes).save(buffer, format="JPEG", quality=quality)
    reference_bytes = buffer.getvalue()
    assert jpeg.encode_jpeg(image, quality) == reference_bytes

    reference = np.asarray(Image.open(io.BytesIO(reference_bytes)).convert("RGB"))
    out = jpeg.apply_jpeg(image, jpeg.JpegParams(quality), np.random.default_rng(0))
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_array_equal(np.rint(out * 255).astype(np.uint8), reference)


def test_lower_quality_loses_more():
    image = _image()
    errors = [
        np.abs(jpeg.jpeg_roundtrip(image, q) - image).mean() for q in (30, 60, 95)
    ]
    assert errors[0] > errors[1] > errors[2]


def test_quality_outside_jpeg_range_is_rejected():
    with pytest.raises(ValueError, match="quality"):
        jpeg.encode_jpeg(_image(), 0)

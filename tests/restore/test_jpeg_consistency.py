"""JPEG consistency: the IJG tables, the quality estimated from decoded pixels, and the projection
onto the quantisation constraint set. On the sample photos' training split."""

import io

import numpy as np
import pytest
from PIL import Image

from unires_jax.data.sample_photos import load_sample_photos
from unires_jax.restore import jpeg_consistency as jc


@pytest.fixture(scope="module")
def photo():
    image = load_sample_photos("train")["astronaut"].astype(np.float32) / 255.0
    return image[64:320, 96:352]  # 256 x 256


def roundtrip(image, quality):
    buffer = io.BytesIO()
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(
        buffer, format="JPEG", quality=quality
    )
    buffer.seek(0)
    decoded = Image.open(buffer)
    table = np.array(decoded.quantization[0], float).reshape(8, 8)
    return np.asarray(decoded.convert("RGB"), np.float32) / 255.0, table


@pytest.mark.parametrize("quality", [5, 10, 37, 50, 75, 90, 95])
def test_tables_are_the_ones_pillow_writes(photo, quality):
    _, table = roundtrip(photo[:16, :16], quality)
    np.testing.assert_array_equal(jc.ijg_luma_table(quality), table)


@pytest.mark.parametrize("quality", [10, 30, 50, 70, 90])
def test_the_quality_is_estimated_from_the_decoded_pixels(photo, quality):
    decoded, _ = roundtrip(photo, quality)
    estimate = jc.estimate(decoded)
    assert estimate.quality is not None and abs(estimate.quality - quality) <= 2
    assert estimate.score >= jc.FIT_MIN


def test_uncompressed_and_noisy_photos_have_no_quality(photo):
    assert jc.estimate(photo).quality is None
    noisy = np.clip(
        photo + np.random.default_rng(0).normal(0, 5 / 255, photo.shape), 0, 1
    )
    assert jc.estimate(np.round(noisy * 255) / 255).quality is None
    # Off the 8x8 grid (cropped after compression): no lattice fits.
    decoded, _ = roundtrip(photo, 30)
    assert jc.estimate(decoded[3:, 5:]).quality is None


def test_projection_keeps_the_original_and_brings_a_bad_restoration_closer(photo):
    decoded, _ = roundtrip(photo, 30)
    estimate = jc.estimate(decoded)
    # The original lies in the constraint set (up to the decoder's rounding and clipping): the
    # projection hardly moves it, compared with how far the decoded photo is from it.
    kept = jc.project(photo, decoded, estimate)
    assert np.mean((kept - photo) ** 2) < 0.05 * np.mean((decoded - photo) ** 2)
    # A restoration far outside it (a heavy blur of the decoded photo) comes back closer to the
    # original, and its chroma (Cb, Cr) is unchanged.
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(decoded, sigma=(2, 2, 0)).astype(np.float32)
    projected = jc.project(blurred, decoded, estimate)
    assert np.mean((projected - photo) ** 2) < 0.8 * np.mean((blurred - photo) ** 2)
    inside = np.all((projected > 0) & (projected < 1), axis=-1)  # not clipped
    moved = (projected - blurred)[inside]
    np.testing.assert_allclose(moved[:, 0], moved[:, 1], atol=1e-6)
    np.testing.assert_allclose(moved[:, 0], moved[:, 2], atol=1e-6)


def test_without_a_quality_the_projection_changes_nothing(photo):
    estimate = jc.estimate(photo)
    out = jc.project(photo * 0.5, photo, estimate)
    np.testing.assert_array_equal(out, (photo * 0.5).astype(np.float32))


def _scores_per_quality(coefficients):
    """The fit score by its definition, one quality at a time over the whole array."""
    magnitude = np.abs(coefficients)
    out = np.full(100, np.nan)
    for quality in range(1, 101):
        table = jc.ijg_luma_table(quality)
        telling = (magnitude > table / 2) & (table >= jc.MIN_STEP)
        if telling.sum() >= jc.MIN_TELLING:
            out[quality - 1] = np.mean(
                np.cos(2 * np.pi * coefficients / table)[telling]
            )
    return out


@pytest.mark.parametrize("case", ["jpeg 20", "noisy", "clean", "few blocks"])
def test_fit_scores_match_their_definition(photo, case):
    image = {
        "jpeg 20": lambda: roundtrip(photo, 20)[0],
        "noisy": lambda: np.clip(
            photo + np.random.default_rng(1).normal(0, 25 / 255, photo.shape), 0, 1
        ),
        "clean": lambda: photo,
        "few blocks": lambda: photo[:40, :40],  # 25 blocks: most qualities cannot tell
    }[case]()
    y = jc.luma(image)
    h, w = (s - s % jc.BLOCK for s in y.shape)
    coefficients = jc.block_dct(y[:h, :w]).reshape(-1, jc.BLOCK, jc.BLOCK)
    expected = _scores_per_quality(coefficients)
    got = jc._scores(coefficients)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isfinite(expected).any()
    if case == "few blocks":
        assert np.isnan(expected).sum() > 50
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, equal_nan=True)

"""Degradation measurements from pixels alone: noise level and JPEG blocking."""

import numpy as np
import pytest

from unires_jax.data.degradations import specs
from unires_jax.data.sample_photos import load_sample_photos
from unires_jax.restore import analysis


@pytest.fixture(scope="module")
def photos():
    train = load_sample_photos("train")
    crops = []
    for name in ("astronaut", "china", "motorcycle_left"):
        image = train[name].astype(np.float32) / 255.0
        h, w = image.shape[:2]
        crops.append(
            image[(h - 256) // 2 : (h + 256) // 2, (w - 256) // 2 : (w + 256) // 2]
        )
    return crops


@pytest.mark.parametrize("sigma", [5, 15, 25, 50])
def test_noise_sigma_is_found_within_a_quarter(photos, sigma):
    rng = np.random.default_rng(sigma)
    for photo in photos:
        noisy = specs.parse(f"noise:{sigma}").apply(photo, rng)
        # Low rather than high: clipping at 0 and 1 removes some of the noise, and only the
        # flattest patches count.
        assert analysis.analyse(noisy).noise == pytest.approx(sigma, rel=0.25)
    flat = 0.5 + rng.normal(0, sigma / 255, (128, 128, 3))
    assert 255 * analysis.noise_sigma(flat) == pytest.approx(sigma, rel=0.06)


def test_texture_blur_and_compression_are_not_taken_for_noise(photos):
    rng = np.random.default_rng(0)
    for photo in photos:  # full-resolution crops: fur, foliage, metal
        for spec in ("jpeg:90", "jpeg:10", "blur:2"):
            assert analysis.analyse(specs.parse(spec).apply(photo, rng)).noise < 1.5
        assert analysis.analyse(photo).noise < 1.5


def test_blockiness_grows_as_jpeg_quality_falls(photos):
    rng = np.random.default_rng(0)
    for photo in photos:
        scores = [analysis.blockiness(photo)] + [
            analysis.blockiness(specs.parse(f"jpeg:{q}").apply(photo, rng))
            for q in (90, 30, 10)
        ]
        assert scores[0] < 0.25 and scores[1] < 0.3
        assert scores[2] > 0.2 and scores[3] > scores[2] and scores[3] > 0.5
        noisy = specs.parse("noise:25").apply(photo, rng)
        assert analysis.blockiness(noisy) < 0.1
        # A JPEG grid that does not start at the image corner is found too.
        shifted = specs.parse("jpeg:10").apply(photo, rng)[3:, 5:]
        assert analysis.blockiness(shifted) > 0.5

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


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_a_channel_all_black_does_not_pull_the_noise_sigma_down(photos, sigma):
    # A red flower on black: the blue channel is 0 nearly everywhere, so after clipping
    # every one of its patches touches 0 and its noise measures low.
    photo = photos[0].copy()
    photo[..., 2] = 0.0
    noisy = specs.parse(f"noise:{sigma}").apply(photo, np.random.default_rng(sigma))
    measured = [analysis._channel_sigma(noisy[..., c]) for c in range(3)]
    assert [unclipped for _, unclipped in measured] == [True, True, False]
    assert 255 * measured[2][0] < 0.8 * sigma  # what the mean used to take in
    assert analysis.analyse(noisy).noise == pytest.approx(sigma, rel=0.1)
    # A grey photo (all channels alike and all clear of the bounds): the plain mean.
    grey = np.clip(0.5 + np.random.default_rng(1).normal(0, 0.05, (64, 64, 3)), 0, 1)
    per_channel = [analysis._channel_sigma(grey[..., c])[0] for c in range(3)]
    assert analysis.noise_sigma(grey) == pytest.approx(np.mean(per_channel), rel=1e-12)


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

"""Real-ESRGAN second-order pipeline: public defaults, sampling statistics, output contract."""

import math

import numpy as np
import pytest
from skimage import data

from unires_jax.data.degradations import kernels, realesrgan


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return (data.astronaut()[::8, ::8] / 255.0).astype(np.float32)  # [64, 64, 3]


def test_config_defaults_are_the_public_x4plus_settings():
    c = realesrgan.RealESRGANConfig()
    assert c.scale == 4
    assert (c.resize_prob, c.resize_range) == ((0.2, 0.7, 0.1), (0.15, 1.5))
    assert (c.resize_prob2, c.resize_range2) == ((0.3, 0.4, 0.3), (0.3, 1.2))
    assert (c.gaussian_noise_prob, c.noise_range, c.poisson_scale_range) == (
        0.5,
        (1.0, 30.0),
        (0.05, 3.0),
    )
    assert (c.gaussian_noise_prob2, c.noise_range2, c.poisson_scale_range2) == (
        0.5,
        (1.0, 25.0),
        (0.05, 2.5),
    )
    assert c.gray_noise_prob == c.gray_noise_prob2 == 0.4
    assert c.jpeg_range == c.jpeg_range2 == (30.0, 95.0)
    assert (c.second_blur_prob, c.final_sinc_prob) == (0.8, 0.8)
    assert c.final_sinc_sizes == tuple(range(7, 22, 2))
    assert c.final_sinc_omega == (math.pi / 3, math.pi)
    assert c.kernel1.sigma == (0.2, 3.0) and c.kernel2.sigma == (0.2, 1.5)
    for k in (c.kernel1, c.kernel2):
        assert k.types == kernels.KERNEL_TYPES
        assert k.probs == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
        assert (k.betag, k.betap, k.sinc_prob) == ((0.5, 4.0), (1.0, 2.0), 0.1)
        assert k.sizes == tuple(range(7, 22, 2))


def test_sampled_choices_follow_the_configured_probabilities_and_ranges():
    draws = [
        realesrgan.sample_realesrgan_params(np.random.default_rng(s))
        for s in range(600)
    ]

    def share(pred):
        return sum(map(pred, draws)) / len(draws)

    assert abs(share(lambda d: d.resize1.factor > 1) - 0.2) < 0.06
    assert abs(share(lambda d: d.resize1.factor < 1) - 0.7) < 0.06
    assert abs(share(lambda d: d.resize2.factor == 1) - 0.3) < 0.06
    assert abs(share(lambda d: d.noise1.kind == "gaussian") - 0.5) < 0.07
    assert abs(share(lambda d: d.noise2.gray) - 0.4) < 0.07
    assert abs(share(lambda d: d.kernel2 is not None) - 0.8) < 0.06
    assert abs(share(lambda d: d.final_sinc is not None) - 0.8) < 0.06
    assert abs(share(lambda d: d.jpeg_first) - 0.5) < 0.07
    f1 = np.array([d.resize1.factor for d in draws])
    f2 = np.array([d.resize2.factor for d in draws])
    assert 0.15 <= f1.min() < 0.2 and 1.45 < f1.max() <= 1.5
    assert 0.3 <= f2.min() < 0.35 and 1.15 < f2.max() <= 1.2
    sig1 = [d.noise1.level for d in draws if d.noise1.kind == "gaussian"]
    sig2 = [d.noise2.level for d in draws if d.noise2.kind == "gaussian"]
    assert 1 <= min(sig1) < 2 and 29 < max(sig1) <= 30
    assert 1 <= min(sig2) < 2 and 24 < max(sig2) <= 25
    pois1 = [d.noise1.level for d in draws if d.noise1.kind == "poisson"]
    assert 0.05 <= min(pois1) < 0.2 and 2.85 < max(pois1) <= 3.0
    q = [d.jpeg1 for d in draws] + [d.jpeg2 for d in draws]
    assert min(q) == 30 and max(q) == 95
    assert {d.resize1.method for d in draws} == set(realesrgan.RESIZE_METHODS)
    for d in draws:
        if d.final_sinc is not None:
            assert math.pi / 3 <= d.final_sinc.omega_c <= math.pi


@pytest.mark.parametrize("seed", range(6))
def test_output_is_quarter_size_on_the_8bit_grid(image, seed):
    rng = np.random.default_rng(seed)
    lq = realesrgan.apply_realesrgan(
        image, realesrgan.sample_realesrgan_params(rng), rng
    )
    assert lq.shape == (16, 16, 3) and lq.dtype == np.float32
    assert lq.min() >= 0.0 and lq.max() <= 1.0
    np.testing.assert_allclose(lq * 255, np.rint(lq * 255), atol=1e-4)


def test_deterministic_for_a_seed_and_different_across_seeds(image):
    def run(seed):
        rng = np.random.default_rng(seed)
        return realesrgan.apply_realesrgan(
            image, realesrgan.sample_realesrgan_params(rng), rng
        )

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_many_seeds_and_sizes_run_without_error():
    rng = np.random.default_rng(0)
    for seed in range(150):
        h, w = (int(v) for v in rng.integers(4, 72, 2))
        hq = rng.uniform(size=(h, w, 3)).astype(np.float32)
        r = np.random.default_rng(seed)
        lq = realesrgan.apply_realesrgan(hq, realesrgan.sample_realesrgan_params(r), r)
        assert lq.shape == (h // 4, w // 4, 3)
        assert np.isfinite(lq).all() and lq.min() >= 0 and lq.max() <= 1


def test_odd_and_tiny_sizes_work():
    for shape in [(18, 22, 3), (4, 4, 3)]:
        hq = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
        rng = np.random.default_rng(1)
        lq = realesrgan.apply_realesrgan(
            hq, realesrgan.sample_realesrgan_params(rng), rng
        )
        assert lq.shape == (shape[0] // 4, shape[1] // 4, 3)
    with pytest.raises(ValueError, match="smaller than the scale"):
        realesrgan.apply_realesrgan(
            np.zeros((3, 8, 3), np.float32),
            realesrgan.sample_realesrgan_params(np.random.default_rng(0)),
            np.random.default_rng(0),
        )

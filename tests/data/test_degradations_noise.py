"""Noise models: Gaussian level, Real-ESRGAN Poisson statistics, shot + read variance, sRGB."""

import numpy as np

from unires_jax.data.degradations import noise


def _gray(value: float, size: int = 96) -> np.ndarray:
    return np.full((size, size, 3), value, np.float32)


def test_gaussian_noise_has_requested_sigma_and_gray_option():
    rng = np.random.default_rng(0)
    out = noise.add_gaussian_noise(_gray(0.5), 20.0, False, rng)
    assert abs((out - 0.5).std() - 20 / 255) < 0.05 * 20 / 255
    assert abs((out[..., 0] - out[..., 1]).std()) > 0.05  # independent channels
    gray = noise.add_gaussian_noise(_gray(0.5), 20.0, True, rng)
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])


def test_poisson_noise_follows_photon_count_statistics():
    # 8-bit levels 64..191 (128 distinct -> 128 photon bins per unit), tiled over the image.
    levels = np.arange(64, 192, dtype=np.float32) / 255
    image = np.tile(levels, (96, 3))[:, :, None].repeat(3, axis=2)
    assert len(np.unique(image)) == 128
    for scale in (0.5, 1.0):
        out = noise.add_poisson_noise(image, scale, False, np.random.default_rng(1))
        z = (out - image) / (np.sqrt(image / 128) * scale)
        assert abs(z.mean()) < 0.03
        assert abs(z.std() - 1) < 0.03
    gray = noise.add_poisson_noise(image, 1.0, True, np.random.default_rng(1))
    np.testing.assert_array_equal(
        gray[..., 0] - image[..., 0], gray[..., 2] - image[..., 2]
    )


def test_shot_read_noise_variance_is_signal_dependent():
    rng = np.random.default_rng(2)
    shot, read = 4e-3, 1e-4
    for x in (0.1, 0.6):
        linear = np.full((200, 200, 3), x, np.float32)
        var = (noise.add_shot_read_noise(linear, shot, read, rng) - x).var()
        np.testing.assert_allclose(var, shot * x + read, rtol=0.05)


def test_srgb_curve_round_trips():
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    np.testing.assert_allclose(
        noise.linear_to_srgb(noise.srgb_to_linear(x)), x, atol=1e-5
    )


def test_camera_noise_read_follows_shot_within_documented_bounds():
    draws = [
        noise.sample_camera_noise_params(np.random.default_rng(s)) for s in range(300)
    ]
    lo, hi = noise.CameraNoiseParams.RANGES["read"]
    for d in draws:
        assert lo <= d.read <= hi
        # log(read) = 2.18 log(shot) + 1.20 + jitter, |jitter| <= 2 * 0.26.
        assert abs(np.log(d.read) - (2.18 * np.log(d.shot) + 1.20)) <= 0.52 + 1e-9

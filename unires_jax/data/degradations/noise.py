"""Noise: additive Gaussian (GIR "noise"), Real-ESRGAN Poisson, and ISP-like shot + read noise.

The camera model follows Brooks et al. 2019 ("Unprocessing images for learned raw denoising"):
sRGB is linearised, white-balance gains are undone, signal-dependent noise with variance
shot * x + read is added in this raw-like space, and the gains and sRGB curve are re-applied, so
the noise is stronger in shadows after the tone curve and in the red and blue channels.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np

from unires_jax.data.degradations.image import (
    check_image,
    clip_unit,
    luma,
    quantize_8bit,
)


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer curve (IEC 61966-2-1), elementwise on [0, 1] floats."""
    image = np.clip(image, 0.0, 1.0)
    return np.where(
        image <= 0.04045, image / 12.92, ((image + 0.055) / 1.055) ** 2.4
    ).astype(np.float32)


def linear_to_srgb(image: np.ndarray) -> np.ndarray:
    """sRGB transfer curve, elementwise on [0, 1] floats (values are clipped first)."""
    image = np.clip(image, 0.0, 1.0)
    return np.where(
        image <= 0.0031308, image * 12.92, 1.055 * np.power(image, 1 / 2.4) - 0.055
    ).astype(np.float32)


def add_gaussian_noise(
    image: np.ndarray, sigma: float, gray: bool, rng: np.random.Generator
) -> np.ndarray:
    """Adds N(0, (sigma / 255)^2) noise: [H, W, 3] -> [H, W, 3] float32 clipped to [0, 1].

    Args:
        image: [H, W, 3] float32 in [0, 1].
        sigma: standard deviation on the 0..255 scale.
        gray: one noise value per pixel shared by the three channels (Real-ESRGAN's gray noise).
        rng: random generator.
    """
    h, w, c = image.shape
    shape = (h, w, 1) if gray else (h, w, c)
    noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma / 255.0)
    return clip_unit(image + noise)


def add_poisson_noise(
    image: np.ndarray, scale: float, gray: bool, rng: np.random.Generator
) -> np.ndarray:
    """Real-ESRGAN Poisson noise: [H, W, 3] -> [H, W, 3] float32 clipped to [0, 1].

    The image is rounded to 8-bit levels, the photon count per level is 2^ceil(log2(#distinct
    levels)) (256 for most photos), and the count noise is scaled by `scale`. With `gray`, the
    noise is computed on the BT.601 luma and shared by the three channels.
    """
    src = luma(image)[..., None] if gray else image
    levels = quantize_8bit(src)
    vals = 2.0 ** math.ceil(math.log2(max(len(np.unique(levels)), 2)))
    noisy = rng.poisson(levels.astype(np.float64) * vals).astype(
        np.float32
    ) / np.float32(vals)
    return clip_unit(image + (noisy - levels) * np.float32(scale))


# ----------------------------------------------------------------------------------------------
# GIR "noise": additive Gaussian (appendix A.1, Eq. 9).


@dataclasses.dataclass(frozen=True)
class NoiseParams:
    """Additive white Gaussian noise (GIR "noise"), independent per channel.

    Ranges (GIR appendix A.1): sigma in [1, 30] on the 0..255 scale. Representative: 20.
    """

    sigma: float

    RANGES: ClassVar[dict] = {"sigma": (1.0, 30.0)}


def sample_noise_params(rng: np.random.Generator) -> NoiseParams:
    """Draws sigma ~ U(1, 30) (0..255 scale)."""
    return NoiseParams(sigma=float(rng.uniform(*NoiseParams.RANGES["sigma"])))


def apply_noise(
    image: np.ndarray, params: NoiseParams, rng: np.random.Generator
) -> np.ndarray:
    """Gaussian noise: [H, W, 3] -> [H, W, 3] float32 in [0, 1]."""
    return add_gaussian_noise(check_image(image, "noise"), params.sigma, False, rng)


# ----------------------------------------------------------------------------------------------
# ISP-like shot + read noise.

# Brooks et al.: log(read) = 2.18 log(shot) + 1.20 + N(0, 0.26); the jitter is truncated at
# +-2 standard deviations so that the documented read-noise range is a hard bound.
_READ_SLOPE, _READ_OFFSET, _READ_STD = 2.18, 1.20, 0.26


def read_noise_bounds(shot: tuple[float, float]) -> tuple[float, float]:
    """The range of read-noise variances that `sample_camera_noise_params` can draw."""
    lo = math.exp(_READ_SLOPE * math.log(shot[0]) + _READ_OFFSET - 2 * _READ_STD)
    hi = math.exp(_READ_SLOPE * math.log(shot[1]) + _READ_OFFSET + 2 * _READ_STD)
    return lo, hi


@dataclasses.dataclass(frozen=True)
class CameraNoiseParams:
    """Signal-dependent sensor noise in linear raw-like space.

    The noise variance at linear intensity x is shot * x + read.
    Ranges: shot in [1e-4, 1.2e-2] (log-uniform); read derived from shot (Brooks et al.), within
    `read_noise_bounds(shot range)` ~ [5.2e-9, 6.2e-4]; red_gain in [1.9, 2.4]; blue_gain in
    [1.5, 1.9] (white-balance gains undone before and redone after the noise).
    """

    shot: float
    read: float
    red_gain: float = 2.0
    blue_gain: float = 1.7

    RANGES: ClassVar[dict] = {
        "shot": (1e-4, 1.2e-2),
        "read": read_noise_bounds((1e-4, 1.2e-2)),
        "red_gain": (1.9, 2.4),
        "blue_gain": (1.5, 1.9),
    }


def sample_camera_noise_params(
    rng: np.random.Generator,
    shot: tuple[float, float] = CameraNoiseParams.RANGES["shot"],
) -> CameraNoiseParams:
    """Draws shot noise log-uniformly in `shot`, read noise from it, and white-balance gains."""
    log_shot = rng.uniform(math.log(shot[0]), math.log(shot[1]))
    jitter = float(np.clip(rng.normal(0.0, _READ_STD), -2 * _READ_STD, 2 * _READ_STD))
    log_read = _READ_SLOPE * log_shot + _READ_OFFSET + jitter
    r = CameraNoiseParams.RANGES
    return CameraNoiseParams(
        shot=float(math.exp(log_shot)),
        read=float(math.exp(log_read)),
        red_gain=float(rng.uniform(*r["red_gain"])),
        blue_gain=float(rng.uniform(*r["blue_gain"])),
    )


def add_shot_read_noise(
    linear: np.ndarray, shot: float, read: float, rng: np.random.Generator
) -> np.ndarray:
    """Adds heteroscedastic noise N(0, shot * x + read) to a linear image (not clipped)."""
    std = np.sqrt(np.maximum(linear, 0.0) * np.float32(shot) + np.float32(read))
    return linear + std * rng.standard_normal(linear.shape, dtype=np.float32)


def apply_camera_noise(
    image: np.ndarray, params: CameraNoiseParams, rng: np.random.Generator
) -> np.ndarray:
    """ISP-like shot + read noise: [H, W, 3] -> [H, W, 3] float32 in [0, 1]."""
    image = check_image(image, "camera_noise")
    gains = np.array([params.red_gain, 1.0, params.blue_gain], np.float32)
    raw = srgb_to_linear(image) / gains
    noisy = add_shot_read_noise(raw, params.shot, params.read, rng)
    return clip_unit(linear_to_srgb(noisy * gains))

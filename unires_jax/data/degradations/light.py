"""Low light: under-exposure in linear space with high-ISO shot + read noise.

A short exposure scales the linear (photon) signal by `gain`; the sensor then adds noise with
variance shot * x + read relative to the (now small) signal, and the camera applies its usual
sRGB curve without brightening, which gives the dark, noisy look of LOL-style images.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np

from unires_jax.data.degradations.image import check_image, clip_unit
from unires_jax.data.degradations.noise import (
    add_shot_read_noise,
    linear_to_srgb,
    srgb_to_linear,
)


@dataclasses.dataclass(frozen=True)
class LowLightParams:
    """Darkening and sensor noise.

    Ranges: gain (exposure factor on linear intensity) in [0.03, 0.3] (log-uniform);
    gamma (extra contrast loss, out_linear = gain * x^gamma) in [1, 1.5];
    shot in [1e-4, 2e-3] and read in [1e-7, 1e-5] (log-uniform; noise variance
    shot * x + read in linear units).
    """

    gain: float
    gamma: float
    shot: float
    read: float

    RANGES: ClassVar[dict] = {
        "gain": (0.03, 0.3),
        "gamma": (1.0, 1.5),
        "shot": (1e-4, 2e-3),
        "read": (1e-7, 1e-5),
    }


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(math.exp(rng.uniform(math.log(lo_hi[0]), math.log(lo_hi[1]))))


def sample_low_light_params(rng: np.random.Generator) -> LowLightParams:
    """Draws gain, shot and read log-uniformly and gamma uniformly in the ranges above."""
    r = LowLightParams.RANGES
    return LowLightParams(
        gain=_log_uniform(rng, r["gain"]),
        gamma=float(rng.uniform(*r["gamma"])),
        shot=_log_uniform(rng, r["shot"]),
        read=_log_uniform(rng, r["read"]),
    )


def apply_low_light(
    image: np.ndarray, params: LowLightParams, rng: np.random.Generator
) -> np.ndarray:
    """Low light: [H, W, 3] -> [H, W, 3] float32 in [0, 1] (darker, noisier)."""
    image = check_image(image, "low_light")
    dark = np.float32(params.gain) * np.power(
        srgb_to_linear(image), np.float32(params.gamma)
    )
    return clip_unit(
        linear_to_srgb(add_shot_read_noise(dark, params.shot, params.read, rng))
    )

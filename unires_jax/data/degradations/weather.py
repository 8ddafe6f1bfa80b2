"""Capture-time weather: rain streaks, snow and haze (GIR appendix A.1, Eqs. 14-18).

These happen in front of the lens, before any camera or processing degradation, which is why the
composition rule only allows them first (see composition.py).

- haze: atmospheric scattering I = J t + A (1 - t), t = exp(-beta d), with a depth map d in
  [0, 1] (supplied, or a heuristic: far at the top of the frame and in bright smooth regions).
- rain: the Photoshop recipe GIR cites: monochrome noise, enlarged into drops, motion-blurred
  into streaks, contrast-stretched (Levels) and screen-blended over the image.
- snow: I_s = J (1 - Z R) + C Z R (flakes Z, binary support R, near-white chroma C), then the
  haze veil with the snow's A and beta.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np
from scipy import ndimage

from unires_jax.data.degradations.blur import convolve, line_kernel
from unires_jax.data.degradations.image import check_image, clip_unit, luma
from unires_jax.data.degradations.resize import resize_image


def estimate_depth(image: np.ndarray) -> np.ndarray:
    """Heuristic relative depth in [0, 1] (1 = far): [H, W, 3] -> [H, W] float32.

    A top-to-bottom ramp (scenes recede towards the horizon) mixed 70/30 with heavily smoothed
    brightness (sky and distant surfaces are bright and flat). A stand-in for a monocular depth
    network, which GIR used but is not available offline.
    """
    h, w = image.shape[:2]
    ramp = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None] * np.ones(
        (1, w), np.float32
    )
    # Smooth at <= 64 px on the long side (blur sigma = 1/16 of the frame), then upsample:
    # the same result at any resolution for a fixed, small cost.
    factor = max(1.0, max(h, w) / 64)
    small_size = (max(1, round(h / factor)), max(1, round(w / factor)))
    small = resize_image(luma(image)[..., None], small_size, "area")[..., 0]
    small = ndimage.gaussian_filter(small, sigma=max(small_size) / 16, mode="nearest")
    bright = resize_image(small[..., None], (h, w), "bilinear")[..., 0]
    depth = 0.7 * ramp + 0.3 * bright
    lo, hi = depth.min(), depth.max()
    return ((depth - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def _veil(
    image: np.ndarray, depth: np.ndarray, airlight: float, beta: float
) -> np.ndarray:
    t = np.exp(-beta * depth)[..., None].astype(np.float32)
    return image * t + np.float32(airlight) * (1 - t)


# ----------------------------------------------------------------------------------------------
# Haze (Eqs. 15-16).


@dataclasses.dataclass(frozen=True)
class HazeParams:
    """Atmospheric scattering haze (GIR "haze").

    Ranges (GIR appendix A.1): airlight A in [0.8, 1]; beta in [0.5, 2.5] (depth in [0, 1]).
    Representative: A 0.9, beta 1.8.
    """

    airlight: float
    beta: float

    RANGES: ClassVar[dict] = {"airlight": (0.8, 1.0), "beta": (0.5, 2.5)}


def sample_haze_params(rng: np.random.Generator) -> HazeParams:
    """Draws A ~ U(0.8, 1) and beta ~ U(0.5, 2.5)."""
    r = HazeParams.RANGES
    return HazeParams(
        airlight=float(rng.uniform(*r["airlight"])), beta=float(rng.uniform(*r["beta"]))
    )


def apply_haze(
    image: np.ndarray,
    params: HazeParams,
    rng: np.random.Generator,
    depth: np.ndarray | None = None,
) -> np.ndarray:
    """Haze: [H, W, 3] -> [H, W, 3] float32 in [0, 1]. `rng` is unused.

    Args:
        depth: optional [H, W] relative depth in [0, 1]; `estimate_depth(image)` when None.
    """
    image = check_image(image, "haze")
    depth = estimate_depth(image) if depth is None else np.asarray(depth, np.float32)
    return clip_unit(_veil(image, depth, params.airlight, params.beta))


# ----------------------------------------------------------------------------------------------
# Rain (Eq. 14).


@dataclasses.dataclass(frozen=True)
class RainParams:
    """Photoshop-style rain streaks (GIR "rain").

    Ranges: strength in [50, 100] (GIR appendix A.1; it sets how much of the noise layer passes
    the Levels cut, so higher strength means denser rain); angle in [-30, 30] degrees
    from vertical; length in [10, 40] px; drop_size in [1, 3] px (the noise-layer enlargement).
    Representative: strength 75.
    """

    strength: float
    angle: float = 0.0
    length: float = 20.0
    drop_size: float = 2.0

    RANGES: ClassVar[dict] = {
        "strength": (50.0, 100.0),
        "angle": (-30.0, 30.0),
        "length": (10.0, 40.0),
        "drop_size": (1.0, 3.0),
    }


def sample_rain_params(rng: np.random.Generator) -> RainParams:
    """Draws strength, angle, streak length and drop size uniformly in the ranges above."""
    r = RainParams.RANGES
    return RainParams(**{k: float(rng.uniform(*v)) for k, v in r.items()})


def rain_layer(
    shape: tuple[int, int], params: RainParams, rng: np.random.Generator
) -> np.ndarray:
    """Streak intensity layer [H, W] float32 in [0, 1]."""
    h, w = shape
    small = (max(1, round(h / params.drop_size)), max(1, round(w / params.drop_size)))
    # Monochrome Gaussian noise on black (negative values are clipped away).
    noise = np.maximum(rng.standard_normal(small, dtype=np.float32), 0)
    drops = resize_image(noise[..., None], (h, w), "bilinear")
    streaks = convolve(drops, line_kernel(params.length, 90.0 + params.angle))[..., 0]
    # Levels: the black point cuts the faint background so only streaks remain. Photoshop users
    # pick it by eye; here it sits a strength-dependent number of standard deviations above the
    # layer mean (2.5 at strength 50 -> few streaks, 1.0 at strength 100 -> dense rain).
    mean, std = float(streaks.mean()), float(streaks.std()) + 1e-6
    black = mean + (2.5 - 1.5 * (params.strength - 50.0) / 50.0) * std
    white = black + 2.0 * std
    return np.clip((streaks - black) / (white - black), 0.0, 1.0).astype(np.float32)


def apply_rain(
    image: np.ndarray, params: RainParams, rng: np.random.Generator
) -> np.ndarray:
    """Rain: screen blend of the streak layer, [H, W, 3] -> [H, W, 3] float32 in [0, 1]."""
    image = check_image(image, "rain")
    layer = rain_layer(image.shape[:2], params, rng)[..., None] * np.float32(0.85)
    return clip_unit(1 - (1 - image) * (1 - layer))


# ----------------------------------------------------------------------------------------------
# Snow (Eqs. 17-18).


@dataclasses.dataclass(frozen=True)
class SnowParams:
    """Snow flakes plus a snow veil (GIR "snow").

    Ranges: airlight A in [0.8, 0.95] and beta in [0.5, 1] (GIR appendix A.1); density in
    [0.002, 0.01] flakes per pixel; flake_size (largest flake radius) in [1.5, 4] px; angle of
    fall in [-30, 30] degrees from vertical; fall_length (motion smear) in [1, 8] px.
    Representative: A 0.9, beta 0.75.
    """

    airlight: float
    beta: float
    density: float = 0.005
    flake_size: float = 2.5
    angle: float = 0.0
    fall_length: float = 3.0

    RANGES: ClassVar[dict] = {
        "airlight": (0.8, 0.95),
        "beta": (0.5, 1.0),
        "density": (0.002, 0.01),
        "flake_size": (1.5, 4.0),
        "angle": (-30.0, 30.0),
        "fall_length": (1.0, 8.0),
    }


def sample_snow_params(rng: np.random.Generator) -> SnowParams:
    """Draws every field uniformly in the ranges above."""
    r = SnowParams.RANGES
    return SnowParams(**{k: float(rng.uniform(*v)) for k, v in r.items()})


def snow_mask(
    shape: tuple[int, int], params: SnowParams, rng: np.random.Generator
) -> np.ndarray:
    """Flake opacity Z: [H, W] float32 in [0, 1].

    Flakes are soft discs whose radii are spread from 0.3 to 1 times `flake_size` (far flakes are
    small), placed uniformly and smeared along the fall direction.
    """
    h, w = shape
    count = max(1, int(params.density * h * w))
    mask = np.zeros((h, w), np.float32)
    # Three size classes: each a point map blurred by a Gaussian of the class radius, rescaled so
    # an isolated flake peaks at an opacity between 0.6 and 1.
    for fraction, share in ((0.3, 0.6), (0.6, 0.3), (1.0, 0.1)):
        n = max(1, int(count * share))
        ys = rng.integers(0, h, n)
        xs = rng.integers(0, w, n)
        points = np.zeros((h, w), np.float32)
        np.add.at(points, (ys, xs), rng.uniform(0.6, 1.0, n).astype(np.float32))
        sigma = max(params.flake_size * fraction / 2, 0.3)
        blurred = ndimage.gaussian_filter(
            points, sigma=sigma, mode="constant", truncate=3.0
        )
        mask = np.maximum(mask, blurred * np.float32(2 * math.pi * sigma * sigma))
    if params.fall_length >= 1.5:
        smear = line_kernel(params.fall_length, 90.0 + params.angle)
        mask = convolve(mask[..., None], smear)[..., 0] * np.float32(
            math.sqrt(params.fall_length)
        )
    return np.clip(mask, 0.0, 1.0)


def apply_snow(
    image: np.ndarray,
    params: SnowParams,
    rng: np.random.Generator,
    depth: np.ndarray | None = None,
) -> np.ndarray:
    """Snow: [H, W, 3] -> [H, W, 3] float32 in [0, 1].

    Args:
        depth: optional [H, W] relative depth in [0, 1] for the veil; estimated when None.
    """
    image = check_image(image, "snow")
    z = snow_mask(image.shape[:2], params, rng)[..., None]
    r = (z > 0.02).astype(np.float32)
    # Chromatic map C: near-white with a slight blue cast and per-flake brightness variation.
    chroma = np.float32(0.92) + np.float32(0.08) * rng.uniform(size=z.shape).astype(
        np.float32
    )
    chroma = chroma * np.array([0.97, 0.98, 1.0], np.float32)
    snowy = image * (1 - z * r) + chroma * z * r
    depth = estimate_depth(image) if depth is None else np.asarray(depth, np.float32)
    return clip_unit(_veil(snowy, depth, params.airlight, params.beta))

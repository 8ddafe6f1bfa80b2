"""Camera-shake blur: random trajectories after Boracchi & Foi (2012), rasterised to PSFs.

The trajectory is a 2-D random walk of `num_steps` unit-speed steps (total length `max_length`
px) whose velocity has inertia, is pulled back towards the start (`centripetal`), is perturbed by
Gaussian jitter (`gaussian_term`), and occasionally jerks back (an "abrupt shake", probability
`freq_big_shakes * anxiety` per step). The PSF integrates the first `exposure` fraction of the
walk with bilinear (sub-pixel) splatting, as in the authors' `createPSFs`. Defaults match the
public code: 2000 steps, max length 60 px, anxiety ~ 0.1 U(0, 1), centripetal ~ 0.7 U(0, 1),
gaussian_term ~ 10 U(0, 1), freq_big_shakes ~ 0.2 U(0, 1), 64 px canvas.

The canvas here is sized to the trajectory and centred on its mean instead of a fixed 64 px
square, so a walk is never clipped and the blurred image stays aligned with the sharp one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np

from unires_jax.data.degradations.blur import convolve, splat_points
from unires_jax.data.degradations.image import check_image, clip_unit


@dataclasses.dataclass(frozen=True)
class CameraShakeParams:
    """One camera-shake PSF, fully determined by these numbers.

    Ranges: anxiety in [0, 0.1]; centripetal in [0, 0.7]; gaussian_term in [0, 10];
    freq_big_shakes in [0, 0.2]; init_angle in [0, 2 pi); exposure (fraction of the trajectory
    integrated) in [0.1, 1]; walk_seed in [0, 2^31) seeds the per-step jitter of the walk.
    Fixed: max_length 60 px, num_steps 2000.
    """

    anxiety: float
    centripetal: float
    gaussian_term: float
    freq_big_shakes: float
    init_angle: float
    exposure: float
    walk_seed: int
    max_length: float = 60.0
    num_steps: int = 2000

    RANGES: ClassVar[dict] = {
        "anxiety": (0.0, 0.1),
        "centripetal": (0.0, 0.7),
        "gaussian_term": (0.0, 10.0),
        "freq_big_shakes": (0.0, 0.2),
        "init_angle": (0.0, 2 * math.pi),
        "exposure": (0.1, 1.0),
        "walk_seed": (0, 2**31 - 1),
    }


def sample_camera_shake_params(rng: np.random.Generator) -> CameraShakeParams:
    """Draws the Boracchi & Foi trajectory knobs and an exposure fraction (ranges above)."""
    r = CameraShakeParams.RANGES
    return CameraShakeParams(
        anxiety=float(rng.uniform(*r["anxiety"])),
        centripetal=float(rng.uniform(*r["centripetal"])),
        gaussian_term=float(rng.uniform(*r["gaussian_term"])),
        freq_big_shakes=float(rng.uniform(*r["freq_big_shakes"])),
        init_angle=float(rng.uniform(*r["init_angle"])),
        exposure=float(rng.uniform(*r["exposure"])),
        walk_seed=int(rng.integers(0, 2**31 - 1)),
    )


def trajectory(params: CameraShakeParams) -> np.ndarray:
    """The camera path as complex positions (x + i y, in px): [num_steps] complex128, x[0] = 0."""
    p = params
    n = p.num_steps
    step = p.max_length / (n - 1)
    walk = np.random.default_rng(p.walk_seed)
    shake_draw = walk.uniform(size=n - 1)
    shake_angle = walk.uniform(size=n - 1)
    jitter = walk.standard_normal((n - 1, 2))
    jitter = jitter[:, 0] + 1j * jitter[:, 1]
    is_shake = shake_draw < p.freq_big_shakes * p.anxiety
    # An abrupt shake reverses the velocity with a random deviation of up to +-0.5 rad.
    shake_turn = np.exp(1j * (math.pi + shake_angle - 0.5))
    noise = p.anxiety * p.gaussian_term * jitter * step
    pull = p.anxiety * p.centripetal * step

    v0 = complex(math.cos(p.init_angle), math.sin(p.init_angle))
    v = v0 * p.anxiety if p.anxiety > 0 else v0 * step
    positions = [0j]
    pos = 0j
    # The velocity update depends on the previous velocity and position (inertia and pull), so
    # this loop is inherently sequential; on Python complex scalars it takes ~1 ms per 2000 steps.
    for jitter_t, shake_t, turn_t in zip(
        noise.tolist(), is_shake.tolist(), shake_turn.tolist()
    ):
        dv = jitter_t - pull * pos
        if shake_t:
            dv += 2 * v * turn_t
        v = v + dv
        mag = abs(v)
        v = v / mag * step if mag > 0 else v0 * step
        pos = pos + v
        positions.append(pos)
    return np.array(positions, np.complex128)


def camera_shake_kernel(params: CameraShakeParams) -> np.ndarray:
    """Rasterises the first `exposure` of the trajectory: [K, K] float32, >= 0, sums to 1.

    Sample t (0-based) carries weight clip(exposure * N - t, 0, 1), i.e. the continuous
    version of `createPSFs`' per-sample proportions; K is odd and the PSF is centred on the mean
    of the integrated positions.
    """
    x = trajectory(params)
    n = len(x)
    weights = np.clip(params.exposure * n - np.arange(n), 0.0, 1.0)
    keep = weights > 0
    x, weights = x[keep], weights[keep]
    centre = np.sum(x * weights) / np.sum(weights)
    rel = x - centre
    half = math.ceil(max(np.abs(rel.real).max(), np.abs(rel.imag).max())) + 1
    size = 2 * half + 1
    return splat_points(rel.real + half, rel.imag + half, weights, size)


def apply_camera_shake(
    image: np.ndarray, params: CameraShakeParams, rng: np.random.Generator
) -> np.ndarray:
    """Blurs the whole frame with the shake PSF: [H, W, 3] -> [H, W, 3] float32 in [0, 1].

    `rng` is unused (the walk is seeded by `params.walk_seed`).
    """
    image = check_image(image, "camera_shake")
    return clip_unit(convolve(image, camera_shake_kernel(params)))

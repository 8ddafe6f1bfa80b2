"""The four UniRes training tasks as degradations, and fixed evaluation degradations.

Every function maps an HQ image [H, W, 3] float32 in [0, 1] and a numpy Generator to an LQ image
of the same size (UniRes conditions on an x1 LQ image; super-resolution inputs are upsampled
back to the HQ size). All are module-level functions so that grain can pickle them into worker
processes.

| task      | prompt             | LQ synthesis                                                  |
|-----------|--------------------|---------------------------------------------------------------|
| "sr"      | "Super-resolution" | Real-ESRGAN second-order pipeline at x4, bicubic back up      |
| "motion"  | "Motion-deblur"    | OID-Motion: camera-shake PSF, Gaussian lens blur, shot + read |
|           |                    | noise, JPEG                                                   |
| "defocus" | "Defocus-deblur"   | disk / lens PSF                                               |
| "denoise" | "Denoise"          | ISP shot + read noise, or Gaussian sigma up to 50/255 (1/2)   |
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from unires_jax.data.degradations import kernels
from unires_jax.data.degradations.blur import (
    DefocusParams,
    apply_defocus,
    convolve,
    line_kernel,
    sample_defocus_params,
)
from unires_jax.data.degradations.camera_shake import (
    apply_camera_shake,
    sample_camera_shake_params,
)
from unires_jax.data.degradations.image import check_image, clip_unit
from unires_jax.data.degradations.jpeg import jpeg_roundtrip
from unires_jax.data.degradations.noise import (
    add_gaussian_noise,
    apply_camera_noise,
    sample_camera_noise_params,
)
from unires_jax.data.degradations.realesrgan import (
    apply_realesrgan,
    sample_realesrgan_params,
)
from unires_jax.data.degradations.resize import ResizeParams, apply_resize, resize_image
from unires_jax.prompts import TASK_PROMPTS  # noqa: F401 (re-exported for the data pipeline)

# OID-Motion extras (UniRes supplement B.2 names them without values; these keep them mild so
# the camera shake dominates): Gaussian lens-blur sigma (px), shot-noise variance range, JPEG
# quality range.
MOTION_LENS_SIGMA = (0.0, 1.0)
MOTION_SHOT_NOISE = (1e-4, 3e-3)
MOTION_JPEG_QUALITY = (60, 95)
# Denoise: probability of ISP shot + read noise (else Gaussian), Gaussian sigma range (0..255).
DENOISE_CAMERA_PROB = 0.5
DENOISE_GAUSSIAN_SIGMA = (1.0, 50.0)


def degrade_sr(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Real-ESRGAN x4 degradation, then bicubic upsampling to the HQ size: [H, W, 3] -> same."""
    hq = check_image(hq, "sr")
    lq = apply_realesrgan(hq, sample_realesrgan_params(rng), rng)
    return clip_unit(resize_image(lq, hq.shape[:2], "bicubic"))


def degrade_motion(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """OID-Motion-style degradation (whole-frame camera shake): [H, W, 3] -> same."""
    hq = check_image(hq, "motion")
    out = apply_camera_shake(hq, sample_camera_shake_params(rng), rng)
    sigma = float(rng.uniform(*MOTION_LENS_SIGMA))
    if sigma > 0.05:
        size = 2 * int(np.ceil(3 * sigma)) + 1
        out = clip_unit(convolve(out, kernels.gaussian_kernel(size, sigma, sigma)))
    out = apply_camera_noise(
        out, sample_camera_noise_params(rng, MOTION_SHOT_NOISE), rng
    )
    lo, hi = MOTION_JPEG_QUALITY
    return jpeg_roundtrip(out, int(rng.integers(lo, hi + 1)))


def degrade_defocus(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Defocus (disk / lens) blur with a random radius in [1, 8] px: [H, W, 3] -> same."""
    return apply_defocus(check_image(hq, "defocus"), sample_defocus_params(rng), rng)


def degrade_denoise(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shot + read camera noise, or Gaussian noise with sigma ~ U(1, 50)/255: [H, W, 3] -> same."""
    hq = check_image(hq, "denoise")
    if rng.uniform() < DENOISE_CAMERA_PROB:
        return apply_camera_noise(hq, sample_camera_noise_params(rng), rng)
    return canonical_denoise(hq, rng)


TASK_DEGRADATIONS: dict[
    str, Callable[[np.ndarray, np.random.Generator], np.ndarray]
] = {
    "sr": degrade_sr,
    "motion": degrade_motion,
    "defocus": degrade_defocus,
    "denoise": degrade_denoise,
}


# ----------------------------------------------------------------------------------------------
# Canonical (textbook) degradations: one clean operator per task, as benchmarks and the demo use
# them. The paper's recipe above models real cameras; a model trained only on it under-serves the
# textbook cases (e.g. a plain bicubic x4 input looks nothing like a Real-ESRGAN second-order one).
# Each may add mild Gaussian noise so that blur + noise inputs are not out of distribution.

CANONICAL_SR_SCALE = (2.0, 4.0)
CANONICAL_MOTION_LENGTH = (3.0, 25.0)  # px
CANONICAL_DEFOCUS_RADIUS = (1.0, 6.0)  # px
CANONICAL_NOISE_PROB = 0.3
CANONICAL_NOISE_SIGMA = (1.0, 25.0)  # 0..255
MIXED_CANONICAL_PROB = 0.5


def _maybe_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.uniform() < CANONICAL_NOISE_PROB:
        return add_gaussian_noise(image, float(rng.uniform(*CANONICAL_NOISE_SIGMA)), False, rng)
    return image


def canonical_sr(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Antialiased bicubic downscale by U(2, 4), bicubic back up, maybe noise: [H, W, 3] -> same."""
    hq = check_image(hq, "sr")
    scale = float(rng.uniform(*CANONICAL_SR_SCALE))
    return _maybe_noise(clip_unit(apply_resize(hq, ResizeParams(scale=scale), rng)), rng)


def canonical_motion(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Straight motion blur, length U(3, 25) px at a uniform angle, maybe noise."""
    hq = check_image(hq, "motion")
    kernel = line_kernel(float(rng.uniform(*CANONICAL_MOTION_LENGTH)), float(rng.uniform(0, 180)))
    return _maybe_noise(clip_unit(convolve(hq, kernel)), rng)


def canonical_defocus(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ideal disk blur of radius U(1, 6) px, maybe noise."""
    hq = check_image(hq, "defocus")
    params = DefocusParams(radius=float(rng.uniform(*CANONICAL_DEFOCUS_RADIUS)), softness=0.0)
    return _maybe_noise(apply_defocus(hq, params, rng), rng)


def canonical_denoise(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with sigma ~ U(1, 50)/255."""
    hq = check_image(hq, "denoise")
    return add_gaussian_noise(hq, float(rng.uniform(*DENOISE_GAUSSIAN_SIGMA)), False, rng)


CANONICAL_DEGRADATIONS: dict[
    str, Callable[[np.ndarray, np.random.Generator], np.ndarray]
] = {
    "sr": canonical_sr,
    "motion": canonical_motion,
    "defocus": canonical_defocus,
    "denoise": canonical_denoise,
}


def _mixed(task: str, hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.uniform() < MIXED_CANONICAL_PROB:
        return CANONICAL_DEGRADATIONS[task](hq, rng)
    return TASK_DEGRADATIONS[task](hq, rng)


# Named training recipes (data config key `degradation_recipe`).
DEGRADATION_RECIPES: dict[
    str, dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]]
] = {
    "paper": TASK_DEGRADATIONS,
    "canonical": CANONICAL_DEGRADATIONS,
    # Half the time the canonical degradation, else the paper's (partials pickle for grain).
    "mixed": {task: functools.partial(_mixed, task) for task in TASK_DEGRADATIONS},
}


def degrade_for_task(task: str, hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Synthesises the LQ input of a UniRes training task.

    Args:
        task: one of "sr", "motion", "defocus", "denoise".
        hq: [H, W, 3] float32 in [0, 1] (H, W >= 4 for "sr").
        rng: random generator; the same generator state gives the same LQ.

    Returns:
        [H, W, 3] float32 in [0, 1].
    """
    if task not in TASK_DEGRADATIONS:
        raise KeyError(
            f"unires_jax/data/degradations/tasks.py: unknown task {task!r}; expected one of "
            f"{sorted(TASK_DEGRADATIONS)}."
        )
    return TASK_DEGRADATIONS[task](hq, rng)


# ----------------------------------------------------------------------------------------------
# Fixed evaluation degradations (demo cases).

FIXED_MOTION_LENGTH = 15.0  # px
FIXED_MOTION_ANGLE = 45.0  # degrees counter-clockwise from horizontal
FIXED_DEFOCUS_RADIUS = 4.0  # px


def noise25(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with sigma 25/255 per channel (the only one that uses `rng`)."""
    return add_gaussian_noise(check_image(hq, "noise25"), 25.0, False, rng)


def sr_x4_bicubic(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x4 antialiased bicubic downscale (MATLAB imresize-style), bicubic upscale back."""
    return apply_resize(hq, ResizeParams(scale=4.0), rng)


def fixed_motion(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Straight motion blur of 15 px at 45 degrees."""
    hq = check_image(hq, "motion")
    return clip_unit(convolve(hq, line_kernel(FIXED_MOTION_LENGTH, FIXED_MOTION_ANGLE)))


def fixed_defocus(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ideal disk defocus of radius 4 px."""
    return apply_defocus(
        hq, DefocusParams(radius=FIXED_DEFOCUS_RADIUS, softness=0.0), rng
    )


FIXED_DEGRADATIONS: dict[
    str, Callable[[np.ndarray, np.random.Generator], np.ndarray]
] = {
    "noise25": noise25,
    "sr_x4_bicubic": sr_x4_bicubic,
    "motion": fixed_motion,
    "defocus": fixed_defocus,
}


def fixed_degradation(
    name: str, hq: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A fixed-parameter evaluation degradation: [H, W, 3] -> [H, W, 3] float32 in [0, 1].

    Args:
        name: "noise25" (Gaussian sigma 25/255), "sr_x4_bicubic" (x4 bicubic down + up),
            "motion" (straight 15 px blur at 45 degrees), "defocus" (disk of radius 4 px).
        hq: [H, W, 3] float32 in [0, 1].
        rng: only "noise25" draws from it; the others are deterministic.
    """
    if name not in FIXED_DEGRADATIONS:
        raise KeyError(
            f"unires_jax/data/degradations/tasks.py: unknown fixed degradation {name!r}; "
            f"expected one of {sorted(FIXED_DEGRADATIONS)}."
        )
    return FIXED_DEGRADATIONS[name](hq, rng)

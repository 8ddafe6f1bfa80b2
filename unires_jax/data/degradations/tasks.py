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

That is the "paper" recipe. `DEGRADATION_RECIPES` also names "canonical" (one textbook operator
per task), "mixed" (half paper, half canonical) and "broad" (the default model's: the ranges
users meet on real photos, from nearly clean to heavy, alone and mixed; see `broad_denoise`,
`broad_motion`, `broad_defocus`, `broad_sr`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np

from unires_jax.data.degradations import kernels
from unires_jax.data.degradations.blur import (
    BlurParams,
    DefocusParams,
    apply_blur,
    apply_defocus,
    convolve,
    line_kernel,
    sample_defocus_params,
)
from unires_jax.data.degradations.camera_shake import (
    apply_camera_shake,
    sample_camera_shake_params,
)
from unires_jax.data.degradations.image import check_image, clip_unit, quantize_8bit
from unires_jax.data.degradations.jpeg import jpeg_roundtrip
from unires_jax.data.degradations.noise import (
    add_gaussian_noise,
    add_shot_read_noise,
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
        return add_gaussian_noise(
            image, float(rng.uniform(*CANONICAL_NOISE_SIGMA)), False, rng
        )
    return image


def canonical_sr(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Antialiased bicubic downscale by U(2, 4), bicubic back up, maybe noise: [H, W, 3] -> same."""
    hq = check_image(hq, "sr")
    scale = float(rng.uniform(*CANONICAL_SR_SCALE))
    return _maybe_noise(
        clip_unit(apply_resize(hq, ResizeParams(scale=scale), rng)), rng
    )


def canonical_motion(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Straight motion blur, length U(3, 25) px at a uniform angle, maybe noise."""
    hq = check_image(hq, "motion")
    kernel = line_kernel(
        float(rng.uniform(*CANONICAL_MOTION_LENGTH)), float(rng.uniform(0, 180))
    )
    return _maybe_noise(clip_unit(convolve(hq, kernel)), rng)


def canonical_defocus(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ideal disk blur of radius U(1, 6) px, maybe noise."""
    hq = check_image(hq, "defocus")
    params = DefocusParams(
        radius=float(rng.uniform(*CANONICAL_DEFOCUS_RADIUS)), softness=0.0
    )
    return _maybe_noise(apply_defocus(hq, params, rng), rng)


def canonical_denoise(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with sigma ~ U(1, 50)/255."""
    hq = check_image(hq, "denoise")
    return add_gaussian_noise(
        hq, float(rng.uniform(*DENOISE_GAUSSIAN_SIGMA)), False, rng
    )


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


# ----------------------------------------------------------------------------------------------
# Broad degradations (the default model's recipe): the ranges users meet on real photos, from
# nearly clean to heavy, alone and mixed. Every LQ is rounded to 8-bit levels, as photos are.
# Each task's distribution is in its function's docstring; the numbers live in these tables.

# Denoise: branch -> probability, in this order.
BROAD_DENOISE_BRANCHES = {
    "near_clean": 0.10,  # Gaussian sigma U(0.5, 5), then JPEG q U(85, 95) with p 0.5
    "gaussian": 0.30,  # sigma U(0, 50), channel-shared (grey) with p 0.2
    "signal_dependent": 0.20,  # camera (linear-space) or sRGB Poisson-Gaussian, half each
    "jpeg": 0.15,  # JPEG alone, q U(10, 95)
    "noise_jpeg": 0.15,  # Gaussian sigma U(2, 30) (grey p 0.2), then JPEG q U(20, 90)
    "blur_noise_jpeg": 0.10,  # Gaussian blur sigma U(0.3, 1.2), noise U(2, 25), JPEG U(30, 90)
}
BROAD_NEAR_CLEAN_SIGMA = (0.5, 5.0)
BROAD_NEAR_CLEAN_JPEG = (85, 95)
BROAD_GAUSSIAN_SIGMA = (0.0, 50.0)
BROAD_GRAY_NOISE_PROB = 0.2
BROAD_CAMERA_SHOT = (
    1e-4,
    3e-2,
)  # shot-noise variance, log-uniform: up to ~43/255 at mid-grey
BROAD_SRGB_SHOT = (1e-4, 4e-2)  # sRGB variance per unit intensity, log-uniform
BROAD_SRGB_READ_SIGMA = (0.0, 15.0)  # 0..255 scale
BROAD_JPEG_QUALITY = (10, 95)
BROAD_NOISE_JPEG = ((2.0, 30.0), (20, 90))  # (sigma, quality)
BROAD_MIXED_BLUR_SIGMA = (0.3, 1.2)
BROAD_MIXED = ((2.0, 25.0), (30, 90))  # (sigma, quality) after the blur
# Blur and SR tasks: mild extras, each drawn independently.
BROAD_MILD_NOISE = (
    0.35,
    (1.0, 10.0),
)  # (probability, Gaussian sigma); half of it camera noise
BROAD_MILD_JPEG = (0.35, (60, 95))  # (probability, quality)
BROAD_MOTION_LINE_PROB = 0.4  # else camera shake
BROAD_MOTION_LINE_LENGTH = (3.0, 25.0)  # px
BROAD_SHAKE_MAX_LENGTH = (10.0, 40.0)  # px, before the exposure fraction U(0.1, 1)
BROAD_DEFOCUS_DISK_PROB = 0.5  # else Gaussian
BROAD_DEFOCUS_RADIUS = (1.0, 6.0)  # px
BROAD_DEFOCUS_SOFTNESS = (0.0, 0.5)  # px
BROAD_GAUSSIAN_BLUR_SIGMA = (0.5, 3.0)  # px
BROAD_SR_SCALE = (2.0, 4.0)
BROAD_SR_REALESRGAN_PROB = 0.15  # the paper's Real-ESRGAN x4 second-order pipeline
# Downscale kernels: antialiased bicubic (the benchmark operator), area (box), bilinear without
# antialiasing (aliased, like a cheap resize), a random Real-ESRGAN blur kernel then bicubic.
BROAD_SR_DOWN = {"bicubic_aa": 0.5, "area": 0.2, "bilinear": 0.1, "kernel": 0.2}
BROAD_SR_KERNELS = kernels.KernelRanges(sigma=(0.6, 2.5), sinc_prob=0.0)


def _pick(table: dict[str, float], rng: np.random.Generator) -> str:
    names = list(table)
    return names[int(rng.choice(len(names), p=np.asarray(list(table.values()))))]


def _gaussian(image: np.ndarray, sigma_range, rng: np.random.Generator) -> np.ndarray:
    sigma = float(rng.uniform(*sigma_range))
    return add_gaussian_noise(
        image, sigma, bool(rng.uniform() < BROAD_GRAY_NOISE_PROB), rng
    )


def _jpeg(image: np.ndarray, quality_range, rng: np.random.Generator) -> np.ndarray:
    return jpeg_roundtrip(
        image, int(rng.integers(quality_range[0], quality_range[1] + 1))
    )


def _gaussian_blur(
    image: np.ndarray, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    size = 2 * int(np.ceil(3 * sigma)) + 1
    return apply_blur(image, BlurParams(kernel_size=size, sigma=sigma), rng)


def _signal_dependent(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.uniform() < 0.5:
        params = sample_camera_noise_params(rng, BROAD_CAMERA_SHOT)
        return apply_camera_noise(image, params, rng)
    shot = float(np.exp(rng.uniform(*np.log(BROAD_SRGB_SHOT))))
    read = (float(rng.uniform(*BROAD_SRGB_READ_SIGMA)) / 255.0) ** 2
    return clip_unit(add_shot_read_noise(image, shot, read, rng))


def _mild_extras(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Maybe mild noise (Gaussian or camera), then maybe high-quality JPEG."""
    p_noise, sigma = BROAD_MILD_NOISE
    if rng.uniform() < p_noise:
        if rng.uniform() < 0.5:
            image = _gaussian(image, sigma, rng)
        else:
            image = apply_camera_noise(
                image, sample_camera_noise_params(rng, MOTION_SHOT_NOISE), rng
            )
    p_jpeg, quality = BROAD_MILD_JPEG
    if rng.uniform() < p_jpeg:
        image = _jpeg(image, quality, rng)
    return image


def broad_denoise(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise and JPEG over the ranges users meet, alone and mixed: [H, W, 3] -> same.

    Branches (`BROAD_DENOISE_BRANCHES`): near-clean 10% (Gaussian sigma U(0.5, 5)/255, then
    JPEG q U(85, 95) half the time: the model learns to leave clean photos alone); Gaussian
    30% (sigma U(0, 50)/255, channel-shared 20% of the time); signal-dependent 20% (half ISP
    shot + read noise in linear space with shot variance log-U(1e-4, 3e-2), up to ~43/255 at
    mid-grey; half Poisson-Gaussian in sRGB, variance a x + b, a log-U(1e-4, 4e-2), sqrt(b)
    U(0, 15)/255); JPEG alone 15% (q U(10, 95)); Gaussian noise U(2, 30) then JPEG U(20, 90)
    15%; Gaussian blur sigma U(0.3, 1.2) px + noise U(2, 25) + JPEG U(30, 90) 10%.
    """
    hq = check_image(hq, "denoise")
    branch = _pick(BROAD_DENOISE_BRANCHES, rng)
    if branch == "near_clean":
        out = add_gaussian_noise(
            hq, float(rng.uniform(*BROAD_NEAR_CLEAN_SIGMA)), False, rng
        )
        if rng.uniform() < 0.5:
            out = _jpeg(out, BROAD_NEAR_CLEAN_JPEG, rng)
    elif branch == "gaussian":
        out = _gaussian(hq, BROAD_GAUSSIAN_SIGMA, rng)
    elif branch == "signal_dependent":
        out = _signal_dependent(hq, rng)
    elif branch == "jpeg":
        out = _jpeg(hq, BROAD_JPEG_QUALITY, rng)
    elif branch == "noise_jpeg":
        sigma, quality = BROAD_NOISE_JPEG
        out = _jpeg(_gaussian(hq, sigma, rng), quality, rng)
    else:
        sigma, quality = BROAD_MIXED
        out = _gaussian_blur(hq, float(rng.uniform(*BROAD_MIXED_BLUR_SIGMA)), rng)
        out = _jpeg(_gaussian(out, sigma, rng), quality, rng)
    return quantize_8bit(out)


def broad_motion(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Straight or camera-shake motion blur, maybe mild noise / JPEG: [H, W, 3] -> same.

    40% a straight blur of length U(3, 25) px at a uniform angle; 60% a Boracchi & Foi camera
    shake (curved, with jerks) whose trajectory is U(10, 40) px long before the exposure
    fraction U(0.1, 1). Then `_mild_extras`: with p 0.35 noise (Gaussian sigma U(1, 10)/255 or
    mild camera noise), with p 0.35 JPEG q U(60, 95).
    """
    hq = check_image(hq, "motion")
    if rng.uniform() < BROAD_MOTION_LINE_PROB:
        length = float(rng.uniform(*BROAD_MOTION_LINE_LENGTH))
        out = clip_unit(convolve(hq, line_kernel(length, float(rng.uniform(0, 180)))))
    else:
        params = dataclasses.replace(
            sample_camera_shake_params(rng),
            max_length=float(rng.uniform(*BROAD_SHAKE_MAX_LENGTH)),
        )
        out = apply_camera_shake(hq, params, rng)
    return quantize_8bit(_mild_extras(out, rng))


def broad_defocus(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Disk defocus or Gaussian blur, maybe mild noise / JPEG: [H, W, 3] -> same.

    50% a disk (thin-lens) PSF of radius U(1, 6) px softened by a Gaussian of U(0, 0.5) px;
    50% a Gaussian blur of sigma U(0.5, 3) px. Then `_mild_extras` (as `broad_motion`).
    """
    hq = check_image(hq, "defocus")
    if rng.uniform() < BROAD_DEFOCUS_DISK_PROB:
        params = DefocusParams(
            radius=float(rng.uniform(*BROAD_DEFOCUS_RADIUS)),
            softness=float(rng.uniform(*BROAD_DEFOCUS_SOFTNESS)),
        )
        out = apply_defocus(hq, params, rng)
    else:
        out = _gaussian_blur(hq, float(rng.uniform(*BROAD_GAUSSIAN_BLUR_SIGMA)), rng)
    return quantize_8bit(_mild_extras(out, rng))


def broad_sr(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x2-x4 downscale with several kernels, maybe mild noise / JPEG, bicubic back up.

    15%: the paper's Real-ESRGAN x4 second-order pipeline (`degrade_sr`). Otherwise a scale
    U(2, 4) with the kernel drawn from `BROAD_SR_DOWN`: antialiased bicubic 50%, area 20%,
    bilinear without antialiasing 10%, a random Real-ESRGAN kernel (iso / aniso / generalized /
    plateau Gaussian, sigma U(0.6, 2.5) px) then plain bicubic 20%. The small image is rounded
    to 8 bits, `_mild_extras` adds a low-resolution photo's noise and JPEG, and torch-style
    bicubic upsampling brings it back to [H, W] (what `unires restore` does to a small input).
    """
    hq = check_image(hq, "sr")
    if rng.uniform() < BROAD_SR_REALESRGAN_PROB:
        return quantize_8bit(degrade_sr(hq, rng))
    h, w = hq.shape[:2]
    scale = float(rng.uniform(*BROAD_SR_SCALE))
    small = (max(1, round(h / scale)), max(1, round(w / scale)))
    down = _pick(BROAD_SR_DOWN, rng)
    if down == "kernel":
        kernel = kernels.make_kernel(
            kernels.sample_kernel_params(rng, BROAD_SR_KERNELS)
        )
        lq = resize_image(convolve(hq, kernel), small, "bicubic")
    else:
        lq = resize_image(hq, small, down)
    lq = _mild_extras(quantize_8bit(lq), rng)  # an 8-bit small photo
    return quantize_8bit(clip_unit(resize_image(lq, (h, w), "bicubic")))


BROAD_DEGRADATIONS: dict[
    str, Callable[[np.ndarray, np.random.Generator], np.ndarray]
] = {
    "sr": broad_sr,
    "motion": broad_motion,
    "defocus": broad_defocus,
    "denoise": broad_denoise,
}


# Named training recipes (data config key `degradation_recipe`).
DEGRADATION_RECIPES: dict[
    str, dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]]
] = {
    "paper": TASK_DEGRADATIONS,
    "canonical": CANONICAL_DEGRADATIONS,
    # Half the time the canonical degradation, else the paper's (partials pickle for grain).
    "mixed": {task: functools.partial(_mixed, task) for task in TASK_DEGRADATIONS},
    # The ranges users meet, clean-ish to heavy and mixed (the default model's recipe).
    "broad": BROAD_DEGRADATIONS,
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

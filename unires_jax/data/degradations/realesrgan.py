"""Real-ESRGAN second-order degradation pipeline (the UniRes super-resolution task).

Order, as in Real-ESRGAN's `RealESRNetModel.feed_data`, for an HQ image of size H x W and scale s:

1. blur (kernel1) -> random resize (up / down / keep) -> Gaussian or Poisson noise -> JPEG
2. blur (kernel2, with probability 0.8) -> random resize relative to H/s -> noise
3. either [resize to H/s x W/s + final sinc] then JPEG, or JPEG then [resize + final sinc]
   (probability 1/2 each; the final sinc is applied with probability 0.8, else identity)
4. round to 8 bits.

Every number of the public config `train_realesrnet_x4plus.yml` / `realesrgan_dataset.py` lives
in `RealESRGANConfig`. Known differences: JPEG goes through Pillow at an integer quality instead
of the differentiable JPEG at a real-valued quality; resizes with a scale factor use the in/out
size ratio for sampling positions instead of 1/scale_factor (a sub-pixel difference); the
ground-truth unsharp mask (`gt_usm`) is not part of the LQ synthesis (see artifacts.usm_sharpen).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from unires_jax.data.degradations import kernels
from unires_jax.data.degradations.blur import convolve
from unires_jax.data.degradations.image import check_image, clip_unit, quantize_8bit
from unires_jax.data.degradations.jpeg import jpeg_roundtrip
from unires_jax.data.degradations.noise import add_gaussian_noise, add_poisson_noise
from unires_jax.data.degradations.resize import resize_image

RESIZE_METHODS = ("area", "bilinear", "bicubic")


@dataclasses.dataclass(frozen=True)
class RealESRGANConfig:
    """The public Real-ESRGAN (x4plus) degradation settings.

    Attributes:
        scale: output is (H // scale, W // scale).
        kernel1, kernel2: blur-kernel ranges of the two orders (sigma [0.2, 3] and [0.2, 1.5],
            sizes 7..21, sinc probability 0.1, kind probabilities 0.45/0.25/0.12/0.03/0.12/0.03).
        second_blur_prob: probability of the second-order blur.
        final_sinc_prob: probability of the final sinc filter; its sizes are 7..21 and omega_c
            ~ U(pi/3, pi).
        resize_prob, resize_prob2: probabilities of (up, down, keep).
        resize_range, resize_range2: (down lower bound, up upper bound) of the scale factor.
        gaussian_noise_prob, gaussian_noise_prob2: Gaussian (else Poisson) noise probability.
        noise_range, noise_range2: Gaussian sigma ranges on the 0..255 scale.
        poisson_scale_range, poisson_scale_range2: Poisson noise scale ranges.
        gray_noise_prob, gray_noise_prob2: probability of channel-shared (gray) noise.
        jpeg_range, jpeg_range2: JPEG quality ranges.
    """

    scale: int = 4
    kernel1: kernels.KernelRanges = kernels.FIRST_ORDER_RANGES
    kernel2: kernels.KernelRanges = kernels.SECOND_ORDER_RANGES
    second_blur_prob: float = 0.8
    final_sinc_prob: float = 0.8
    final_sinc_sizes: tuple[int, ...] = tuple(range(7, 22, 2))
    final_sinc_omega: tuple[float, float] = (math.pi / 3, math.pi)
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, float] = (0.15, 1.5)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    jpeg_range2: tuple[float, float] = (30.0, 95.0)


@dataclasses.dataclass(frozen=True)
class ResizeStep:
    """A random resize: `factor` relative to the stage's reference size, with `method`."""

    factor: float
    method: str


@dataclasses.dataclass(frozen=True)
class NoiseStep:
    """Gaussian (level = sigma on 0..255) or Poisson (level = scale) noise, maybe gray."""

    kind: str
    level: float
    gray: bool


@dataclasses.dataclass(frozen=True)
class RealESRGANParams:
    """Every random choice of one Real-ESRGAN degradation (noise fields are drawn at apply)."""

    scale: int
    kernel1: kernels.KernelParams
    resize1: ResizeStep
    noise1: NoiseStep
    jpeg1: int
    kernel2: kernels.KernelParams | None
    resize2: ResizeStep
    noise2: NoiseStep
    final_sinc: kernels.KernelParams | None
    final_method: str
    jpeg_first: bool
    jpeg2: int


def _resize_step(rng, probs, lo_hi) -> ResizeStep:
    kind = rng.choice(3, p=np.asarray(probs))
    if kind == 0:
        factor = rng.uniform(1.0, lo_hi[1])
    elif kind == 1:
        factor = rng.uniform(lo_hi[0], 1.0)
    else:
        factor = 1.0
    return ResizeStep(float(factor), str(rng.choice(RESIZE_METHODS)))


def _noise_step(rng, gaussian_prob, sigma_range, poisson_range, gray_prob) -> NoiseStep:
    if rng.uniform() < gaussian_prob:
        kind, level = "gaussian", rng.uniform(*sigma_range)
    else:
        kind, level = "poisson", rng.uniform(*poisson_range)
    return NoiseStep(kind, float(level), bool(rng.uniform() < gray_prob))


def _quality(rng, lo_hi) -> int:
    return round(rng.uniform(*lo_hi))


def sample_realesrgan_params(
    rng: np.random.Generator, config: RealESRGANConfig = RealESRGANConfig()
) -> RealESRGANParams:
    """Draws all random choices of the second-order pipeline from `config` (public defaults)."""
    c = config
    kernel1 = kernels.sample_kernel_params(rng, c.kernel1)
    resize1 = _resize_step(rng, c.resize_prob, c.resize_range)
    noise1 = _noise_step(
        rng,
        c.gaussian_noise_prob,
        c.noise_range,
        c.poisson_scale_range,
        c.gray_noise_prob,
    )
    jpeg1 = _quality(rng, c.jpeg_range)
    kernel2 = (
        kernels.sample_kernel_params(rng, c.kernel2)
        if rng.uniform() < c.second_blur_prob
        else None
    )
    resize2 = _resize_step(rng, c.resize_prob2, c.resize_range2)
    noise2 = _noise_step(
        rng,
        c.gaussian_noise_prob2,
        c.noise_range2,
        c.poisson_scale_range2,
        c.gray_noise_prob2,
    )
    final_sinc = None
    if rng.uniform() < c.final_sinc_prob:
        size = int(rng.choice(c.final_sinc_sizes))
        final_sinc = kernels.sample_sinc_params(rng, size, c.final_sinc_omega)
    return RealESRGANParams(
        scale=c.scale,
        kernel1=kernel1,
        resize1=resize1,
        noise1=noise1,
        jpeg1=jpeg1,
        kernel2=kernel2,
        resize2=resize2,
        noise2=noise2,
        final_sinc=final_sinc,
        final_method=str(rng.choice(RESIZE_METHODS)),
        jpeg_first=bool(rng.uniform() < 0.5),
        jpeg2=_quality(rng, c.jpeg_range2),
    )


def _add_noise(
    image: np.ndarray, step: NoiseStep, rng: np.random.Generator
) -> np.ndarray:
    if step.kind == "gaussian":
        return add_gaussian_noise(image, step.level, step.gray, rng)
    return add_poisson_noise(image, step.level, step.gray, rng)


def apply_realesrgan(
    image: np.ndarray, params: RealESRGANParams, rng: np.random.Generator
) -> np.ndarray:
    """Degrades an HQ image: [H, W, 3] -> [H // scale, W // scale, 3] float32 on the 8-bit grid.

    Args:
        image: [H, W, 3] float32 in [0, 1], H and W >= scale.
        params: from `sample_realesrgan_params`.
        rng: draws the noise fields.
    """
    image = check_image(image, "realesrgan")
    h, w = image.shape[:2]
    s = params.scale
    if h < s or w < s:
        raise ValueError(
            f"realesrgan.py: image {h}x{w} is smaller than the scale factor {s}."
        )

    # First order.
    out = convolve(image, kernels.make_kernel(params.kernel1))
    f1 = params.resize1.factor
    out = resize_image(
        out, (max(1, int(h * f1)), max(1, int(w * f1))), params.resize1.method
    )
    out = _add_noise(clip_unit(out), params.noise1, rng)
    out = jpeg_roundtrip(out, params.jpeg1)

    # Second order.
    if params.kernel2 is not None:
        out = convolve(out, kernels.make_kernel(params.kernel2))
    f2 = params.resize2.factor
    size2 = (max(1, int(h / s * f2)), max(1, int(w / s * f2)))
    out = resize_image(out, size2, params.resize2.method)
    out = _add_noise(clip_unit(out), params.noise2, rng)

    # Final: resize back to the LQ size + sinc, and JPEG, in a random order.
    def resize_back_and_sinc(x: np.ndarray) -> np.ndarray:
        x = resize_image(x, (h // s, w // s), params.final_method)
        if params.final_sinc is not None:
            x = convolve(x, kernels.make_kernel(params.final_sinc))
        return x

    if params.jpeg_first:
        out = resize_back_and_sinc(jpeg_roundtrip(clip_unit(out), params.jpeg2))
    else:
        out = jpeg_roundtrip(clip_unit(resize_back_and_sinc(out)), params.jpeg2)
    return quantize_8bit(out)

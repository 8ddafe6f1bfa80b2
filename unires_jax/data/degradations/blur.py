"""Convolution with point-spread functions, the GIR Gaussian blur and defocus (disk/lens) blur.

All convolutions reflect-pad the image by half the kernel (like Real-ESRGAN's `filter2D`, which
pads with torch's 'reflect') and run through an FFT, which costs ~2-3 ms for a 256x256 RGB image
whatever the kernel size (direct convolution with a 21x21 kernel takes ~50 ms).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np
from scipy import signal

from unires_jax.data.degradations import kernels
from unires_jax.data.degradations.image import check_image, clip_unit


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolves each channel with a 2-D kernel, keeping the image size.

    Args:
        image: [H, W, C] float32.
        kernel: [kh, kw] with odd sides; flipped as in a true convolution (a point light becomes
            the kernel itself, which is what a PSF means).

    Returns:
        [H, W, C] float32 (not clipped: sinc kernels overshoot on purpose).
    """
    kh, kw = kernel.shape
    if kh % 2 != 1 or kw % 2 != 1:
        raise ValueError(
            f"blur.py: convolve needs odd kernel sides, got {kernel.shape}."
        )
    ph, pw = kh // 2, kw // 2
    padded = np.pad(image, ((ph, ph), (pw, pw), (0, 0)), mode="reflect")
    out = signal.fftconvolve(
        padded, kernel.astype(np.float32)[:, :, None], mode="valid", axes=(0, 1)
    )
    return out.astype(np.float32, copy=False)


def disk_kernel(radius: float) -> np.ndarray:
    """Anti-aliased uniform disk (defocus PSF of an ideal thin lens): [K, K] float32, sums to 1.

    K = 2 * ceil(radius + 0.5) + 1. Pixels are weighted by their approximate coverage
    clip(radius + 0.5 - distance, 0, 1), so the PSF varies smoothly with a fractional radius.
    """
    half = math.ceil(radius + 0.5)
    ax = np.arange(-half, half + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    kernel = np.clip(radius + 0.5 - np.hypot(xx, yy), 0.0, 1.0)
    return (kernel / kernel.sum()).astype(np.float32)


def line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Anti-aliased straight motion-blur PSF: [K, K] float32 with K odd, sums to 1.

    Args:
        length: path length in pixels (>= 1).
        angle_deg: direction, degrees counter-clockwise from the +x (column) axis.
    """
    half = math.ceil(length / 2) + 1
    theta = math.radians(angle_deg)
    # Sample the segment densely and splat each sample bilinearly (sub-pixel accurate).
    t = np.linspace(-length / 2, length / 2, max(int(length * 8), 2))
    xs = half + t * math.cos(theta)
    ys = half - t * math.sin(theta)  # image rows grow downwards
    return splat_points(xs, ys, np.ones_like(t), 2 * half + 1)


def splat_points(
    xs: np.ndarray, ys: np.ndarray, weights: np.ndarray, size: int
) -> np.ndarray:
    """Bilinear splat of weighted points onto a [size, size] canvas, normalised to sum 1.

    Args:
        xs, ys: [N] sub-pixel column / row coordinates, inside [0, size - 1].
        weights: [N] non-negative weights.
        size: canvas side.
    """
    x0 = np.clip(np.floor(xs).astype(np.int64), 0, size - 2)
    y0 = np.clip(np.floor(ys).astype(np.int64), 0, size - 2)
    fx, fy = xs - x0, ys - y0
    canvas = np.zeros(size * size, np.float64)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            idx = (y0 + dy) * size + (x0 + dx)
            canvas += np.bincount(idx, weights=weights * wy * wx, minlength=size * size)
    canvas = np.maximum(canvas, 0.0)
    return (canvas / canvas.sum()).reshape(size, size).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# GIR "blur": isotropic Gaussian (appendix A.1, Eq. 8).


@dataclasses.dataclass(frozen=True)
class BlurParams:
    """Isotropic Gaussian blur (GIR "blur").

    Ranges (GIR appendix A.1): kernel_size odd in [7, 23]; sigma in [0.2, 3] px.
    Representative task: kernel_size 15, sigma 2.
    """

    kernel_size: int
    sigma: float

    RANGES: ClassVar[dict] = {"kernel_size": (7, 23), "sigma": (0.2, 3.0)}


def sample_blur_params(rng: np.random.Generator) -> BlurParams:
    """Draws GIR blur parameters (kernel size odd, uniform in [7, 23]; sigma ~ U(0.2, 3))."""
    lo, hi = BlurParams.RANGES["kernel_size"]
    size = int(rng.choice(np.arange(lo, hi + 1, 2)))
    return BlurParams(
        kernel_size=size, sigma=float(rng.uniform(*BlurParams.RANGES["sigma"]))
    )


def apply_blur(
    image: np.ndarray, params: BlurParams, rng: np.random.Generator
) -> np.ndarray:
    """Gaussian blur: [H, W, 3] -> [H, W, 3] float32 in [0, 1]. `rng` is unused."""
    image = check_image(image, "blur")
    kernel = kernels.gaussian_kernel(params.kernel_size, params.sigma, params.sigma)
    return clip_unit(convolve(image, kernel))


# ----------------------------------------------------------------------------------------------
# Defocus: disk (thin lens) PSF, optionally softened by a small Gaussian (lens aberrations).


@dataclasses.dataclass(frozen=True)
class DefocusParams:
    """Defocus blur: a disk of `radius` px convolved with a Gaussian of `softness` px.

    Ranges: radius in [1, 8] px; softness in [0, 1] px (0 = ideal disk).
    """

    radius: float
    softness: float = 0.0

    RANGES: ClassVar[dict] = {"radius": (1.0, 8.0), "softness": (0.0, 1.0)}


def sample_defocus_params(rng: np.random.Generator) -> DefocusParams:
    """Draws radius ~ U(1, 8) px and softness ~ U(0, 1) px."""
    r = DefocusParams.RANGES
    return DefocusParams(
        radius=float(rng.uniform(*r["radius"])),
        softness=float(rng.uniform(*r["softness"])),
    )


def defocus_kernel(params: DefocusParams) -> np.ndarray:
    """The defocus PSF: [K, K] float32, non-negative, sums to 1."""
    disk = disk_kernel(params.radius)
    if params.softness <= 0.0:
        return disk
    size = 2 * math.ceil(3 * params.softness) + 1
    gauss = kernels.gaussian_kernel(size, params.softness, params.softness)
    psf = np.maximum(signal.fftconvolve(disk, gauss, mode="full"), 0.0)
    return (psf / psf.sum()).astype(np.float32)


def apply_defocus(
    image: np.ndarray, params: DefocusParams, rng: np.random.Generator
) -> np.ndarray:
    """Defocus blur: [H, W, 3] -> [H, W, 3] float32 in [0, 1]. `rng` is unused."""
    image = check_image(image, "defocus")
    return clip_unit(convolve(image, defocus_kernel(params)))

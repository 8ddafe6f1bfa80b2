"""Processing artifacts: ringing, over-sharpening, restoration-algorithm artifacts, damage.

- ringing (GIR): convolution with a 2-D sinc kernel, which cuts high frequencies and rings.
- oversharpen: unsharp masking with a large amount, which overshoots at edges (halos).
- alg_artifact (GIR): Richardson-Lucy deconvolution of the image with an assumed Gaussian PSF,
  the "simple restoration algorithm" whose grain and smearing GIR treats as a degradation.
- damage (GIR): white or black scratch lines.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np
from scipy import ndimage

from unires_jax.data.degradations import kernels
from unires_jax.data.degradations.blur import convolve
from unires_jax.data.degradations.image import check_image, clip_unit


def _odd_sizes(lo_hi: tuple[int, int]) -> np.ndarray:
    return np.arange(lo_hi[0], lo_hi[1] + 1, 2)


# ----------------------------------------------------------------------------------------------
# GIR "ringing" (appendix A.1, Eq. 11).


@dataclasses.dataclass(frozen=True)
class RingingParams:
    """Sinc-filter ringing (GIR "ringing").

    Ranges (GIR appendix A.1): kernel_size odd in [7, 23]; omega_c in [pi/3, pi] rad/px.
    Representative: kernel_size 15, omega_c 1.2.
    """

    kernel_size: int
    omega_c: float

    RANGES: ClassVar[dict] = {"kernel_size": (7, 23), "omega_c": (math.pi / 3, math.pi)}


def sample_ringing_params(rng: np.random.Generator) -> RingingParams:
    """Draws an odd kernel size uniformly in [7, 23] and omega_c ~ U(pi/3, pi)."""
    r = RingingParams.RANGES
    return RingingParams(
        kernel_size=int(rng.choice(_odd_sizes(r["kernel_size"]))),
        omega_c=float(rng.uniform(*r["omega_c"])),
    )


def apply_ringing(
    image: np.ndarray, params: RingingParams, rng: np.random.Generator
) -> np.ndarray:
    """Sinc filtering: [H, W, 3] -> [H, W, 3] float32 in [0, 1]. `rng` is unused."""
    image = check_image(image, "ringing")
    return clip_unit(
        convolve(image, kernels.sinc_kernel(params.kernel_size, params.omega_c))
    )


# ----------------------------------------------------------------------------------------------
# Over-sharpening (unsharp masking).


@dataclasses.dataclass(frozen=True)
class SharpenParams:
    """Unsharp masking out = x + amount * (x - G_radius * x), clipped.

    Ranges: amount in [0.5, 3]; radius (Gaussian sigma) in [0.5, 3] px.
    """

    amount: float
    radius: float

    RANGES: ClassVar[dict] = {"amount": (0.5, 3.0), "radius": (0.5, 3.0)}


def sample_sharpen_params(rng: np.random.Generator) -> SharpenParams:
    """Draws amount ~ U(0.5, 3) and radius ~ U(0.5, 3) px."""
    r = SharpenParams.RANGES
    return SharpenParams(
        amount=float(rng.uniform(*r["amount"])), radius=float(rng.uniform(*r["radius"]))
    )


def _gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    # Separable filtering (~1 ms at 256x256x3) with a 3-sigma support; 'mirror' == numpy reflect.
    return ndimage.gaussian_filter(
        image, sigma=(sigma, sigma, 0), mode="mirror", truncate=3.0
    )


def apply_sharpen(
    image: np.ndarray, params: SharpenParams, rng: np.random.Generator
) -> np.ndarray:
    """Over-sharpening: [H, W, 3] -> [H, W, 3] float32 in [0, 1]. `rng` is unused."""
    image = check_image(image, "oversharpen")
    return clip_unit(
        image + params.amount * (image - _gaussian_blur(image, params.radius))
    )


def usm_sharpen(
    image: np.ndarray, weight: float = 0.5, radius: int = 51, threshold: float = 10.0
) -> np.ndarray:
    """Real-ESRGAN's thresholded unsharp mask for ground-truth images (`gt_usm: True`).

    sharp = x + weight (x - blur); the result blends sharp and x with a blurred mask of pixels
    whose residual exceeds threshold / 255. The blur is OpenCV's GaussianBlur((radius, radius), 0),
    i.e. sigma = 0.3 ((radius - 1) / 2 - 1) + 0.8 (= 8 px for the default radius 51).

    Args:
        image: [H, W, 3] float32 in [0, 1].

    Returns:
        [H, W, 3] float32 in [0, 1].
    """
    image = check_image(image, "usm_sharpen")
    radius = radius + 1 if radius % 2 == 0 else radius
    sigma = 0.3 * ((radius - 1) * 0.5 - 1) + 0.8
    kernel = kernels.gaussian_kernel(radius, sigma, sigma)
    residual = image - convolve(image, kernel)
    mask = (np.abs(residual) * 255 > threshold).astype(np.float32)
    soft = convolve(mask, kernel)
    sharp = np.clip(image + weight * residual, 0.0, 1.0)
    return clip_unit(soft * sharp + (1 - soft) * image)


# ----------------------------------------------------------------------------------------------
# GIR "alg_artifact": Richardson-Lucy deconvolution (appendix A.1, Eq. 12).


@dataclasses.dataclass(frozen=True)
class AlgArtifactParams:
    """Richardson-Lucy deconvolution with an assumed Gaussian PSF (GIR "alg.artifact").

    GIR names the algorithm but not its settings. Starting from the observed image (as MATLAB's
    deconvlucy does), a few iterations already give the grain and smearing; each costs two
    Gaussian filterings (~1 ms each at 256x256 on one core).
    Ranges: psf_sigma in [0.5, 2] px; iterations integer in [2, 10].
    Representative: psf_sigma 1.2, iterations 5.
    """

    psf_sigma: float
    iterations: int

    RANGES: ClassVar[dict] = {"psf_sigma": (0.5, 2.0), "iterations": (2, 10)}


def sample_alg_artifact_params(rng: np.random.Generator) -> AlgArtifactParams:
    """Draws psf_sigma ~ U(0.5, 2) px and iterations uniformly from 2..10."""
    r = AlgArtifactParams.RANGES
    lo, hi = r["iterations"]
    return AlgArtifactParams(
        psf_sigma=float(rng.uniform(*r["psf_sigma"])),
        iterations=int(rng.integers(lo, hi + 1)),
    )


def richardson_lucy(image: np.ndarray, psf_sigma: float, iterations: int) -> np.ndarray:
    """Richardson-Lucy deconvolution with a Gaussian PSF: [H, W, C] -> [H, W, C] float32.

    est <- est * (K^T * (image / (K * est))), starting from est = image; K is symmetric, so
    K^T = K.
    """
    eps = np.float32(1e-6)
    est = image.copy()
    for _ in range(iterations):
        ratio = image / np.maximum(_gaussian_blur(est, psf_sigma), eps)
        est = est * _gaussian_blur(ratio, psf_sigma)
    return est


def apply_alg_artifact(
    image: np.ndarray, params: AlgArtifactParams, rng: np.random.Generator
) -> np.ndarray:
    """RL artifacts: [H, W, 3] -> [H, W, 3] float32 in [0, 1]. `rng` is unused."""
    image = check_image(image, "alg_artifact")
    return clip_unit(richardson_lucy(image, params.psf_sigma, params.iterations))


# ----------------------------------------------------------------------------------------------
# GIR "damage": scratch lines (appendix A.1, Eq. 13).


@dataclasses.dataclass(frozen=True)
class DamageParams:
    """White or black straight scratches across the image (GIR "damage").

    Ranges (GIR appendix A.1): num_lines integer in [5, 10]; thickness integer in [5, 10] px.
    Representative: 10 lines of thickness 7. Line end points and colours (white or black with
    probability 1/2 each) are drawn from the `rng` given to `apply_damage`.
    """

    num_lines: int
    thickness: int

    RANGES: ClassVar[dict] = {"num_lines": (5, 10), "thickness": (5, 10)}


def sample_damage_params(rng: np.random.Generator) -> DamageParams:
    """Draws num_lines from 5..10 and thickness from 5..10 px."""
    r = DamageParams.RANGES
    return DamageParams(
        num_lines=int(rng.integers(r["num_lines"][0], r["num_lines"][1] + 1)),
        thickness=int(rng.integers(r["thickness"][0], r["thickness"][1] + 1)),
    )


def damage_masks(
    shape: tuple[int, int], params: DamageParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased coverage of each scratch and its colour.

    Args:
        shape: (H, W) of the image.
        params: number and thickness of the lines.
        rng: draws end points uniformly over the image and the colours.

    Returns:
        alphas [num_lines, H, W] float32 in [0, 1] and colours [num_lines] float32 (0 or 1).
    """
    h, w = shape
    ends = rng.uniform(0.0, 1.0, size=(params.num_lines, 2, 2)) * np.array(
        [w - 1, h - 1]
    )
    colours = (rng.uniform(size=params.num_lines) < 0.5).astype(np.float32)
    alphas = np.zeros((params.num_lines, h, w), np.float32)
    reach = params.thickness / 2 + 1
    for i, ((x0, y0), (x1, y1)) in enumerate(ends):
        # Only the segment's bounding box (grown by the half thickness) can be covered.
        r0, r1 = max(0, int(min(y0, y1) - reach)), min(h, int(max(y0, y1) + reach) + 1)
        c0, c1 = max(0, int(min(x0, x1) - reach)), min(w, int(max(x0, x1) + reach) + 1)
        yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float32)
        dx, dy = np.float32(x1 - x0), np.float32(y1 - y0)
        # Distance from each pixel to its projection on the segment (clamped to the ends).
        t = ((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-6)
        t = np.clip(t, 0.0, 1.0)
        dist = np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))
        alphas[i, r0:r1, c0:c1] = np.clip(params.thickness / 2 + 0.5 - dist, 0.0, 1.0)
    return alphas, colours


def apply_damage(
    image: np.ndarray, params: DamageParams, rng: np.random.Generator
) -> np.ndarray:
    """Paints the scratches over the image: [H, W, 3] -> [H, W, 3] float32 in [0, 1]."""
    image = check_image(image, "damage")
    alphas, colours = damage_masks(image.shape[:2], params, rng)
    out = image.copy()
    for alpha, colour in zip(alphas, colours):
        a = alpha[..., None]
        out = out * (1 - a) + colour * a
    return clip_unit(out)

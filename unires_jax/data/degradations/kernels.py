"""Real-ESRGAN blur kernels: iso/aniso Gaussian, generalized Gaussian, plateau and 2-D sinc.

Formulas and sampling follow the public Real-ESRGAN / BasicSR training code
(`basicsr/data/degradations.py`, `realesrgan/data/realesrgan_dataset.py`), rewritten here:

- Gaussian:              k(x) = exp(-1/2 * x^T S^-1 x)
- generalized Gaussian:  k(x) = exp(-1/2 * (x^T S^-1 x)^beta)
- plateau:               k(x) = 1 / (1 + (x^T S^-1 x)^beta)
- sinc (circular low-pass): k(r) = omega_c * J1(omega_c r) / (2 pi r), k(0) = omega_c^2 / (4 pi)

with S = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T on an integer grid centred on the middle
pixel; every kernel is normalised to sum to 1. Isotropic kinds use sigma_y = sigma_x, theta = 0.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import special

KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)
ALL_KINDS = KERNEL_TYPES + ("sinc",)


@dataclasses.dataclass(frozen=True)
class KernelParams:
    """One blur kernel, fully specified.

    Attributes:
        kind: one of `ALL_KINDS`.
        size: odd kernel side in pixels.
        sigma_x, sigma_y: Gaussian widths in pixels (sigma_y == sigma_x for the *iso kinds).
        rotation: angle theta in radians of the sigma_x axis (0 for the *iso kinds).
        beta: shape exponent of the generalized Gaussian / plateau kinds (1 otherwise).
        omega_c: cutoff frequency in radians per pixel of the sinc kind (pi is Nyquist).
    """

    kind: str
    size: int
    sigma_x: float = 1.0
    sigma_y: float = 1.0
    rotation: float = 0.0
    beta: float = 1.0
    omega_c: float = math.pi


@dataclasses.dataclass(frozen=True)
class KernelRanges:
    """Sampling ranges of one Real-ESRGAN blur stage (defaults: the first-order stage).

    Attributes:
        sizes: odd kernel sizes drawn uniformly (Real-ESRGAN: 7, 9, ..., 21).
        types, probs: kernel kinds and their probabilities (train_realesrnet_x4plus.yml).
        sigma: range of sigma_x and sigma_y (first order [0.2, 3], second order [0.2, 1.5]).
        rotation: range of theta in radians.
        betag: generalized-Gaussian beta range; betap: plateau beta range. As in BasicSR, beta is
            drawn from [lo, 1] or [1, hi] with probability 1/2 each.
        sinc_prob: probability that the stage uses a sinc kernel instead of the kinds above.
        sinc_omega_small: omega_c range for sinc kernels smaller than 13 px.
        sinc_omega_large: omega_c range for sinc kernels of 13 px and more.
    """

    sizes: tuple[int, ...] = tuple(range(7, 22, 2))
    types: tuple[str, ...] = KERNEL_TYPES
    probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sigma: tuple[float, float] = (0.2, 3.0)
    rotation: tuple[float, float] = (-math.pi, math.pi)
    betag: tuple[float, float] = (0.5, 4.0)
    betap: tuple[float, float] = (1.0, 2.0)
    sinc_prob: float = 0.1
    sinc_omega_small: tuple[float, float] = (math.pi / 3, math.pi)
    sinc_omega_large: tuple[float, float] = (math.pi / 5, math.pi)


FIRST_ORDER_RANGES = KernelRanges()
SECOND_ORDER_RANGES = KernelRanges(sigma=(0.2, 1.5))


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixel offsets from the centre: two [size, size] arrays (x along columns)."""
    if size % 2 != 1 or size < 1:
        raise ValueError(
            f"kernels.py: kernel size must be a positive odd integer, got {size}."
        )
    ax = np.arange(size, dtype=np.float64) - size // 2
    return np.meshgrid(ax, ax)


def _quadratic_form(
    size: int, sigma_x: float, sigma_y: float, rotation: float
) -> np.ndarray:
    """x^T S^-1 x on the kernel grid: [size, size] float64."""
    xx, yy = _grid(size)
    c, s = math.cos(rotation), math.sin(rotation)
    # Coordinates in the rotated frame: S = R diag(sx^2, sy^2) R^T, so S^-1 is diagonal there.
    u = c * xx + s * yy
    v = -s * xx + c * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalise(kernel: np.ndarray) -> np.ndarray:
    return (kernel / kernel.sum()).astype(np.float32)


def gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float, rotation: float = 0.0
) -> np.ndarray:
    """Bivariate (anisotropic) Gaussian kernel: [size, size] float32, sums to 1."""
    return _normalise(np.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, rotation)))


def generalized_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float, rotation: float, beta: float
) -> np.ndarray:
    """Generalized Gaussian exp(-1/2 q^beta): [size, size] float32, sums to 1."""
    q = _quadratic_form(size, sigma_x, sigma_y, rotation)
    return _normalise(np.exp(-0.5 * np.power(q, beta)))


def plateau_kernel(
    size: int, sigma_x: float, sigma_y: float, rotation: float, beta: float
) -> np.ndarray:
    """Plateau-shaped kernel 1 / (1 + q^beta): [size, size] float32, sums to 1."""
    q = _quadratic_form(size, sigma_x, sigma_y, rotation)
    return _normalise(1.0 / (np.power(q, beta) + 1.0))


def sinc_kernel(size: int, omega_c: float) -> np.ndarray:
    """Circularly symmetric 2-D sinc (ideal low-pass cut at omega_c): [size, size] float32.

    k(r) = omega_c J1(omega_c r) / (2 pi r) with the limit omega_c^2 / (4 pi) at r = 0,
    normalised to sum to 1. Convolving with it produces ringing and overshoot at edges.
    """
    xx, yy = _grid(size)
    r = np.hypot(xx, yy)
    safe_r = np.where(r == 0, 1.0, r)
    kernel = np.where(
        r == 0,
        omega_c**2 / (4 * math.pi),
        omega_c * special.j1(omega_c * safe_r) / (2 * math.pi * safe_r),
    )
    return _normalise(kernel)


def make_kernel(params: KernelParams) -> np.ndarray:
    """Builds the kernel described by `params`: [size, size] float32, sums to 1."""
    p = params
    if p.kind in ("iso", "aniso"):
        return gaussian_kernel(p.size, p.sigma_x, p.sigma_y, p.rotation)
    if p.kind in ("generalized_iso", "generalized_aniso"):
        return generalized_gaussian_kernel(
            p.size, p.sigma_x, p.sigma_y, p.rotation, p.beta
        )
    if p.kind in ("plateau_iso", "plateau_aniso"):
        return plateau_kernel(p.size, p.sigma_x, p.sigma_y, p.rotation, p.beta)
    if p.kind == "sinc":
        return sinc_kernel(p.size, p.omega_c)
    raise ValueError(
        f"kernels.py: unknown kernel kind {p.kind!r}; expected one of {ALL_KINDS}."
    )


def _sample_beta(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    # BasicSR draws beta below or above 1 with equal probability, whatever the range widths.
    lo, hi = lo_hi
    return float(rng.uniform(lo, 1.0) if rng.uniform() < 0.5 else rng.uniform(1.0, hi))


def sample_sinc_params(
    rng: np.random.Generator, size: int, omega: tuple[float, float]
) -> KernelParams:
    """Draws a sinc kernel of the given size with omega_c ~ U(omega)."""
    return KernelParams(kind="sinc", size=size, omega_c=float(rng.uniform(*omega)))


def sample_kernel_params(
    rng: np.random.Generator, ranges: KernelRanges = FIRST_ORDER_RANGES
) -> KernelParams:
    """Draws one Real-ESRGAN blur kernel (sinc with `ranges.sinc_prob`, else a mixed kernel).

    Args:
        rng: random generator.
        ranges: the stage's ranges (`FIRST_ORDER_RANGES` or `SECOND_ORDER_RANGES`).

    Returns:
        KernelParams with size in `ranges.sizes`, sigmas in `ranges.sigma`, rotation in
        `ranges.rotation`, beta in `ranges.betag` / `ranges.betap`, omega_c in the sinc ranges.
    """
    size = int(rng.choice(ranges.sizes))
    if rng.uniform() < ranges.sinc_prob:
        omega = ranges.sinc_omega_small if size < 13 else ranges.sinc_omega_large
        return sample_sinc_params(rng, size, omega)
    kind = str(ranges.types[rng.choice(len(ranges.types), p=np.asarray(ranges.probs))])
    sigma_x = float(rng.uniform(*ranges.sigma))
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sigma_y, rotation = sigma_x, 0.0
    else:
        sigma_y = float(rng.uniform(*ranges.sigma))
        rotation = float(rng.uniform(*ranges.rotation))
    beta = 1.0
    if kind.startswith("generalized"):
        beta = _sample_beta(rng, ranges.betag)
    elif kind.startswith("plateau"):
        beta = _sample_beta(rng, ranges.betap)
    return KernelParams(kind, size, sigma_x, sigma_y, rotation, beta)

"""Blind deblurring of straight motion, defocus and Gaussian blur: the point-spread function (PSF)
is estimated from the input's power spectrum, and restorations are pulled back onto it.

A blurred image's spectrum is the sharp image's times |K(f)|^2, and the two textbook PSFs put
unmistakable zeros into it: a straight motion of length L at angle theta multiplies it by
sinc^2(L f.u) (parallel dark lines across the spectrum), a defocus disk of radius r by the Airy
pattern (2 J1(2 pi r |f|) / (2 pi r |f|))^2 (dark rings). A Gaussian blur of width s has no
zeros, but bends the log-spectrum down by 4 pi^2 s^2 |f|^2, which no power law does. Natural
images' spectra are smooth power laws, so after removing a + b log|f| from the log-spectrum the
blur's signature is what is left; `fit_psf` regresses that residual on log(|K|^2 + eps) for
every line, disk and Gaussian on a grid (then a finer one around the best) and keeps the best
fit. This is the classic spectral
approach to parametric blur identification (Cannon 1976; Oliveira, Figueiredo and
Bioucas-Dias 2007), with Welch averaging (Hann windows) for a steady spectrum.

The diffusion expert alone cannot supply what the blur removed: a few DDIM steps of a small model
sharpen little along the blur. With the PSF known, `BlurConsistency.project` replaces a restored
image x by

    argmin_z |k * z - y|^2 + lam |z - x|^2,   Z = (conj(K) Y + lam X) / (|K|^2 + lam)

(Fourier domain, symmetric padding): the frequencies the blur kept come from the input, those
it destroyed from the model. The map is affine in x, so (clipping to [0, 1] aside) it commutes
with averaging: self-ensembles and mixtures of finished images.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from scipy import fft, special

from unires_jax.data.degradations.blur import disk_kernel, line_kernel
from unires_jax.data.degradations.kernels import gaussian_kernel

# The PSFs searched (px). Motion blur longer than this is rare after resizing and beyond what
# the experts were trained on; shorter than 2 px (disk 0.5 px) is indistinguishable from none.
LINE_LENGTHS = (2.0, 32.0)
DISK_RADII = (0.5, 10.0)
# Gaussian PSF widths searched (standard deviation, px).
GAUSS_SIGMAS = (0.4, 4.0)
# Welch estimate of the power spectrum: square Hann windows of this side, a quarter apart.
WINDOW = 128
# Frequencies fitted: from this many Welch bins (the lowest carry the window's own leakage and
# the image's mean) to this many cycles per pixel (above, mostly 8-bit rounding and JPEG).
FIT_LOWEST_BIN = 2.5
FIT_HIGHEST = 0.45
# log(|K|^2 + eps) for each eps: the noise floor that fills in the spectral zeros.
NOISE_FLOORS = (1e-3, 1e-2)
# Welch windows used at most (spread evenly): enough for a steady spectrum on any photo size.
MAX_WINDOWS = 400
# When a fit counts as a blur (`PsfEstimate.confident`). Chosen on the training photos
# (BENCHMARKS.md, session 15): straight motion and disk blur of any size in the searched
# ranges fit at 0.5-0.9 with slopes 0.8-1.45 (up to 1.75 for a 1.5 px disk); sharp photos,
# noisy ones and camera shake along curved paths at or below 0.35, or with slopes far from 1
# (a sharp texture's spectrum fits a 0.5 px disk with a slope of 3-9). A wrong PSF costs far
# more than a missed one, so the gate is strict and leaves some real blur (e.g. on a strongly
# periodic brick wall) to the experts.
MIN_FIT = 0.45
SLOPE_RANGE = (0.75, 2.0)
# The Gaussian family's gate, chosen on the training photos (`real_photos.TRAIN`, session 19):
# sharp, JPEG and motion-blurred photos fit a Gaussian at 0.00-0.12; Gaussian blur of width
# 0.7-3 px at 0.29-0.90 with slopes 0.57-2.97 (the noise floor flattens the curve's tail, so
# the slope runs above the zero-carrying families'; the width comes out 0.1-0.5 px short, which
# deblurs a little less than the truth would). Defocus disks fit a Gaussian too, but less well
# than a disk, so the best family wins. The one fit that deblurring made worse (a 0.7 px blur
# fitted at 0.40 with slope 0.57: -0.6 dB) is below the slope gate; camera shake that passes
# it gained +0.9 dB.
MIN_FIT_GAUSS = 0.4
SLOPE_RANGE_GAUSS = (0.65, 3.5)
# Noisier inputs are left to the experts: the data term would bring the noise back (the
# consistency is for a clean blurred photo). Robust noise level of the grey image (MAD of its
# finest diagonal Haar coefficients, Donoho 1995) on the 0..1 scale: noise-free blurred photos
# measure 0-0.75 / 255 (8-bit rounding), Gaussian noise of sigma 5 / 255 per channel 2.9 / 255.
MAX_NOISE = 2.0 / 255
# Weight of the restoration against the input in `BlurConsistency` per PSF family, the best
# on the training photos at 4 DDIM steps (0.005-0.02 are within 0.5 dB of it).
# For the Gaussian family, over the 28 training rows that pass its gate: 0.005 gains +3.49 dB
# on the mean but only +0.12 on the worst (camera shake), 0.01 +3.44 / +0.93: chosen for the
# margin.
CONSISTENCY_WEIGHT = {"line": 0.01, "disk": 0.005, "gauss": 0.01}


@dataclasses.dataclass(frozen=True)
class PsfEstimate:
    """A fitted PSF.

    Attributes:
      family: "line" (straight motion), "disk" (defocus) or "gauss" (Gaussian blur).
      size: the line's length, the disk's radius or the Gaussian's standard deviation, in px.
      angle: the line's direction in degrees counter-clockwise from the +x axis, in [0, 180).
      fit: the share of the whitened log-spectrum's variance that log(|K|^2 + eps) explains.
      slope: its regression coefficient (1 for a blur that matches the model exactly).
      noise: the input's estimated noise level (`noise_level`).
    """

    family: str
    size: float
    angle: float
    fit: float
    slope: float
    noise: float = 0.0

    @property
    def confident(self) -> bool:
        """Whether the fit is good enough to deblur with (see MIN_FIT, SLOPE_RANGE, MAX_NOISE);
        fits at the smallest size searched are never taken (a sharp image's best excuse)."""
        smallest = {"line": LINE_LENGTHS, "disk": DISK_RADII, "gauss": GAUSS_SIGMAS}[
            self.family
        ][0]
        min_fit, (low, high) = (
            (MIN_FIT_GAUSS, SLOPE_RANGE_GAUSS)
            if self.family == "gauss"
            else (MIN_FIT, SLOPE_RANGE)
        )
        return (
            self.fit >= min_fit
            and self.noise <= MAX_NOISE
            and low <= self.slope <= high
            and self.size > smallest + 0.05
        )

    def kernel(self) -> np.ndarray:
        """The PSF as an odd-sided `[K, K]` float32 kernel summing to 1."""
        if self.family == "line":
            return line_kernel(self.size, self.angle)
        if self.family == "gauss":
            size = 2 * math.ceil(3 * self.size) + 1
            return gaussian_kernel(size, self.size, self.size)
        return disk_kernel(self.size)

    def describe(self) -> str:
        if self.family == "line":
            return f"straight motion blur of {self.size:.1f} px at {self.angle:.1f} deg"
        if self.family == "gauss":
            return f"Gaussian blur of sigma {self.size:.2f} px"
        return f"defocus blur of radius {self.size:.2f} px"


def power_spectrum(gray: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Welch power spectrum of a 2-D image: the mean |FFT|^2 of Hann-windowed, mean-removed
    `window` x `window` patches a quarter window apart (at most MAX_WINDOWS of them, evenly
    spread) -> `[window, window]` (FFT order)."""
    h, w = gray.shape
    if min(h, w) < window:
        raise ValueError(
            f"deblur: the PSF is estimated from {window} px windows; the image is {h}x{w}"
        )
    hann = np.outer(np.hanning(window), np.hanning(window))
    per_side = math.isqrt(MAX_WINDOWS)
    rows = _positions(h, window, per_side)
    cols = _positions(w, window, per_side)
    total = np.zeros((window, window))
    for i in rows:
        patches = np.stack([gray[i : i + window, j : j + window] for j in cols])
        patches = (patches - patches.mean(axis=(1, 2), keepdims=True)) * hann
        total += (np.abs(np.fft.fft2(patches)) ** 2).sum(0)
    return total / (len(rows) * len(cols))


def noise_level(gray: np.ndarray) -> float:
    """Robust noise standard deviation of a 2-D image: median |HH| / 0.6745 over the finest
    orthonormal Haar diagonal coefficients (blur leaves almost nothing else there)."""
    h, w = gray.shape
    g = gray[: h // 2 * 2, : w // 2 * 2]
    diagonal = (g[0::2, 0::2] - g[0::2, 1::2] - g[1::2, 0::2] + g[1::2, 1::2]) / 2
    return float(np.median(np.abs(diagonal)) / 0.6745)


def _positions(side: int, window: int, most: int) -> np.ndarray:
    """Window starts a quarter window apart, or `most` evenly spread ones on a large side."""
    last = side - window
    count = min(last // (window // 4) + 1, most)
    return np.unique(np.round(np.linspace(0, last, count)).astype(np.int64))


def line_response(length, angle, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """|K(f)|^2 of a straight motion PSF, sinc^2(L f.u); `length`, `angle` broadcast against
    the frequencies (cycles per pixel; rows grow downwards, so the y frequency enters with a
    minus). Computed in the frequencies' dtype (the fit passes float32: half the time)."""
    theta = np.radians(angle)
    dtype = np.result_type(fx)
    x = (np.pi * length * (fx * np.cos(theta) - fy * np.sin(theta))).astype(
        dtype, copy=False
    )
    small = np.abs(x) < 1e-4
    safe = np.where(small, dtype.type(1), x)
    return np.where(small, dtype.type(1), (np.sin(safe) / safe) ** 2)


def disk_response(radius, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """|K(f)|^2 of a uniform disk PSF (the Airy pattern)."""
    arg = 2 * np.pi * radius * np.hypot(fx, fy)
    safe = np.where(arg > 1e-8, arg, 1.0)
    return np.where(arg > 1e-8, 2 * special.j1(safe) / safe, 1.0) ** 2


def gauss_response(sigma, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """|K(f)|^2 of a Gaussian PSF of standard deviation `sigma` px."""
    return np.exp(-4 * np.pi**2 * np.asarray(sigma) ** 2 * (fx**2 + fy**2))


@dataclasses.dataclass(frozen=True)
class _Spectrum:
    """The whitened log-spectrum on the fitted band and the projector that whitens."""

    fx: np.ndarray
    fy: np.ndarray
    basis: np.ndarray  # [n, 2] orthonormal basis of {1, log|f|}
    residual: np.ndarray  # [n] log-spectrum minus its power-law fit
    total: float

    @classmethod
    def of(cls, gray: np.ndarray, window: int) -> _Spectrum:
        power = power_spectrum(gray, window)
        f = np.fft.fftfreq(window)
        fy, fx = np.meshgrid(f, f, indexing="ij")
        radius = np.hypot(fx, fy)
        # Half the plane: the spectrum of a real image is symmetric.
        in_band = (radius > FIT_LOWEST_BIN / window) & (radius < FIT_HIGHEST)
        band = in_band & ((fy > 0) | ((fy == 0) & (fx > 0)))
        log_power = np.log(power[band] + 1e-20)
        basis, _ = np.linalg.qr(
            np.stack([np.ones(band.sum()), np.log(radius[band])], 1)
        )
        residual = log_power - basis @ (basis.T @ log_power)
        f32 = np.float32
        return cls(
            fx[band].astype(f32),
            fy[band].astype(f32),
            basis.astype(f32),
            residual.astype(f32),
            float(residual @ residual),
        )

    def score(self, responses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For `[m, n]` candidate |K|^2: (fit, slope) with the best-fitting noise floor."""
        best_fit = np.full(len(responses), -np.inf)
        best_slope = np.zeros(len(responses))
        for floor in NOISE_FLOORS:
            g = np.log(responses + floor)
            g -= (g @ self.basis) @ self.basis.T
            cov = g @ self.residual
            var = np.maximum(np.einsum("mn,mn->m", g, g), 1e-12)
            slope = cov / var
            fit = np.where(slope > 0, cov * slope / max(self.total, 1e-12), 0.0)
            better = fit > best_fit
            best_fit = np.where(better, fit, best_fit)
            best_slope = np.where(better, slope, best_slope)
        return best_fit, best_slope


def _best(spectrum: _Spectrum, family: str, sizes, angles) -> PsfEstimate:
    if family == "line":
        size_grid, angle_grid = np.meshgrid(sizes, angles, indexing="ij")
        size_grid, angle_grid = size_grid.ravel(), angle_grid.ravel()
    else:
        size_grid = np.asarray(sizes, np.float64)
        angle_grid = np.zeros_like(size_grid)
    fits, slopes = [], []
    # Chunks of candidates keep the [m, n] response matrix to ~30 MB.
    chunk = max(1, 4_000_000 // len(spectrum.fx))
    for start in range(0, len(size_grid), chunk):
        s = size_grid[start : start + chunk, None]
        a = angle_grid[start : start + chunk, None]
        if family == "line":
            responses = line_response(s, a, spectrum.fx, spectrum.fy)
        elif family == "gauss":
            responses = gauss_response(s, spectrum.fx, spectrum.fy)
        else:
            responses = disk_response(s, spectrum.fx, spectrum.fy)
        fit, slope = spectrum.score(responses)
        fits.append(fit)
        slopes.append(slope)
    fit, slope = np.concatenate(fits), np.concatenate(slopes)
    i = int(np.argmax(fit))
    return PsfEstimate(
        family,
        float(size_grid[i]),
        float(angle_grid[i] % 180.0),
        float(fit[i]),
        float(slope[i]),
    )


def _best_isotropic(
    spectrum: _Spectrum, family: str, sizes: tuple[float, float], step: float
) -> PsfEstimate:
    """The best size of a one-parameter family: a grid of `step`, then steps of 0.02 around
    its best."""
    coarse = _best(spectrum, family, np.arange(sizes[0], sizes[1] + 1e-9, step), None)
    fine = np.clip(coarse.size + np.arange(-step, step + 1e-3, 0.02), *sizes)
    return _best(spectrum, family, fine, None)


def fit_psf(image: np.ndarray, window: int = WINDOW) -> PsfEstimate:
    """The best-fitting straight-motion, defocus or Gaussian PSF of an image, however poor the
    fit.

    Args:
        image: `[H, W, 3]` or `[H, W]` float in [0, 1], both sides >= `window`.
        window: side of the Welch windows (frequency resolution 1 / window).
    """
    image = np.asarray(image, np.float64)
    gray = image.mean(-1) if image.ndim == 3 else image
    spectrum = _Spectrum.of(gray, window)
    # Coarse grid, then a finer one around its best (the fit is smooth in the parameters at
    # this resolution: the zeros move by a fraction of a bin per step).
    line = _best(
        spectrum,
        "line",
        np.arange(LINE_LENGTHS[0], LINE_LENGTHS[1] + 1e-9, 1.0),
        np.arange(0.0, 180.0, 2.0),
    )
    line = _best(
        spectrum,
        "line",
        np.clip(line.size + np.arange(-1.0, 1.01, 0.1), *LINE_LENGTHS),
        line.angle + np.arange(-2.0, 2.01, 0.25),
    )
    disk = _best_isotropic(spectrum, "disk", DISK_RADII, 0.25)
    gauss = _best_isotropic(spectrum, "gauss", GAUSS_SIGMAS, 0.1)
    best = max((line, disk, gauss), key=lambda psf: psf.fit)
    return dataclasses.replace(best, noise=noise_level(gray))


# ----------------------------------------------------------------------------------------------
# Consistency with the input under a known PSF.


def _transfer(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """rfft2 of `kernel` centred at the origin of a `shape` canvas (circular convolution)."""
    kh, kw = kernel.shape
    canvas = np.zeros(shape, np.float32)
    canvas[:kh, :kw] = kernel
    canvas = np.roll(canvas, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    return fft.rfft2(canvas)


@dataclasses.dataclass(frozen=True)
class BlurConsistency:
    """The blurred input `source` `[H, W, 3]`, its PSF `kernel` and the weight `lam` of the
    restoration.

    `project(images)` maps restorations `[..., H, W, 3]` to argmin_z |k * z - y|^2 +
    lam |z - x|^2 (see the module docstring), clipped to [0, 1].
    """

    source: np.ndarray
    kernel: np.ndarray
    lam: float

    def __post_init__(self):
        if not self.lam > 0:
            raise ValueError(
                f"deblur: the consistency weight must be positive, got {self.lam}"
            )

    @classmethod
    def of(cls, source: np.ndarray, psf: PsfEstimate) -> BlurConsistency:
        """For an input and its fitted PSF, with the family's CONSISTENCY_WEIGHT."""
        return cls(
            np.asarray(source, np.float32), psf.kernel(), CONSISTENCY_WEIGHT[psf.family]
        )

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the images this projects."""
        return self.source.shape[0], self.source.shape[1]

    @property
    def pad(self) -> int:
        """Symmetric padding on each side: the kernel's size keeps the circular convolution's
        wrap-around off the image (the canvas then grows to a fast FFT length)."""
        return max(self.kernel.shape) + 8

    @functools.cached_property
    def _fourier(self) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
        """(canvas shape, conj(K) Y, 1 / (|K|^2 + lam)): what every `project` call shares."""
        p = self.pad
        h, w = self.shape
        canvas = (
            fft.next_fast_len(h + 2 * p, real=True),
            fft.next_fast_len(w + 2 * p, real=True),
        )
        y = _pad_to(self.source, p, canvas)
        transfer = _transfer(self.kernel, canvas)[..., None]
        kept = np.conj(transfer) * fft.rfft2(y, axes=(0, 1), workers=-1)
        inverse = (1.0 / (np.abs(transfer) ** 2 + self.lam)).astype(np.float32)
        return canvas, kept, inverse

    def project(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.float32)
        if images.shape[-3:-1] != self.shape:
            raise ValueError(
                f"deblur consistency: images of {images.shape[-3:-1]} px, expected {self.shape}"
            )
        canvas, kept, inverse = self._fourier
        p = self.pad
        x_hat = fft.rfft2(_pad_to(images, p, canvas), axes=(-3, -2), workers=-1)
        z = fft.irfft2(
            (kept + self.lam * x_hat) * inverse, s=canvas, axes=(-3, -2), workers=-1
        )
        h, w = self.shape
        return np.clip(z[..., p : p + h, p : p + w, :], 0.0, 1.0).astype(np.float32)


def _pad_to(images: np.ndarray, pad: int, canvas: tuple[int, int]) -> np.ndarray:
    """`[..., H, W, C]` padded symmetrically by `pad`, then on the bottom / right (also
    symmetric) up to `canvas`."""
    h, w = images.shape[-3:-1]
    lead = [(0, 0)] * (images.ndim - 3)
    rows = (pad, canvas[0] - h - pad)
    cols = (pad, canvas[1] - w - pad)
    return np.pad(images, lead + [rows, cols, (0, 0)], mode="symmetric")


def psf_record(psf: PsfEstimate) -> dict:
    """A fitted PSF and whether it was used, as JSON-ready values (sidecars, reports)."""
    return {
        "psf": psf.describe(),
        "used": psf.confident,
        "family": psf.family,
        "size_px": round(psf.size, 2),
        **({"angle_deg": round(psf.angle, 1)} if psf.family == "line" else {}),
        "fit": round(psf.fit, 3),
        "slope": round(psf.slope, 3),
        "noise_255": round(psf.noise * 255, 2),
    }


def estimate_consistency(
    image: np.ndarray,
) -> tuple[PsfEstimate | None, BlurConsistency | None]:
    """The PSF fitted to an input `[H, W, 3]` and, when the fit is confident, the consistency
    that deblurs restorations with it. Inputs smaller than a Welch window on either side are
    not analysed: (None, None)."""
    if min(np.shape(image)[:2]) < WINDOW:
        return None, None
    psf = fit_psf(image)
    return psf, (BlurConsistency.of(image, psf) if psf.confident else None)

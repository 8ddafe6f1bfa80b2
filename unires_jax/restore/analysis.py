"""What is wrong with a photo, measured from its pixels alone: noise level and JPEG blocking.

- `noise_sigma`: the standard deviation of additive white noise, per channel, from the
  covariance of the image's weak-texture 7x7 patches (Liu, Tanaka and Okutomi, "Single-Image
  Noise Level Estimation for Blind Denoising", IEEE TIP 2013): patches whose gradient energy is
  what noise of the current estimate explains (the 99th percentile of its gamma law) are kept,
  the smallest eigenvalue of their covariance is the next estimate, and the two steps repeat
  until it settles (with the Marchenko-Pastur bias of the smallest eigenvalue undone). Texture,
  edges and JPEG blocking raise the gradient energy, so those patches drop out; a photo's fine
  texture (foliage, fur) is not taken for noise. Patches with a pixel at 0 or 1 are left out:
  clipping cuts their noise off.
- `coarse_noise_sigma`: the noise that survives JPEG compression. Quantisation removes most of
  the fine frequencies where `noise_sigma` looks (a noisy photo compressed at quality 30-70
  measures 0-1.5 there), but keeps much of the noise at coarser scales: `noise_sigma` of the
  image's 2x2 means measures it (on training photos: 0-2 on JPEG-only photos, 1-7 on noisy ones
  compressed afterwards).
- `blockiness`: how much stronger the luma steps are across an 8x8 grid (at the grid phase
  where they are strongest) than between the grid lines: about 0 for camera photos and noise,
  growing as JPEG quality falls.

Both are pure numpy and take a few milliseconds on a 512x512 photo.
"""

from __future__ import annotations

import dataclasses

import numpy as np

PATCH = 7
# At most this many patches per channel enter the covariance (a regular subsample beyond).
MAX_PATCHES = 40_000
# Values within this distance of 0 or 1 count as clipped (half an 8-bit step).
CLIP_MARGIN = 0.5 / 255.0
# The clipped patches are left out only while this many times the patch size remain.
MIN_UNCLIPPED = 4


def _patch_matrix(channel: np.ndarray, size: int) -> np.ndarray:
    """All size x size patches of a [H, W] image as rows [n, size * size] (subsampled)."""
    windows = np.lib.stride_tricks.sliding_window_view(channel, (size, size))
    rows = windows.reshape(-1, size * size)
    step = max(1, rows.shape[0] // MAX_PATCHES)
    return rows[::step].astype(np.float64)


def _gradient_energy(rows: np.ndarray, size: int) -> np.ndarray:
    """Sum of squared horizontal and vertical steps inside each patch row [n, size * size]."""
    patches = rows.reshape(-1, size, size)
    return (np.diff(patches, axis=1) ** 2).sum(axis=(1, 2)) + (
        np.diff(patches, axis=2) ** 2
    ).sum(axis=(1, 2))


def _channel_sigma(channel: np.ndarray, iterations: int = 6) -> tuple[float, bool]:
    """The channel's noise sigma, and whether it was measured on unclipped patches only (else
    on all: too few patches stay clear of 0 and 1)."""
    from scipy.stats import gamma

    rows = _patch_matrix(channel, PATCH)
    # Patches that touch the ends of the range are clipped: their noise is partly cut off (in
    # a blown-out sky or a black shadow, entirely), so they would pull the estimate down (on
    # training photos with 8-24% of pixels at 0 or 1, sigma 25 was measured as 17-23).
    unclipped = (rows.min(axis=1) > CLIP_MARGIN) & (
        rows.max(axis=1) < 1.0 - CLIP_MARGIN
    )
    clear = bool(unclipped.sum() > MIN_UNCLIPPED * PATCH * PATCH)
    if clear:
        rows = rows[unclipped]
    energy = _gradient_energy(rows, PATCH)
    dims = PATCH * PATCH
    # tr(Dh'Dh + Dv'Dv) of the patch-difference operators: the energy white noise of unit
    # variance has on average.
    trace = 4.0 * PATCH * (PATCH - 1)
    selected = np.ones(rows.shape[0], bool)
    variance = None
    for _ in range(iterations):
        chosen = rows[selected]
        if chosen.shape[0] <= dims:
            break
        centred = chosen - chosen.mean(axis=0)
        covariance = centred.T @ centred / (chosen.shape[0] - 1)
        # The smallest eigenvalue of a sample covariance of white noise sits at the lower edge
        # of the Marchenko-Pastur law, (1 - sqrt(p / n))^2 times the variance: undone here.
        edge = (1.0 - np.sqrt(dims / chosen.shape[0])) ** 2
        new = max(float(np.linalg.eigvalsh(covariance)[0]), 0.0) / edge
        if variance is not None and abs(new - variance) <= 1e-4 * max(variance, 1e-12):
            variance = new
            break
        variance = new
        limit = variance * gamma.ppf(0.99, a=dims / 2.0, scale=2.0 * trace / dims)
        selected = energy < limit
    return float(np.sqrt(variance or 0.0)), clear


def noise_sigma(image: np.ndarray) -> float:
    """The noise standard deviation of an image `[H, W, C]` or `[H, W]` in [0, 1] (in the same
    units, i.e. sigma / 255 on the 8-bit scale), the mean of the per-channel estimates made on
    unclipped patches (of all channels where none was).

    A channel that is nearly all black or white (the blue of a red flower on black: 46% of its
    values at 0) has too few patches clear of the bounds and measures its clipped noise low (15
    of 25); averaged in, it pulled the photo's sigma to 21 (training photos, sigma 15-50,
    `benchmarks/results/explorations_session23/sigma_channels.py`)."""
    image = np.asarray(image, np.float64)
    if image.ndim == 2:
        image = image[..., None]
    if min(image.shape[:2]) < 2 * PATCH:
        raise ValueError(f"noise_sigma needs at least {2 * PATCH} x {2 * PATCH} pixels")
    measured = [_channel_sigma(image[..., c]) for c in range(image.shape[-1])]
    clear = [sigma for sigma, unclipped in measured if unclipped]
    return float(np.mean(clear or [sigma for sigma, _ in measured]))


def coarse_noise_sigma(image: np.ndarray) -> float:
    """`noise_sigma` of the image's 2x2 means (`[H, W, C]` or `[H, W]` in [0, 1]; same units): the
    noise left at half resolution, where JPEG compression keeps much of it."""
    image = np.asarray(image, np.float64)
    h, w = (s - s % 2 for s in image.shape[:2])
    halves = (
        image[:h, :w].reshape(h // 2, 2, w // 2, 2, *image.shape[2:]).mean(axis=(1, 3))
    )
    return noise_sigma(halves)


def blockiness(image: np.ndarray, block: int = 8) -> float:
    """JPEG blocking: mean |luma step| across the strongest 8-pixel grid phase over the mean
    step elsewhere, minus 1 (both directions averaged). ~0 without blocking."""
    image = np.asarray(image, np.float64)
    y = image @ np.array([0.299, 0.587, 0.114]) if image.ndim == 3 else image
    scores = []
    for axis in (0, 1):
        steps = np.abs(np.diff(y, axis=axis)).mean(
            axis=1 - axis
        )  # [n - 1] per position
        n = steps.size - steps.size % block
        if n < 2 * block:
            return 0.0
        phases = (
            steps[:n].reshape(-1, block).mean(axis=0)
        )  # [block]: mean step at each phase
        strongest = int(np.argmax(phases))
        others = np.delete(phases, strongest).mean()
        scores.append(phases[strongest] / max(others, 1e-8) - 1.0)
    return float(np.mean(scores))


@dataclasses.dataclass(frozen=True)
class Analysis:
    """The measured degradation of one image (see the module docstring).

    Attributes:
      noise: noise standard deviation on the 8-bit scale (sigma 25 -> ~25).
      blockiness: JPEG blocking (~0 for none).
    """

    noise: float
    blockiness: float

    def to_json(self) -> dict[str, float]:
        return {
            "noise_sigma_255": round(self.noise, 3),
            "blockiness": round(self.blockiness, 4),
        }


def analyse(image: np.ndarray) -> Analysis:
    """Noise level and blocking of an image `[H, W, 3]` in [0, 1]."""
    return Analysis(noise=255.0 * noise_sigma(image), blockiness=blockiness(image))

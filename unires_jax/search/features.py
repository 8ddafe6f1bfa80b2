"""Cheap degradation statistics of an image: the input of the weight predictor.

The paper predicts weights from an MT-A image feature; any degradation-aware feature will do
("better features ... left for future study"). These are classical, model-free estimates of
what the experts undo: noise level (DN), blur / missing high frequencies (SR, MD, DD), JPEG
blocking, and global tone and colour statistics. All are computed on the image as given,
in float64 numpy, in a few milliseconds for a 512 px image.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FEATURE_NAMES = (
    "noise_sigma",  # Immerkaer's fast noise estimate on luma
    "laplacian_var",  # variance of the Laplacian (sharpness)
    "gradient_mean",  # mean gradient magnitude
    "highpass_ratio",  # energy lost to a sigma-1 Gaussian blur / total variance
    "spectrum_high",  # fraction of spectral energy above half the Nyquist frequency
    "directionality",  # anisotropy of the gradient structure tensor (motion blur)
    "blockiness",  # mean |difference| across 8 px block borders / elsewhere (JPEG)
    "brightness",  # mean luma
    "contrast",  # standard deviation of luma
    "dynamic_range",  # 99th - 1st percentile of luma
    "saturation",  # mean HSV saturation
    "colorfulness",  # Hasler and Suesstrunk's colourfulness
)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(
            f"degradation features need an RGB image [H, W, 3], got shape {array.shape}"
        )
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float64) / 65535.0
    return np.clip(array.astype(np.float64), 0.0, 1.0)


def _noise_sigma(y: np.ndarray) -> float:
    """Immerkaer (1996): sigma from the response to a Laplacian-difference mask."""
    if min(y.shape) < 3:
        return 0.0
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    response = ndimage.convolve(y, mask, mode="reflect")[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(response).mean() / 6.0)


def _blockiness(y: np.ndarray, block: int = 8) -> float:
    """Mean absolute step across block borders over the mean step inside blocks (1 = none)."""
    ratios = []
    for axis in (0, 1):
        d = np.abs(np.diff(y, axis=axis))
        idx = np.arange(d.shape[axis])
        border = (idx % block) == block - 1
        if border.sum() == 0 or (~border).sum() == 0:
            continue
        on = np.take(d, np.flatnonzero(border), axis=axis).mean()
        off = np.take(d, np.flatnonzero(~border), axis=axis).mean()
        ratios.append(on / max(off, 1e-8))
    return float(np.mean(ratios)) if ratios else 1.0


def _spectrum_high(y: np.ndarray) -> float:
    spectrum = np.abs(np.fft.fft2(y - y.mean())) ** 2
    fy = np.abs(np.fft.fftfreq(y.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(y.shape[1]))[None, :]
    high = np.maximum(fy, fx) > 0.25
    return float(spectrum[high].sum() / max(spectrum.sum(), 1e-12))


def _directionality(y: np.ndarray) -> float:
    """(l1 - l2) / (l1 + l2) of the image-wide gradient structure tensor."""
    gy, gx = np.gradient(y)
    jxx, jyy, jxy = (gx * gx).mean(), (gy * gy).mean(), (gx * gy).mean()
    root = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2)
    return float(root / max(jxx + jyy, 1e-12))


def degradation_features(image: np.ndarray) -> np.ndarray:
    """Degradation statistics of one image.

    Args:
      image: `[H, W, 3]` uint8, uint16 or float in [0, 1].

    Returns:
      float64 `[F]` in `FEATURE_NAMES` order.
    """
    rgb = _as_rgb(image)
    y = rgb @ np.array([0.299, 0.587, 0.114])
    gy, gx = np.gradient(y)
    variance = max(float(y.var()), 1e-12)
    blurred = ndimage.gaussian_filter(y, 1.0, mode="reflect")
    maxc, minc = rgb.max(axis=-1), rgb.min(axis=-1)
    saturation = np.where(maxc > 0, (maxc - minc) / np.maximum(maxc, 1e-12), 0.0)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    colorfulness = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    lo, hi = np.percentile(y, [1, 99])
    values = {
        "noise_sigma": _noise_sigma(y),
        "laplacian_var": float(ndimage.laplace(y, mode="reflect").var()),
        "gradient_mean": float(np.hypot(gx, gy).mean()),
        "highpass_ratio": float(((y - blurred) ** 2).mean() / variance),
        "spectrum_high": _spectrum_high(y),
        "directionality": _directionality(y),
        "blockiness": _blockiness(y),
        "brightness": float(y.mean()),
        "contrast": float(y.std()),
        "dynamic_range": float(hi - lo),
        "saturation": float(saturation.mean()),
        "colorfulness": float(colorfulness),
    }
    return np.array([values[name] for name in FEATURE_NAMES], np.float64)

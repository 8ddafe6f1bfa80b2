"""Natural-scene-statistics building blocks shared by NIQE, BRISQUE and PIQE.

These reproduce the MATLAB reference releases (LIVE's NIQE/BRISQUE code, MATLAB's `imresize`,
`fspecial`, `rgb2gray`) and BasicSR's Python port of them, including BasicSR's float32 steps, so
that scores agree with those references to well below 1e-3. Everything here is NumPy: the
statistics are per-block reductions followed by a table look-up, which is cheap on the host.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage, special

# The gamma grid of the reference moment-matching fits (MATLAB `gam = 0.2:0.001:10`).
GAMMA_GRID = np.arange(0.2, 10.001, 0.001)
_INV = np.reciprocal(GAMMA_GRID)
# r(g) = Gamma(2/g)^2 / (Gamma(1/g) Gamma(3/g)): strictly increasing on the grid, which lets the
# nearest-grid search use `searchsorted` instead of a [blocks, 9801] table.
_R_GAMMA = np.square(special.gamma(_INV * 2)) / (
    special.gamma(_INV) * special.gamma(_INV * 3)
)
# BRISQUE's GGD fit uses the reciprocal table, computed the same way as there (decreasing).
_RHO_GAMMA = (special.gamma(_INV) * special.gamma(_INV * 3)) / np.square(
    special.gamma(_INV * 2)
)

# BT.601 luma weights of BasicSR's `bgr2ycbcr(y_only=True)`, in B, G, R order.
_BGR_TO_Y = [24.966, 128.553, 65.481]
# MATLAB `rgb2gray` weights.
_RGB_TO_GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def gaussian_window(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """MATLAB `fspecial('gaussian', size, sigma)`, normalised to sum 1. Returns [size, size]."""
    r = (size - 1) / 2
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h / h.sum()


def to_y_channel(rgb: np.ndarray) -> np.ndarray:
    """BasicSR's `to_y_channel` for RGB input: BT.601 luma in [16, 235], float32, not rounded.

    BasicSR feeds `cv2.imread` (BGR) arrays to `bgr2ycbcr`; this takes RGB and reverses the channel
    order, so the arithmetic (float32 input, float64 dot, float32 output) is the same bit for bit.

    Args:
        rgb: [H, W, 3] image in [0, 255].

    Returns:
        [H, W] float32 luma in [0, 255].
    """
    img = np.asarray(rgb, np.float32) / np.float32(255.0)
    y = np.dot(img[..., ::-1], _BGR_TO_Y) + 16.0
    return (y / 255.0).astype(np.float32) * np.float32(255.0)


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """MATLAB `rgb2gray` on a uint8-valued image (rounded to integers). [H, W, 3] -> [H, W]."""
    return np.round(np.asarray(rgb, np.float64) @ _RGB_TO_GRAY)


def to_luma(images: np.ndarray, convert_to: str) -> np.ndarray:
    """Turns [N, H, W, C] images in [0, 1] into [N, H, W] float32 intensities in [0, 255].

    Args:
        images: [N, H, W, 1] grey or [N, H, W, 3] RGB, floats in [0, 1].
        convert_to: "y" (BasicSR/MATLAB YCbCr luma) or "gray" (MATLAB `rgb2gray`); ignored for
            single-channel input.

    Returns:
        [N, H, W] float32 in [0, 255], not rounded.
    """
    x = np.asarray(images, np.float64)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            f"expected images [N, H, W, 1 or 3] in [0, 1], got shape {x.shape}"
        )
    x255 = (x * 255.0).astype(np.float32)
    if x.shape[-1] == 1:
        return x255[..., 0]
    if convert_to == "y":
        return np.stack([to_y_channel(im) for im in x255])
    if convert_to == "gray":
        return np.stack([rgb_to_gray(np.round(im)) for im in x255]).astype(np.float32)
    raise ValueError(f"convert_to must be 'y' or 'gray', got {convert_to!r}")


def mscn(
    img: np.ndarray, window: np.ndarray, mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted contrast-normalised coefficients, (I - mu) / (sigma + 1).

    Computed in the input's dtype, as BasicSR does (float32 there); `mode` is "nearest" for
    MATLAB `imfilter(..., 'replicate')` (NIQE, PIQE) and "constant" for `filter2(..., 'same')`
    (BRISQUE).

    Args:
        img: [H, W] intensities in [0, 255].
        window: [k, k] normalised weighting window.
        mode: scipy.ndimage boundary mode.

    Returns:
        (mscn [H, W], sigma [H, W]).
    """
    mu = ndimage.convolve(img, window, mode=mode)
    sigma = np.sqrt(
        np.abs(ndimage.convolve(np.square(img), window, mode=mode) - np.square(mu))
    )
    return (img - mu) / (sigma + 1), sigma


def _cubic(x: np.ndarray) -> np.ndarray:
    one = x.dtype.type(1)
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (ax <= one).astype(x.dtype)
    far = ((ax > one) & (ax <= 2)).astype(x.dtype)
    c = x.dtype.type
    return (c(1.5) * ax3 - c(2.5) * ax2 + one) * near + (
        c(-0.5) * ax3 + c(2.5) * ax2 - c(4) * ax + c(2)
    ) * far


def _resize_taps(
    in_len: int, out_len: int, scale: float, antialias: bool, dtype: type = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB bicubic `imresize` along one axis as taps: weights, indices [out_len, p].

    The symmetric boundary extension of MATLAB (and BasicSR's `calculate_weights_indices`) is
    applied to the indices, so each output sample is sum_k weights[:, k] * x[indices[:, k]].
    In float32 every operation is BasicSR's torch one in the same order, so the weights agree
    bit for bit.
    """
    c = np.dtype(dtype).type
    kernel_width = 4.0 / scale if (scale < 1 and antialias) else 4.0
    x = np.arange(1, out_len + 1).astype(dtype)
    u = x / c(scale) + c(0.5 * (1 - 1 / scale))
    left = np.floor(u - c(kernel_width / 2))
    p = math.ceil(kernel_width) + 2
    idx = left[:, None] + np.arange(p).astype(dtype)[None, :]  # 1-based input positions
    dist = u[:, None] - idx
    w = (
        c(scale) * _cubic(dist * c(scale))
        if (scale < 1 and antialias)
        else _cubic(dist)
    )
    w = w / w.sum(axis=1, keepdims=True, dtype=dtype)
    i0 = idx.astype(np.int64) - 1
    i0 = np.where(i0 < 0, -i0 - 1, i0)  # mirror with the edge sample repeated
    i0 = np.where(i0 >= in_len, 2 * in_len - 1 - i0, i0)
    return w, i0


def _resize_axis0(
    x: np.ndarray, out_len: int, scale: float, antialias: bool, dtype: type
) -> np.ndarray:
    w, idx = _resize_taps(x.shape[0], out_len, scale, antialias, dtype)
    out = np.zeros((out_len,) + x.shape[1:], dtype)
    # Tap by tap, left to right: a handful of gathers beat a dense matrix product, and this is
    # the summation order of torch's float32 `mv` in BasicSR (each product rounded, no FMA).
    for k in range(w.shape[1]):
        out += w[:, k, None] * x[idx[:, k]]
    return out


def imresize(
    img: np.ndarray, scale: float, antialias: bool = True, dtype: type = np.float64
) -> np.ndarray:
    """MATLAB `imresize(img, scale)` (bicubic, antialiased when shrinking), as BasicSR's.

    Args:
        img: [H, W] image (any range).
        scale: resize factor; the output is [ceil(H * scale), ceil(W * scale)].
        antialias: widen the kernel when shrinking, as MATLAB does by default.
        dtype: the arithmetic: float64 (MATLAB's) or float32, which reproduces BasicSR's torch
            `imresize` bit for bit.

    Returns:
        [H', W'] in `dtype`.
    """
    h, w = img.shape
    rows = _resize_axis0(
        np.asarray(img, dtype), math.ceil(h * scale), scale, antialias, dtype
    )
    return _resize_axis0(
        np.ascontiguousarray(rows.T), math.ceil(w * scale), scale, antialias, dtype
    ).T


def nearest_gamma(ratio: np.ndarray) -> np.ndarray:
    """Index of the grid value argmin_g (r(g) - ratio)^2, as MATLAB's `min` picks it.

    NaN or infinite ratios (flat blocks) give index 0, which is what `argmin` over a NaN/inf
    table returns in the references.
    """
    ratio = np.asarray(ratio, np.float64)
    finite = np.isfinite(ratio)
    v = np.where(finite, ratio, 0.0)
    hi = np.clip(np.searchsorted(_R_GAMMA, v), 1, len(_R_GAMMA) - 1)
    lo = hi - 1
    pick = np.where((_R_GAMMA[lo] - v) ** 2 <= (_R_GAMMA[hi] - v) ** 2, lo, hi)
    return np.where(finite, pick, 0)


def _masked_means(sq: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-row mean of sq[mask], with NumPy's 1-D summation order (NaN for empty rows)."""
    out = np.full(len(sq), np.nan, sq.dtype)
    for i, (row, m) in enumerate(zip(sq, mask)):
        picked = row[m]
        if picked.size:
            out[i] = np.mean(picked)
    return out


def fit_aggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalised Gaussian fit by moment matching (LIVE `estimateaggdparam`).

    The moments are taken in the input's dtype with NumPy's 1-D reductions, exactly as BasicSR
    does on its float32 blocks: the fitted shape is a grid look-up, so summation-order
    differences would otherwise flip it by one grid step now and then.

    Args:
        x: [..., M] samples; each leading index is fitted separately.

    Returns:
        (alpha, left_std, right_std), each [...] float64. The NIQE scale parameters are
        `std * sqrt(Gamma(1/alpha) / Gamma(3/alpha))`.
    """
    x = np.asarray(x)
    rows = np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
    sq = rows**2
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt(_masked_means(sq, rows < 0))
        right = np.sqrt(_masked_means(sq, rows > 0))
        g = left / right
        # Row-wise reductions over a contiguous last axis sum in the same order as on 1-D arrays.
        rhat = np.mean(np.abs(rows), axis=-1) ** 2 / np.mean(sq, axis=-1)
        rhatnorm = (rhat * (g**3 + 1) * (g + 1)) / ((g**2 + 1) ** 2)
    shape = x.shape[:-1]
    alpha = GAMMA_GRID[nearest_gamma(rhatnorm.astype(np.float64))].reshape(shape)
    return (
        alpha,
        left.astype(np.float64).reshape(shape),
        right.astype(np.float64).reshape(shape),
    )


def fit_ggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Generalised Gaussian fit by moment matching (LIVE `estimateggdparam`).

    Args:
        x: [..., M] samples.

    Returns:
        (alpha, sigma), each [...], sigma = sqrt(mean(x^2)).
    """
    x = np.asarray(x, np.float64)
    sigma_sq = np.mean(x * x, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = sigma_sq / np.mean(np.abs(x), -1) ** 2
    # The reference minimises |rho - table| over a decreasing table.
    table = _RHO_GAMMA
    finite = np.isfinite(rho)
    v = np.where(finite, rho, 0.0)
    hi = np.clip(np.searchsorted(-table, -v), 1, len(table) - 1)
    lo = hi - 1
    pick = np.where(np.abs(v - table[lo]) <= np.abs(v - table[hi]), lo, hi)
    return GAMMA_GRID[np.where(finite, pick, 0)], np.sqrt(sigma_sq)


def aggd_mean(alpha: np.ndarray, beta_l: np.ndarray, beta_r: np.ndarray) -> np.ndarray:
    """Mean of an AGGD with shape alpha and scales beta_l, beta_r (NIQE/BRISQUE Eq. 8)."""
    return (beta_r - beta_l) * (special.gamma(2 / alpha) / special.gamma(1 / alpha))


def std_to_scale(alpha: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Converts a (one-sided) standard deviation into the GGD scale for shape alpha."""
    return std * np.sqrt(special.gamma(1 / alpha) / special.gamma(3 / alpha))


# Pairwise-product neighbours of the references, as `np.roll`/`circshift` shifts (rows, cols).
NIQE_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
BRISQUE_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))

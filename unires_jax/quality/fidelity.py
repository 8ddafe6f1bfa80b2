"""Full-reference fidelity: PSNR and SSIM, batched and jit-able, matching scikit-image.

`psnr` and `ssim` reproduce `skimage.metrics.peak_signal_noise_ratio` and
`skimage.metrics.structural_similarity` (with `channel_axis=-1`) image by image. The SSIM default
is the setting of SR papers (Gaussian window, sigma 1.5, population covariance); pass
`gaussian_weights=False, use_sample_covariance=True` for scikit-image's own defaults (7x7 uniform
window). `y_channel` and `crop_border` follow BasicSR's evaluation: score the BT.601 luma of RGB
images after dropping `crop_border` pixels at each edge.

Precision follows the input dtype: float32 by default under JAX; for 1e-6 agreement with
scikit-image's float64 results, run under `jax.enable_x64(True)` with float64 inputs.

`psnr_pyiqa` and `ssim_pyiqa` reproduce pyiqa's default "psnr" and "ssim" metrics (pyiqa 0.1.x),
the numbers FoundIR's `cal_metrics.py` reports: PSNR on RGB with 1e-8 added to the MSE; SSIM on
the luma Y = 0.299 R + 0.587 G + 0.114 B (YIQ), rounded to integer levels 0..255, over the valid
region of an 11x11 Gaussian window (sigma 1.5), with the contrast-structure term clipped at 0
(the MATLAB reference SSIM without its downsampling).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def rgb_to_y(images: jax.Array) -> jax.Array:
    """BT.601 luma of RGB images in [0, 1] (BasicSR's `rgb2ycbcr(y_only=True)`). [..., 3] -> [..., 1]."""
    w = jnp.asarray([65.481, 128.553, 24.966], images.dtype) / 255.0
    return (images @ w + 16.0 / 255.0)[..., None]


def luma_yiq(images: jax.Array) -> jax.Array:
    """Y of YIQ (0.299 R + 0.587 G + 0.114 B), pyiqa's default luma. [..., 3] -> [..., 1]."""
    r, g, b = images[..., 0], images[..., 1], images[..., 2]
    return (r * 0.299 + g * 0.587 + b * 0.114)[..., None]


def _prepare(a: jax.Array, b: jax.Array, crop_border: int, y_channel: bool):
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(
            f"expected two image batches of the same shape [N, H, W, C], got {a.shape} and {b.shape}"
        )
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a, b = a.astype(jnp.float32), b.astype(jnp.float32)
    if y_channel:
        if a.shape[-1] != 3:
            raise ValueError(
                f"y_channel=True needs RGB images, got {a.shape[-1]} channels"
            )
        a, b = rgb_to_y(a), rgb_to_y(b)
    if crop_border:
        a = a[:, crop_border:-crop_border, crop_border:-crop_border]
        b = b[:, crop_border:-crop_border, crop_border:-crop_border]
    return a, b


@functools.partial(jax.jit, static_argnames=("data_range", "crop_border", "y_channel"))
def psnr(
    a: jax.Array,
    b: jax.Array,
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> jax.Array:
    """Peak signal-to-noise ratio per image, as `skimage.metrics.peak_signal_noise_ratio`.

    Args:
        a, b: [N, H, W, C] images (`a` is the reference; PSNR is symmetric).
        data_range: max - min of the pixel scale (1.0 for [0, 1] images).
        crop_border: pixels dropped at each edge first.
        y_channel: compare the BT.601 luma of RGB images (BasicSR's `test_y_channel`).

    Returns:
        [N] PSNR in dB (inf for identical images).
    """
    a, b = _prepare(a, b, crop_border, y_channel)
    mse = jnp.mean(jnp.square(a - b), axis=(1, 2, 3))
    return 10.0 * jnp.log10(data_range**2 / mse)


def _filter_taps(gaussian_weights: bool, sigma: float, win_size: int) -> np.ndarray:
    """1-D taps of scipy's `gaussian_filter(truncate=3.5)` or `uniform_filter(win_size)`."""
    if not gaussian_weights:
        return np.full(win_size, 1.0 / win_size)
    r = (win_size - 1) // 2
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * x * x / (sigma * sigma))
    return k / k.sum()


def _separable_filter(x: jax.Array, taps: np.ndarray) -> jax.Array:
    """Filters [N, H, W, C] along H and W with `taps`, scipy's 'reflect' (half-sample) boundary."""
    r = (len(taps) - 1) // 2
    xp = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="symmetric")
    h, w = x.shape[1], x.shape[2]
    taps = [float(t) for t in taps]
    rows = sum(t * xp[:, i : i + h] for i, t in enumerate(taps))
    return sum(t * rows[:, :, i : i + w] for i, t in enumerate(taps))


@functools.partial(
    jax.jit,
    static_argnames=(
        "data_range",
        "gaussian_weights",
        "sigma",
        "win_size",
        "use_sample_covariance",
        "k1",
        "k2",
        "crop_border",
        "y_channel",
        "nonnegative_cs",
    ),
)
def ssim(
    a: jax.Array,
    b: jax.Array,
    data_range: float = 1.0,
    gaussian_weights: bool = True,
    sigma: float = 1.5,
    win_size: int | None = None,
    use_sample_covariance: bool = False,
    k1: float = 0.01,
    k2: float = 0.03,
    crop_border: int = 0,
    y_channel: bool = False,
    nonnegative_cs: bool = False,
) -> jax.Array:
    """Mean structural similarity per image, as `skimage.metrics.structural_similarity`.

    Matches scikit-image called with `channel_axis=-1` and the same keyword arguments: SSIM maps
    per channel, the border of half a window dropped, the mean over pixels, then over channels.

    Args:
        a, b: [N, H, W, C] images.
        data_range: max - min of the pixel scale (1.0 for [0, 1] images).
        gaussian_weights: Gaussian window (sigma, 11 taps for sigma 1.5) instead of a uniform one.
        sigma: Gaussian window width.
        win_size: window side; defaults as scikit-image (11 for sigma 1.5, 7 for uniform).
        use_sample_covariance: normalise (co)variances by NP - 1 instead of NP.
        k1, k2: stabilising constants.
        crop_border: pixels dropped at each edge first.
        y_channel: compare the BT.601 luma of RGB images.
        nonnegative_cs: clip the contrast-structure term at 0 before multiplying by the
          luminance term (pyiqa / the MATLAB reference; scikit-image does not).

    Returns:
        [N] mean SSIM.
    """
    a, b = _prepare(a, b, crop_border, y_channel)
    if win_size is None:
        win_size = 2 * int(3.5 * sigma + 0.5) + 1 if gaussian_weights else 7
    if win_size % 2 != 1 or min(a.shape[1:3]) < win_size:
        raise ValueError(
            f"SSIM window of {win_size} pixels needs odd size and images at least that large; "
            f"got images {a.shape[1]}x{a.shape[2]}"
        )
    taps = _filter_taps(gaussian_weights, sigma, win_size)
    n = win_size**2
    cov_norm = n / (n - 1) if use_sample_covariance else 1.0
    ux, uy = _separable_filter(a, taps), _separable_filter(b, taps)
    uxx = _separable_filter(a * a, taps)
    uyy = _separable_filter(b * b, taps)
    uxy = _separable_filter(a * b, taps)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    if nonnegative_cs:
        cs = jnp.maximum((2 * vxy + c2) / (vx + vy + c2), 0.0)
        s = (2 * ux * uy + c1) / (ux * ux + uy * uy + c1) * cs
    else:
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / (
            (ux * ux + uy * uy + c1) * (vx + vy + c2)
        )
    pad = (win_size - 1) // 2
    s = s[:, pad : s.shape[1] - pad, pad : s.shape[2] - pad]
    return jnp.mean(jnp.mean(s, axis=(1, 2)), axis=-1)


# pyiqa's PSNR adds this to the MSE (identical images score 80 dB, not infinity).
PYIQA_PSNR_EPS = 1e-8


@functools.partial(jax.jit, static_argnames=("crop_border",))
def psnr_pyiqa(a: jax.Array, b: jax.Array, crop_border: int = 0) -> jax.Array:
    """PSNR on RGB as pyiqa's "psnr" metric: 10 log10(1 / (MSE + 1e-8)), images in [0, 1].

    Args:
        a, b: [N, H, W, C] images in [0, 1].
        crop_border: pixels dropped at each edge first.

    Returns:
        [N] PSNR in dB.
    """
    a, b = _prepare(a, b, crop_border, False)
    mse = jnp.mean(jnp.square(a - b), axis=(1, 2, 3))
    return 10.0 * jnp.log10(1.0 / (mse + PYIQA_PSNR_EPS))


@functools.partial(jax.jit, static_argnames=("crop_border",))
def ssim_pyiqa(a: jax.Array, b: jax.Array, crop_border: int = 0) -> jax.Array:
    """SSIM on luma as pyiqa's "ssim" metric (test_y_channel=True, no downsampling).

    The luma is computed in float32 (as pyiqa on image tensors) and rounded to integer levels,
    the statistics in the input's precision (float64 under `jax.enable_x64`, as pyiqa).

    Args:
        a, b: [N, H, W, 3] RGB images in [0, 1].
        crop_border: pixels dropped at each edge first.

    Returns:
        [N] mean SSIM.
    """
    a, b = _prepare(a, b, crop_border, False)
    if a.shape[-1] != 3:
        raise ValueError(f"ssim_pyiqa needs RGB images, got {a.shape[-1]} channels")
    dtype = a.dtype

    def levels(x):
        y = luma_yiq(x.astype(jnp.float32)) * jnp.float32(255.0)
        return jnp.round(y).astype(dtype)

    return ssim(levels(a), levels(b), data_range=255.0, nonnegative_cs=True)

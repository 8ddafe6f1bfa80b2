"""Image resizing as separable matrices, and the GIR "resize" operator (x4 bicubic down + up).

Methods:
- "area", "bilinear", "bicubic": the semantics of `torch.nn.functional.interpolate` with
  align_corners=False and no antialiasing (what Real-ESRGAN's pipeline uses; bicubic a = -0.75,
  area = adaptive average pooling).
- "bicubic_aa": MATLAB `imresize`-style bicubic (a = -0.5) whose kernel is stretched by the
  scale when shrinking (antialiased), with symmetric edge padding. The usual x4 SR benchmark
  downscale.

Each method gives, per output sample, a few input indices and weights per axis; resizing gathers
and sums them along rows, then columns (~1-2 ms for 256x256 RGB).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np

from unires_jax.data.degradations.image import check_image, clip_unit

METHODS = ("area", "bilinear", "bicubic", "bicubic_aa")


def _cubic(x: np.ndarray, a: float) -> np.ndarray:
    """Keys cubic convolution kernel with parameter a."""
    x = np.abs(x)
    x2, x3 = x * x, x * x * x
    near = (a + 2) * x3 - (a + 3) * x2 + 1
    far = a * x3 - 5 * a * x2 + 8 * a * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _symmetric_index(idx: np.ndarray, n: int) -> np.ndarray:
    """Maps out-of-range indices by half-sample symmetric reflection (MATLAB 'symmetric')."""
    period = 2 * n
    idx = np.mod(idx, period)
    return np.where(idx >= n, period - 1 - idx, idx)


def resize_taps(n_in: int, n_out: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Input indices and weights of every output sample: two [n_out, T] arrays.

    Output sample o is sum_t weights[o, t] * x[indices[o, t]]; unused taps have weight 0.
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"resize.py: sizes must be >= 1, got {n_in} -> {n_out}.")
    ratio = n_in / n_out
    dst = np.arange(n_out, dtype=np.float64)
    if method == "area":
        # Adaptive average pooling: output i averages input [floor(i r), ceil((i + 1) r)).
        # Integer arithmetic, as in torch: float products like 85 * (255 / 85) overshoot n_in.
        i = np.arange(n_out, dtype=np.int64)
        start = (i * n_in) // n_out
        width = -((-(i + 1) * n_in) // n_out) - start
        taps = np.arange(width.max())
        valid = taps[None, :] < width[:, None]
        cols = np.where(valid, start[:, None] + taps[None, :], 0)
        return cols, np.where(valid, 1.0 / width[:, None], 0.0)
    src = (dst + 0.5) * ratio - 0.5
    if method == "bilinear":
        src = np.maximum(src, 0.0)
        i0 = np.floor(src).astype(np.int64)
        frac = src - i0
        i0 = np.minimum(i0, n_in - 1)
        cols = np.stack([i0, np.minimum(i0 + 1, n_in - 1)], axis=1)
        return cols, np.stack([1 - frac, frac], axis=1)
    if method == "bicubic":
        i0 = np.floor(src).astype(np.int64)
        offsets = np.arange(-1, 3)
        cols = np.clip(i0[:, None] + offsets[None, :], 0, n_in - 1)
        return cols, _cubic((src - i0)[:, None] - offsets[None, :], a=-0.75)
    if method == "bicubic_aa":
        scale = min(n_out / n_in, 1.0)  # stretch the kernel only when shrinking
        support = 2.0 / scale
        first = np.floor(src - support).astype(np.int64) + 1
        cols = first[:, None] + np.arange(math.ceil(2 * support) + 1)[None, :]
        w = _cubic((src[:, None] - cols) * scale, a=-0.5) * scale
        return _symmetric_index(cols, n_in), w / w.sum(axis=1, keepdims=True)
    raise ValueError(
        f"resize.py: unknown method {method!r}; expected one of {METHODS}."
    )


def resize_matrix(n_in: int, n_out: int, method: str) -> np.ndarray:
    """Dense weights W with out = W @ x for a length-n_in signal: [n_out, n_in] float64."""
    cols, weights = resize_taps(n_in, n_out, method)
    matrix = np.zeros((n_out, n_in), np.float64)
    rows = np.broadcast_to(np.arange(n_out)[:, None], cols.shape)
    np.add.at(matrix, (rows, cols), weights)
    return matrix


def _resize_axis0(x: np.ndarray, n_out: int, method: str) -> np.ndarray:
    cols, weights = resize_taps(x.shape[0], n_out, method)
    weights = weights.astype(np.float32)
    # A gather and a weighted sum over the few taps: no BLAS call, so no thread start-up or
    # contention in data-loader workers (a BLAS matmul here took ~50 ms on a busy 2-core host).
    out = weights[:, 0, None, None] * x[cols[:, 0]]
    for t in range(1, cols.shape[1]):
        out += weights[:, t, None, None] * x[cols[:, t]]
    return out


def resize_image(image: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    """Resizes an image: [H, W, C] -> [size[0], size[1], C] float32 (not clipped).

    Args:
        image: [H, W, C] float array.
        size: (height, width) of the output.
        method: one of `METHODS`.
    """
    image = image.astype(np.float32, copy=False)
    if image.shape[:2] == tuple(size):
        return image
    out = _resize_axis0(image, size[0], method)
    out = _resize_axis0(out.transpose(1, 0, 2), size[1], method)
    return np.ascontiguousarray(out.transpose(1, 0, 2))


# ----------------------------------------------------------------------------------------------
# GIR "resize": Upsample(Downsample(x)), x4 bicubic both ways (appendix A.1, Eq. 7).


@dataclasses.dataclass(frozen=True)
class ResizeParams:
    """Down- then up-sampling back to the input size (GIR "resize").

    GIR uses x4 bicubic for both the representative and the random tasks, so the sampler
    always returns scale 4 with antialiased bicubic down and bicubic up; other values are for
    callers who build their own variants. Ranges: scale in [4, 4].
    """

    scale: float = 4.0
    down: str = "bicubic_aa"
    up: str = "bicubic"

    RANGES: ClassVar[dict] = {"scale": (4.0, 4.0)}


def sample_resize_params(rng: np.random.Generator) -> ResizeParams:
    """GIR resize has fixed parameters (x4 bicubic); `rng` is unused."""
    return ResizeParams()


def apply_resize(
    image: np.ndarray, params: ResizeParams, rng: np.random.Generator
) -> np.ndarray:
    """Downscale by `params.scale` and upscale back: [H, W, 3] -> [H, W, 3] float32 in [0, 1]."""
    image = check_image(image, "resize")
    h, w = image.shape[:2]
    small = (max(1, round(h / params.scale)), max(1, round(w / params.scale)))
    return clip_unit(
        resize_image(resize_image(image, small, params.down), (h, w), params.up)
    )

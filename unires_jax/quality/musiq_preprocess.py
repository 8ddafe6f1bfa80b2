"""MUSIQ input pipeline: multi-scale patches, hashed positions, padding and length buckets.

An image [H, W, 3] in [-1, 1] becomes one sequence of 32x32 patches: for each longer-side length
(224, 384, sorted) an aspect-preserving resized copy is cut into patches and padded to
ceil(L / 32)^2 entries, then every patch of the native-resolution image follows (no cap). Each
patch carries a hashed spatial position on a G x G grid (shared across scales), a scale index
and a validity mask. This mirrors `musiq/model/preprocessing.py` of the official release, which
pyiqa's `multiscale_trans_util.py` transliterates.

Everything here is NumPy and runs outside `jit`, so images of any size cost no recompilation;
the model then sees sequences padded to a few bucket lengths (`bucket_length`).

Two resize implementations are reproduced exactly (they are the main source of score
differences between the two reference codes):
- "tf_gaussian": `tf.image.resize(method=GAUSSIAN)` of the official TF code: TF's
  scale-and-translate sampler with a Gaussian kernel (radius 1.5, sigma 0.5), weights renormalised
  at the borders, kernel widened by the downscale factor only when `antialias=True` (the official
  code leaves it False); output size rounded from float32 arithmetic.
- "torch_bicubic": `F.interpolate(mode="bicubic", align_corners=False)` as pyiqa calls it: Keys
  cubic with a = -0.75, half-pixel centres, edge pixels replicated, no antialiasing; output size
  rounded from Python floats.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import numpy as np

RESIZE_METHODS = ("tf_gaussian", "torch_bicubic")

_GAUSSIAN_RADIUS = 1.5
_GAUSSIAN_SIGMA = 0.5
_CUBIC_A = -0.75


@dataclasses.dataclass(frozen=True)
class PatchSequence:
    """One image as a MUSIQ token sequence (before the CLS token).

    Attributes:
        patches: [L, P, P, 3] float32 pixels in [-1, 1] (zeros where padded).
        spatial: [L] int32 hashed position in [0, G * G).
        scale: [L] int32 scale index (0 for the smallest resized copy; native is the last).
        mask: [L] bool, False for padding.
    """

    patches: np.ndarray
    spatial: np.ndarray
    scale: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return int(self.mask.shape[0])


def scaled_size(h: int, w: int, longer_side: int, method: str) -> tuple[int, int]:
    """Aspect-preserving size whose longer side is `longer_side`, rounded half to even.

    TF computes the ratio and products in float32; pyiqa in Python (float64) floats. Both round
    half to even, so they differ only at rare near-ties, which is why the method is an argument.
    """
    if method == "tf_gaussian":
        ratio = np.float32(longer_side) / np.float32(max(h, w))
        return int(np.round(np.float32(h) * ratio)), int(
            np.round(np.float32(w) * ratio)
        )
    ratio = longer_side / max(h, w)
    return round(h * ratio), round(w * ratio)


def _gaussian_matrix(in_size: int, out_size: int, antialias: bool) -> np.ndarray:
    # TF's ScaleAndTranslate span/weight computation (translation 0), step by step in float32 as
    # TF does it: span ends and the zero weight at exactly the radius depend on float32 rounding.
    f32 = np.float32
    scale = f32(out_size) / f32(in_size)
    inv_scale = f32(1.0 / float(scale))
    kernel_scale = max(inv_scale, f32(1.0)) if antialias else f32(1.0)
    reach = f32(_GAUSSIAN_RADIUS) * kernel_scale
    one_over_kernel_scale = f32(1.0) / kernel_scale
    m = np.zeros((out_size, in_size), np.float32)
    for x in range(out_size):
        sample = (f32(x) + f32(0.5)) * inv_scale
        start = min(max(int(np.ceil(sample - reach - f32(0.5))), 0), in_size - 1)
        end = min(max(int(np.floor(sample + reach - f32(0.5))), 0), in_size - 1) + 1
        pos = np.abs(
            (np.arange(start, end).astype(f32) + f32(0.5) - sample)
            * one_over_kernel_scale
        )
        gauss = np.exp(
            (-(pos * pos)).astype(np.float64) / (2.0 * _GAUSSIAN_SIGMA**2)
        ).astype(f32)
        wts = np.where(pos >= f32(_GAUSSIAN_RADIUS), f32(0.0), gauss)
        total = f32(0.0)
        for v in wts:  # sequential float32 sum, as TF accumulates
            total = f32(total + v)
        if abs(total) >= 1000.0 * np.finfo(f32).tiny:
            wts = wts * (f32(1.0) / total)
        m[x, start:end] = wts
    return m


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    # Keys' cubic convolution weights for the taps at offsets -1, 0, 1, 2 from floor(src).
    a = _CUBIC_A

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


def _bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    # PyTorch's upsample_bicubic2d (align_corners=False, scale from sizes, float32 index math).
    scale = np.float32(in_size) / np.float32(out_size)
    dst = np.arange(out_size, dtype=np.float32) + np.float32(0.5)
    # scale * dst - 0.5 with one rounding: PyTorch's CPU kernel is compiled to a fused
    # multiply-add here, and separate roundings move the taps' weights by up to 1e-5.
    src = (np.float64(scale) * dst.astype(np.float64) - 0.5).astype(np.float32)
    idx = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    t = np.clip(src - idx, 0.0, 1.0).astype(np.float32)
    wts = _cubic_weights(t)
    m = np.zeros((out_size, in_size), np.float64)
    rows = np.arange(out_size)
    for tap in range(4):
        cols = np.clip(idx - 1 + tap, 0, in_size - 1)
        np.add.at(m, (rows, cols), wts[:, tap])
    return m


@functools.lru_cache(maxsize=64)
def resize_matrix(
    in_size: int, out_size: int, method: str, antialias: bool = False
) -> np.ndarray:
    """The [out_size, in_size] float32 matrix of a 1-D resize (read-only, cached).

    Args:
        in_size: source length.
        out_size: target length.
        method: one of RESIZE_METHODS.
        antialias: widen the Gaussian kernel when downscaling (TF's `antialias=`); bicubic
            ignores it because pyiqa never antialiases.
    """
    if method == "tf_gaussian":
        m = _gaussian_matrix(in_size, out_size, antialias)
    elif method == "torch_bicubic":
        m = _bicubic_matrix(in_size, out_size)
    else:
        raise ValueError(
            f"unknown MUSIQ resize method {method!r}; expected one of {RESIZE_METHODS}"
        )
    m = m.astype(np.float32)
    m.setflags(write=False)
    return m


def resize(
    image: np.ndarray, out_h: int, out_w: int, method: str, antialias: bool = False
) -> np.ndarray:
    """Separable resize. image: [H, W, C] float32 -> [out_h, out_w, C] float32."""
    h, w, c = image.shape
    rows = resize_matrix(h, out_h, method, antialias)
    cols = resize_matrix(w, out_w, method, antialias)
    x = (rows @ image.reshape(h, w * c)).reshape(out_h, w, c)
    x = np.einsum("hwc,ow->hoc", x, cols, optimize=True)
    return np.ascontiguousarray(x, dtype=np.float32)


def hashed_positions(grid_size: int, count_h: int, count_w: int) -> np.ndarray:
    """Hash-based spatial position of each patch, row-major. Returns [count_h * count_w] int32.

    A nearest-neighbour resize of range(G) to the patch counts (floor(i * G / count), float32 as
    both TF and PyTorch compute it), combined as row * G + col.
    """

    def nearest(count: int) -> np.ndarray:
        step = np.float32(grid_size) / np.float32(count)
        idx = np.floor(np.arange(count, dtype=np.float32) * step).astype(np.int32)
        return np.minimum(idx, grid_size - 1)

    return (nearest(count_h)[:, None] * grid_size + nearest(count_w)[None, :]).reshape(
        -1
    )


def image_patches(image: np.ndarray, patch: int) -> tuple[np.ndarray, int, int]:
    """Non-overlapping patches with TF "SAME" zero padding (extra row/column at the bottom/right).

    Args:
        image: [H, W, C].
        patch: patch size P (also the stride).

    Returns:
        ([count_h * count_w, P, P, C] row-major patches, count_h, count_w).
    """
    h, w, c = image.shape
    count_h, count_w = -(-h // patch), -(-w // patch)
    pad_h, pad_w = count_h * patch - h, count_w * patch - w
    x = np.pad(
        image,
        ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
    )
    x = x.reshape(count_h, patch, count_w, patch, c).transpose(0, 2, 1, 3, 4)
    return x.reshape(count_h * count_w, patch, patch, c), count_h, count_w


def _scale_sequence(
    image: np.ndarray, patch: int, grid_size: int, scale_id: int, max_len: int | None
):
    patches, count_h, count_w = image_patches(image, patch)
    n = patches.shape[0]
    spatial = hashed_positions(grid_size, count_h, count_w)
    length = n if max_len is None else max_len
    keep = min(n, length)
    out_p = np.zeros((length, patch, patch, image.shape[-1]), np.float32)
    out_p[:keep] = patches[:keep]
    out_s = np.zeros((length,), np.int32)
    out_s[:keep] = spatial[:keep]
    out_scale = np.full((length,), 0, np.int32)
    out_scale[:keep] = scale_id
    mask = np.zeros((length,), bool)
    mask[:keep] = True
    return out_p, out_s, out_scale, mask


def multiscale_patches(
    image: np.ndarray,
    *,
    patch_size: int,
    grid_size: int,
    longer_side_lengths: Sequence[int],
    method: str,
    antialias: bool = False,
) -> PatchSequence:
    """The MUSIQ sequence of one image.

    Args:
        image: [H, W, 3] float32 in [-1, 1].
        patch_size: P (32).
        grid_size: G of the hashed spatial embedding (10).
        longer_side_lengths: resized scales; sorted here so the scale ids are deterministic.
        method: resize implementation, one of RESIZE_METHODS.
        antialias: see `resize_matrix`.

    Returns:
        PatchSequence of length sum(ceil(L / P)^2) + ceil(H / P) * ceil(W / P).
    """
    image = np.asarray(image, np.float32)
    h, w, _ = image.shape
    parts = []
    lengths = sorted(longer_side_lengths)
    for scale_id, longer in enumerate(lengths):
        rh, rw = scaled_size(h, w, longer, method)
        resized = resize(image, rh, rw, method, antialias)
        # Padded copies keep a zero scale id and position, as in the official pipeline.
        max_len = math.ceil(longer / patch_size) ** 2
        parts.append(_scale_sequence(resized, patch_size, grid_size, scale_id, max_len))
    parts.append(_scale_sequence(image, patch_size, grid_size, len(lengths), None))
    patches, spatial, scale, mask = (np.concatenate(p, axis=0) for p in zip(*parts))
    return PatchSequence(patches, spatial, scale, mask)


def bucket_length(n: int, buckets: Sequence[int]) -> int:
    """The smallest bucket >= n; past the largest, n rounded up to a multiple of the largest."""
    for b in sorted(buckets):
        if b >= n:
            return b
    top = max(buckets)
    return -(-n // top) * top


def stack_sequences(
    seqs: Sequence[PatchSequence], length: int, batch: int
) -> dict[str, np.ndarray]:
    """Pads sequences to `length` tokens and the batch to `batch` rows (all masked).

    Returns:
        dict with patches [batch, length, P, P, 3] float32, spatial and scale [batch, length]
        int32, mask [batch, length] bool.
    """
    if len(seqs) > batch or any(len(s) > length for s in seqs):
        raise ValueError(
            f"cannot fit {len(seqs)} sequences of up to {max(map(len, seqs))} tokens into [{batch}, {length}]"
        )
    p = seqs[0].patches.shape[1:]
    out = {
        "patches": np.zeros((batch, length, *p), np.float32),
        "spatial": np.zeros((batch, length), np.int32),
        "scale": np.zeros((batch, length), np.int32),
        "mask": np.zeros((batch, length), bool),
    }
    for i, s in enumerate(seqs):
        n = len(s)
        out["patches"][i, :n] = s.patches
        out["spatial"][i, :n] = s.spatial
        out["scale"][i, :n] = s.scale
        out["mask"][i, :n] = s.mask
    return out

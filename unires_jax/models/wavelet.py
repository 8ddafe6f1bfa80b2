"""StableSR's wavelet low-pass: a cascade of dilated 3x3 binomial blurs, as a pure function.

Shared by the wavelet colour fix (pixel space, after decoding) and the UNet's optional
low-frequency skip from the LQ latent (`UNetConfig.lq_lowpass_levels`, latent space).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

# Up to this many pixels along both axes the low-pass is applied as one dense matrix per axis:
# two matmuls instead of 2 * levels shifted passes over the image, about 4x faster on a CPU at
# 128-512 px and 2x at 1024 px (benchmarks/color_fix.py), where the weight search decodes and
# colour-fixes hundreds of candidates. The matmuls grow with the side squared (and the matrices,
# 4 MB each at 1024 px, are program constants); larger images keep the cascade, linear in the
# side.
DENSE_MAX_SIDE = 1024


def _blur_axis(x: jax.Array, radius: int, axis: int) -> jax.Array:
    """[1/4, 1/2, 1/4] filter with taps `radius` apart along `axis`, edge-replicated."""
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (radius, radius)
    padded = jnp.pad(x, pad, mode="edge")
    take = lambda start: jax.lax.slice_in_dim(padded, start, start + n, axis=axis)
    return 0.25 * take(0) + 0.5 * take(radius) + 0.25 * take(2 * radius)


def wavelet_blur(x: jax.Array, radius: int) -> jax.Array:
    """StableSR's wavelet_blur of `[..., H, W, C]`: 3x3 binomial kernel dilated by `radius`.

    The kernel is separable and replicate padding clamps each coordinate independently, so
    two 1-D passes give exactly the 2-D result.
    """
    return _blur_axis(_blur_axis(x, radius, x.ndim - 3), radius, x.ndim - 2)


def wavelet_lowpass(x: jax.Array, levels: int) -> jax.Array:
    """The low-frequency band of `[..., H, W, C]` left after `levels` dilated blurs.

    Radii 1, 2, ..., 2**(levels-1); the band's blur has variance (4**levels - 1) / 6 pixels**2
    per axis (about 13 px standard deviation for StableSR's 5 levels). Images up to
    `DENSE_MAX_SIDE` on both sides go through `lowpass_matrix` (same operator, float rounding
    apart), larger ones through the cascade of blurs.
    """
    if max(x.shape[-3], x.shape[-2]) > DENSE_MAX_SIDE or levels == 0:
        return lowpass_cascade(x, levels)
    return lowpass_dense(x, levels)


def lowpass_dense(x: jax.Array, levels: int) -> jax.Array:
    """`wavelet_lowpass` as two matmuls with `lowpass_matrix` (any size; dtype of `x` kept)."""
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    # HIGHEST: TPU and GPU matmuls would otherwise round float32 operands to bfloat16 / TF32.
    matmul = functools.partial(jnp.einsum, precision=jax.lax.Precision.HIGHEST)
    rows = jnp.asarray(lowpass_matrix(x.shape[-3], levels), dtype)
    cols = jnp.asarray(lowpass_matrix(x.shape[-2], levels), dtype)
    out = matmul("ij,...jwc->...iwc", rows, x.astype(dtype))
    return matmul("kw,...iwc->...ikc", cols, out).astype(x.dtype)


def lowpass_cascade(x: jax.Array, levels: int) -> jax.Array:
    """`wavelet_lowpass` as the cascade of dilated blurs (any size)."""
    for i in range(levels):
        x = wavelet_blur(x, 2**i)
    return x


@functools.lru_cache(maxsize=32)
def lowpass_matrix(n: int, levels: int) -> np.ndarray:
    """The `[n, n]` matrix of the 1-D cascade (edge-replicated): `lowpass = M @ signal`.

    Built by applying each level's blur to the rows of the identity (blur B composed after the
    earlier levels A is B @ A, whose row i mixes rows i - r, i and i + r of A, clamped).
    Read-only, cached per (n, levels).
    """
    index = np.arange(n)
    matrix = np.eye(n)
    for i in range(levels):
        r = 2**i
        left, right = np.clip(index - r, 0, n - 1), np.clip(index + r, 0, n - 1)
        matrix = 0.25 * matrix[left] + 0.5 * matrix + 0.25 * matrix[right]
    matrix = matrix.astype(np.float32)
    matrix.flags.writeable = False
    return matrix

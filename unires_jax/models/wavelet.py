"""StableSR's wavelet low-pass: a cascade of dilated 3x3 binomial blurs, as a pure function.

Shared by the wavelet colour fix (pixel space, after decoding) and the UNet's optional
low-frequency skip from the LQ latent (`UNetConfig.lq_lowpass_levels`, latent space).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


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
    per axis (about 13 px standard deviation for StableSR's 5 levels).
    """
    for i in range(levels):
        x = wavelet_blur(x, 2**i)
    return x

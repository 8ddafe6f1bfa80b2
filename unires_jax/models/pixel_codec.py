"""A fixed, invertible space-to-depth "autoencoder" with the AutoencoderKL interface.

Used by the small CPU-trained models (the embedded default), which cannot afford to train a
VAE: latents are the image's f x f pixel blocks stacked on the channel axis, exactly invertible,
so the diffusion model works in (rearranged) pixel space.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

# The posterior is a point mass; diffusers clamps logvar to [-30, 20], so -30 is "no noise".
_POINT_MASS_LOGVAR = -30.0


@dataclasses.dataclass(frozen=True)
class SpaceToDepthConfig:
    """`factor` x `factor` blocks of `in_channels` -> latent_channels = in_channels * factor**2."""

    factor: int = 4
    in_channels: int = 3
    scaling_factor: float = 1.0
    dtype: Any = jnp.float32
    param_dtype: Any = (
        jnp.float32
    )  # no parameters; kept so loaders can set dtypes uniformly

    def __post_init__(self):
        if self.factor < 1:
            raise ValueError(f"SpaceToDepthConfig.factor={self.factor}: must be >= 1")

    @property
    def latent_channels(self) -> int:
        return self.in_channels * self.factor**2

    @property
    def downsample_factor(self) -> int:
        return self.factor


class SpaceToDepthAutoencoder(nnx.Module):
    """`encode(images [B,H,W,C] in [-1,1]) -> (mean, logvar)` [B,H/f,W/f,C*f*f]; `decode` inverts."""

    def __init__(self, cfg: SpaceToDepthConfig, *, rngs: nnx.Rngs | None = None):
        del rngs  # no parameters
        self.cfg = cfg
        self.scaling_factor = cfg.scaling_factor

    def encode(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        b, h, w, c = images.shape
        f = self.cfg.factor
        if h % f or w % f:
            raise ValueError(f"image size {h}x{w} is not a multiple of the factor {f}")
        z = images.reshape(b, h // f, f, w // f, f, c).transpose(0, 1, 3, 2, 4, 5)
        z = z.reshape(b, h // f, w // f, f * f * c).astype(self.cfg.dtype)
        return z, jnp.full_like(z, _POINT_MASS_LOGVAR)

    def decode(self, latents: jax.Array) -> jax.Array:
        b, h, w, _ = latents.shape
        f, c = self.cfg.factor, self.cfg.in_channels
        x = latents.reshape(b, h, w, f, f, c).transpose(0, 1, 3, 2, 4, 5)
        return x.reshape(b, h * f, w * f, c).astype(self.cfg.dtype)

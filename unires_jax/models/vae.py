"""The Stable Diffusion VAE (diffusers AutoencoderKL), NHWC.

Attribute names mirror diffusers' state-dict names (encoder.down_blocks[i].resnets[j],
decoder.mid_block.attentions[0].to_q, ...); the converter's renames are `to_out.0` -> `to_out`,
`downsamplers.0` -> `downsampler`, `upsamplers.0` -> `upsampler`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from unires_jax.models.configs import VAEConfig
from unires_jax.models.layers import (
    AttentionBlock2D,
    Downsample2D,
    GroupNorm,
    ResnetBlock2D,
    Upsample2D,
    conv,
)

# diffusers hard-codes this epsilon for every norm in the VAE's Encoder / Decoder.
_EPS = 1e-6
# diffusers' DiagonalGaussianDistribution clamps the log-variance to this range.
_LOGVAR_RANGE = (-30.0, 20.0)


def _remat(cfg: VAEConfig, fn: Callable, *args):
    return nnx.remat(fn)(*args) if cfg.remat else fn(*args)


class _MidBlock(nnx.Module):
    """UNetMidBlock2D without time embedding: resnet, (self-attention), resnet."""

    def __init__(self, ch: int, cfg: VAEConfig, *, rngs: nnx.Rngs):
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        self.resnets = nnx.List(
            [
                ResnetBlock2D(
                    ch,
                    ch,
                    temb_channels=None,
                    groups=cfg.norm_num_groups,
                    eps=_EPS,
                    **kw,
                )
                for _ in range(2)
            ]
        )
        attn = {
            "head_dim": ch,
            "groups": cfg.norm_num_groups,
            "eps": _EPS,
            "implementation": cfg.attention,
        }
        self.attentions = (
            nnx.List([AttentionBlock2D(ch, chunk=cfg.attention_chunk, **attn, **kw)])
            if cfg.mid_block_add_attention
            else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> [B, H, W, C]."""
        x = self.resnets[0](x)
        if self.attentions is not None:
            x = self.attentions[0](x)
        return self.resnets[1](x)


class _DownEncoderBlock(nnx.Module):
    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        add_downsample: bool,
        cfg: VAEConfig,
        *,
        rngs: nnx.Rngs,
    ):
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        res = dict(temb_channels=None, groups=cfg.norm_num_groups, eps=_EPS, **kw)
        self.resnets = nnx.List(
            [
                ResnetBlock2D(in_ch if j == 0 else out_ch, out_ch, **res)
                for j in range(cfg.layers_per_block)
            ]
        )
        # padding=0: diffusers pads bottom/right by one, then a stride-2 valid convolution.
        self.downsampler = (
            Downsample2D(out_ch, padding=0, **kw) if add_downsample else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.downsampler is None else self.downsampler(x)


class _UpDecoderBlock(nnx.Module):
    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        add_upsample: bool,
        cfg: VAEConfig,
        *,
        rngs: nnx.Rngs,
    ):
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        res = dict(temb_channels=None, groups=cfg.norm_num_groups, eps=_EPS, **kw)
        self.resnets = nnx.List(
            [
                ResnetBlock2D(in_ch if j == 0 else out_ch, out_ch, **res)
                for j in range(cfg.layers_per_block + 1)
            ]
        )
        self.upsampler = Upsample2D(out_ch, **kw) if add_upsample else None

    def __call__(self, x: jax.Array) -> jax.Array:
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.upsampler is None else self.upsampler(x)


class Encoder(nnx.Module):
    """Image [B, H, W, in_channels] -> moments [B, H/f, W/f, 2 * latent_channels]."""

    def __init__(self, cfg: VAEConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        boc = cfg.block_out_channels
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        self.conv_in = conv(cfg.in_channels, boc[0], 3, padding=1, **kw)
        self.down_blocks = nnx.List(
            [
                _DownEncoderBlock(
                    boc[max(i - 1, 0)], boc[i], i < len(boc) - 1, cfg, rngs=rngs
                )
                for i in range(len(boc))
            ]
        )
        self.mid_block = _MidBlock(boc[-1], cfg, rngs=rngs)
        self.conv_norm_out = GroupNorm(
            cfg.norm_num_groups,
            boc[-1],
            eps=_EPS,
            dtype=cfg.dtype,
            param_dtype=cfg.param_dtype,
        )
        self.conv_out = conv(boc[-1], 2 * cfg.latent_channels, 3, padding=1, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = _remat(self.cfg, lambda m, x: m(x), block, x)
        x = _remat(self.cfg, lambda m, x: m(x), self.mid_block, x)
        return self.conv_out(jax.nn.silu(self.conv_norm_out(x)))


class Decoder(nnx.Module):
    """Latents [B, h, w, latent_channels] -> image [B, h*f, w*f, out_channels]."""

    def __init__(self, cfg: VAEConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        rev = cfg.block_out_channels[::-1]
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        self.conv_in = conv(cfg.latent_channels, rev[0], 3, padding=1, **kw)
        self.mid_block = _MidBlock(rev[0], cfg, rngs=rngs)
        self.up_blocks = nnx.List(
            [
                _UpDecoderBlock(
                    rev[max(i - 1, 0)], rev[i], i < len(rev) - 1, cfg, rngs=rngs
                )
                for i in range(len(rev))
            ]
        )
        self.conv_norm_out = GroupNorm(
            cfg.norm_num_groups,
            rev[-1],
            eps=_EPS,
            dtype=cfg.dtype,
            param_dtype=cfg.param_dtype,
        )
        self.conv_out = conv(rev[-1], cfg.out_channels, 3, padding=1, **kw)

    def __call__(self, z: jax.Array) -> jax.Array:
        x = self.conv_in(z)
        x = _remat(self.cfg, lambda m, x: m(x), self.mid_block, x)
        for block in self.up_blocks:
            x = _remat(self.cfg, lambda m, x: m(x), block, x)
        return self.conv_out(jax.nn.silu(self.conv_norm_out(x)))


class AutoencoderKL(nnx.Module):
    """KL autoencoder: `encode(images) -> (mean, logvar)`, `decode(latents) -> images`.

    Latents are unscaled: callers multiply by `scaling_factor` before the UNet and divide by it
    before `decode`, as diffusers' pipelines do.
    """

    def __init__(self, cfg: VAEConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.scaling_factor = cfg.scaling_factor
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        lc = cfg.latent_channels
        self.encoder = Encoder(cfg, rngs=rngs)
        self.decoder = Decoder(cfg, rngs=rngs)
        self.quant_conv = conv(2 * lc, 2 * lc, 1, **kw) if cfg.use_quant_conv else None
        self.post_quant_conv = (
            conv(lc, lc, 1, **kw) if cfg.use_post_quant_conv else None
        )

    def encode(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Posterior parameters, diffusers' `latent_dist.mean` / `latent_dist.logvar`.

        Args:
            images: [B, H, W, in_channels] in [-1, 1]; H, W multiples of the downsample factor.

        Returns:
            (mean, logvar), each [B, H/8, W/8, latent_channels] for SD; logvar clamped to [-30, 20].
        """
        moments = self.encoder(images.astype(self.cfg.dtype))
        if self.quant_conv is not None:
            moments = self.quant_conv(moments)
        mean, logvar = jnp.split(moments, 2, axis=-1)
        return mean, jnp.clip(logvar, *_LOGVAR_RANGE)

    def decode(self, latents: jax.Array) -> jax.Array:
        """latents: [B, h, w, latent_channels] (unscaled) -> images [B, 8h, 8w, out_channels]."""
        z = latents.astype(self.cfg.dtype)
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return self.decoder(z)

    def __call__(self, images: jax.Array) -> jax.Array:
        """Reconstruction through the posterior mean: [B, H, W, C] -> [B, H, W, out_channels]."""
        mean, _ = self.encode(images)
        return self.decode(mean)

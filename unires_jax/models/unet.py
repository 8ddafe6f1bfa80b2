"""The Stable Diffusion UNet (diffusers UNet2DConditionModel, SD 1.x / 2.x family), NHWC.

Module and attribute names mirror diffusers' state-dict names (down_blocks[i].resnets[j],
attentions[j].transformer_blocks[k].attn1.to_q, ...) so `unires_jax/convert/unet.py` is a short
key map. The few renames: `to_out.0` -> `to_out`, `ff.net.0.proj` -> `ff.geglu`,
`ff.net.2` -> `ff.proj_out`, `downsamplers.0` -> `downsampler`, `upsamplers.0` -> `upsampler`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from unires_jax.models.configs import UNetConfig
from unires_jax.models.layers import (
    Attention,
    Downsample2D,
    GroupNorm,
    LayerNorm,
    ResnetBlock2D,
    TimestepEmbedding,
    Upsample2D,
    conv,
    linear,
    timestep_embedding,
)
from unires_jax.models.wavelet import wavelet_lowpass

# Fixed by diffusers for every SD UNet (not config keys).
_TRANSFORMER_GROUPNORM_EPS = 1e-6
_TRANSFORMER_LAYERNORM_EPS = 1e-5
_FF_MULT = 4


class FeedForward(nnx.Module):
    """GEGLU feed-forward: Linear(d, 2*4d) -> value * gelu(gate) -> Linear(4d, d)."""

    def __init__(self, dim: int, *, dtype, param_dtype, rngs: nnx.Rngs):
        inner = dim * _FF_MULT
        kw = {"dtype": dtype, "param_dtype": param_dtype, "rngs": rngs}
        self.geglu = linear(dim, 2 * inner, **kw)
        self.proj_out = linear(inner, dim, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, L, dim] -> [B, L, dim]."""
        value, gate = jnp.split(self.geglu(x), 2, axis=-1)
        return self.proj_out(value * jax.nn.gelu(gate, approximate=False))


class BasicTransformerBlock(nnx.Module):
    """Pre-LayerNorm self-attention, cross-attention and GEGLU feed-forward, each residual."""

    def __init__(self, dim: int, heads: int, cfg: UNetConfig, *, rngs: nnx.Rngs):
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype}
        attn = dict(
            heads=heads,
            head_dim=dim // heads,
            implementation=cfg.attention,
            chunk=cfg.attention_chunk,
            rngs=rngs,
            **kw,
        )
        self.norm1 = LayerNorm(dim, eps=_TRANSFORMER_LAYERNORM_EPS, **kw)
        self.attn1 = Attention(dim, **attn)
        self.norm2 = LayerNorm(dim, eps=_TRANSFORMER_LAYERNORM_EPS, **kw)
        self.attn2 = Attention(dim, context_dim=cfg.cross_attention_dim, **attn)
        self.norm3 = LayerNorm(dim, eps=_TRANSFORMER_LAYERNORM_EPS, **kw)
        self.ff = FeedForward(dim, rngs=rngs, **kw)

    def __call__(self, x: jax.Array, context: jax.Array) -> jax.Array:
        """x: [B, L, dim]; context: [B, S, cross_attention_dim] -> [B, L, dim]."""
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class Transformer2D(nnx.Module):
    """Spatial transformer (diffusers Transformer2DModel, continuous input).

    GroupNorm, proj_in (1x1 conv for SD 1.x, linear for SD 2.x), transformer blocks over the
    H*W tokens, proj_out, residual. In NHWC both projections act on the channel axis, so the
    flatten to tokens needs no transpose.
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        num_layers: int,
        cfg: UNetConfig,
        *,
        rngs: nnx.Rngs,
    ):
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        self.norm = GroupNorm(
            cfg.norm_num_groups,
            channels,
            eps=_TRANSFORMER_GROUPNORM_EPS,
            dtype=cfg.dtype,
            param_dtype=cfg.param_dtype,
        )
        if cfg.use_linear_projection:
            self.proj_in = linear(channels, channels, **kw)
            self.proj_out = linear(channels, channels, **kw)
        else:
            self.proj_in = conv(channels, channels, 1, **kw)
            self.proj_out = conv(channels, channels, 1, **kw)
        self.transformer_blocks = nnx.List(
            [
                BasicTransformerBlock(channels, heads, cfg, rngs=rngs)
                for _ in range(num_layers)
            ]
        )

    def __call__(self, x: jax.Array, context: jax.Array) -> jax.Array:
        """x: [B, H, W, C]; context: [B, S, D] -> [B, H, W, C]."""
        b, h, w, c = x.shape
        tokens = self.proj_in(self.norm(x)).reshape(b, h * w, c)
        for block in self.transformer_blocks:
            tokens = block(tokens, context)
        return self.proj_out(tokens.reshape(b, h, w, c)) + x


class DownBlock(nnx.Module):
    """CrossAttnDownBlock2D (with `attentions`) or DownBlock2D (without)."""

    def __init__(
        self, level: int, in_channels: int, cfg: UNetConfig, *, rngs: nnx.Rngs
    ):
        out = cfg.block_out_channels[level]
        n = cfg.layers_per_block[level]
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        res = dict(
            temb_channels=cfg.time_embed_dim,
            groups=cfg.norm_num_groups,
            eps=cfg.norm_eps,
            **kw,
        )
        self.resnets = nnx.List(
            [
                ResnetBlock2D(in_channels if j == 0 else out, out, **res)
                for j in range(n)
            ]
        )
        heads, depth = (
            cfg.num_attention_heads[level],
            cfg.transformer_layers_per_block[level],
        )
        self.attentions = (
            nnx.List(
                [Transformer2D(out, heads, depth, cfg, rngs=rngs) for _ in range(n)]
            )
            if cfg.down_block_types[level] == "CrossAttnDownBlock2D"
            else None
        )
        is_final = level == len(cfg.block_out_channels) - 1
        self.downsampler = (
            None
            if is_final
            else Downsample2D(out, padding=cfg.downsample_padding, **kw)
        )

    def __call__(
        self, x: jax.Array, temb: jax.Array, context: jax.Array
    ) -> tuple[jax.Array, list[jax.Array]]:
        """x: [B, H, W, C_in] -> (last output, every intermediate output for the skips)."""
        skips = []
        for j, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            if self.attentions is not None:
                x = self.attentions[j](x, context)
            skips.append(x)
        if self.downsampler is not None:
            x = self.downsampler(x)
            skips.append(x)
        return x, skips


class MidBlock(nnx.Module):
    """UNetMidBlock2DCrossAttn: resnet, (transformer, resnet) per layer."""

    def __init__(self, cfg: UNetConfig, *, rngs: nnx.Rngs):
        ch = cfg.block_out_channels[-1]
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        res = dict(
            temb_channels=cfg.time_embed_dim,
            groups=cfg.norm_num_groups,
            eps=cfg.norm_eps,
            output_scale_factor=cfg.mid_block_scale_factor,
            **kw,
        )
        self.resnets = nnx.List([ResnetBlock2D(ch, ch, **res) for _ in range(2)])
        heads, depth = cfg.num_attention_heads[-1], cfg.transformer_layers_per_block[-1]
        self.attentions = nnx.List([Transformer2D(ch, heads, depth, cfg, rngs=rngs)])

    def __call__(self, x: jax.Array, temb: jax.Array, context: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> [B, H, W, C]."""
        x = self.resnets[0](x, temb)
        for attn, resnet in zip(self.attentions, self.resnets[1:]):
            x = resnet(attn(x, context), temb)
        return x


class UpBlock(nnx.Module):
    """CrossAttnUpBlock2D (with `attentions`) or UpBlock2D: resnets over [x, skip] concatenations."""

    def __init__(self, i: int, cfg: UNetConfig, *, rngs: nnx.Rngs):
        levels = len(cfg.block_out_channels)
        rev = cfg.block_out_channels[::-1]
        out, prev_out, skip_in = rev[i], rev[max(i - 1, 0)], rev[min(i + 1, levels - 1)]
        n = cfg.layers_per_block[::-1][i] + 1
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        res = dict(
            temb_channels=cfg.time_embed_dim,
            groups=cfg.norm_num_groups,
            eps=cfg.norm_eps,
            **kw,
        )
        self.resnets = nnx.List(
            [
                ResnetBlock2D(
                    (prev_out if j == 0 else out) + (skip_in if j == n - 1 else out),
                    out,
                    **res,
                )
                for j in range(n)
            ]
        )
        heads, depth = (
            cfg.num_attention_heads[::-1][i],
            cfg.transformer_layers_per_block[::-1][i],
        )
        self.attentions = (
            nnx.List(
                [Transformer2D(out, heads, depth, cfg, rngs=rngs) for _ in range(n)]
            )
            if cfg.up_block_types[i] == "CrossAttnUpBlock2D"
            else None
        )
        self.upsampler = None if i == levels - 1 else Upsample2D(out, **kw)

    def __call__(
        self,
        x: jax.Array,
        skips: list[jax.Array],
        temb: jax.Array,
        context: jax.Array,
        upsample_size: tuple[int, int] | None = None,
    ) -> jax.Array:
        """x: [B, H, W, C]; skips: one per resnet, consumed from the end -> [B, H', W', C_out]."""
        for j, resnet in enumerate(self.resnets):
            x = resnet(jnp.concatenate([x, skips[-1 - j]], axis=-1), temb)
            if self.attentions is not None:
                x = self.attentions[j](x, context)
        if self.upsampler is not None:
            x = self.upsampler(x, upsample_size)
        return x


def _up_call(size: tuple[int, int] | None) -> Callable:
    # `size` is closed over, not passed, so that remat keeps it a static Python tuple.
    return lambda block, x, skips, temb, context: block(x, skips, temb, context, size)


class UNet(nnx.Module):
    """Noise-prediction UNet: `unet(sample, timesteps, encoder_hidden_states)`.

    Example:
        unet = UNet(tiny_unet(), rngs=nnx.Rngs(0))
        eps = unet(jnp.zeros((2, 16, 16, 4)), jnp.array([10, 500]), jnp.zeros((2, 77, 32)))
    """

    def __init__(self, cfg: UNetConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        ch0 = cfg.block_out_channels[0]
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        self.conv_in = conv(cfg.in_channels, ch0, 3, padding=1, **kw)
        self.time_embedding = TimestepEmbedding(ch0, cfg.time_embed_dim, **kw)
        in_ch = [ch0, *cfg.block_out_channels[:-1]]
        self.down_blocks = nnx.List(
            [DownBlock(i, in_ch[i], cfg, rngs=rngs) for i in range(len(in_ch))]
        )
        self.mid_block = MidBlock(cfg, rngs=rngs)
        self.up_blocks = nnx.List(
            [UpBlock(i, cfg, rngs=rngs) for i in range(len(in_ch))]
        )
        self.conv_norm_out = GroupNorm(
            cfg.norm_num_groups,
            ch0,
            eps=cfg.norm_eps,
            dtype=cfg.dtype,
            param_dtype=cfg.param_dtype,
        )
        self.conv_out = conv(ch0, cfg.out_channels, 3, padding=1, **kw)

    def _run(self, fn: Callable, *args):
        # Rematerialise block by block when training big models: activations inside a block are
        # recomputed in the backward pass instead of stored.
        return nnx.remat(fn)(*args) if self.cfg.remat else fn(*args)

    def __call__(
        self, sample: jax.Array, timesteps: jax.Array, encoder_hidden_states: jax.Array
    ) -> jax.Array:
        """Predicts the noise (or v) for a noisy latent.

        Args:
            sample: [B, H, W, in_channels] noisy latents (plus any LQ-latent channels).
            timesteps: [B] or scalar, int or float.
            encoder_hidden_states: [B, L, cross_attention_dim] text-encoder states.

        Returns:
            [B, H, W, out_channels] in the compute dtype.
        """
        cfg = self.cfg
        if sample.ndim != 4 or sample.shape[-1] != cfg.in_channels:
            raise ValueError(
                f"UNet: sample must be [B, H, W, {cfg.in_channels}], got {sample.shape}"
            )
        b = sample.shape[0]
        x = sample.astype(cfg.dtype)
        context = encoder_hidden_states.astype(cfg.dtype)
        if cfg.center_input_sample:
            x = 2 * x - 1.0
        t = jnp.broadcast_to(jnp.reshape(jnp.asarray(timesteps), (-1,)), (b,))
        t_feat = timestep_embedding(
            t,
            cfg.block_out_channels[0],
            flip_sin_to_cos=cfg.flip_sin_to_cos,
            freq_shift=cfg.freq_shift,
        )
        temb = self.time_embedding(t_feat.astype(cfg.dtype))

        x = self.conv_in(x)
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = self._run(
                lambda m, x, e, c: m(x, e, c), block, x, temb, context
            )
            skips.extend(block_skips)
        x = self._run(lambda m, x, e, c: m(x, e, c), self.mid_block, x, temb, context)
        for i, block in enumerate(self.up_blocks):
            n = len(block.resnets)
            block_skips, skips = skips[-n:], skips[:-n]
            # Upsample to the next skip's size: exactly 2x for even sizes, diffusers'
            # `upsample_size` rule otherwise.
            size = tuple(skips[-1].shape[1:3]) if block.upsampler is not None else None
            x = self._run(_up_call(size), block, x, block_skips, temb, context)
        x = jax.nn.silu(self.conv_norm_out(x))
        out = self.conv_out(x)
        if cfg.lq_lowpass_levels:
            lq = sample[..., cfg.out_channels :].astype(out.dtype)
            out = out + wavelet_lowpass(lq - out, cfg.lq_lowpass_levels)
        return out

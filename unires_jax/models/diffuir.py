"""The residual-diffusion UNet of DiffUIR / FoundIR (official `Unet` in `src/model.py`), NHWC.

Layout (widths w_0 = dim, w_{i+1} = dim * dim_mults[i]; L = len(dim_mults) levels):

    init_conv 7x7 -> r
    down level i (w_i -> w_{i+1}): block1, block2, linear attention, then a 4x4 stride-2 conv
        (the last level: a 3x3 conv, no downsampling); skips pushed after block1 and after
        block2 + attention.
    middle (w_L): block1, full softmax attention, block2.
    up level (reversed): concat(x, skip) -> block1, concat(x, skip) -> block2, linear attention,
        then nearest 2x + 3x3 conv (the last level: a 3x3 conv).
    concat(x, r) -> final ResnetBlock (2 dim -> dim) -> 1x1 final_conv.

A ResnetBlock is two [weight-standardised 3x3 conv, GroupNorm, SiLU] blocks, the first with FiLM
`x * (scale + 1) + shift` from the time embedding after its norm, plus a 1x1 conv shortcut when
the width changes. Both attentions are `x + attn(LayerNorm(x))`, the LayerNorm over channels
with a gain and no bias. The time input is a continuous value (alpha_bar_t * 1000) through a
`dim`-wide sinusoid (sin half first) and Linear -> exact-erf GELU -> Linear.

Attribute names mirror the official state dict where they can (`block1.proj`, `block1.norm`,
`res_conv`, `to_qkv`, `to_out`); `unires_jax/convert/foundir.py` holds the few renames.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.models import partitioning as P
from unires_jax.models.configs import DiffUIRConfig, foundir_unet, tiny_diffuir
from unires_jax.models.layers import GroupNorm, attention, linear, upsample_nearest

# The official code uses 1e-5 in float32 (1e-3 only for half-precision inputs, which its
# training did not use); statistics here are always float32.
_EPS = 1e-5


def _annotated(init, names: tuple[str, ...]):
    # Metadata only; the mesh is chosen by train/sharding.py (as in models/layers.py).
    return nnx.with_partitioning(init, names, eager_sharding=False)


def _conv(
    cin: int,
    cout: int,
    kernel: int,
    *,
    stride: int = 1,
    padding: int = 0,
    use_bias: bool = True,
    dtype,
    param_dtype,
    rngs: nnx.Rngs,
) -> nnx.Conv:
    """A plain torch-style Conv2d (symmetric zero padding), kernel [kh, kw, c_in, c_out]."""
    return nnx.Conv(
        cin,
        cout,
        (kernel, kernel),
        strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=param_dtype,
        kernel_init=_annotated(nnx.initializers.lecun_normal(), P.CONV_KERNEL),
        bias_init=_annotated(nnx.initializers.zeros_init(), P.CONV_BIAS),
        rngs=rngs,
    )


class WSConv(nnx.Module):
    """3x3 convolution with weight standardisation (official `WeightStandardizedConv2d`).

    Each output channel's kernel is normalised to zero mean and unit (biased) variance over
    (kh, kw, c_in) before the convolution; the bias is added unchanged.
    """

    def __init__(self, cin: int, cout: int, *, dtype, param_dtype, rngs: nnx.Rngs):
        kernel_init = _annotated(nnx.initializers.lecun_normal(), P.CONV_KERNEL)
        bias_init = _annotated(nnx.initializers.zeros_init(), P.CONV_BIAS)
        self.kernel = nnx.Param(
            kernel_init(rngs.params(), (3, 3, cin, cout), param_dtype)
        )
        self.bias = nnx.Param(bias_init(rngs.params(), (cout,), param_dtype))
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, c_in] -> [B, H, W, c_out]."""
        w = self.kernel[...].astype(jnp.float32)
        mean = jnp.mean(w, axis=(0, 1, 2))
        var = jnp.var(w, axis=(0, 1, 2))
        w = (w - mean) * jax.lax.rsqrt(var + _EPS)
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype),
            w.astype(self.dtype),
            window_strides=(1, 1),
            padding=((1, 1), (1, 1)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return y + self.bias[...].astype(self.dtype)


class ChannelLayerNorm(nnx.Module):
    """LayerNorm over the channel axis with a gain and no bias (official `LayerNorm`, `g`)."""

    def __init__(self, channels: int, *, dtype, param_dtype):
        init = _annotated(nnx.initializers.ones_init(), P.NORM)
        self.scale = nnx.Param(init(None, (channels,), param_dtype))
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [..., C] -> same shape, compute dtype (statistics in float32)."""
        x = x.astype(jnp.float32)
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        y = (x - mean) * jax.lax.rsqrt(var + _EPS) * self.scale[...].astype(jnp.float32)
        return y.astype(self.dtype)


class Block(nnx.Module):
    """Weight-standardised 3x3 conv, GroupNorm, optional FiLM, SiLU (official `Block`)."""

    def __init__(self, cin: int, cout: int, groups: int, *, dtype, param_dtype, rngs):
        self.proj = WSConv(cin, cout, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.norm = GroupNorm(
            groups, cout, eps=_EPS, dtype=dtype, param_dtype=param_dtype
        )

    def __call__(
        self, x: jax.Array, scale_shift: tuple[jax.Array, jax.Array] | None = None
    ) -> jax.Array:
        """x: [B, H, W, c_in]; scale, shift: [B, c_out] -> [B, H, W, c_out]."""
        x = self.norm(self.proj(x))
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale[:, None, None, :] + 1) + shift[:, None, None, :]
        return jax.nn.silu(x)


class ResnetBlock(nnx.Module):
    """Two Blocks, FiLM from the time embedding in the first, 1x1 shortcut if widths differ."""

    def __init__(self, cin: int, cout: int, cfg: DiffUIRConfig, *, rngs: nnx.Rngs):
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        self.time_proj = linear(cfg.time_dim, 2 * cout, **kw)
        self.block1 = Block(cin, cout, cfg.groups, **kw)
        self.block2 = Block(cout, cout, cfg.groups, **kw)
        self.res_conv = _conv(cin, cout, 1, **kw) if cin != cout else None

    def __call__(self, x: jax.Array, temb: jax.Array) -> jax.Array:
        """x: [B, H, W, c_in]; temb: [B, time_dim] -> [B, H, W, c_out]."""
        scale, shift = jnp.split(self.time_proj(jax.nn.silu(temb)), 2, axis=-1)
        h = self.block2(self.block1(x, (scale, shift)))
        return h + (x if self.res_conv is None else self.res_conv(x))


def _heads(t: jax.Array, heads: int) -> jax.Array:
    """[B, H, W, heads * d] (head-major channels, as the official rearrange) -> [B, HW, heads, d]."""
    b, h, w, c = t.shape
    return t.reshape(b, h * w, heads, c // heads)


class LinearAttention(nnx.Module):
    """x + LinearAttention(LayerNorm(x)) (official `Residual(PreNorm(dim, LinearAttention))`).

    q is softmaxed over each head's channels and scaled by head_dim^-0.5, k over the pixels, v
    divided by the pixel count; context = k v^T per head, out = context^T q, then a 1x1 conv
    and a LayerNorm. Cost is linear in the pixel count.
    """

    def __init__(self, channels: int, cfg: DiffUIRConfig, *, rngs: nnx.Rngs):
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype}
        hidden = cfg.heads * cfg.head_dim
        self.heads = cfg.heads
        self.norm = ChannelLayerNorm(channels, **kw)
        self.to_qkv = _conv(channels, 3 * hidden, 1, use_bias=False, rngs=rngs, **kw)
        self.to_out = _conv(hidden, channels, 1, rngs=rngs, **kw)
        self.out_norm = ChannelLayerNorm(channels, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> [B, H, W, C]."""
        b, h, w, _ = x.shape
        q, k, v = jnp.split(self.to_qkv(self.norm(x)), 3, axis=-1)
        q, k, v = (_heads(t, self.heads).astype(jnp.float32) for t in (q, k, v))
        q = jax.nn.softmax(q, axis=-1) * (q.shape[-1] ** -0.5)
        k = jax.nn.softmax(k, axis=1)
        v = v / (h * w)
        context = jnp.einsum("bnhd,bnhe->bhde", k, v)
        out = jnp.einsum("bhde,bnhd->bnhe", context, q)
        out = out.reshape(b, h, w, -1).astype(x.dtype)
        return x + self.out_norm(self.to_out(out))


class MidAttention(nnx.Module):
    """x + softmax attention over all pixels of LayerNorm(x) (official middle `Attention`).

    The logits are [heads, HW, HW]; the implementation (`unires_jax.models.layers.attention`)
    decides whether they are materialised ("dot_product", "naive") or built block by block
    ("chunked", the default: memory ~ attention_chunk x HW).
    """

    def __init__(self, channels: int, cfg: DiffUIRConfig, *, rngs: nnx.Rngs):
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype}
        hidden = cfg.heads * cfg.head_dim
        self.heads = cfg.heads
        self.implementation = cfg.attention or "chunked"
        self.chunk = cfg.attention_chunk
        self.norm = ChannelLayerNorm(channels, **kw)
        self.to_qkv = _conv(channels, 3 * hidden, 1, use_bias=False, rngs=rngs, **kw)
        self.to_out = _conv(hidden, channels, 1, rngs=rngs, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> [B, H, W, C]."""
        b, h, w, _ = x.shape
        q, k, v = jnp.split(self.to_qkv(self.norm(x)), 3, axis=-1)
        q, k, v = (_heads(t, self.heads) for t in (q, k, v))
        out = attention(q, k, v, implementation=self.implementation, chunk=self.chunk)
        return x + self.to_out(out.reshape(b, h, w, -1).astype(x.dtype))


class DownLevel(nnx.Module):
    """Two ResnetBlocks, linear attention, then the downsampling (or last-level) conv."""

    def __init__(self, cin: int, cout: int, last: bool, cfg: DiffUIRConfig, *, rngs):
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        self.block1 = ResnetBlock(cin, cin, cfg, rngs=rngs)
        self.block2 = ResnetBlock(cin, cin, cfg, rngs=rngs)
        self.attn = LinearAttention(cin, cfg, rngs=rngs)
        if last:
            self.downsample = _conv(cin, cout, 3, padding=1, **kw)
        else:
            self.downsample = _conv(cin, cout, 4, stride=2, padding=1, **kw)

    def __call__(
        self, x: jax.Array, temb: jax.Array
    ) -> tuple[jax.Array, list[jax.Array]]:
        """-> (output, [skip after block1, skip after block2 + attention])."""
        x = self.block1(x, temb)
        first = x
        x = self.attn(self.block2(x, temb))
        return self.downsample(x), [first, x]


class UpLevel(nnx.Module):
    """concat skip -> ResnetBlock, twice; linear attention; then upsampling (or last-level) conv."""

    def __init__(self, cin: int, cout: int, last: bool, cfg: DiffUIRConfig, *, rngs):
        # Official up level for the pair (dim_in=cin, dim_out=cout), mirrored: works at cout.
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        self.block1 = ResnetBlock(cout + cin, cout, cfg, rngs=rngs)
        self.block2 = ResnetBlock(cout + cin, cout, cfg, rngs=rngs)
        self.attn = LinearAttention(cout, cfg, rngs=rngs)
        self.upsample = _conv(cout, cin, 3, padding=1, **kw)
        self.doubles = not last

    def __call__(
        self, x: jax.Array, skips: list[jax.Array], temb: jax.Array
    ) -> jax.Array:
        """skips: [the later skip, the earlier skip] of the matching down level."""
        x = self.block1(jnp.concatenate([x, skips[0]], axis=-1), temb)
        x = self.block2(jnp.concatenate([x, skips[1]], axis=-1), temb)
        x = self.attn(x)
        return self.upsample(upsample_nearest(x) if self.doubles else x)


def _sinusoid_frequencies(dim: int) -> np.ndarray:
    """exp(-i * ln(10000) / (dim/2 - 1)), rounded to float32 as the official float32 code."""
    half = dim // 2
    step = np.float32(-math.log(10000) / (half - 1))
    return np.exp((np.arange(half, dtype=np.float32) * step).astype(np.float64)).astype(
        np.float32
    )


class TimeMLP(nnx.Module):
    """Sinusoid (sin half first) -> Linear -> exact GELU -> Linear (official `time_mlp`)."""

    def __init__(self, cfg: DiffUIRConfig, *, rngs: nnx.Rngs):
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        self.dim = cfg.dim
        self.linear_1 = linear(cfg.dim, cfg.time_dim, **kw)
        self.linear_2 = linear(cfg.time_dim, cfg.time_dim, **kw)

    def __call__(self, time: jax.Array) -> jax.Array:
        """time: [B] float -> [B, time_dim]."""
        args = time.astype(jnp.float32)[:, None] * _sinusoid_frequencies(self.dim)[None]
        emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
        return self.linear_2(jax.nn.gelu(self.linear_1(emb), approximate=False))


class DiffUIRUNet(nnx.Module):
    """The FoundIR / DiffUIR residual-prediction UNet.

    Args:
        config: None for FoundIR's `UnetRes(dim=64, dim_mults=(1, 2, 4, 8))` (36,261,187
            parameters).
        rngs: parameter initialisation keys.
    """

    def __init__(self, config: DiffUIRConfig | None = None, *, rngs: nnx.Rngs):
        cfg = config if config is not None else DiffUIRConfig()
        self.cfg = cfg
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        widths = cfg.widths
        pairs = list(itertools.pairwise(widths))
        n = len(pairs)
        self.init_conv = _conv(cfg.in_channels, cfg.dim, 7, padding=3, **kw)
        self.time_mlp = TimeMLP(cfg, rngs=rngs)
        self.downs = nnx.List(
            [
                DownLevel(a, b, i == n - 1, cfg, rngs=rngs)
                for i, (a, b) in enumerate(pairs)
            ]
        )
        mid = widths[-1]
        self.mid_block1 = ResnetBlock(mid, mid, cfg, rngs=rngs)
        self.mid_attn = MidAttention(mid, cfg, rngs=rngs)
        self.mid_block2 = ResnetBlock(mid, mid, cfg, rngs=rngs)
        self.ups = nnx.List(
            [
                UpLevel(a, b, i == n - 1, cfg, rngs=rngs)
                for i, (a, b) in enumerate(reversed(pairs))
            ]
        )
        self.final_res_block = ResnetBlock(2 * cfg.dim, cfg.dim, cfg, rngs=rngs)
        self.final_conv = _conv(cfg.dim, cfg.out_channels, 1, **kw)

    def __call__(self, x: jax.Array, time: jax.Array) -> jax.Array:
        """Predicts the residual LQ - HQ.

        Args:
            x: [B, H, W, in_channels] = concat(x_t, LQ), in [-1, 1]; any H, W (reflect-padded
                at the bottom/right to a multiple of `cfg.pad_multiple`, cropped back after).
            time: [B] or scalar float, alpha_bar_t * 1000 (continuous).

        Returns:
            [B, H, W, out_channels] in the compute dtype.
        """
        cfg = self.cfg
        if x.ndim != 4 or x.shape[-1] != cfg.in_channels:
            raise ValueError(
                f"DiffUIRUNet: x must be [B, H, W, {cfg.in_channels}], got {x.shape}"
            )
        b, h, w, _ = x.shape
        m = cfg.pad_multiple
        pad = ((0, 0), (0, -h % m), (0, -w % m), (0, 0))
        x = jnp.pad(x, pad, mode="reflect") if any(p[1] for p in pad) else x
        x = self.init_conv(x.astype(cfg.dtype))
        r = x
        temb = self.time_mlp(jnp.broadcast_to(jnp.asarray(time, jnp.float32), (b,)))
        skips = []
        for level in self.downs:
            x, level_skips = level(x, temb)
            skips.append(level_skips)
        x = self.mid_block2(self.mid_attn(self.mid_block1(x, temb)), temb)
        for level in self.ups:
            later, earlier = skips.pop()[::-1]
            x = level(x, [later, earlier], temb)
        x = self.final_res_block(jnp.concatenate([x, r], axis=-1), temb)
        return self.final_conv(x)[:, :h, :w]


__all__ = ["DiffUIRConfig", "DiffUIRUNet", "foundir_unet", "tiny_diffuir"]

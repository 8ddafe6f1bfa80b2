"""Blocks shared by the Stable Diffusion UNet, the VAE and later model families.

Everything here is NHWC. Each block takes a compute `dtype` (activations and matmuls) and a
`param_dtype` (storage); normalisation statistics and attention softmax are always computed in
float32, whatever the compute dtype, so bfloat16 runs stay close to float32 ones.

Names of sub-modules follow diffusers (`norm1`, `conv1`, `time_emb_proj`, `to_q`, ...) so the
converters in `unires_jax/convert/` map checkpoint keys mechanically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.models import partitioning as P

ATTENTION_IMPLEMENTATIONS = ("dot_product", "chunked", "naive", "cudnn")


def _annotated(init, names: tuple[str, ...]):
    # Metadata only: the mesh is chosen later by train/sharding.py, so the variable is not placed
    # eagerly (flax 0.12 would otherwise demand a mesh at construction time).
    return nnx.with_partitioning(init, names, eager_sharding=False)


def conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int | Sequence[tuple[int, int]] = 0,
    dtype=jnp.float32,
    param_dtype=jnp.float32,
    rngs: nnx.Rngs,
) -> nnx.Conv:
    """A 2D convolution with bias and logical axis names on its kernel [kh, kw, c_in, c_out].

    `padding` is either a symmetric int (PyTorch's `padding=`) or explicit ((top, bottom),
    (left, right)) pairs.
    """
    pad = (
        ((padding, padding), (padding, padding))
        if isinstance(padding, int)
        else tuple(padding)
    )
    return nnx.Conv(
        in_channels,
        out_channels,
        (kernel_size, kernel_size),
        strides=(stride, stride),
        padding=pad,
        dtype=dtype,
        param_dtype=param_dtype,
        kernel_init=_annotated(nnx.initializers.lecun_normal(), P.CONV_KERNEL),
        bias_init=_annotated(nnx.initializers.zeros_init(), P.CONV_BIAS),
        rngs=rngs,
    )


def linear(
    in_features: int,
    out_features: int,
    *,
    use_bias: bool = True,
    dtype=jnp.float32,
    param_dtype=jnp.float32,
    rngs: nnx.Rngs,
) -> nnx.Linear:
    """A dense layer with logical axis names on its kernel [d_in, d_out] and bias [d_out]."""
    return nnx.Linear(
        in_features,
        out_features,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=param_dtype,
        kernel_init=_annotated(nnx.initializers.lecun_normal(), P.DENSE_KERNEL),
        bias_init=_annotated(nnx.initializers.zeros_init(), P.DENSE_BIAS),
        rngs=rngs,
    )


def _norm_param(init, size: int, param_dtype) -> nnx.Param:
    return nnx.Param(_annotated(init, P.NORM)(None, (size,), param_dtype))


def _affine(y: jax.Array, norm: nnx.Module) -> jax.Array:
    """float32 normalised y -> y * scale + bias in the norm's compute dtype."""
    y = y * norm.scale[...].astype(jnp.float32) + norm.bias[...].astype(jnp.float32)
    return y.astype(norm.dtype)


class GroupNorm(nnx.Module):
    """GroupNorm over the last (channel) axis, statistics in float32 (torch.nn.GroupNorm)."""

    def __init__(
        self, num_groups: int, channels: int, *, eps: float, dtype, param_dtype
    ):
        if channels % num_groups:
            raise ValueError(
                f"GroupNorm: {channels} channels do not split into {num_groups} groups"
            )
        self.num_groups = num_groups
        self.eps = eps
        self.dtype = dtype
        self.scale = _norm_param(nnx.initializers.ones_init(), channels, param_dtype)
        self.bias = _norm_param(nnx.initializers.zeros_init(), channels, param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, ..., C] -> same shape, compute dtype."""
        b, c = x.shape[0], x.shape[-1]
        size = c // self.num_groups
        flat = x.astype(jnp.float32).reshape(b, -1, c)
        count = flat.shape[1] * size
        # Positions are reduced per channel first (a contiguous reduction), then the C sums per
        # group: on CPU 3-4x faster than reducing the strided [B, N, groups, C/groups] view.
        mean = self._per_channel(jnp.sum(flat, axis=1), count)
        sq = jnp.sum(jnp.square(flat - mean[:, None]), axis=1)
        # The normalisation and the affine map as one [B, C] scale: the output pass (and an
        # activation after it) is a single elementwise loop over x, 1.1-2x faster on CPU.
        scale = jax.lax.rsqrt(self._per_channel(sq, count) + self.eps)
        scale = scale * self.scale[...].astype(jnp.float32)
        bshape = (b,) + (1,) * (x.ndim - 2) + (c,)
        y = (x.astype(jnp.float32) - mean.reshape(bshape)) * scale.reshape(bshape)
        return (y + self.bias[...].astype(jnp.float32)).astype(self.dtype)

    def _per_channel(self, sums: jax.Array, count: int) -> jax.Array:
        """[B, C] per-channel sums -> [B, C]: each channel gets its group's mean."""
        b, c = sums.shape
        per_group = jnp.sum(sums.reshape(b, self.num_groups, -1), axis=-1) / count
        return jnp.repeat(per_group, c // self.num_groups, axis=-1)


class LayerNorm(nnx.Module):
    """LayerNorm over the last axis with affine parameters, statistics in float32."""

    def __init__(self, features: int, *, eps: float, dtype, param_dtype):
        self.eps = eps
        self.dtype = dtype
        self.scale = _norm_param(nnx.initializers.ones_init(), features, param_dtype)
        self.bias = _norm_param(nnx.initializers.zeros_init(), features, param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [..., D] -> same shape, compute dtype."""
        x = x.astype(jnp.float32)
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return _affine((x - mean) * jax.lax.rsqrt(var + self.eps), self)


# --- Time embedding ---


def timestep_embedding(
    timesteps: jax.Array,
    dim: int,
    *,
    flip_sin_to_cos: bool,
    freq_shift: float,
    max_period: float = 10000.0,
) -> jax.Array:
    """Sinusoidal timestep features, diffusers' `get_timestep_embedding` / `Timesteps`.

    Args:
        timesteps: [B] int or float (may be fractional).
        dim: feature size.
        flip_sin_to_cos: put the cosine half first (True for Stable Diffusion).
        freq_shift: diffusers' `downscale_freq_shift` (0 for Stable Diffusion).
        max_period: slowest period.

    Returns:
        [B, dim] float32.
    """
    half = dim // 2
    exponent = (
        -math.log(max_period)
        * jnp.arange(half, dtype=jnp.float32)
        / (half - freq_shift)
    )
    args = timesteps.astype(jnp.float32)[:, None] * jnp.exp(exponent)[None, :]
    emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
    if flip_sin_to_cos:
        emb = jnp.concatenate([emb[:, half:], emb[:, :half]], axis=-1)
    if dim % 2:
        emb = jnp.pad(emb, ((0, 0), (0, 1)))
    return emb


class TimestepEmbedding(nnx.Module):
    """Two-layer SiLU MLP on the sinusoidal features (diffusers `TimestepEmbedding`)."""

    def __init__(
        self,
        in_features: int,
        time_embed_dim: int,
        *,
        dtype,
        param_dtype,
        rngs: nnx.Rngs,
    ):
        kw = {"dtype": dtype, "param_dtype": param_dtype, "rngs": rngs}
        self.linear_1 = linear(in_features, time_embed_dim, **kw)
        self.linear_2 = linear(time_embed_dim, time_embed_dim, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, in_features] -> [B, time_embed_dim]."""
        return self.linear_2(jax.nn.silu(self.linear_1(x)))


# --- Attention ---


def _attention_naive(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    scale = q.shape[-1] ** -0.5
    logits = (
        jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * scale
    )
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", probs, v)


def _attention_block(
    q: jax.Array, k: jax.Array, v: jax.Array, scale: float
) -> jax.Array:
    """One block of sequences: q [G, Q, D], k [G, K, D], v [G, K, Dv] -> [G, Q, Dv]."""
    logits = jnp.einsum("gqd,gkd->gqk", q, k, preferred_element_type=jnp.float32)
    if scale != 1.0:
        logits = logits * scale
    p = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
    # Normalise after the value product: Q x Dv divisions instead of Q x K.
    out = jnp.einsum(
        "gqk,gkd->gqd", p.astype(v.dtype), v, preferred_element_type=jnp.float32
    )
    return (out / jnp.sum(p, axis=-1, keepdims=True)).astype(v.dtype)


def _attention_chunked(
    q: jax.Array, k: jax.Array, v: jax.Array, chunk: int
) -> jax.Array:
    """Attention over blocks of about `chunk` query rows (rows = batch x heads x positions).

    Each step holds a [rows, Lk] logit block, so memory is O(chunk * Lk) whatever the batch, head
    count or latent size, instead of the [B, H, Lq, Lk] logits that XLA's CPU path materialises
    (a UNet forward 9x slower there). A block is either `chunk` positions of one sequence or, for
    short sequences, `chunk // Lq` whole sequences. On CPU each step costs ~0.1 ms of dispatch
    besides its work, so blocks of ~1024 rows beat cache-sized ones: a 4096-token, 8-head SD
    UNet's forward took 3.35 s with 1024-row blocks, 4.56 s with 128
    (benchmarks/unet_vs_diffusers.py, 2 cores).
    """
    b, lq, h, d = q.shape
    _lk, dv = k.shape[1], v.shape[-1]
    n = b * h
    scale = d**-0.5
    if q.dtype == jnp.float32:
        # Scaled once on [B, Lq, H, D] instead of on every logit (~4% of the 4096-token
        # attention on CPU); in lower precision the logits are scaled, after float32 sums.
        q, scale = q * scale, 1.0
    seq = lambda t: t.transpose(0, 2, 1, 3).reshape(n, t.shape[1], t.shape[3])
    q, k, v = seq(q), seq(k), seq(v)
    g, qc = (min(chunk // lq, n), lq) if chunk >= lq else (1, chunk)
    n_seq, n_q = -(-n // g), -(-lq // qc)
    pad_seq = ((0, n_seq * g - n), (0, 0), (0, 0))
    q = jnp.pad(q, ((0, n_seq * g - n), (0, n_q * qc - lq), (0, 0)))
    k, v = jnp.pad(k, pad_seq), jnp.pad(v, pad_seq)
    # [n_seq * n_q, G, Qc, D]: step i covers sequences (i // n_q) * G ... and query block i % n_q.
    q = q.reshape(n_seq, g, n_q, qc, d).swapaxes(1, 2).reshape(n_seq * n_q, g, qc, d)
    first_seq = (jnp.arange(n_seq * n_q) // n_q) * g

    def step(args):
        qi, s = args
        ki = jax.lax.dynamic_slice_in_dim(k, s, g)
        vi = jax.lax.dynamic_slice_in_dim(v, s, g)
        return _attention_block(qi, ki, vi, scale)

    # Checkpointed so that a backward pass also keeps only one block of probabilities alive.
    out = jax.lax.map(jax.checkpoint(step), (q, first_seq))  # [n_seq * n_q, G, Qc, Dv]
    out = (
        out.reshape(n_seq, n_q, g, qc, dv)
        .swapaxes(1, 2)
        .reshape(n_seq * g, n_q * qc, dv)
    )
    return out[:n, :lq].reshape(b, h, lq, dv).transpose(0, 2, 1, 3)


def _check_cudnn_attention(q: jax.Array) -> None:
    """Says what to change where cuDNN's kernel cannot run, instead of jax's lowering error."""
    if jax.default_backend() != "gpu":
        raise ValueError(
            f'attention="cudnn" needs an NVIDIA GPU; jax\'s backend is {jax.default_backend()!r}: '
            'use "chunked" on CPU or "dot_product" on TPU'
        )
    if q.dtype not in (jnp.bfloat16, jnp.float16):
        raise ValueError(
            f'attention="cudnn" runs in bfloat16 or float16, not {q.dtype}: set the model\'s '
            'dtype (or the trainer\'s compute_dtype) to bfloat16, or use "dot_product"'
        )


def default_attention(backend: str | None = None) -> str:
    """The fastest correct attention implementation on a backend (None: jax's default backend).

    CPU: "chunked". benchmarks/unet_vs_diffusers.py (SD-1.x-layout UNet (64, 128, 256, 256),
    batch 6, 64x64 latents, float32, 2 idle cores, jax 0.10.2): one forward takes 3.2-3.4 s with
    "chunked" (UNetConfig's 1024-row blocks) against 30 s with "dot_product", whose XLA path
    materialises the [B, H, L, L] logits (3 GB at 4096 tokens); "naive" does the same. Measured
    on single attention calls too: 4096 and 1024 tokens, 77-token cross-attention.
    TPU and GPU (not measured here): "dot_product", XLA's fused attention, with no while loop
    over blocks; cuDNN's kernel needs bfloat16 or float16, so "cudnn" stays an explicit choice.
    Every other backend name gets "dot_product" too.
    """
    backend = backend or jax.default_backend()
    return "chunked" if backend == "cpu" else "dot_product"


def attention(
    q: jax.Array, k: jax.Array, v: jax.Array, *, implementation: str, chunk: int = 1024
) -> jax.Array:
    """Multi-head softmax attention with scale head_dim**-0.5; logits and softmax in float32.

    Float32 logits make diffusers' `upcast_attention` / `upcast_softmax` hold for every
    implementation.

    Args:
        q: [B, Lq, H, D]; k: [B, Lk, H, D]; v: [B, Lk, H, Dv], all the same dtype.
        implementation: "dot_product" (jax.nn.dot_product_attention's XLA path: the logits are
            materialised, fusion is XLA's), "chunked" (blocks of `chunk` query rows counted
            over batch x heads x positions: memory O(chunk * Lk) instead of O(B * H * Lq * Lk);
            the fast choice on CPU), "cudnn" (cuDNN's fused flash attention on NVIDIA GPUs,
            bfloat16 / float16 only, its softmax float32 inside the kernel; calls with an odd
            query or key length, such as the 77-token text context, take the XLA path) or
            "naive" (reference einsum).
        chunk: rows per block for "chunked".

    Returns:
        [B, Lq, H, Dv] in the dtype of v.
    """
    if implementation == "dot_product":
        return jax.nn.dot_product_attention(q, k, v)
    if implementation == "cudnn":
        _check_cudnn_attention(q)
        if q.shape[1] % 2 or k.shape[1] % 2:
            # jax's training rule for cuDNN attention refuses odd sequence lengths (seen with
            # jax 0.11.2: "Unsupported sequence length Q 4096, KV 77" for SD's 77-token
            # cross-attention). Such calls are short on one side, and XLA's logits are small.
            return jax.nn.dot_product_attention(q, k, v)
        return jax.nn.dot_product_attention(q, k, v, implementation="cudnn")
    if implementation == "chunked":
        return _attention_chunked(q, k, v, chunk)
    if implementation == "naive":
        return _attention_naive(q, k, v)
    raise ValueError(
        f"attention implementation {implementation!r} is not one of {ATTENTION_IMPLEMENTATIONS}"
    )


class Attention(nnx.Module):
    """Multi-head (cross-)attention with q/k/v/out projections (diffusers `Attention` core)."""

    def __init__(
        self,
        query_dim: int,
        *,
        heads: int,
        head_dim: int,
        context_dim: int | None = None,
        qkv_bias: bool = False,
        implementation: str = "dot_product",
        chunk: int = 1024,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(
                f"attention={implementation!r} is not one of {ATTENTION_IMPLEMENTATIONS}"
            )
        inner = heads * head_dim
        context_dim = context_dim or query_dim
        kw = {"dtype": dtype, "param_dtype": param_dtype, "rngs": rngs}
        self.heads = heads
        self.implementation = implementation
        self.chunk = chunk
        self.to_q = linear(query_dim, inner, use_bias=qkv_bias, **kw)
        self.to_k = linear(context_dim, inner, use_bias=qkv_bias, **kw)
        self.to_v = linear(context_dim, inner, use_bias=qkv_bias, **kw)
        self.to_out = linear(inner, query_dim, **kw)

    def __call__(self, x: jax.Array, context: jax.Array | None = None) -> jax.Array:
        """x: [B, L, query_dim]; context: [B, S, context_dim] or None (self-attention).

        Returns [B, L, query_dim].
        """
        context = x if context is None else context
        b, l, _ = x.shape
        split = lambda t: t.reshape(t.shape[0], t.shape[1], self.heads, -1)
        q, k, v = (
            split(self.to_q(x)),
            split(self.to_k(context)),
            split(self.to_v(context)),
        )
        out = attention(q, k, v, implementation=self.implementation, chunk=self.chunk)
        return self.to_out(out.reshape(b, l, -1))


class AttentionBlock2D(Attention):
    """GroupNorm + multi-head self-attention over pixels + residual.

    The VAE mid-block attention: diffusers `Attention` with `group_norm`, `residual_connection`
    and q/k/v biases (heads = channels // head_dim; one head in Stable Diffusion's VAE).
    """

    def __init__(
        self,
        channels: int,
        *,
        head_dim: int,
        groups: int,
        eps: float,
        rescale_output_factor: float = 1.0,
        implementation: str = "dot_product",
        chunk: int = 1024,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        super().__init__(
            channels,
            heads=channels // head_dim,
            head_dim=head_dim,
            qkv_bias=True,
            implementation=implementation,
            chunk=chunk,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        self.rescale_output_factor = rescale_output_factor
        self.group_norm = GroupNorm(
            groups, channels, eps=eps, dtype=dtype, param_dtype=param_dtype
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> [B, H, W, C]."""
        b, h, w, c = x.shape
        y = (
            super()
            .__call__(self.group_norm(x).reshape(b, h * w, c))
            .reshape(b, h, w, c)
        )
        return (y + x) / self.rescale_output_factor


# --- Convolutional blocks ---


class ResnetBlock2D(nnx.Module):
    """GroupNorm-SiLU-Conv twice, optional additive time embedding, 1x1 shortcut on channel change.

    diffusers `ResnetBlock2D` with time_embedding_norm="default", no up/down sampling.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        temb_channels: int | None,
        groups: int,
        eps: float,
        output_scale_factor: float = 1.0,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        kw = {"dtype": dtype, "param_dtype": param_dtype}
        self.output_scale_factor = output_scale_factor
        self.norm1 = GroupNorm(groups, in_channels, eps=eps, **kw)
        self.conv1 = conv(in_channels, out_channels, 3, padding=1, rngs=rngs, **kw)
        self.time_emb_proj = (
            linear(temb_channels, out_channels, rngs=rngs, **kw)
            if temb_channels is not None
            else None
        )
        self.norm2 = GroupNorm(groups, out_channels, eps=eps, **kw)
        self.conv2 = conv(out_channels, out_channels, 3, padding=1, rngs=rngs, **kw)
        self.conv_shortcut = (
            conv(in_channels, out_channels, 1, rngs=rngs, **kw)
            if in_channels != out_channels
            else None
        )

    def __call__(self, x: jax.Array, temb: jax.Array | None = None) -> jax.Array:
        """x: [B, H, W, C_in]; temb: [B, temb_channels] or None -> [B, H, W, C_out]."""
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            if temb is None:
                raise ValueError(
                    "ResnetBlock2D was built with a time embedding; pass temb"
                )
            h = h + self.time_emb_proj(jax.nn.silu(temb))[:, None, None, :]
        h = self.conv2(jax.nn.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        out = x + h
        if self.output_scale_factor != 1.0:
            out = out / self.output_scale_factor
        return out


class Downsample2D(nnx.Module):
    """Stride-2 3x3 convolution (diffusers `Downsample2D` with use_conv=True).

    `padding=1` pads symmetrically (UNet); `padding=0` pads one row/column at the bottom/right
    only (VAE encoder), exactly as diffusers does.
    """

    def __init__(
        self, channels: int, *, padding: int, dtype, param_dtype, rngs: nnx.Rngs
    ):
        pad = (
            ((0, 1), (0, 1))
            if padding == 0
            else ((padding, padding), (padding, padding))
        )
        self.conv = conv(
            channels,
            channels,
            3,
            stride=2,
            padding=pad,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> [B, ceil(H/2), ceil(W/2), C] (H, W even in practice)."""
        return self.conv(x)


def upsample_nearest(x: jax.Array, size: tuple[int, int] | None = None) -> jax.Array:
    """Nearest-neighbour resize, torch `F.interpolate(mode="nearest")` semantics.

    Args:
        x: [B, H, W, C].
        size: output (H', W'); None doubles both.

    Returns:
        [B, H', W', C].
    """
    b, h, w, c = x.shape
    if size is None or tuple(size) == (2 * h, 2 * w):
        # Broadcast-and-reshape instead of a gather: fuses into the following convolution's input.
        y = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
        return y.reshape(b, 2 * h, 2 * w, c)
    oh, ow = size
    rows = np.minimum(np.floor(np.arange(oh) * (h / oh)).astype(np.int32), h - 1)
    cols = np.minimum(np.floor(np.arange(ow) * (w / ow)).astype(np.int32), w - 1)
    return x[:, rows][:, :, cols]


class Upsample2D(nnx.Module):
    """Nearest 2x (or to a given size) upsampling then a 3x3 convolution (diffusers `Upsample2D`)."""

    def __init__(self, channels: int, *, dtype, param_dtype, rngs: nnx.Rngs):
        self.conv = conv(
            channels,
            channels,
            3,
            padding=1,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )

    def __call__(self, x: jax.Array, size: tuple[int, int] | None = None) -> jax.Array:
        """x: [B, H, W, C] -> [B, 2H, 2W, C] (or [B, *size, C])."""
        return self.conv(upsample_nearest(x, size))

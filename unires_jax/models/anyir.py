"""AnyIR: all-in-one image restoration without prompts (Ren et al.), NHWC, Flax NNX.

A 4-level U-Net of degradation-adaptation blocks at widths (w, 2w, 4w, 8w) with
`levels` = (3, 5, 5, 7) blocks and `heads` = (1, 2, 4, 8); the first decoder level and
`refinement_blocks` refinement blocks run at 2w; output = input + conv3x3(features).

    embed 3x3 -> enc1 -> [down] enc2 -> [down] enc3 -> [down] latent (8w) -> 1x1 to 4w
      -> [up] cat(., enc3) 1x1 -> dec3 -> [up] cat(., enc2) 1x1 -> dec2
      -> [up] cat(., enc1) -> dec1 (2w) -> refine (2w) -> 3x3 -> + input

Down = 3x3 conv C -> C/2 then pixel-unshuffle(2); up = 3x3 conv C -> 2C then pixel-shuffle(2),
both in PyTorch's channel order (channel c * 4 + 2 * dy + dx). Every convolution is bias-free
unless `use_bias` (the official `bias` argument, which reaches the attention, FFN and the
skip-fusion 1x1 convs only).

A block is `x + mixer(LN(x)); x + FFN(LN(x))` (LayerNorm over channels with bias, eps 1e-5).
The mixer splits channels interleaved: x[..., 0::2] goes to Restormer's transposed (channel)
attention (1x1 qkv, depthwise 3x3, per head q and k L2-normalised over pixels,
softmax(q k^T * temperature[head]) v), x[..., 1::2] to the gated degradation-adaptation
branch; the FFN is 1x1 -> depthwise 3x3 -> exact-erf GELU gate -> 1x1 (expansion 2).

**v2** (default) is the released code's `AnyIR()` (5,736,376 parameters). Its gate branch
(`GatedDegradationAdaption`): BatchNorm; per sample and channel the spatial mean mu and biased
variance of the normalised map give Delta = sigmoid(mu + sqrt(var + 1e-6)) and
tau_adj = tau * Delta; a 1x1 conv expands C to round(8/3 C) channels split into gamma (C), beta
(C) and alpha (the rest); alpha' = dwconv7x7(alpha) * (1 + tau_adj[first len(alpha) channels,
tau_adj tiled when alpha is wider]); out = proj1x1(sigmoid(gamma) * merge1x1(cat(beta, alpha'))
+ x). The two halves are fused as lam * cat(att + sigmoid(gate), gate + sigmoid(att)) +
(1 - lam) * F with a scalar lam (0.5 at init) and F = irfft2(rfft2(att) + rfft2(gate)) with
each channel repeated in place ([c0, c0, c1, c1, ...]), then a 1x1 projection. Since the DFT
is linear and invertible, F is exactly att + gate; `frequency_fusion="sum"` (default) computes
that, "fft" the literal transforms (equal to float32 rounding; slower, no bfloat16 FFT).

**v1** is the paper's description. The paper leaves open, and this reconstruction chooses
(6,250,986 parameters, 0.6% under the paper's 6.29M; no released code gives 6.29M exactly):
- the gate branch is the GatedCNNBlock in the released file (the paper's Eqs. 3-5:
  BatchNorm, 1x1 to 2 * int(8/3 C), split into GELU gate (int(8/3 C)), identity and a
  depthwise 7x7 (with bias, torch's default there) on C channels, gate * cat(identity, conv),
  1x1 back to C, drop-path, + input, 1x1), with r_expand = 8/3 and r_dconv = 1;
- the concatenation inside it is (identity, conv), the released file's order (Eq. 4 writes
  (conv, identity); parameter count is the same);
- drop-path rate `drop_path` = 0.1 (the value in the released file's commented-out line), one
  draw per sample (timm's DropPath), active in training mode only;
- the halves are fused by Eq. 2 alone: cat(att + sigmoid(gate), gate + sigmoid(att)) in
  that order, then the 1x1 projection (no frequency branch, no per-block lam);
- attention, FFN, U-Net, widths, heads and block counts as v2.

BatchNorm is `nnx.BatchNorm` (momentum 0.9 = torch's 0.1, eps 1e-5): in training mode
(`model.train()`, the state after construction) it normalises with the batch statistics and
updates the running ones; in inference mode (`model.eval()`) it uses the running statistics.
One difference from torch: the running variance is updated with the biased batch variance
(torch uses the unbiased one; the factor n / (n - 1) is below 1.0002 for a 16 x 128 x 128 batch).

Inputs of any size are reflect-padded at the bottom / right to a multiple of 8 (three 2x
downsamplings; the official network needs such sizes, its test centre-crops to a multiple of 16)
and the output is cropped back.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from unires_jax.models import partitioning as P
from unires_jax.models.layers import LayerNorm

VERSIONS = ("v1", "v2")
FREQUENCY_FUSIONS = ("sum", "fft")
PAD_MODES = ("reflect", "edge")
_LN_EPS = 1e-5
_BN_EPS = 1e-5
_BN_MOMENTUM = 0.9  # flax keeps `momentum` of the old value: torch's momentum=0.1
_SIGMA_EPS = 1e-6  # the gate branch's sqrt(var + eps)


@dataclasses.dataclass(frozen=True)
class AnyIRConfig:
    """AnyIR network settings; the defaults are the released code's `AnyIR()` (v2).

    Attributes:
      version: "v2" (released code) or "v1" (the paper's description; see the module doc).
      width: channels at the first level (official `dim`).
      levels: blocks per level, encoder 1-3 and latent (decoder levels mirror 1-3).
      heads: attention heads per level.
      refinement_blocks: blocks after the decoder, at 2 * width.
      ffn_expansion: FFN hidden width = int(C * ffn_expansion).
      gate_expansion: the gate branch's expansion ratio (8/3).
      gate_kernel: the gate branch's depthwise kernel (7).
      use_bias: the official `bias` argument (attention, FFN and skip-fusion convs).
      drop_path: v1 only: drop-path rate of the gate branch in training.
      frequency_fusion: v2 only: "sum" (att + gate, exact) or "fft" (literal rfft2/irfft2).
      pad_mode: how inputs are padded to a multiple of 8: "reflect" or "edge" (replicate).
      dtype, param_dtype: compute and storage dtypes.
    """

    version: str = "v2"
    width: int = 28
    levels: tuple[int, ...] = (3, 5, 5, 7)
    heads: tuple[int, ...] = (1, 2, 4, 8)
    refinement_blocks: int = 4
    ffn_expansion: float = 2.0
    gate_expansion: float = 8 / 3
    gate_kernel: int = 7
    use_bias: bool = False
    drop_path: float = 0.1
    frequency_fusion: str = "sum"
    pad_mode: str = "reflect"
    in_channels: int = 3
    out_channels: int = 3
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        object.__setattr__(self, "levels", tuple(int(n) for n in self.levels))
        object.__setattr__(self, "heads", tuple(int(n) for n in self.heads))
        problems = []
        if self.version not in VERSIONS:
            problems.append(f"version={self.version!r}: expected one of {VERSIONS}")
        if self.frequency_fusion not in FREQUENCY_FUSIONS:
            problems.append(
                f"frequency_fusion={self.frequency_fusion!r}: expected {FREQUENCY_FUSIONS}"
            )
        if self.pad_mode not in PAD_MODES:
            problems.append(f"pad_mode={self.pad_mode!r}: expected {PAD_MODES}")
        if len(self.levels) != 4 or len(self.heads) != 4 or min(self.levels) < 1:
            problems.append(
                f"levels={self.levels}, heads={self.heads}: the network has 4 levels, "
                "each with at least one block"
            )
        if self.width < 2 or self.width % 2:
            problems.append(f"width={self.width}: must be even (the channel split)")
        if not 0.0 <= self.drop_path < 1.0:
            problems.append(f"drop_path={self.drop_path}: expected 0 <= rate < 1")
        if not problems:
            pairs = list(zip(self.widths, self.heads)) + [
                (2 * self.width, self.heads[0])
            ]
            for channels, heads in pairs:
                if heads < 1 or (channels // 2) % heads:
                    problems.append(
                        f"{heads} heads do not split the {channels // 2} attention channels "
                        f"of a {channels}-wide level"
                    )
                if self.gate_widths(channels // 2)[-1] < 1:
                    problems.append(
                        f"gate_expansion={self.gate_expansion} leaves no depthwise channels "
                        f"at {channels // 2} gate channels"
                    )
        if problems:
            raise ValueError("AnyIRConfig: " + "; ".join(problems))

    @property
    def widths(self) -> tuple[int, int, int, int]:
        """Channels of encoder levels 1-3 and the latent."""
        return tuple(self.width * 2**i for i in range(4))

    def gate_widths(self, channels: int) -> tuple[int, int, int]:
        """The gate branch's split of its expanded channels for `channels` inputs.

        v2: (gamma, beta, alpha) = (C, C, round(r C) - 2C) of a round(r C)-wide expansion.
        v1: (gate, identity, conv) = (h, h - C, C) of a 2h-wide expansion, h = int(r C).
        """
        if self.version == "v2":
            hidden = round(self.gate_expansion * channels)
            return channels, channels, hidden - 2 * channels
        hidden = int(self.gate_expansion * channels)
        return hidden, hidden - channels, channels


def anyir_v1(**overrides) -> AnyIRConfig:
    """The paper's description (v1), reconstructed: 6,250,986 parameters."""
    return AnyIRConfig(version="v1", **overrides)


def anyir_v2(**overrides) -> AnyIRConfig:
    """The released code's `AnyIR()` (v2): 5,736,376 parameters."""
    return AnyIRConfig(version="v2", **overrides)


def tiny_anyir(version: str = "v2", **overrides) -> AnyIRConfig:
    """A CPU-sized AnyIR for tests and the tiny training config."""
    base = {
        "width": 8,
        "levels": (1, 1, 1, 1),
        "heads": (1, 1, 2, 2),
        "refinement_blocks": 1,
    }
    return AnyIRConfig(version=version, **{**base, **overrides})


# --- pure functions -------------------------------------------------------------------------------


def pixel_unshuffle(x: jax.Array, r: int = 2) -> jax.Array:
    """[B, H, W, C] -> [B, H/r, W/r, C r^2], channel c * r^2 + dy * r + dx (torch's order)."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // r, r, w // r, r, c)
    return x.transpose(0, 1, 3, 5, 2, 4).reshape(b, h // r, w // r, c * r * r)


def pixel_shuffle(x: jax.Array, r: int = 2) -> jax.Array:
    """[B, H, W, C r^2] -> [B, H r, W r, C], the inverse of `pixel_unshuffle` (torch's order)."""
    b, h, w, c = x.shape
    x = x.reshape(b, h, w, c // (r * r), r, r)
    return x.transpose(0, 1, 4, 2, 5, 3).reshape(b, h * r, w * r, c // (r * r))


def channel_attention(
    q: jax.Array, k: jax.Array, v: jax.Array, temperature: jax.Array
) -> jax.Array:
    """Restormer's transposed attention: a [d, d] map per head over the channels.

    Args:
      q, k, v: [B, H, W, heads * d], head-major channels.
      temperature: [heads].

    Returns:
      [B, H, W, heads * d] in v's dtype; computed in float32.
    """
    b, h, w, c = q.shape
    heads, dtype = temperature.shape[0], v.dtype
    q, k, v = (
        t.reshape(b, h * w, heads, c // heads).astype(jnp.float32) for t in (q, k, v)
    )
    # torch's F.normalize over the pixels: x / max(||x||, 1e-12).
    q, k = (
        t / jnp.maximum(jnp.linalg.norm(t, axis=1, keepdims=True), 1e-12)
        for t in (q, k)
    )
    logits = jnp.einsum("bnhd,bnhe->bhde", q, k)
    probs = jax.nn.softmax(
        logits * temperature.astype(jnp.float32)[:, None, None], axis=-1
    )
    out = jnp.einsum("bhde,bnhe->bnhd", probs, v)
    return out.reshape(b, h, w, c).astype(dtype)


def frequency_fusion(
    att: jax.Array, gate: jax.Array, literal: bool = False
) -> jax.Array:
    """irfft2(rfft2(att) + rfft2(gate)) over H, W, each channel repeated in place.

    Args:
      att, gate: [B, H, W, C].
      literal: compute the transforms (float32) instead of the equal sum att + gate.

    Returns:
      [B, H, W, 2C]: channels [f0, f0, f1, f1, ...].
    """
    if literal:
        h, w = att.shape[1:3]
        spectrum = jnp.fft.rfft2(att.astype(jnp.float32), axes=(1, 2)) + jnp.fft.rfft2(
            gate.astype(jnp.float32), axes=(1, 2)
        )
        fused = jnp.fft.irfft2(spectrum, s=(h, w), axes=(1, 2)).astype(att.dtype)
    else:
        fused = att + gate
    return jnp.repeat(fused, 2, axis=-1)


# --- layers ---------------------------------------------------------------------------------------


def _annotated(init, names: tuple[str, ...]):
    # Metadata only; the mesh is chosen by train/sharding.py (as in models/layers.py).
    return nnx.with_partitioning(init, names, eager_sharding=False)


# torch's default Conv2d weight init (kaiming_uniform with a = sqrt(5)): U(+-1/sqrt(fan_in)).
_TORCH_CONV_INIT = nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _conv(cin, cout, kernel, cfg: AnyIRConfig, rngs, *, bias=False) -> nnx.Conv:
    """A torch-style Conv2d (symmetric zero padding kernel // 2), kernel [kh, kw, c_in, c_out],
    initialised as torch initialises it (biases at zero)."""
    pad = kernel // 2
    return nnx.Conv(
        cin,
        cout,
        (kernel, kernel),
        padding=((pad, pad), (pad, pad)),
        use_bias=bias,
        dtype=cfg.dtype,
        param_dtype=cfg.param_dtype,
        kernel_init=_annotated(_TORCH_CONV_INIT, P.CONV_KERNEL),
        bias_init=_annotated(nnx.initializers.zeros_init(), P.CONV_BIAS),
        rngs=rngs,
    )


class DepthwiseConv(nnx.Module):
    """torch's `Conv2d(C, C, k, padding=k // 2, groups=C)`: kernel [k, k, 1, C] (nnx.Conv's
    layout and names), computed as k * k shifted multiply-adds.

    XLA's CPU backend runs grouped convolutions one group at a time (a 7x7 depthwise conv on
    [8, 64, 64, 24] took 15 times a dense 3x3 conv of the same tensor); the shifted sums fuse
    into one loop on every backend and give the same values up to float rounding.
    """

    def __init__(
        self, channels: int, kernel: int, cfg: AnyIRConfig, rngs, *, bias=False
    ):
        init = _annotated(_TORCH_CONV_INIT, P.CONV_KERNEL)
        shape = (kernel, kernel, 1, channels)
        self.kernel = nnx.Param(init(rngs.params(), shape, cfg.param_dtype))
        self.bias = (
            nnx.Param(
                _annotated(nnx.initializers.zeros_init(), P.CONV_BIAS)(
                    None, (channels,), cfg.param_dtype
                )
            )
            if bias
            else None
        )
        self.dtype = cfg.dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> [B, H, W, C] (zero padding, stride 1)."""
        out = depthwise_conv(x.astype(self.dtype), self.kernel[...].astype(self.dtype))
        if self.bias is not None:
            out = out + self.bias[...].astype(self.dtype)
        return out


def _grouped_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    p = kernel.shape[0] // 2
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        (1, 1),
        ((p, p), (p, p)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=x.shape[-1],
    )


@jax.custom_vjp
def depthwise_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Depthwise 'same' convolution, x [B, H, W, C], kernel [k, k, 1, C] (k odd).

    The forward pass is the shifted sums; the gradients are the grouped convolution's (their
    autodiff through k * k shifted sums compiles slowly), equal up to float rounding.
    """
    size, (h, w) = kernel.shape[0], x.shape[1:3]
    p = size // 2
    xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    out = None
    for dy in range(size):
        for dx in range(size):
            term = xp[:, dy : dy + h, dx : dx + w, :] * kernel[dy, dx, 0]
            out = term if out is None else out + term
    return out


def _depthwise_fwd(x, kernel):
    return depthwise_conv(x, kernel), (x, kernel)


def _depthwise_bwd(residuals, grad):
    _, vjp = jax.vjp(_grouped_conv, *residuals)
    return vjp(grad)


depthwise_conv.defvjp(_depthwise_fwd, _depthwise_bwd)


def _vector(init, size: int, cfg: AnyIRConfig) -> nnx.Param:
    return nnx.Param(_annotated(init, P.NORM)(None, (size,), cfg.param_dtype))


def _batch_norm(channels: int, cfg: AnyIRConfig, rngs) -> nnx.BatchNorm:
    return nnx.BatchNorm(
        channels,
        momentum=_BN_MOMENTUM,
        epsilon=_BN_EPS,
        use_fast_variance=False,
        dtype=cfg.dtype,
        param_dtype=cfg.param_dtype,
        scale_init=_annotated(nnx.initializers.ones_init(), P.NORM),
        bias_init=_annotated(nnx.initializers.zeros_init(), P.NORM),
        rngs=rngs,
    )


class DropPath(nnx.Module):
    """Stochastic depth: zeroes a whole sample's branch with probability `rate` (timm).

    Active in training mode; `model.eval()` sets `deterministic` and makes it the identity.
    """

    def __init__(self, rate: float):
        self.rate = rate
        self.deterministic = False

    def __call__(self, x: jax.Array, key: jax.Array | None) -> jax.Array:
        if self.deterministic or self.rate == 0.0:
            return x
        if key is None:
            raise ValueError(
                "AnyIR v1 in training mode draws drop-path masks: pass dropout_key=..., or "
                "call model.eval() for inference"
            )
        keep = 1.0 - self.rate
        mask = jax.random.bernoulli(key, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
        return jnp.where(mask, x / keep, 0).astype(x.dtype)


class GatedAdaptation(nnx.Module):
    """v2's gate branch (official `GatedDegradationAdaption`), on C = half the block's channels."""

    def __init__(self, channels: int, cfg: AnyIRConfig, *, rngs: nnx.Rngs):
        gamma, beta, alpha = cfg.gate_widths(channels)
        self.split = (gamma, gamma + beta)
        self.norm = _batch_norm(channels, cfg, rngs)
        self.expand = _conv(channels, gamma + beta + alpha, 1, cfg, rngs)
        self.depthwise = DepthwiseConv(alpha, cfg.gate_kernel, cfg, rngs)
        self.merge = _conv(beta + alpha, channels, 1, cfg, rngs)
        self.proj = _conv(channels, channels, 1, cfg, rngs)
        self.tau = _vector(nnx.initializers.ones_init(), channels, cfg)

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """x: [B, H, W, C] -> [B, H, W, C]."""
        del key  # no randomness in v2
        normed = self.norm(x)
        stats = normed.astype(jnp.float32)
        mu = jnp.mean(stats, axis=(1, 2), keepdims=True)
        var = jnp.mean(jnp.square(stats - mu), axis=(1, 2), keepdims=True)
        delta = jax.nn.sigmoid(mu + jnp.sqrt(var + _SIGMA_EPS))
        tau_adj = self.tau[...].astype(jnp.float32) * delta  # [B, 1, 1, C]
        gamma, beta, alpha = jnp.split(self.expand(normed), self.split, axis=-1)
        alpha = self.depthwise(alpha)
        a, c = alpha.shape[-1], tau_adj.shape[-1]
        tau_alpha = jnp.tile(tau_adj, (1, 1, 1, math.ceil(a / c)))[..., :a]
        alpha = alpha * (1.0 + tau_alpha).astype(alpha.dtype)
        gated = jax.nn.sigmoid(gamma) * self.merge(
            jnp.concatenate([beta, alpha], axis=-1)
        )
        return self.proj(gated + x)


class GatedCNN(nnx.Module):
    """v1's gate branch (the released file's `GatedCNNBlock`, the paper's Eqs. 3-5)."""

    def __init__(self, channels: int, cfg: AnyIRConfig, *, rngs: nnx.Rngs):
        hidden, ident, conv = cfg.gate_widths(channels)
        self.split = (hidden, hidden + ident)
        self.norm = _batch_norm(channels, cfg, rngs)
        self.expand = _conv(channels, 2 * hidden, 1, cfg, rngs)
        self.depthwise = DepthwiseConv(conv, cfg.gate_kernel, cfg, rngs, bias=True)
        self.merge = _conv(hidden, channels, 1, cfg, rngs)
        self.drop_path = DropPath(cfg.drop_path)
        self.proj = _conv(channels, channels, 1, cfg, rngs)

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """x: [B, H, W, C] -> [B, H, W, C]; `key` draws the drop-path mask in training."""
        g, i, c = jnp.split(self.expand(self.norm(x)), self.split, axis=-1)
        y = jax.nn.gelu(g, approximate=False) * jnp.concatenate(
            [i, self.depthwise(c)], -1
        )
        return self.proj(self.drop_path(self.merge(y), key) + x)


class Mixer(nnx.Module):
    """The interleaved split into channel attention and the gate branch, and their fusion."""

    def __init__(self, channels: int, heads: int, cfg: AnyIRConfig, *, rngs: nnx.Rngs):
        half, bias = channels // 2, cfg.use_bias
        self.version = cfg.version
        self.literal_fft = cfg.frequency_fusion == "fft"
        self.temperature = _vector(nnx.initializers.ones_init(), heads, cfg)
        self.qkv = _conv(half, 3 * half, 1, cfg, rngs, bias=bias)
        self.qkv_dw = DepthwiseConv(3 * half, 3, cfg, rngs, bias=bias)
        branch = GatedAdaptation if cfg.version == "v2" else GatedCNN
        self.gate = branch(half, cfg, rngs=rngs)
        if cfg.version == "v2":
            # Official shape (); a 1-vector here (safetensors files hold no 0-d arrays).
            self.lam = _vector(nnx.initializers.constant(0.5), 1, cfg)
        self.proj = _conv(channels, channels, 1, cfg, rngs, bias=bias)

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """x: [B, H, W, C] -> [B, H, W, C]."""
        q, k, v = jnp.split(self.qkv_dw(self.qkv(x[..., 0::2])), 3, axis=-1)
        att = channel_attention(q, k, v, self.temperature[...])
        gate = self.gate(x[..., 1::2], key)
        spatial = jnp.concatenate(
            [att + jax.nn.sigmoid(gate), gate + jax.nn.sigmoid(att)], axis=-1
        )
        if self.version == "v2":
            lam = self.lam[...].astype(spatial.dtype)
            freq = frequency_fusion(att, gate, self.literal_fft)
            spatial = lam * spatial + (1.0 - lam) * freq
        return self.proj(spatial)


class FeedForward(nnx.Module):
    """1x1 -> depthwise 3x3 -> GELU(first half) * second half -> 1x1 (Restormer's GDFN)."""

    def __init__(self, channels: int, cfg: AnyIRConfig, *, rngs: nnx.Rngs):
        hidden, bias = int(channels * cfg.ffn_expansion), cfg.use_bias
        self.proj_in = _conv(channels, 2 * hidden, 1, cfg, rngs, bias=bias)
        self.dw = DepthwiseConv(2 * hidden, 3, cfg, rngs, bias=bias)
        self.proj_out = _conv(hidden, channels, 1, cfg, rngs, bias=bias)

    def __call__(self, x: jax.Array) -> jax.Array:
        a, b = jnp.split(self.dw(self.proj_in(x)), 2, axis=-1)
        return self.proj_out(jax.nn.gelu(a, approximate=False) * b)


class Block(nnx.Module):
    """x + mixer(LN(x)), then x + FFN(LN(x)) (official `TransformerBlock`)."""

    def __init__(
        self, channels, heads, index: int, cfg: AnyIRConfig, *, rngs: nnx.Rngs
    ):
        kw = {"eps": _LN_EPS, "dtype": cfg.dtype, "param_dtype": cfg.param_dtype}
        self.index = index  # folds the drop-path key (v1), so every block draws its own
        self.norm1 = LayerNorm(channels, **kw)
        self.mixer = Mixer(channels, heads, cfg, rngs=rngs)
        self.norm2 = LayerNorm(channels, **kw)
        self.ffn = FeedForward(channels, cfg, rngs=rngs)

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        key = None if key is None else jax.random.fold_in(key, self.index)
        x = x + self.mixer(self.norm1(x), key)
        return x + self.ffn(self.norm2(x))


class AnyIR(nnx.Module):
    """The AnyIR restoration network (see the module docstring).

    `AnyIR(rngs=...)` and `AnyIR(version="v2", rngs=...)` are the released model (5,736,376
    parameters), `AnyIR(version="v1", rngs=...)` the paper's (6,250,986); a full config gives
    any other size (`AnyIR(tiny_anyir(), rngs=...)`).

    Args:
      config: the network config; None: the preset of `version`.
      version: "v2" or "v1"; with `config`, it must agree with `config.version`.
      rngs: parameter initialisation keys.
    """

    def __init__(
        self,
        config: AnyIRConfig | None = None,
        *,
        version: str | None = None,
        rngs: nnx.Rngs,
    ):
        if config is None:
            cfg = AnyIRConfig(version=version or "v2")
        elif version is not None and version != config.version:
            raise ValueError(
                f"AnyIR: version={version!r} disagrees with config.version={config.version!r}"
            )
        else:
            cfg = config
        self.cfg = cfg
        w1, w2, w3, w4 = cfg.widths
        counter = iter(range(10**6))

        def stage(channels, heads, count):
            return nnx.List(
                [
                    Block(channels, heads, next(counter), cfg, rngs=rngs)
                    for _ in range(count)
                ]
            )

        bias = cfg.use_bias
        self.embed = _conv(cfg.in_channels, w1, 3, cfg, rngs)
        self.enc1 = stage(w1, cfg.heads[0], cfg.levels[0])
        self.down1 = _conv(w1, w1 // 2, 3, cfg, rngs)
        self.enc2 = stage(w2, cfg.heads[1], cfg.levels[1])
        self.down2 = _conv(w2, w2 // 2, 3, cfg, rngs)
        self.enc3 = stage(w3, cfg.heads[2], cfg.levels[2])
        self.down3 = _conv(w3, w3 // 2, 3, cfg, rngs)
        self.latent = stage(w4, cfg.heads[3], cfg.levels[3])
        self.latent_reduce = _conv(w4, w3, 1, cfg, rngs, bias=bias)
        self.up3 = _conv(w3, 2 * w3, 3, cfg, rngs)
        self.fuse3 = _conv(w2 + w3, w3, 1, cfg, rngs, bias=bias)
        self.dec3 = stage(w3, cfg.heads[2], cfg.levels[2])
        self.up2 = _conv(w3, 2 * w3, 3, cfg, rngs)
        self.fuse2 = _conv(w3, w2, 1, cfg, rngs, bias=bias)
        self.dec2 = stage(w2, cfg.heads[1], cfg.levels[1])
        self.up1 = _conv(w2, 2 * w2, 3, cfg, rngs)
        self.dec1 = stage(w2, cfg.heads[0], cfg.levels[0])
        self.refine = stage(w2, cfg.heads[0], cfg.refinement_blocks)
        self.out = _conv(w2, cfg.out_channels, 3, cfg, rngs, bias=bias)

    def __call__(
        self, x: jax.Array, *, dropout_key: jax.Array | None = None
    ) -> jax.Array:
        """Restores a batch.

        Args:
          x: [B, H, W, in_channels], images in [0, 1]; any H, W.
          dropout_key: v1 in training mode: the drop-path key (unused otherwise).

        Returns:
          [B, H, W, out_channels] = x + the predicted residual, in x's dtype (not clipped).
        """
        cfg = self.cfg
        if x.ndim != 4 or x.shape[-1] != cfg.in_channels:
            raise ValueError(
                f"AnyIR: x must be [B, H, W, {cfg.in_channels}], got {x.shape}"
            )
        _b, h, w, _ = x.shape
        pad = ((0, 0), (0, -h % 8), (0, -w % 8), (0, 0))
        if pad[1][1] or pad[2][1]:
            x = jnp.pad(x, pad, mode=cfg.pad_mode)

        def run(blocks, y):
            for block in blocks:
                y = block(y, dropout_key)
            return y

        e1 = run(self.enc1, self.embed(x.astype(cfg.dtype)))
        e2 = run(self.enc2, pixel_unshuffle(self.down1(e1)))
        e3 = run(self.enc3, pixel_unshuffle(self.down2(e2)))
        y = self.latent_reduce(run(self.latent, pixel_unshuffle(self.down3(e3))))
        y = run(
            self.dec3, self.fuse3(jnp.concatenate([pixel_shuffle(self.up3(y)), e3], -1))
        )
        y = run(
            self.dec2, self.fuse2(jnp.concatenate([pixel_shuffle(self.up2(y)), e2], -1))
        )
        y = run(self.dec1, jnp.concatenate([pixel_shuffle(self.up1(y)), e1], -1))
        residual = self.out(run(self.refine, y))
        return (x + residual.astype(x.dtype))[:, :h, :w]


__all__ = [
    "AnyIR",
    "AnyIRConfig",
    "anyir_v1",
    "anyir_v2",
    "channel_attention",
    "frequency_fusion",
    "pixel_shuffle",
    "pixel_unshuffle",
    "tiny_anyir",
]

"""Frozen configs for the Stable Diffusion UNet and VAE, the residual-diffusion (FoundIR / DiffUIR)
UNet, and their presets.

Presets are functions taking field overrides (`tiny_unet(in_channels=8)`); per-level fields
given as ints are broadcast to every level.
Field names follow diffusers' config.json keys where the meaning is the same, so
`unires_jax/convert/unet.py` and `convert/vae.py` can translate a checkpoint's config one-to-one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from unires_jax.models.layers import ATTENTION_IMPLEMENTATIONS

DOWN_BLOCK_TYPES = ("CrossAttnDownBlock2D", "DownBlock2D")
UP_BLOCK_TYPES = ("CrossAttnUpBlock2D", "UpBlock2D")


def _per_level(name: str, value: Any, levels: int) -> tuple[int, ...]:
    """An int broadcast to every level, or a sequence with one entry per level."""
    if isinstance(value, int):
        return (value,) * levels
    value = tuple(value)
    if len(value) != levels or not all(isinstance(v, int) for v in value):
        raise ValueError(
            f"{name}={value!r}: expected an int or {levels} ints (one per level)"
        )
    return value


def _check_common(cfg, levels: int) -> None:
    if cfg.attention not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(
            f"attention={cfg.attention!r}: expected one of {ATTENTION_IMPLEMENTATIONS}"
        )
    if cfg.attention_chunk < 1:
        raise ValueError(f"attention_chunk={cfg.attention_chunk}: must be >= 1")
    for c in cfg.block_out_channels:
        if c % cfg.norm_num_groups:
            raise ValueError(
                f"block_out_channels {cfg.block_out_channels}: {c} not divisible by norm_num_groups"
            )
    if levels < 1:
        raise ValueError("block_out_channels is empty")


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """diffusers UNet2DConditionModel (the Stable Diffusion 1.x / 2.x family).

    `num_attention_heads` is what diffusers' config calls `attention_head_dim` (a historical
    misnomer there: SD 1.x's `attention_head_dim: 8` means 8 heads). Ints given for per-level
    fields are broadcast to every level.
    """

    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    down_block_types: tuple[str, ...] = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
    up_block_types: tuple[str, ...] = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3
    layers_per_block: tuple[int, ...] | int = 2
    transformer_layers_per_block: tuple[int, ...] | int = 1
    num_attention_heads: tuple[int, ...] | int = 8
    cross_attention_dim: int = 768
    use_linear_projection: bool = False
    # Attention logits are float32 in every implementation, so this always holds; kept so the
    # config round-trips SD 2.1's setting.
    upcast_attention: bool = False
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    center_input_sample: bool = False
    downsample_padding: int = 1
    mid_block_scale_factor: float = 1.0
    # "dot_product" (XLA's choice; fused on GPU/TPU), "chunked" (bounded memory; the fast
    # choice on CPU) or "naive" (reference). See unires_jax.models.layers.attention.
    attention: str = "dot_product"
    # Rows (batch x heads x query positions) per "chunked" block: memory ~ chunk x keys.
    # On CPU 1024 is near the best (each block costs ~0.1 ms of dispatch: 128-row blocks made
    # a 4096-token UNet forward 1.36x slower); accelerators want tens of thousands.
    attention_chunk: int = 1024
    # jax.checkpoint per down/mid/up block: recompute activations in the backward pass.
    remat: bool = False
    # Not in diffusers; 0 = off. For an x0-predicting ("sample") UNet whose input ends with an
    # LQ latent of out_channels channels: the output's low frequencies (`wavelet_lowpass`
    # with this many levels, in latent pixels) are replaced by the LQ latent's,
    # out + lowpass(lq - out). The network then spends itself on the detail that blur, noise
    # and downscaling destroy, and no parameter can pull it toward returning the LQ unchanged.
    lq_lowpass_levels: int = 0
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        levels = len(self.block_out_channels)
        if self.lq_lowpass_levels < 0:
            raise ValueError(
                f"lq_lowpass_levels={self.lq_lowpass_levels}: must be >= 0"
            )
        if self.lq_lowpass_levels and self.in_channels != 2 * self.out_channels:
            raise ValueError(
                f"lq_lowpass_levels={self.lq_lowpass_levels} needs an LQ latent as large as the "
                f"output after the noisy latent: in_channels = 2 * out_channels, got "
                f"in_channels={self.in_channels}, out_channels={self.out_channels}"
            )
        object.__setattr__(self, "block_out_channels", tuple(self.block_out_channels))
        object.__setattr__(self, "down_block_types", tuple(self.down_block_types))
        object.__setattr__(self, "up_block_types", tuple(self.up_block_types))
        for name in (
            "layers_per_block",
            "transformer_layers_per_block",
            "num_attention_heads",
        ):
            object.__setattr__(
                self, name, _per_level(name, getattr(self, name), levels)
            )
        _check_common(self, levels)
        if len(self.down_block_types) != levels or len(self.up_block_types) != levels:
            raise ValueError(
                f"down_block_types {self.down_block_types} / up_block_types {self.up_block_types}: "
                f"need {levels} entries each (one per block_out_channels entry)"
            )
        for t in self.down_block_types:
            if t not in DOWN_BLOCK_TYPES:
                raise ValueError(
                    f"down_block_types: {t!r} is not supported (expected one of {DOWN_BLOCK_TYPES})"
                )
        for t in self.up_block_types:
            if t not in UP_BLOCK_TYPES:
                raise ValueError(
                    f"up_block_types: {t!r} is not supported (expected one of {UP_BLOCK_TYPES})"
                )
        for c, h in zip(self.block_out_channels, self.num_attention_heads):
            if c % h:
                raise ValueError(
                    f"block_out_channels {c} is not divisible by num_attention_heads {h}"
                )

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.block_out_channels[0]


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """diffusers AutoencoderKL with DownEncoderBlock2D / UpDecoderBlock2D blocks."""

    in_channels: int = 3
    out_channels: int = 3
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 32
    scaling_factor: float = 0.18215
    use_quant_conv: bool = True
    use_post_quant_conv: bool = True
    mid_block_add_attention: bool = True
    attention: str = "dot_product"  # as in UNetConfig
    attention_chunk: int = 1024  # as in UNetConfig
    remat: bool = False  # jax.checkpoint per encoder/decoder block
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        object.__setattr__(self, "block_out_channels", tuple(self.block_out_channels))
        _check_common(self, len(self.block_out_channels))

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)


def sd15_unet(**overrides) -> UNetConfig:
    """Stable Diffusion 1.5 UNet (859,520,964 parameters with in_channels=4)."""
    return UNetConfig(**overrides)


def sd21_unet(**overrides) -> UNetConfig:
    """Stable Diffusion 2.1 UNet (865,910,724 parameters with in_channels=4)."""
    base = {
        "num_attention_heads": (5, 10, 20, 20),
        "cross_attention_dim": 1024,
        "use_linear_projection": True,
        "upcast_attention": True,
    }
    return UNetConfig(**{**base, **overrides})


def tiny_unet(**overrides) -> UNetConfig:
    """A few-million-parameter UNet with the SD layout, for tests and the embedded default model.

    Three levels (32, 64, 64 channels), cross-attention on the first two, 4 heads, context width
    32 (a tiny CLIP text encoder), 8 norm groups.
    """
    base = {
        "block_out_channels": (32, 64, 64),
        "down_block_types": (
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "layers_per_block": 2,
        "num_attention_heads": 4,
        "cross_attention_dim": 32,
        "norm_num_groups": 8,
    }
    return UNetConfig(**{**base, **overrides})


def sd_vae(**overrides) -> VAEConfig:
    """Stable Diffusion 1.x / 2.x VAE (83,653,863 parameters)."""
    return VAEConfig(**overrides)


def tiny_vae(**overrides) -> VAEConfig:
    """A small VAE with the SD layout (8x downsampling, 4 latent channels)."""
    base = {
        "block_out_channels": (32, 32, 64, 64),
        "layers_per_block": 1,
        "norm_num_groups": 8,
    }
    return VAEConfig(**{**base, **overrides})


@dataclasses.dataclass(frozen=True)
class DiffUIRConfig:
    """The DiffUIR / FoundIR residual-diffusion UNet (official `UnetRes` / `Unet`, src/model.py).

    Defaults are FoundIR's `UnetRes(dim=64, dim_mults=(1, 2, 4, 8), condition=True)`:
    36,261,187 parameters. Level widths are `dim * dim_mults[i]`; the time embedding is a
    `dim`-wide sinusoid into a 4*dim MLP; inputs are reflect-padded to a multiple of
    2 ** len(dim_mults).
    """

    dim: int = 64
    dim_mults: tuple[int, ...] = (1, 2, 4, 8)
    in_channels: int = 6  # concat(x_t, LQ)
    out_channels: int = 3  # the predicted residual
    groups: int = 8  # GroupNorm groups of every ResnetBlock
    heads: int = 4  # linear and middle attention
    head_dim: int = 32
    # Middle (full softmax) attention: "chunked" (bounded memory), "dot_product", "naive" or
    # "cudnn" (see unires_jax.models.layers.attention). None: "chunked" on every backend, since
    # the official full-resolution logits of a 1024 px tile are 4 x 16384^2 floats (4.3 GB).
    attention: str | None = None
    attention_chunk: int = 1024  # rows per "chunked" block: memory ~ chunk x tokens
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        object.__setattr__(self, "dim_mults", tuple(self.dim_mults))
        if self.dim < 1 or not self.dim_mults or min(self.dim_mults) < 1:
            raise ValueError(
                f"DiffUIRConfig: dim={self.dim}, dim_mults={self.dim_mults}: need dim >= 1 and "
                "at least one multiplier, each >= 1"
            )
        widths = (self.dim,) + tuple(self.dim * m for m in self.dim_mults)
        for w in widths:
            if w % self.groups:
                raise ValueError(
                    f"DiffUIRConfig: width {w} (dim {self.dim} x dim_mults {self.dim_mults}) "
                    f"does not split into groups={self.groups}"
                )
        if self.dim % 2 or self.dim < 4:
            raise ValueError(
                f"DiffUIRConfig: dim={self.dim}; the sinusoidal time embedding needs an even "
                "dim >= 4"
            )
        if (
            self.attention is not None
            and self.attention not in ATTENTION_IMPLEMENTATIONS
        ):
            raise ValueError(
                f"attention={self.attention!r}: expected None or one of "
                f"{ATTENTION_IMPLEMENTATIONS}"
            )
        if self.attention_chunk < 1:
            raise ValueError(f"attention_chunk={self.attention_chunk}: must be >= 1")

    @property
    def widths(self) -> tuple[int, ...]:
        """Channels at each level: (dim, dim * m_0, dim * m_1, ...)."""
        return (self.dim,) + tuple(self.dim * m for m in self.dim_mults)

    @property
    def time_dim(self) -> int:
        return 4 * self.dim

    @property
    def pad_multiple(self) -> int:
        """Inputs are reflect-padded (bottom/right) to a multiple of this (official 2**depth)."""
        return 2 ** len(self.dim_mults)


def foundir_unet(**overrides) -> DiffUIRConfig:
    """FoundIR's generalist UNet (36,261,187 parameters)."""
    return DiffUIRConfig(**overrides)


def tiny_diffuir(**overrides) -> DiffUIRConfig:
    """`UnetRes(dim=16, dim_mults=(1, 2))`: 242,835 parameters, for CPU tests and tiny training.

    Two levels (16, 32 channels); the attentions keep the official 4 heads of 32.
    """
    base = {"dim": 16, "dim_mults": (1, 2)}
    return DiffUIRConfig(**{**base, **overrides})

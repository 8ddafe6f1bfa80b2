"""diffusers UNet2DConditionModel (config.json + state dict) -> `unires_jax.models.unet.UNet`.

File reading lives in `convert/diffusers.py`; this module only translates a parsed config and a
name -> numpy (PyTorch layout) mapping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.convert import torch_layout
from unires_jax.models.configs import UNetConfig
from unires_jax.models.unet import UNet

# Checkpoint names -> module attribute paths (see the docstring of unires_jax/models/unet.py).
UNET_RENAMES = (
    (r"\.to_out\.0\.", ".to_out."),
    (r"\.ff\.net\.0\.proj\.", ".ff.geglu."),
    (r"\.ff\.net\.2\.", ".ff.proj_out."),
    (r"\.downsamplers\.0\.", ".downsampler."),
    (r"\.upsamplers\.0\.", ".upsampler."),
)

# Keys that do not change the computation (besides torch_layout.METADATA_KEYS).
_METADATA_KEYS = frozenset(
    {
        "sample_size",
        "addition_embed_type_num_heads",
    }  # the latter only matters with addition_embed_type
)

# Keys accepted only at the values Stable Diffusion 1.x / 2.x use (diffusers' defaults); any other
# value selects a computation this UNet does not implement.
_FIXED_KEYS: dict[str, tuple[Any, ...]] = {
    "act_fn": ("silu", "swish"),
    "dropout": (0.0,),
    "dual_cross_attention": (False,),
    "class_embed_type": (None,),
    "addition_embed_type": (None,),
    "addition_time_embed_dim": (None,),
    "num_class_embeds": (None,),
    "num_attention_heads": (None,),
    "encoder_hid_dim": (None,),
    "encoder_hid_dim_type": (None,),
    "resnet_time_scale_shift": ("default",),
    "resnet_skip_time_act": (False,),
    "resnet_out_scale_factor": (1.0,),
    "time_embedding_type": ("positional",),
    "time_embedding_dim": (None,),
    "time_embedding_act_fn": (None,),
    "timestep_post_act": (None,),
    "time_cond_proj_dim": (None,),
    "conv_in_kernel": (3,),
    "conv_out_kernel": (3,),
    "projection_class_embeddings_input_dim": (None,),
    "attention_type": ("default",),
    "class_embeddings_concat": (False,),
    "mid_block_type": ("UNetMidBlock2DCrossAttn",),
    "mid_block_only_cross_attention": (None, False),
    "cross_attention_norm": (None,),
    "reverse_transformer_layers_per_block": (None,),
}

# diffusers' UNet2DConditionModel defaults for the keys this converter reads.
_DEFAULTS: dict[str, Any] = {
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "only_cross_attention": False,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1.0,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 1280,
    "transformer_layers_per_block": 1,
    "attention_head_dim": 8,
    "use_linear_projection": False,
    "upcast_attention": False,
}


def _int_or_ints(key: str, value: Any) -> int | tuple[int, ...]:
    if isinstance(value, bool) or not (
        isinstance(value, int)
        or (isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value))
    ):
        raise ValueError(
            f"unsupported {key}={value!r}: expected an int or a list of ints"
        )
    return value if isinstance(value, int) else tuple(value)


def unet_config_from_diffusers(
    config: Mapping[str, Any],
    *,
    lq_channels: int = 0,
    dtype=jnp.float32,
    param_dtype=jnp.float32,
    attention: str = "dot_product",
) -> UNetConfig:
    """Translates a diffusers UNet2DConditionModel config.json dict into a UNetConfig.

    Args:
        config: the parsed config.json.
        lq_channels: extra input channels appended after the noisy latent (UniRes' LQ latent);
            the returned config's in_channels includes them.
        dtype, param_dtype: compute and storage dtypes.
        attention: "dot_product", "chunked" or "naive" (see unires_jax.models.layers.attention).

    Raises:
        ValueError: naming the key and value of any setting that would change the computation
            and is not implemented, or any unknown key.
    """
    torch_layout.check_config_keys(
        config,
        "UNet2DConditionModel",
        fixed=_FIXED_KEYS,
        used=_DEFAULTS,
        metadata=_METADATA_KEYS,
    )
    c = {**_DEFAULTS, **config}
    only_cross = c["only_cross_attention"]
    if (only_cross if isinstance(only_cross, bool) else any(only_cross)) is not False:
        raise ValueError(
            f"unsupported only_cross_attention={only_cross!r}: only False is implemented"
        )
    if not isinstance(c["cross_attention_dim"], int):
        # A config value we do not implement: ValueError like every other refusal.
        raise ValueError(  # noqa: TRY004
            f"unsupported cross_attention_dim={c['cross_attention_dim']!r}: expected one int"
        )
    if c["norm_num_groups"] is None:
        raise ValueError(
            "unsupported norm_num_groups=None: the output GroupNorm is required"
        )
    if lq_channels < 0:
        raise ValueError(f"lq_channels={lq_channels}: must be >= 0")
    return UNetConfig(
        in_channels=int(c["in_channels"]) + lq_channels,
        out_channels=int(c["out_channels"]),
        block_out_channels=tuple(c["block_out_channels"]),
        down_block_types=tuple(c["down_block_types"]),
        up_block_types=tuple(c["up_block_types"]),
        layers_per_block=_int_or_ints("layers_per_block", c["layers_per_block"]),
        transformer_layers_per_block=_int_or_ints(
            "transformer_layers_per_block", c["transformer_layers_per_block"]
        ),
        num_attention_heads=_int_or_ints("attention_head_dim", c["attention_head_dim"]),
        cross_attention_dim=int(c["cross_attention_dim"]),
        use_linear_projection=bool(c["use_linear_projection"]),
        upcast_attention=bool(c["upcast_attention"]),
        norm_num_groups=int(c["norm_num_groups"]),
        norm_eps=float(c["norm_eps"]),
        flip_sin_to_cos=bool(c["flip_sin_to_cos"]),
        freq_shift=c["freq_shift"],
        center_input_sample=bool(c["center_input_sample"]),
        downsample_padding=int(c["downsample_padding"]),
        mid_block_scale_factor=float(c["mid_block_scale_factor"]),
        attention=attention,
        dtype=dtype,
        param_dtype=param_dtype,
    )


def _pad_input_channels(kernel: np.ndarray, extra: int) -> np.ndarray:
    """conv_in kernel [3, 3, C, O] -> [3, 3, C + extra, O] with zeros for the new channels."""
    zeros = np.zeros(kernel.shape[:2] + (extra,) + kernel.shape[3:], dtype=kernel.dtype)
    return np.concatenate([kernel, zeros], axis=2)


def unet_from_torch_state(
    state: Mapping[str, np.ndarray],
    cfg: UNetConfig,
    *,
    lq_channels: int = 0,
    source: str = "",
) -> UNet:
    """Builds a UNet holding a diffusers UNet2DConditionModel's weights.

    Args:
        state: diffusers state-dict names -> numpy arrays in PyTorch layout.
        cfg: the model config (e.g. from `unet_config_from_diffusers`); `cfg.in_channels`
            includes `lq_channels`.
        lq_channels: how many of cfg.in_channels are extra LQ channels absent from the checkpoint;
            their conv_in weights are zero, so they do not change the output.
        source: the weight file, named in errors.

    Raises:
        ValueError: listing unmapped checkpoint keys, missing parameters and shape mismatches.
    """
    if not 0 <= lq_channels < cfg.in_channels:
        raise ValueError(
            f"{source}: lq_channels={lq_channels} must be in [0, in_channels={cfg.in_channels})"
        )
    # Abstract build: no random initialisation of ~860M parameters only to overwrite them.
    model = nnx.eval_shape(lambda: UNet(cfg, rngs=nnx.Rngs(0)))
    targets = torch_layout.param_shapes(model)
    conv_in = ("conv_in", "kernel")
    kh, kw, c_in, c_out = targets[conv_in]
    targets[conv_in] = (kh, kw, c_in - lq_channels, c_out)
    values = torch_layout.convert_state(
        state, targets, renames=UNET_RENAMES, what="UNet", source=source
    )
    if lq_channels:
        values[conv_in] = _pad_input_channels(values[conv_in], lq_channels)
    return torch_layout.load_into(model, values)


def add_lq_channels(unet: UNet, lq_channels: int) -> UNet:
    """A copy of `unet` whose conv_in takes `lq_channels` more input channels, weighted zero.

    The new channels come after the existing ones, so the output is unchanged whatever is fed
    there.
    """
    if lq_channels <= 0:
        raise ValueError(f"lq_channels={lq_channels}: must be > 0")
    cfg = dataclasses.replace(unet.cfg, in_channels=unet.cfg.in_channels + lq_channels)
    model = nnx.eval_shape(lambda: UNet(cfg, rngs=nnx.Rngs(0)))
    values = {
        tuple(path): np.asarray(var.get_value())
        for path, var in nnx.to_flat_state(nnx.state(unet, nnx.Param))
    }
    values[("conv_in", "kernel")] = _pad_input_channels(
        values[("conv_in", "kernel")], lq_channels
    )
    return torch_layout.load_into(model, values)

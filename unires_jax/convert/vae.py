"""diffusers AutoencoderKL (config.json + state dict) -> `unires_jax.models.vae.AutoencoderKL`.

Accepts both current attention names (`to_q`, `to_k`, `to_v`, `to_out.0`) and the deprecated
ones some older VAE checkpoints still carry (`query`, `key`, `value`, `proj_attn`), as diffusers
itself does when loading.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.convert import torch_layout
from unires_jax.models.configs import VAEConfig
from unires_jax.models.vae import AutoencoderKL

VAE_RENAMES = (
    (r"\.attentions\.(\d+)\.query\.", r".attentions.\1.to_q."),
    (r"\.attentions\.(\d+)\.key\.", r".attentions.\1.to_k."),
    (r"\.attentions\.(\d+)\.value\.", r".attentions.\1.to_v."),
    (r"\.attentions\.(\d+)\.proj_attn\.", r".attentions.\1.to_out."),
    (r"\.to_out\.0\.", ".to_out."),
    (r"\.downsamplers\.0\.", ".downsampler."),
    (r"\.upsamplers\.0\.", ".upsampler."),
)

# Keys accepted only at these values. `force_upcast` only tells fp16 pipelines to run the VAE in
# float32 (the caller's dtype choice here), so any value is accepted; shift/mean/std would change
# how latents must be scaled, which callers of this VAE do not do.
_FIXED_KEYS: dict[str, tuple[Any, ...]] = {
    "act_fn": ("silu", "swish"),
    "shift_factor": (None,),
    "latents_mean": (None,),
    "latents_std": (None,),
    "force_upcast": (True, False),
}

_DEFAULTS: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",),
    "up_block_types": ("UpDecoderBlock2D",),
    "block_out_channels": (64,),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "scaling_factor": 0.18215,
    "use_quant_conv": True,
    "use_post_quant_conv": True,
    "mid_block_add_attention": True,
}


def vae_config_from_diffusers(
    config: Mapping[str, Any],
    *,
    dtype=jnp.float32,
    param_dtype=jnp.float32,
    attention: str = "dot_product",
) -> VAEConfig:
    """Translates a diffusers AutoencoderKL config.json dict into a VAEConfig.

    Raises:
        ValueError: naming the key and value of any unsupported setting or unknown key.
    """
    torch_layout.check_config_keys(
        config,
        "AutoencoderKL",
        fixed=_FIXED_KEYS,
        used=_DEFAULTS,
        metadata=frozenset({"sample_size"}),
    )
    c = {**_DEFAULTS, **config}
    levels = len(c["block_out_channels"])
    for key, block in (
        ("down_block_types", "DownEncoderBlock2D"),
        ("up_block_types", "UpDecoderBlock2D"),
    ):
        if tuple(c[key]) != (block,) * levels:
            raise ValueError(
                f"unsupported {key}={c[key]!r}: expected {levels} x {block!r}"
            )
    if not isinstance(c["layers_per_block"], int):
        # A config value we do not implement: ValueError like every other refusal.
        raise ValueError(  # noqa: TRY004
            f"unsupported layers_per_block={c['layers_per_block']!r}: expected one int"
        )
    return VAEConfig(
        in_channels=int(c["in_channels"]),
        out_channels=int(c["out_channels"]),
        block_out_channels=tuple(c["block_out_channels"]),
        layers_per_block=c["layers_per_block"],
        latent_channels=int(c["latent_channels"]),
        norm_num_groups=int(c["norm_num_groups"]),
        scaling_factor=float(c["scaling_factor"]),
        use_quant_conv=bool(c["use_quant_conv"]),
        use_post_quant_conv=bool(c["use_post_quant_conv"]),
        mid_block_add_attention=bool(c["mid_block_add_attention"]),
        attention=attention,
        dtype=dtype,
        param_dtype=param_dtype,
    )


def vae_from_torch_state(
    state: Mapping[str, np.ndarray], cfg: VAEConfig, *, source: str = ""
) -> AutoencoderKL:
    """Builds an AutoencoderKL holding a diffusers AutoencoderKL's weights.

    Args:
        state: diffusers state-dict names -> numpy arrays in PyTorch layout.
        cfg: the model config (e.g. from `vae_config_from_diffusers`).
        source: the weight file, named in errors.

    Raises:
        ValueError: listing unmapped checkpoint keys, missing parameters and shape mismatches.
    """
    model = nnx.eval_shape(lambda: AutoencoderKL(cfg, rngs=nnx.Rngs(0)))
    targets = torch_layout.param_shapes(model)
    values = torch_layout.convert_state(
        state, targets, renames=VAE_RENAMES, what="VAE", source=source
    )
    return torch_layout.load_into(model, values)

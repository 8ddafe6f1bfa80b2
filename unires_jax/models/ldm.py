"""A latent diffusion model's three networks built from one config (random init or abstract)."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.models.configs import UNetConfig, VAEConfig
from unires_jax.models.pixel_codec import SpaceToDepthAutoencoder, SpaceToDepthConfig
from unires_jax.models.text import CLIPTextConfig, CLIPTextEncoder, Tokenizer
from unires_jax.models.unet import UNet
from unires_jax.models.vae import AutoencoderKL

# The latent codecs by config kind (`model.vae_kind` in configs and checkpoints).
VAE_KINDS = {
    "autoencoder_kl": (VAEConfig, AutoencoderKL),
    "space_to_depth": (SpaceToDepthConfig, SpaceToDepthAutoencoder),
}


def vae_kind(cfg: VAEConfig | SpaceToDepthConfig) -> str:
    """The VAE_KINDS key of a codec config."""
    for kind, (cfg_cls, _) in VAE_KINDS.items():
        if isinstance(cfg, cfg_cls):
            return kind
    raise TypeError(f"not a latent codec config: {type(cfg).__name__}")


@dataclasses.dataclass(frozen=True)
class LDMConfig:
    """UNet + VAE (or a fixed codec) + text encoder. `unet.in_channels` counts the LQ channels."""

    unet: UNetConfig
    vae: VAEConfig | SpaceToDepthConfig
    text: CLIPTextConfig
    lq_channels: int = 0

    def __post_init__(self):
        if self.unet.in_channels != self.vae.latent_channels + self.lq_channels:
            raise ValueError(
                f"unet.in_channels={self.unet.in_channels} must equal vae.latent_channels "
                f"({self.vae.latent_channels}) + lq_channels ({self.lq_channels})"
            )
        if self.unet.cross_attention_dim != self.text.hidden_size:
            raise ValueError(
                f"unet.cross_attention_dim={self.unet.cross_attention_dim} must equal the text "
                f"encoder's hidden_size={self.text.hidden_size}"
            )


def init_ldm_modules(cfg: LDMConfig, rngs: nnx.Rngs) -> dict[str, nnx.Module]:
    """Randomly initialised networks: {"unet", "vae", "text_encoder"}."""
    return {
        "unet": UNet(cfg.unet, rngs=rngs),
        "vae": VAE_KINDS[vae_kind(cfg.vae)][1](cfg.vae, rngs=rngs),
        "text_encoder": CLIPTextEncoder(cfg.text, rngs=rngs),
    }


def abstract_ldm_modules(cfg: LDMConfig) -> dict[str, nnx.Module]:
    """The same networks with shapes only (no allocation): for counting and restoring."""
    return nnx.eval_shape(lambda: init_ldm_modules(cfg, nnx.Rngs(0)))


def random_ldm_modules(cfg: LDMConfig, seed: int = 0) -> dict[str, nnx.Module]:
    """The networks with random weights written straight into abstract modules.

    Norm scales are ones, biases zeros, every other parameter a fan-in-scaled normal. Much
    faster than the NNX initialisers on CPU (they compile op by op): for tests, benchmarks and
    any run where only the shapes matter.
    """
    modules = abstract_ldm_modules(cfg)
    rng = np.random.default_rng(seed)

    def fill(path, x):
        name = str(path[-2]) if len(path) > 1 else ""
        if "scale" in name:
            return jnp.ones(x.shape, x.dtype)
        if "bias" in name:
            return jnp.zeros(x.shape, x.dtype)
        fan_in = int(np.prod(x.shape[:-1])) or 1
        return jnp.asarray(
            (rng.standard_normal(x.shape) / np.sqrt(fan_in)).astype(x.dtype)
        )

    for module in modules.values():
        nnx.update(
            module, jax.tree_util.tree_map_with_path(fill, nnx.state(module, nnx.Param))
        )
    return modules


@dataclasses.dataclass
class LatentDiffusion:
    """A loaded latent diffusion model. `unet`, `vae`, `text_encoder` are NNX modules.

    `lq_channels` is how many low-quality-latent channels the UNet's first convolution takes after
    the noisy latent's; `tokenizer_dir` is kept so the model can be saved again as it was read.
    """

    unet: UNet
    vae: AutoencoderKL | SpaceToDepthAutoencoder
    text_encoder: CLIPTextEncoder
    tokenizer: Tokenizer
    scheduler_config: dict[str, Any]
    lq_channels: int
    tokenizer_dir: pathlib.Path
    source: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def encode_prompts(self, prompts: list[str]) -> jax.Array:
        """Tokenizes and encodes prompts -> [B, 77, D], the UNet's encoder_hidden_states."""
        return self.text_encoder(jnp.asarray(self.tokenizer(prompts)))

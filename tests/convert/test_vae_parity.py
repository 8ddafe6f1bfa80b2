"""diffusers AutoencoderKL -> AutoencoderKL: same posterior and decode, every weight mapped."""

import dataclasses
import re

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL as TorchAutoencoderKL
from flax import nnx

from unires_jax.convert import torch_layout
from unires_jax.convert.vae import (
    VAE_RENAMES,
    vae_config_from_diffusers,
    vae_from_torch_state,
)
from unires_jax.models.vae import AutoencoderKL

TOL = 1e-4  # max |ours - diffusers| / max |diffusers|, float32

CONFIG = {
    "block_out_channels": (32, 64),
    "down_block_types": ("DownEncoderBlock2D",) * 2,
    "up_block_types": ("UpDecoderBlock2D",) * 2,
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "latent_channels": 4,
    "sample_size": 16,
}


def _randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * noise)
            elif p.ndim == 1:
                p.copy_(0.1 * noise)
            else:
                p.copy_(noise / np.sqrt(p[0].numel()))
    return model.eval()


@pytest.fixture(scope="module")
def torch_vae():
    torch.manual_seed(0)
    return _randomize(TorchAutoencoderKL(**CONFIG), seed=1)


@pytest.fixture(scope="module")
def reference(torch_vae):
    """diffusers' posterior mean/logvar and decode of the mean, NCHW."""
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        dist = torch_vae.encode(torch.from_numpy(x)).latent_dist
        decoded = torch_vae.decode(dist.mean).sample
    return x, dist.mean.numpy(), dist.logvar.numpy(), decoded.numpy()


def _state(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


_encode = nnx.jit(lambda m, x: m.encode(x))
_decode = nnx.jit(lambda m, z: m.decode(z))


def _nhwc(a):
    return jnp.asarray(a.transpose(0, 2, 3, 1))


def _nchw(a):
    return np.asarray(a).transpose(0, 3, 1, 2)


def _rel(a, ref):
    return float(np.abs(a - ref).max() / np.abs(ref).max())


def _check(vae, reference):
    x, mean, logvar, decoded = reference
    ours_mean, ours_logvar = _encode(vae, _nhwc(x))
    assert _rel(_nchw(ours_mean), mean) <= TOL
    assert _rel(_nchw(ours_logvar), logvar) <= TOL
    assert _rel(_nchw(_decode(vae, _nhwc(mean))), decoded) <= TOL


@pytest.mark.parametrize("attention", ["dot_product", "chunked", "naive"])
def test_converted_vae_matches_diffusers(torch_vae, reference, attention):
    cfg = vae_config_from_diffusers(dict(torch_vae.config), attention=attention)
    # 64 tokens (8x8) in the mid blocks, chunks of 6: eleven chunks, the last one padded.
    vae = vae_from_torch_state(
        _state(torch_vae), dataclasses.replace(cfg, attention_chunk=6)
    )
    _check(vae, reference)


def test_deprecated_attention_names_load_the_same(torch_vae, reference):
    old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    pattern = re.compile(r"\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.")
    state = {
        pattern.sub(lambda m: f".attentions.0.{old[m.group(1)]}.", k): v
        for k, v in _state(torch_vae).items()
    }
    assert any(".query." in k for k in state)
    _check(
        vae_from_torch_state(state, vae_config_from_diffusers(dict(torch_vae.config))),
        reference,
    )


def test_config_translation(torch_vae):
    cfg = vae_config_from_diffusers(
        dict(torch_vae.config), dtype=jnp.bfloat16, param_dtype=jnp.bfloat16
    )
    assert cfg.block_out_channels == (32, 64) and cfg.latent_channels == 4
    assert cfg.scaling_factor == pytest.approx(0.18215)
    assert cfg.dtype == jnp.bfloat16


def test_wrong_shape_and_unknown_weights_are_named(torch_vae):
    cfg = vae_config_from_diffusers(dict(torch_vae.config))
    state = _state(torch_vae)
    state["decoder.mid_block.attentions.0.to_q.weight"] = np.zeros((64, 32), np.float32)
    state["encoder.extra.weight"] = np.zeros((2,), np.float32)
    with pytest.raises(ValueError) as err:
        vae_from_torch_state(
            state, cfg, source="/ckpt/vae/diffusion_pytorch_model.safetensors"
        )
    msg = str(err.value)
    assert msg.startswith("/ckpt/vae/diffusion_pytorch_model.safetensors: ")
    assert "decoder.mid_block.attentions.0.to_q.weight (64, 32) vs (64, 64)" in msg
    assert "encoder.extra.weight" in msg


@pytest.mark.parametrize(
    "key, value",
    [
        ("shift_factor", 0.1159),
        ("down_block_types", ["DownEncoderBlock2D", "SomethingElse"]),
        ("act_fn", "relu"),
        ("norm_type", "spatial"),
    ],
)
def test_unsupported_config_settings_are_named(torch_vae, key, value):
    config = dict(torch_vae.config)
    config[key] = value
    with pytest.raises(ValueError, match=key):
        vae_config_from_diffusers(config)


# vae/config.json of the public SD 1.x / 2.x checkpoints (as on the Hub).
SD_VAE_CONFIG = {
    "_class_name": "AutoencoderKL",
    "_diffusers_version": "0.6.0",
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}


def test_full_size_sd_vae_key_map_is_complete():
    # Meta-device diffusers model: real names and shapes, no memory.
    with torch.device("meta"):
        reference = TorchAutoencoderKL(
            **{k: v for k, v in SD_VAE_CONFIG.items() if k[0] != "_"}
        )
    state = {
        k: np.broadcast_to(np.zeros((), np.float32), tuple(v.shape))
        for k, v in reference.state_dict().items()
    }
    cfg = vae_config_from_diffusers(SD_VAE_CONFIG)
    model = nnx.eval_shape(lambda: AutoencoderKL(cfg, rngs=nnx.Rngs(0)))
    targets = torch_layout.param_shapes(model)
    values = torch_layout.convert_state(
        state, targets, renames=VAE_RENAMES, what="VAE", source="sd-vae"
    )
    assert len(values) == len(targets) == len(state)
    assert sum(int(np.prod(s)) for s in targets.values()) == 83_653_863
    assert model.scaling_factor == pytest.approx(0.18215)

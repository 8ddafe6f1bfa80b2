"""AutoencoderKL behaviour without a PyTorch oracle: sizes, shapes, clamp, attention variants."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from unires_jax.convert import torch_layout
from unires_jax.models import configs
from unires_jax.models.vae import AutoencoderKL


def _count(module) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def _abstract(cfg):
    return nnx.eval_shape(lambda: AutoencoderKL(cfg, rngs=nnx.Rngs(0)))


def _micro(**overrides):
    """Two levels (2x down), one resnet per level."""
    base = {"block_out_channels": (8, 16), "layers_per_block": 1, "norm_num_groups": 4}
    return configs.VAEConfig(**{**base, **overrides})


def _random(cfg, seed=0, overrides=None):
    """A VAE with random weights filled from numpy; `overrides` maps paths to fixed arrays."""
    model = _abstract(cfg)
    rng = np.random.default_rng(seed)
    values = {}
    for path, shape in torch_layout.param_shapes(model).items():
        noise = rng.standard_normal(shape).astype(np.float32)
        if path[-1] == "kernel":
            values[path] = noise / np.sqrt(np.prod(shape[:-1]))
        else:
            values[path] = (path[-1] == "scale") + 0.1 * noise
    values.update(overrides or {})
    return torch_layout.load_into(model, values)


_encode = nnx.jit(lambda m, x: m.encode(x))
_decode = nnx.jit(lambda m, z: m.decode(z))


def _images(b=2, h=16, w=16):
    return jax.random.uniform(jax.random.key(0), (b, h, w, 3), minval=-1.0, maxval=1.0)


def test_sd_vae_has_diffusers_parameter_count():
    assert _count(_abstract(configs.sd_vae())) == 83_653_863


def test_tiny_vae_downsamples_by_8_to_4_channels_and_back():
    cfg = configs.tiny_vae()
    assert cfg.downsample_factor == 8
    model = _random(cfg)
    mean, logvar = _encode(model, _images(h=32, w=24))
    assert mean.shape == logvar.shape == (2, 4, 3, 4)
    out = _decode(model, mean)
    assert out.shape == (2, 32, 24, 3) and bool(jnp.all(jnp.isfinite(out)))


def test_scaling_factor_comes_from_the_config():
    assert _abstract(configs.sd_vae()).scaling_factor == 0.18215
    assert _abstract(_micro(scaling_factor=0.5)).scaling_factor == 0.5


def test_logvar_is_clamped_like_diffusers():
    cfg = _micro()
    lc = cfg.latent_channels
    # quant_conv outputs 0 for the mean half and +-100 for the log-variance half.
    kernel = np.zeros((1, 1, 2 * lc, 2 * lc), np.float32)
    bias = np.concatenate([np.zeros(lc), np.full(lc, 100.0)]).astype(np.float32)
    high = _random(
        cfg, overrides={("quant_conv", "kernel"): kernel, ("quant_conv", "bias"): bias}
    )
    low = _random(
        cfg, overrides={("quant_conv", "kernel"): kernel, ("quant_conv", "bias"): -bias}
    )
    assert float(jnp.min(_encode(high, _images())[1])) == 20.0
    assert float(jnp.max(_encode(low, _images())[1])) == -30.0


def test_quant_convs_can_be_switched_off():
    cfg = _micro(use_quant_conv=False, use_post_quant_conv=False)
    model = _random(cfg)
    assert model.quant_conv is None and model.post_quant_conv is None
    mean, _ = _encode(model, _images())
    assert _decode(model, mean).shape == (2, 16, 16, 3)


def test_attention_implementations_agree():
    x = _images()
    outs = {}
    for impl in ("dot_product", "chunked", "naive"):
        # 64 tokens in the mid block, chunks of 24: exercises the padded last chunk.
        model = _random(_micro(attention=impl, attention_chunk=24))
        outs[impl] = np.asarray(_decode(model, _encode(model, x)[0]))
    scale = np.abs(outs["naive"]).max()
    for impl in ("dot_product", "chunked"):
        assert np.abs(outs[impl] - outs["naive"]).max() / scale < 1e-5, impl


def test_bfloat16_compute_tracks_float32():
    cfg = _micro()
    x = _images()
    ref = _encode(_random(cfg), x)[0]
    low = _encode(_random(dataclasses.replace(cfg, dtype=jnp.bfloat16)), x)[0]
    assert low.dtype == jnp.bfloat16
    assert (
        float(jnp.abs(low.astype(jnp.float32) - ref).max() / jnp.abs(ref).max()) < 5e-2
    )


def test_invalid_attention_is_refused():
    with pytest.raises(ValueError, match="attention='flash'"):
        _micro(attention="flash")

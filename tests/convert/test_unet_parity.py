"""diffusers UNet2DConditionModel -> UNet: same outputs, every weight mapped, clear errors."""

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel
from flax import nnx

from unires_jax.convert import torch_layout
from unires_jax.convert.unet import (
    UNET_RENAMES,
    add_lq_channels,
    unet_config_from_diffusers,
    unet_from_torch_state,
)
from unires_jax.models.layers import timestep_embedding
from unires_jax.models.unet import UNet

TOL = 1e-4  # max |ours - diffusers| / max |diffusers|, float32

_COMMON = {
    "block_out_channels": (32, 64),
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "layers_per_block": 1,
    "cross_attention_dim": 24,
    "norm_num_groups": 8,
    "sample_size": 16,
}
STYLES = {
    # SD 1.x: 1x1-conv projections, one int "attention_head_dim" (= heads).
    "sd1": dict(_COMMON, attention_head_dim=8),
    # SD 2.x: linear projections, per-level heads, upcast attention.
    "sd2": dict(
        _COMMON,
        attention_head_dim=[2, 4],
        use_linear_projection=True,
        upcast_attention=True,
    ),
}


def _randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    # diffusers' init leaves norms at 1/0; random everything so no mapping mistake hides.
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


@functools.cache
def _torch_unet(style: str) -> UNet2DConditionModel:
    torch.manual_seed(0)
    return _randomize(UNet2DConditionModel(**STYLES[style]), seed=1)


@pytest.fixture(scope="module", params=sorted(STYLES))
def torch_unet(request):
    return request.param, _torch_unet(request.param)


def _state(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def _inputs(model, b=2, h=16, w=16, seq=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, model.config.in_channels, h, w)).astype(np.float32)
    t = np.array([3, 700][:b])
    ctx = rng.standard_normal((b, seq, model.config.cross_attention_dim)).astype(
        np.float32
    )
    return x, t, ctx


def _reference(model, x, t, ctx):
    with torch.no_grad():
        return model(
            torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(ctx)
        ).sample.numpy()


_forward = nnx.jit(lambda m, x, t, c: m(x, t, c))


def _ours(unet, x, t, ctx):
    """NCHW in and out, like the diffusers model; NHWC inside."""
    return np.asarray(
        _forward(unet, jnp.asarray(x.transpose(0, 2, 3, 1)), t, ctx)
    ).transpose(0, 3, 1, 2)


def _rel(a, ref):
    return float(np.abs(a - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("attention", ["dot_product", "chunked", "naive"])
def test_converted_unet_matches_diffusers(torch_unet, attention):
    style, model = torch_unet
    cfg = unet_config_from_diffusers(dict(model.config), attention=attention)
    if attention == "chunked":
        # 256 tokens at the first level in blocks of 96: three blocks, the last padded.
        cfg = dataclasses.replace(cfg, attention_chunk=96)
    ours = unet_from_torch_state(_state(model), cfg, source="unet.safetensors")
    x, t, ctx = _inputs(model)
    assert _rel(_ours(ours, x, t, ctx), _reference(model, x, t, ctx)) <= TOL, (
        style,
        attention,
    )


def test_odd_latent_size_upsamples_like_diffusers():
    # 15x13 is not a multiple of 2: diffusers forwards the skip sizes to the upsampler.
    model = _torch_unet("sd1")
    ours = unet_from_torch_state(
        _state(model), unet_config_from_diffusers(dict(model.config))
    )
    x, t, ctx = _inputs(model, h=15, w=13, seed=3)
    assert _rel(_ours(ours, x, t, ctx), _reference(model, x, t, ctx)) <= TOL


def test_config_translation_reads_sd2_settings(torch_unet):
    style, model = torch_unet
    cfg = unet_config_from_diffusers(
        dict(model.config), lq_channels=4, dtype=jnp.bfloat16
    )
    assert cfg.in_channels == 8 and cfg.dtype == jnp.bfloat16
    if style == "sd2":
        assert (
            cfg.use_linear_projection
            and cfg.upcast_attention
            and cfg.num_attention_heads == (2, 4)
        )
    else:
        assert not cfg.use_linear_projection and cfg.num_attention_heads == (8, 8)


def test_lq_channels_leave_the_output_unchanged():
    model = _torch_unet("sd1")
    state = _state(model)
    plain = unet_from_torch_state(state, unet_config_from_diffusers(dict(model.config)))
    cfg = unet_config_from_diffusers(dict(model.config), lq_channels=4)
    with_lq = unet_from_torch_state(
        state, cfg, lq_channels=4, source="unet.safetensors"
    )
    grown = add_lq_channels(plain, 4)
    assert with_lq.cfg.in_channels == grown.cfg.in_channels == 8
    x, t, ctx = _inputs(model, seed=5)
    ref = _ours(plain, x, t, ctx)
    rng = np.random.default_rng(9)
    for lq in (np.zeros_like(x), 10 * rng.standard_normal(x.shape).astype(np.float32)):
        x8 = np.concatenate([x, lq], axis=1)
        np.testing.assert_array_equal(_ours(with_lq, x8, t, ctx), ref)
        np.testing.assert_array_equal(_ours(grown, x8, t, ctx), ref)


def test_wrong_shape_missing_and_unknown_weights_are_named():
    model = _randomize(UNet2DConditionModel(**STYLES["sd1"]), seed=2)
    cfg = unet_config_from_diffusers(dict(model.config))
    state = _state(model)
    bad = dict(state)
    bad["down_blocks.0.resnets.0.conv1.weight"] = np.zeros((32, 32, 1, 1), np.float32)
    del bad["conv_out.bias"]
    bad["foo.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError) as err:
        unet_from_torch_state(
            bad, cfg, source="/ckpt/unet/diffusion_pytorch_model.safetensors"
        )
    msg = str(err.value)
    assert msg.startswith("/ckpt/unet/diffusion_pytorch_model.safetensors: ")
    assert (
        "down_blocks.0.resnets.0.conv1.weight (32, 32, 1, 1) vs (32, 32, 3, 3)" in msg
    )
    assert "conv_out.bias" in msg and "foo.weight" in msg
    assert "\n" not in msg


def test_checkpoint_with_other_in_channels_is_refused():
    # A config expecting 5 checkpoint channels (9 inputs, 4 of them LQ) against a 4-channel file.
    model = _randomize(UNet2DConditionModel(**STYLES["sd1"]), seed=2)
    cfg = dataclasses.replace(
        unet_config_from_diffusers(dict(model.config)), in_channels=9
    )
    with pytest.raises(
        ValueError, match=r"conv_in\.weight \(32, 4, 3, 3\) vs \(32, 5, 3, 3\)"
    ):
        unet_from_torch_state(_state(model), cfg, lq_channels=4)


@pytest.mark.parametrize(
    "key, value",
    [
        ("class_embed_type", "timestep"),
        ("addition_embed_type", "text_time"),
        ("time_cond_proj_dim", 256),
        ("resnet_time_scale_shift", "scale_shift"),
        ("only_cross_attention", [True, False]),
        ("cross_attention_dim", [24, 24]),
        ("act_fn", "gelu"),
        ("my_new_option", 1),
    ],
)
def test_unsupported_config_settings_are_named(key, value):
    config = dict(UNet2DConditionModel(**STYLES["sd1"]).config)
    config[key] = value
    with pytest.raises(ValueError, match=key):
        unet_config_from_diffusers(config)


# The unet/config.json of the public SD 1.5 and SD 2.1 checkpoints (as on the Hub).
_SD_DOWN = ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
_SD_UP = ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3
SD15_CONFIG = {
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": "0.6.0",
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": _SD_DOWN,
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": _SD_UP,
}
SD21_CONFIG = {
    **SD15_CONFIG,
    "_diffusers_version": "0.10.0.dev0",
    "attention_head_dim": [5, 10, 20, 20],
    "cross_attention_dim": 1024,
    "dual_cross_attention": False,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "sample_size": 96,
    "upcast_attention": True,
    "use_linear_projection": True,
}


@pytest.mark.parametrize(
    "config, n_params",
    [(SD15_CONFIG, 859_520_964), (SD21_CONFIG, 865_910_724)],
    ids=["sd15", "sd21"],
)
def test_full_size_sd_key_maps_are_complete(config, n_params):
    # diffusers' model on the meta device gives every real name and shape without memory;
    # zero-stride arrays stand in for the weights.
    with torch.device("meta"):
        reference = UNet2DConditionModel(
            **{k: v for k, v in config.items() if k[0] != "_"}
        )
    state = {
        k: np.broadcast_to(np.zeros((), np.float32), tuple(v.shape))
        for k, v in reference.state_dict().items()
    }
    cfg = unet_config_from_diffusers(config)
    model = nnx.eval_shape(lambda: UNet(cfg, rngs=nnx.Rngs(0)))
    targets = torch_layout.param_shapes(model)
    values = torch_layout.convert_state(
        state, targets, renames=UNET_RENAMES, what="UNet", source="sd"
    )
    assert len(values) == len(targets) == len(state)
    assert sum(int(np.prod(s)) for s in targets.values()) == n_params


@pytest.mark.parametrize("flip, shift, dim", [(True, 0, 32), (False, 1, 33)])
def test_timestep_features_match_diffusers(flip, shift, dim):
    from diffusers.models.embeddings import get_timestep_embedding

    t = np.array([0.0, 1.5, 999.0, 421.0], np.float32)
    ref = get_timestep_embedding(
        torch.from_numpy(t), dim, flip_sin_to_cos=flip, downscale_freq_shift=shift
    ).numpy()
    ours = timestep_embedding(
        jnp.asarray(t), dim, flip_sin_to_cos=flip, freq_shift=shift
    )
    # sin/cos of arguments near 1000 rad: one float32 ulp of a frequency moves them ~6e-5.
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=0, atol=TOL)

"""UNet behaviour without a PyTorch oracle: sizes, shapes, dtypes, attention variants, remat."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from unires_jax.convert import torch_layout
from unires_jax.models import configs, layers
from unires_jax.models.partitioning import ALL_LOGICAL_AXES
from unires_jax.models.unet import UNet


def _count(module) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def _abstract(cfg):
    return nnx.eval_shape(lambda: UNet(cfg, rngs=nnx.Rngs(0)))


def _micro(**overrides):
    """Two levels, one layer each: every block type, compiled in seconds."""
    base = {
        "block_out_channels": (16, 32),
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
        "layers_per_block": 1,
        "num_attention_heads": 2,
        "cross_attention_dim": 16,
        "norm_num_groups": 4,
    }
    return configs.UNetConfig(**{**base, **overrides})


def _random(cfg, seed=0):
    """A UNet with random weights, filled from numpy (eager NNX init compiles op by op: slow)."""
    model = _abstract(cfg)
    rng = np.random.default_rng(seed)
    values = {}
    for path, shape in torch_layout.param_shapes(model).items():
        noise = rng.standard_normal(shape).astype(np.float32)
        if path[-1] == "kernel":
            values[path] = noise / np.sqrt(np.prod(shape[:-1]))
        else:
            values[path] = (path[-1] == "scale") + 0.1 * noise
    return torch_layout.load_into(model, values)


_forward = nnx.jit(lambda m, x, t, c: m(x, t, c))


def _inputs(cfg, b=2, h=16, w=16, seq=5):
    k1, k2 = jax.random.split(jax.random.key(1))
    x = jax.random.normal(k1, (b, h, w, cfg.in_channels))
    ctx = jax.random.normal(k2, (b, seq, cfg.cross_attention_dim))
    return x, jnp.arange(b) * 300 + 7, ctx


def test_sd15_and_sd21_presets_have_diffusers_parameter_counts():
    assert _count(_abstract(configs.sd15_unet())) == 859_520_964
    assert _count(_abstract(configs.sd21_unet())) == 865_910_724


def test_tiny_preset_is_a_few_million_parameters():
    assert 1_000_000 < _count(_abstract(configs.tiny_unet())) < 5_000_000


def test_extra_input_channels_only_grow_conv_in():
    base = _count(_abstract(configs.tiny_unet()))
    grown = _count(_abstract(configs.tiny_unet(in_channels=8)))
    assert grown - base == 3 * 3 * 4 * 32


def test_every_parameter_carries_known_logical_axes():
    state = nnx.state(_abstract(configs.tiny_unet()), nnx.Param)
    for path, var in nnx.to_flat_state(state):
        names = var.get_metadata().get("out_sharding")
        assert names is not None and len(names) == len(var.shape), path
        assert set(names) <= ALL_LOGICAL_AXES, (path, names)


def test_forward_keeps_odd_spatial_shape_and_broadcasts_a_scalar_timestep():
    cfg = _micro(in_channels=8, out_channels=3)
    model = _random(cfg)
    x, _, ctx = _inputs(cfg, h=15, w=13)
    y = _forward(model, x, jnp.array([250, 250]), ctx)
    assert y.shape == (2, 15, 13, 3) and y.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(y)))
    by_scalar = _forward(model, x, jnp.float32(250.0), ctx)
    np.testing.assert_allclose(by_scalar, y, rtol=0, atol=1e-6)


def test_attention_implementations_agree():
    base = _micro()
    x, t, ctx = _inputs(base, h=12, w=12)
    outs = {}
    for impl in ("dot_product", "chunked", "naive"):
        # Chunk 50 does not divide the 144 tokens of the first level: exercises the padding.
        cfg = dataclasses.replace(base, attention=impl)
        if impl == "chunked":
            cfg = dataclasses.replace(cfg, attention_chunk=50)
        outs[impl] = np.asarray(_forward(_random(cfg), x, t, ctx))
    scale = np.abs(outs["naive"]).max()
    for impl in ("dot_product", "chunked"):
        assert np.abs(outs[impl] - outs["naive"]).max() / scale < 1e-5, impl


@pytest.mark.parametrize(
    "backend, expected",
    [("cpu", "chunked"), ("tpu", "dot_product"), ("gpu", "dot_product")],
)
def test_default_attention_is_chunked_on_cpu_and_xla_fused_on_accelerators(
    backend, expected
):
    assert layers.default_attention(backend) == expected
    assert expected in layers.ATTENTION_IMPLEMENTATIONS


def test_default_attention_follows_jax_backend():
    assert layers.default_attention() == layers.default_attention(jax.default_backend())


@pytest.mark.parametrize("dtype, tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 2e-2)])
def test_chunked_attention_matches_naive(dtype, tol):
    # 3 heads of 5, 37 queries in blocks of 16 rows (padding), 11 keys: no size divides another.
    kq, kk, kv = jax.random.split(jax.random.key(0), 3)
    q = jax.random.normal(kq, (2, 37, 3, 5), dtype) * 3
    k = jax.random.normal(kk, (2, 11, 3, 5), dtype)
    v = jax.random.normal(kv, (2, 11, 3, 5), dtype)
    ref = layers.attention(q, k, v, implementation="naive").astype(jnp.float32)
    for chunk in (16, 64, 4096):  # blocks of query rows; of whole sequences
        got = layers.attention(q, k, v, implementation="chunked", chunk=chunk)
        assert got.dtype == dtype
        err = jnp.abs(got.astype(jnp.float32) - ref).max() / jnp.abs(ref).max()
        assert err < tol, (chunk, float(err))


def test_group_norm_matches_float64_reference_far_from_zero_mean():
    # Activations with a mean 1000x their spread: float32 statistics must not cancel away
    # (E[x^2] - E[x]^2 would be off by ~0.3 here; centred statistics by 2e-4).
    rng = np.random.default_rng(0)
    x = (1e3 + rng.standard_normal((2, 5, 3, 8))).astype(np.float32)
    norm = layers.GroupNorm(4, 8, eps=1e-5, dtype=jnp.float32, param_dtype=jnp.float32)
    gamma = rng.standard_normal(8).astype(np.float32)
    beta = rng.standard_normal(8).astype(np.float32)
    norm.scale[...], norm.bias[...] = jnp.asarray(gamma), jnp.asarray(beta)
    got = np.asarray(jax.jit(lambda v: norm(v))(jnp.asarray(x)))
    g = x.astype(np.float64).reshape(2, -1, 4, 2)
    mean = g.mean(axis=(1, 3), keepdims=True)
    var = g.var(axis=(1, 3), keepdims=True)
    want = ((g - mean) / np.sqrt(var + 1e-5)).reshape(x.shape) * gamma + beta
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)


_ON_GPU = jax.default_backend() == "gpu"


@pytest.mark.skipif(_ON_GPU, reason="on a GPU cudnn runs instead of being refused; the GPU test below covers it")
def test_cudnn_attention_off_gpu_says_what_to_use_instead():
    cfg = dataclasses.replace(_micro(), attention="cudnn", dtype=jnp.bfloat16)
    x, t, ctx = _inputs(cfg, h=8, w=8)
    with pytest.raises(ValueError, match='needs an NVIDIA GPU.*"chunked" on CPU'):
        _forward(_random(cfg), x, t, ctx)


@pytest.mark.skipif(not _ON_GPU, reason="needs an NVIDIA GPU (JAX_PLATFORMS=cuda; benchmarks/run_gpu.sh runs it); off GPU the refusal test above covers cudnn")
def test_cudnn_attention_tracks_naive_in_bfloat16_with_gradients_and_refuses_float32():
    base = dataclasses.replace(_micro(), dtype=jnp.bfloat16)
    # 5 context tokens: an odd key length, which cuDNN's training rule refuses (XLA path).
    x, t, ctx = _inputs(base, h=16, w=16, seq=5)
    naive = _random(dataclasses.replace(base, attention="naive"))
    cudnn = _random(dataclasses.replace(base, attention="cudnn"))
    ref, got = (np.asarray(_forward(m, x, t, ctx), np.float32) for m in (naive, cudnn))
    assert np.abs(got - ref).max() / np.abs(ref).max() < 2e-2
    loss = nnx.jit(
        nnx.grad(lambda m, x: jnp.mean(jnp.square(m(x, t, ctx).astype(jnp.float32))), argnums=1)
    )
    g_ref, g_got = (np.asarray(loss(m, x), np.float32) for m in (naive, cudnn))
    assert np.abs(g_got - g_ref).max() / np.abs(g_ref).max() < 5e-2
    with pytest.raises(ValueError, match="bfloat16 or float16"):
        _forward(_random(dataclasses.replace(base, attention="cudnn", dtype=jnp.float32)), x, t, ctx)


def test_bfloat16_compute_tracks_float32():
    cfg = _micro()
    # Same config and shapes as the float32 run above: its compiled forward is reused.
    x, t, ctx = _inputs(cfg, h=12, w=12)
    ref = _forward(_random(cfg), x, t, ctx)
    low = _forward(_random(dataclasses.replace(cfg, dtype=jnp.bfloat16)), x, t, ctx)
    assert low.dtype == jnp.bfloat16
    err = jnp.abs(low.astype(jnp.float32) - ref).max() / jnp.abs(ref).max()
    assert err < 5e-2


def test_bfloat16_params_are_stored_in_bfloat16():
    cfg = configs.tiny_unet(dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)
    dtypes = {x.dtype for x in jax.tree.leaves(nnx.state(_abstract(cfg), nnx.Param))}
    assert dtypes == {jnp.dtype(jnp.bfloat16)}


def test_remat_changes_neither_output_nor_gradients():
    # Only the mid block has attention here: gradients compile twice, keep them small.
    cfg = _micro(
        down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2
    )
    x, t, ctx = _inputs(cfg, h=8, w=8)

    def grads(remat):
        model = _random(dataclasses.replace(cfg, remat=remat))
        loss = lambda m: jnp.mean(m(x, t, ctx) ** 2)
        value, g = nnx.jit(nnx.value_and_grad(loss))(model)
        return value, jax.tree.leaves(g)

    v0, g0 = grads(False)
    v1, g1 = grads(True)
    np.testing.assert_allclose(v1, v0, rtol=1e-6)
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"attention": "flash"}, "attention='flash'"),
        ({"num_attention_heads": (3, 4, 4)}, "not divisible by num_attention_heads"),
        ({"layers_per_block": (1, 2)}, "layers_per_block"),
        (
            {"down_block_types": ("CrossAttnDownBlock2D", "SimpleDown", "DownBlock2D")},
            "SimpleDown",
        ),
        ({"norm_num_groups": 12}, "norm_num_groups"),
    ],
)
def test_invalid_configs_are_refused_with_the_field_named(overrides, fragment):
    with pytest.raises(
        ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")
    ):
        configs.tiny_unet(**overrides)


def test_wrong_sample_channels_are_refused():
    model = _random(_micro(in_channels=8))
    x, t, ctx = _inputs(_micro())
    with pytest.raises(ValueError, match=r"\[B, H, W, 8\]"):
        model(x, t, ctx)


def _binomial_lowpass(x: np.ndarray, levels: int) -> np.ndarray:
    """StableSR's cascade of dilated [1, 2, 1] / 4 blurs with replicate padding, via scipy."""
    from scipy import ndimage

    for i in range(levels):
        r = 2**i
        weights = np.zeros(2 * r + 1)
        weights[[0, r, 2 * r]] = (0.25, 0.5, 0.25)
        for axis in (-3, -2):
            x = ndimage.correlate1d(x, weights, axis=axis, mode="nearest")
    return x


def test_lq_lowpass_takes_the_low_frequencies_from_the_lq_latent():
    cfg = _micro(in_channels=6, out_channels=3)
    x, t, ctx = _inputs(cfg, h=12, w=12)
    plain = np.asarray(_forward(_random(cfg), x, t, ctx), np.float64)
    skip_cfg = dataclasses.replace(cfg, lq_lowpass_levels=2)
    skipped = np.asarray(_forward(_random(skip_cfg), x, t, ctx), np.float64)
    lq = np.asarray(x[..., 3:], np.float64)
    expected = plain + _binomial_lowpass(lq - plain, 2)
    np.testing.assert_allclose(skipped, expected, rtol=0, atol=2e-5)
    # The output's low band is the LQ's up to the low band's own leak into the high band.
    lowpass_gap = np.abs(_binomial_lowpass(skipped - lq, 2)).mean()
    assert lowpass_gap < 0.5 * np.abs(_binomial_lowpass(plain - lq, 2)).mean()


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"in_channels": 9, "out_channels": 4, "lq_lowpass_levels": 3}, "in_channels = 2 * out"),
        ({"in_channels": 8, "out_channels": 4, "lq_lowpass_levels": -1}, "must be >= 0"),
    ],
)
def test_lq_lowpass_refuses_configs_without_a_matching_lq_latent(overrides, fragment):
    with pytest.raises(ValueError, match=fragment.replace("*", r"\*")):
        configs.tiny_unet(**overrides)

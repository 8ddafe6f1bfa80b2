"""AnyIR network: parameter counts of both versions, any input size, the global residual,
BatchNorm modes, and v1's drop-path. Parity with the official PyTorch code on the same weights
is in tests/convert/test_anyir.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from unires_jax.models import count_params
from unires_jax.models.anyir import (
    AnyIR,
    AnyIRConfig,
    frequency_fusion,
    pixel_shuffle,
    pixel_unshuffle,
    tiny_anyir,
)

_apply = nnx.jit(lambda model, x: model(x))


def _random(cfg: AnyIRConfig, seed: int = 0) -> AnyIR:
    """A model with random weights, made without compiling an initialiser (slow on CPU)."""
    model = nnx.eval_shape(lambda: AnyIR(cfg, rngs=nnx.Rngs(0)))
    rng = np.random.default_rng(seed)

    def draw(a):
        if len(a.shape) >= 2:  # conv kernels [kh, kw, c_in, c_out]
            fan_in = int(np.prod(a.shape[:-1]))
            return jnp.asarray(rng.normal(0, 1 / np.sqrt(fan_in), a.shape), a.dtype)
        return jnp.asarray(1.0 + 0.1 * rng.normal(size=a.shape), a.dtype)

    params = jax.tree.map(draw, nnx.state(model, nnx.Param))
    stats = jax.tree_util.tree_map_with_path(
        lambda p, a: jnp.full(a.shape, "'var'" in jax.tree_util.keystr(p), a.dtype),
        nnx.state(model, nnx.BatchStat),
    )
    nnx.update(model, params, stats)
    return model


def _abstract(**kw) -> AnyIR:
    return nnx.eval_shape(lambda: AnyIR(rngs=nnx.Rngs(0), **kw))


def test_released_v2_has_exactly_5736376_parameters():
    assert count_params(_abstract()) == 5_736_376
    assert count_params(_abstract(version="v2")) == 5_736_376


def test_paper_v1_is_within_one_percent_of_6_29m():
    n = count_params(_abstract(version="v1"))
    assert n == 6_250_986
    assert abs(n - 6.29e6) / 6.29e6 < 0.01


def test_version_must_agree_with_the_config():
    with pytest.raises(ValueError, match="disagrees"):
        _abstract(config=tiny_anyir("v1"), version="v2")


def test_batchnorm_layers_are_37_with_running_statistics():
    stats = nnx.state(_abstract(), nnx.BatchStat)
    leaves = jax.tree.leaves(stats)
    assert len(leaves) == 2 * 37


@pytest.fixture(scope="module")
def tiny():
    model = _random(tiny_anyir())
    model.eval()
    return model


@pytest.mark.parametrize("hw", [(16, 24), (13, 21)])
def test_any_size_comes_back_at_its_own_size_as_input_plus_residual(tiny, hw):
    x = np.random.default_rng(0).uniform(size=(1, *hw, 3)).astype(np.float32)
    out = np.asarray(_apply(tiny, x))
    assert out.shape == x.shape and np.isfinite(out).all()
    assert np.abs(out - x).max() > 1e-4  # a random network does change the image
    # Zero the last convolution: the residual is 0 and the output is the input exactly.
    zeroed = nnx.clone(tiny)
    zeroed.out.kernel[...] = jnp.zeros_like(zeroed.out.kernel[...])
    np.testing.assert_array_equal(np.asarray(_apply(zeroed, x)), x)


def test_padding_is_cropped_back_not_resized(tiny):
    """A size that is not a multiple of 8 runs as its reflect-padded image, cropped back."""
    x = np.random.default_rng(1).uniform(size=(1, 13, 21, 3)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (0, 3), (0, 3), (0, 0)), mode="reflect")
    np.testing.assert_allclose(
        np.asarray(_apply(tiny, x)),
        np.asarray(_apply(tiny, padded))[:, :13, :21],
        atol=1e-5,
    )


def test_batchnorm_training_mode_uses_batch_statistics_inference_the_running_ones():
    model = _random(tiny_anyir())
    x = np.random.default_rng(2).uniform(size=(2, 16, 16, 3)).astype(np.float32)
    bn = model.enc1[0].mixer.gate.norm
    before = np.asarray(bn.mean[...]).copy()
    model.train()
    y_train = np.asarray(_apply(model, x))
    after = np.asarray(bn.mean[...])
    assert np.abs(after - before).max() > 0  # running mean updated
    model.eval()
    y_eval = np.asarray(_apply(model, x))
    assert np.array_equal(np.asarray(bn.mean[...]), after)  # not updated in inference
    assert np.abs(y_train - y_eval).max() > 1e-5


def test_v1_drop_path_draws_in_training_and_is_off_in_inference():
    model = _random(tiny_anyir("v1", drop_path=0.5))
    x = np.random.default_rng(3).uniform(size=(4, 8, 8, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="dropout_key"):
        model(x)
    f = nnx.jit(lambda m, x, k: m(x, dropout_key=k))
    a = np.asarray(f(model, x, jax.random.key(0)))
    b = np.asarray(f(model, x, jax.random.key(1)))
    assert np.abs(a - b).max() > 1e-6
    model.eval()
    np.testing.assert_array_equal(
        np.asarray(_apply(model, x)), np.asarray(_apply(model, x))
    )


def test_pixel_shuffle_inverts_unshuffle_in_torch_channel_order():
    x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
    y = pixel_unshuffle(x)
    assert y.shape == (2, 2, 3, 12)
    # torch: out[c * 4 + dy * 2 + dx] = in[c, 2i + dy, 2j + dx]
    assert y[0, 1, 2, 1 * 4 + 1 * 2 + 0] == x[0, 3, 4, 1]
    np.testing.assert_array_equal(pixel_shuffle(y), x)


def test_frequency_fusion_literal_fft_equals_the_sum_repeated_in_place():
    rng = np.random.default_rng(4)
    a, g = (rng.normal(size=(1, 6, 10, 3)).astype(np.float32) for _ in range(2))
    lit = np.asarray(frequency_fusion(a, g, literal=True))
    np.testing.assert_allclose(lit, np.asarray(frequency_fusion(a, g)), atol=1e-5)
    np.testing.assert_allclose(lit[..., 2], (a + g)[..., 1], atol=1e-5)
    np.testing.assert_allclose(lit[..., 3], (a + g)[..., 1], atol=1e-5)


def test_config_refuses_odd_widths_and_bad_heads():
    with pytest.raises(ValueError, match="even"):
        AnyIRConfig(width=7)
    with pytest.raises(ValueError, match="heads"):
        AnyIRConfig(width=8, heads=(3, 1, 1, 1))

"""The DiffUIR / FoundIR residual UNet: official size, any image size, attention choices, axes."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from unires_jax.models import count_params
from unires_jax.models.diffuir import DiffUIRConfig, DiffUIRUNet, tiny_diffuir
from unires_jax.train import sharding


def random_model(cfg: DiffUIRConfig, seed: int = 0) -> DiffUIRUNet:
    """A model with random weights, filled from numpy (jax's eager initialisers compile one small
    program per shape: ~10 s on 2 cores)."""
    model = nnx.eval_shape(lambda: DiffUIRUNet(cfg, rngs=nnx.Rngs(0)))
    state = nnx.state(model, nnx.Param)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name == "kernel":
            return jnp.asarray(
                rng.standard_normal(leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1])),
                cfg.param_dtype,
            )
        if name == "scale":
            return jnp.asarray(
                1 + 0.1 * rng.standard_normal(leaf.shape), cfg.param_dtype
            )
        return jnp.asarray(0.1 * rng.standard_normal(leaf.shape), cfg.param_dtype)

    state.replace_by_pure_dict(
        jax.tree_util.tree_map_with_path(fill, state.to_pure_dict())
    )
    nnx.update(model, state)
    return model


_forward = nnx.jit(lambda model, x, t: model(x, t))


@pytest.fixture(scope="module")
def tiny():
    return random_model(tiny_diffuir())


def _inputs(h, w, batch=1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (batch, h, w, 6)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray([993.6472, 276.0626][:batch], jnp.float32)


def test_default_is_the_official_foundir_unet_size():
    model = nnx.eval_shape(lambda: DiffUIRUNet(rngs=nnx.Rngs(0)))
    assert model.cfg == DiffUIRConfig()
    assert count_params(model) == 36_261_187


def test_tiny_config_size():
    model = nnx.eval_shape(lambda: DiffUIRUNet(tiny_diffuir(), rngs=nnx.Rngs(0)))
    assert count_params(model) == 242_835


@pytest.mark.parametrize("h, w", [(40, 52), (37, 50)])
def test_any_image_size_comes_back_at_its_size(tiny, h, w):
    x, t = _inputs(h, w, batch=2)
    out = _forward(tiny, x, t)
    assert out.shape == (2, h, w, 3) and out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))


def test_odd_sizes_are_reflect_padded_bottom_right_and_cropped(tiny):
    x, t = _inputs(37, 50, batch=2)
    m = tiny.cfg.pad_multiple
    padded = jnp.pad(x, ((0, 0), (0, -37 % m), (0, -50 % m), (0, 0)), mode="reflect")
    assert padded.shape[1:3] == (40, 52)
    np.testing.assert_allclose(
        np.asarray(_forward(tiny, x, t)),
        np.asarray(_forward(tiny, padded, t)[:, :37, :50]),
        atol=1e-6,
    )


def test_default_pads_to_a_multiple_of_16():
    assert DiffUIRConfig().pad_multiple == 16
    assert tiny_diffuir().pad_multiple == 4


def test_time_input_changes_the_output(tiny):
    x, _ = _inputs(40, 52, batch=2)
    out = _forward(tiny, x, jnp.asarray([993.6472, 276.0626]))
    same_t = _forward(tiny, x, jnp.asarray([276.0626, 276.0626]))
    assert float(jnp.max(jnp.abs(out[0] - same_t[0]))) > 1e-3
    np.testing.assert_allclose(np.asarray(out[1]), np.asarray(same_t[1]), atol=1e-6)


def test_middle_attention_implementations_agree(tiny):
    x, t = _inputs(40, 52, batch=2)
    ref = np.asarray(_forward(tiny, x, t))  # default: "chunked"
    assert tiny.mid_attn.implementation == "chunked"
    for impl, chunk in (("naive", 1024), ("chunked", 7)):
        cfg = dataclasses.replace(tiny.cfg, attention=impl, attention_chunk=chunk)
        other = random_model(cfg)
        out = np.asarray(_forward(other, x, t))
        np.testing.assert_allclose(out, ref, atol=2e-5, err_msg=impl)


def test_bfloat16_compute_stays_close(tiny):
    x, t = _inputs(40, 52, batch=2)
    out = _forward(tiny, x, t)
    half = random_model(dataclasses.replace(tiny.cfg, dtype=jnp.bfloat16))
    low = _forward(half, x, t)
    assert low.dtype == jnp.bfloat16
    rel = float(jnp.max(jnp.abs(low.astype(jnp.float32) - out))) / float(
        jnp.max(jnp.abs(out))
    )
    assert rel < 0.1


def test_every_parameter_has_logical_axes_with_sharding_rules():
    model = nnx.eval_shape(lambda: DiffUIRUNet(tiny_diffuir(), rngs=nnx.Rngs(0)))
    state = nnx.state(model, nnx.Param)
    ruled = {name for name, _ in sharding.LOGICAL_RULES}
    for path, var in nnx.to_flat_state(state):
        names = var.get_metadata().get("out_sharding")
        assert names and len(names) == len(var.shape), path
        assert set(names) <= ruled, (path, names)
    mesh = sharding.make_mesh(2, 4)
    shardings = sharding.state_shardings(state, mesh)
    assert jax.tree.structure(shardings) == jax.tree.structure(nnx.to_pure_dict(state))


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="groups=8"):
        DiffUIRConfig(dim=12)
    with pytest.raises(ValueError, match="attention='flash'"):
        DiffUIRConfig(attention="flash")
    with pytest.raises(ValueError, match=r"\[B, H, W, 6\]"):
        nnx.eval_shape(lambda: DiffUIRUNet(tiny_diffuir(), rngs=nnx.Rngs(0)))(
            jnp.zeros((1, 8, 8, 3)), 1.0
        )

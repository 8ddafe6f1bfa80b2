"""Schedules, clipping, weight-decay mask, EMA, freezing filters."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx
from trainer_toy_task import abstract_toy_net

from configs import common
from unires_jax.train import optim


def _cfg(**kw):
    c = common.optim()
    c.update(kw)
    return c


def test_warmup_then_cosine_to_min_lr():
    s = optim.make_schedule(
        _cfg(lr=1.0, warmup_steps=10, min_lr_ratio=0.1), total_steps=110
    )
    np.testing.assert_allclose([s(0), s(5), s(10)], [0.0, 0.5, 1.0], atol=1e-6)
    np.testing.assert_allclose(
        s(60), 0.1 + 0.9 * 0.5, atol=1e-6
    )  # half-way down the cosine
    np.testing.assert_allclose(s(110), 0.1, atol=1e-6)


def test_warmup_then_constant():
    s = optim.make_schedule(
        _cfg(lr=2.0, warmup_steps=4, schedule="constant"), total_steps=100
    )
    np.testing.assert_allclose(
        [s(0), s(2), s(4), s(99)], [0.0, 1.0, 2.0, 2.0], atol=1e-6
    )


def test_unknown_schedule_is_rejected():
    with pytest.raises(ValueError, match="'cosine' or 'constant'"):
        optim.make_schedule(_cfg(schedule="linear"), 10)


def test_adamw_matches_optax_reference_with_clipping_and_decay_mask():
    cfg = _cfg(
        lr=0.1, warmup_steps=0, schedule="constant", weight_decay=0.5, clip_norm=1.0
    )
    tx, _ = optim.make_optimizer(cfg, 10)
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}
    grads = {"kernel": jnp.full((2, 2), 3.0), "bias": jnp.full((2,), 4.0)}
    updates, _ = tx.update(grads, tx.init(params), params)
    clipped = optax.clip_by_global_norm(1.0).update(grads, optax.EmptyState())[0]
    # First Adam step: update = -lr * sign(g) (bias-corrected m/sqrt(v)), plus decoupled decay
    # on the 2-D kernel only.
    np.testing.assert_allclose(updates["kernel"], -0.1 * (1.0 + 0.5 * 1.0), rtol=1e-5)
    np.testing.assert_allclose(updates["bias"], -0.1, rtol=1e-5)
    assert float(optax.global_norm(clipped)) == pytest.approx(1.0, rel=1e-6)


def test_ema_update():
    ema = optim.ema_update({"w": jnp.zeros(2)}, {"w": jnp.ones(2)}, 0.9)
    np.testing.assert_allclose(ema["w"], [0.1, 0.1], rtol=1e-6)
    same = optim.ema_update({"w": jnp.zeros(2)}, {"w": jnp.ones(2)}, 0.0)
    np.testing.assert_allclose(same["w"], [1.0, 1.0])


def test_frozen_filter_selects_whole_submodules_only():
    model = abstract_toy_net()
    frozen = nnx.state(model, optim.frozen_filter(["encoder"]))
    assert set(nnx.to_pure_dict(frozen)) == {"encoder"}
    none = nnx.state(
        model, optim.frozen_filter(["enc"])
    )  # a prefix of a name is not a path
    assert not jax.tree.leaves(nnx.to_pure_dict(none))


def test_misspelled_frozen_submodule_is_an_error():
    model = abstract_toy_net()
    with pytest.raises(ValueError, match="'vae' .* matches no parameter"):
        optim.check_frozen_prefixes(nnx.state(model, nnx.Param), ["vae"])


def test_cast_floating_leaves_ints_alone():
    out = optim.cast_floating(
        {"x": jnp.ones(2), "i": jnp.ones(2, jnp.int32)}, jnp.bfloat16
    )
    assert out["x"].dtype == jnp.bfloat16 and out["i"].dtype == jnp.int32


def test_common_config_has_every_trainer_section():
    c = common.base_config()
    assert isinstance(c, ml_collections.ConfigDict)
    for section in (
        "task",
        "train",
        "optim",
        "ema",
        "checkpoint",
        "mesh",
        "precision",
        "log",
    ):
        assert section in c

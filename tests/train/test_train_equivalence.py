"""The jit path on several meshes and the pmap path train like one device on the same batch."""

import jax
import numpy as np
import pytest
from trainer_toy_task import ToyTask, make_iterator, toy_config

from unires_jax.train import trainer

STEPS = 5


def _train(tmp_path, task, **overrides):
    config = toy_config(**{"train.steps": STEPS, **overrides})
    result = trainer.run(config, tmp_path, task, make_iterator(16))
    assert result.status == "completed" and result.step == STEPS
    return jax.device_get(result.state)


def _assert_close(got, want, atol=1e-5):
    for key in ("params", "ema"):
        flat_got = jax.tree.leaves_with_path(got[key])
        flat_want = jax.tree.leaves(want[key])
        assert len(flat_got) == len(flat_want)
        for (path, x), y in zip(flat_got, flat_want):
            np.testing.assert_allclose(
                x, y, atol=atol, rtol=0, err_msg=f"{key}{jax.tree_util.keystr(path)}"
            )


@pytest.fixture(scope="module")
def one_device_noisy(tmp_path_factory):
    """One device; the loss draws input noise from the step rng."""
    return _train(
        tmp_path_factory.mktemp("noisy"), ToyTask(noise_std=0.1), **{"mesh.data": 1}
    )


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    """One device; deterministic loss."""
    return _train(tmp_path_factory.mktemp("det"), ToyTask(), **{"mesh.data": 1})


@pytest.mark.parametrize("data, fsdp", [(8, 1), (4, 2), (2, 4)])
def test_jit_meshes_match_one_device(tmp_path, one_device_noisy, data, fsdp):
    got = _train(
        tmp_path, ToyTask(noise_std=0.1), **{"mesh.data": data, "mesh.fsdp": fsdp}
    )
    _assert_close(got, one_device_noisy)


def test_training_moves_the_weights(one_device_noisy, one_device):
    # Guards the comparisons above against comparing two untouched initialisations.
    moved = jax.tree.map(
        lambda a, b: float(np.abs(a - b).max()),
        one_device_noisy["params"],
        one_device["params"],
    )
    assert max(jax.tree.leaves(moved)) > 1e-4
    assert int(one_device["step"]) == STEPS


def test_pmap_matches_one_device(tmp_path, one_device):
    # pmap draws per-device noise (see train/pmap.py), so compare on a deterministic loss.
    got = _train(tmp_path, ToyTask(), **{"train.parallelism": "pmap"})
    _assert_close(got, one_device)


def test_gradient_accumulation_keeps_global_batch_semantics(tmp_path, one_device):
    # 2 microbatches of 8 on a (2, 4) mesh: the mean of the microbatch gradients is the
    # gradient of the global batch of 16.
    got = _train(
        tmp_path,
        ToyTask(),
        **{"mesh.data": 2, "mesh.fsdp": 4, "train.grad_accum_steps": 2},
    )
    _assert_close(got, one_device)


def test_frozen_submodule_gets_no_updates_or_optimizer_state(one_device):
    assert "encoder" in one_device["frozen"] and "encoder" not in one_device["params"]
    assert "encoder" not in one_device["ema"]
    n_trainable = sum(x.size for x in jax.tree.leaves(one_device["params"]))
    moments = [m for m in jax.tree.leaves(one_device["opt_state"]) if m.ndim]
    assert sum(m.size for m in moments) == 2 * n_trainable  # Adam mu and nu only

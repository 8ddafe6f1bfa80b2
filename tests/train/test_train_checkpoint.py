"""Checkpoints: keep-last-k + best, data state, preemption save, mesh change, NaN stop."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from trainer_toy_task import ToyTask, make_iterator, toy_config

from unires_jax.train import checkpoint, trainer


def _tiny_state(value):
    return {"w": jnp.full((4,), value, jnp.float32), "step": jnp.int32(value)}


def _abstract(state):
    rep = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep), state
    )


def test_keeps_last_k_plus_best(tmp_path):
    ckpt = checkpoint.Checkpointer(tmp_path, keep=2, keep_best=1, best_metric="loss")
    for step, loss in zip(range(1, 6), [5.0, 1.0, 4.0, 3.0, 2.0]):
        ckpt.save(step, _tiny_state(step), {"pos": step}, {"loss": loss})
    ckpt.wait()
    assert ckpt.all_steps() == [2, 4, 5]  # best (loss 1.0) and the two latest
    state, data = ckpt.restore(2, _abstract(_tiny_state(0)))
    assert int(state["step"]) == 2 and data == {"pos": 2}
    ckpt.close()


def test_bytes_iterator_state_round_trips(tmp_path):
    # grain's DataLoaderIterator.get_state() returns bytes.
    ckpt = checkpoint.Checkpointer(tmp_path, keep_best=0)
    ckpt.save(3, _tiny_state(3), b'{"last_seen_indices": [7]}')
    _, data = ckpt.restore(3, _abstract(_tiny_state(0)))
    assert data == b'{"last_seen_indices": [7]}'
    ckpt.close()


def test_sigterm_saves_then_resume_on_4_devices_continues(tmp_path):
    """Stopped by SIGTERM at step 5 on 8 devices, resumed on a 4-device mesh, trained to 8:
    matches an uninterrupted 8-step run on 8 devices."""
    config8 = toy_config(**{"train.steps": 8, "mesh.data": 8, "checkpoint.every": 100})
    first = trainer.run(
        config8, tmp_path / "run", ToyTask(), make_iterator(16, kill_at=5)
    )
    assert (first.status, first.step, first.signum) == ("preempted", 5, 15)

    config4 = toy_config(**{"train.steps": 8, "mesh.data": 4, "checkpoint.every": 100})
    resumed = trainer.run(config4, tmp_path / "run", ToyTask(), make_iterator(16))
    assert (resumed.status, resumed.step) == ("completed", 8)
    kernel = resumed.state["params"]["conv1"]["kernel"]
    assert len(kernel.sharding.device_set) == 4

    straight = trainer.run(config8, tmp_path / "straight", ToyTask(), make_iterator(16))
    for a, b in zip(
        jax.tree.leaves(resumed.state["ema"]), jax.tree.leaves(straight.state["ema"])
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=0)
    rows = [
        json.loads(line)
        for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == list(range(1, 9))


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(tmp_path):
    config = toy_config(**{"train.steps": 10, "checkpoint.every": 5, "mesh.data": 8})
    with pytest.raises(
        trainer.NonFiniteLossError, match=r"at step 7 .*last good checkpoint is step 5"
    ):
        trainer.run(config, tmp_path, ToyTask(), make_iterator(16, nan_at=7))
    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints")
    assert ckpt.all_steps() == [5]
    ckpt.close()
    rows = [
        json.loads(line)
        for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]  # step 7 is reported, not logged
    # Rerunning resumes from step 5 and, with clean data, completes.
    result = trainer.run(config, tmp_path, ToyTask(), make_iterator(16))
    assert (result.status, result.step) == ("completed", 10)
    assert all(
        np.isfinite(np.asarray(x)).all()
        for x in jax.tree.leaves(result.state["params"])
    )

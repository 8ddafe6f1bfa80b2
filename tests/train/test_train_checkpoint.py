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


def _save_steps(directory, steps, **kwargs):
    ckpt = checkpoint.Checkpointer(directory, keep=10, keep_best=0, **kwargs)
    for step in steps:
        ckpt.save(step, _tiny_state(step), {"pos": step})
    ckpt.close()


def test_each_saved_step_lists_its_files_in_a_manifest(tmp_path):
    _save_steps(tmp_path, [1], async_save=False)
    step_dir = tmp_path / "1"
    manifest = json.loads((step_dir / checkpoint.MANIFEST).read_text())
    on_disk = {
        p.relative_to(step_dir).as_posix() for p in step_dir.rglob("*") if p.is_file()
    }
    # orbax rewrites its two commit files at the step's root after the manifest is written.
    assert set(manifest["files"]) == on_disk - {
        checkpoint.MANIFEST,
        "_CHECKPOINT_METADATA",
        "commit_success.txt",
    }
    assert "data/process_0-of-1.json" in manifest["files"]
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())


def test_resume_walks_back_past_damaged_steps_and_sets_them_aside(tmp_path):
    _save_steps(tmp_path, [1, 2, 3, 4])
    state_file = max(
        (p for p in (tmp_path / "4" / "state").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    state_file.write_bytes(state_file.read_bytes()[:10])
    data_file = tmp_path / "3" / "data" / "process_0-of-1.json"
    # Same size, other bytes; then a step as if killed before its manifest was written.
    data_file.write_text(data_file.read_text().replace("3", "7"))
    (tmp_path / "2" / checkpoint.MANIFEST).unlink()

    ckpt = checkpoint.Checkpointer(tmp_path, keep=10, keep_best=0)
    warnings = []
    assert ckpt.newest_intact_step(warnings.append) == 1
    assert len(warnings) == 3, warnings
    assert "step 4" in warnings[0] and state_file.name in warnings[0]
    assert "truncated" in warnings[0]
    assert "step 3" in warnings[1] and "data/process_0-of-1.json" in warnings[1]
    assert "step 2" in warnings[2] and checkpoint.MANIFEST in warnings[2]
    assert ckpt.all_steps() == [1]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "1",
        "2.damaged-manifest",
        "3.damaged-changed",
        "4.damaged-truncated",
    ]
    # Known-bad steps are not looked at again, and their step numbers can be saved anew.
    warnings.clear()
    assert ckpt.newest_intact_step(warnings.append) == 1 and not warnings
    _, data = ckpt.restore(1, _abstract(_tiny_state(0)))
    assert data == {"pos": 1}
    ckpt.save(2, _tiny_state(2), {"pos": 2})
    ckpt.close()
    assert (tmp_path / "2" / checkpoint.MANIFEST).exists()


def test_steps_written_without_manifests_are_used_with_a_warning(tmp_path):
    """Checkpoints from before manifests existed: nothing to verify against."""
    _save_steps(tmp_path, [1, 2])
    for step in (1, 2):
        (tmp_path / str(step) / checkpoint.MANIFEST).unlink()
    ckpt = checkpoint.Checkpointer(tmp_path, keep=10, keep_best=0)
    warnings = []
    assert ckpt.newest_intact_step(warnings.append) == 2
    assert len(warnings) == 1 and "cannot be verified" in warnings[0]
    ckpt.close()


def test_no_intact_checkpoint_starts_from_scratch_and_says_so(tmp_path, caplog):
    config = toy_config(**{"train.steps": 2, "checkpoint.every": 2, "mesh.data": 8})
    trainer.run(config, tmp_path, ToyTask(), make_iterator(16))
    (tmp_path / "checkpoints" / "2" / checkpoint.MANIFEST).write_text("{}")
    with caplog.at_level("WARNING"):
        result = trainer.run(config, tmp_path, ToyTask(), make_iterator(16))
    assert (result.status, result.step) == ("completed", 2)
    assert "no intact checkpoint" in caplog.text and "from scratch" in caplog.text
    log = (tmp_path / "train.log").read_text()
    assert "no intact checkpoint" in log and log.count("fresh start") == 2


def test_nan_after_resuming_does_not_send_the_user_back_to_the_same_step(tmp_path):
    """Resuming is exact, so "rerun to resume from step 5" repeats the NaN at step 7 forever."""
    config = toy_config(**{"train.steps": 10, "checkpoint.every": 5, "mesh.data": 8})
    with pytest.raises(trainer.NonFiniteLossError):
        trainer.run(config, tmp_path, ToyTask(), make_iterator(16, nan_at=7))
    with pytest.raises(trainer.NonFiniteLossError) as err:
        trainer.run(config, tmp_path, ToyTask(), make_iterator(16, nan_at=7))
    message = str(err.value)
    assert "at step 7" in message and "resumed from step 5" in message
    assert "rerunning resumes from it" not in message
    assert "repeat" in message and "config.optim.lr" in message

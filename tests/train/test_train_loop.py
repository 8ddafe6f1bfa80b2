"""The training loop's periodic work: eval, sample grids, profiler trace, bf16 compute, and
non-parameter model state (batch statistics, a module-held RNG stream)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from trainer_toy_task import StatefulTask, ToyTask, make_iterator, toy_config

from unires_jax.train import tensorboard, trainer


def _rows(workdir):
    return [
        json.loads(line)
        for line in (workdir / "metrics.jsonl").read_text().splitlines()
    ]


@pytest.mark.parametrize("parallelism", ["jit", "pmap"])
def test_eval_samples_and_profile(tmp_path, parallelism):
    task = ToyTask()
    config = toy_config(
        **{
            "train.steps": 2,
            "train.parallelism": parallelism,
            "train.eval_every": 2,
            "train.eval_steps": 2,
            "log.sample_every": 2,
            "log.profile_start": 1,
            "log.profile_steps": 1,
            "checkpoint.best_metric": "eval/mse",
        }
    )
    eval_iter = task.make_eval_iterator(config, 0, 1)
    result = trainer.run(config, tmp_path, task, make_iterator(16), eval_iter)
    assert result.metrics["eval/mse"] > 0
    eval_rows = [r for r in _rows(tmp_path) if "eval/mse" in r]
    assert [r["step"] for r in eval_rows] == [2]
    assert os.listdir(tmp_path / "samples") == ["samples_step_00000002.png"]
    # Both engines report the compiled step's memory (CPU: no device limit to compare with).
    assert "compiled train step: " in (tmp_path / "train.log").read_text()
    assert any(
        f.endswith(".xplane.pb")
        for _, _, files in os.walk(tmp_path / "profile")
        for f in files
    )
    (events,) = os.listdir(tmp_path / "tensorboard")
    tags = {
        tag for _, tag, _ in tensorboard.read_scalars(tmp_path / "tensorboard" / events)
    }
    assert {
        "loss",
        "grad_norm",
        "lr",
        "examples_per_s",
        "step_time_s",
        "eval/mse",
    } <= tags


def test_bf16_compute_keeps_float32_master_weights(tmp_path):
    config = toy_config(**{"train.steps": 5, "precision.compute_dtype": "bfloat16"})
    result = trainer.run(config, tmp_path, ToyTask(), make_iterator(16))
    assert result.metrics["compute_is_bf16"] == 1.0
    for tree in (
        result.state["params"],
        result.state["ema"],
        result.state["opt_state"],
    ):
        for x in jax.tree.leaves(tree):
            assert x.dtype in (jnp.float32, jnp.int32), x.dtype
    rows = _rows(tmp_path)
    assert rows[-1]["loss"] < rows[0]["loss"] and all(
        np.isfinite(r["loss"]) for r in rows
    )


def test_batch_stats_and_module_rng_are_carried_and_checkpointed(tmp_path):
    config = toy_config(**{"train.steps": 2, "checkpoint.every": 2})
    first = trainer.run(config, tmp_path, StatefulTask(), make_iterator(16))
    rest = first.state["rest"]
    mean = np.asarray(rest["bn"]["mean"])
    assert np.abs(mean).max() > 0.1  # running mean moved towards the data mean (~0.45)
    assert int(rest["drop"]["rngs"]["count"]) == 2  # one dropout draw per step
    config.train.steps = 3
    resumed = trainer.run(config, tmp_path, StatefulTask(), make_iterator(16))
    assert resumed.step == 3
    assert int(resumed.state["rest"]["drop"]["rngs"]["count"]) == 3


class PretrainedToyTask(ToyTask):
    """Loads "pretrained" constants into a trainable and a frozen sub-module."""

    calls = 0

    def load_pretrained(self, model):
        PretrainedToyTask.calls += 1
        model.conv1.kernel.value = np.full(
            model.conv1.kernel.value.shape, 0.5, np.float32
        )
        model.encoder.bias.value = np.full(
            model.encoder.bias.value.shape, 2.0, np.float32
        )


@pytest.mark.parametrize("parallelism", ["jit", "pmap"])
def test_load_pretrained_runs_once_and_lands_in_the_sharded_state(
    tmp_path, parallelism
):
    PretrainedToyTask.calls = 0
    # Step 1 has learning rate 0 (warm-up), so the weights after it are the loaded ones.
    config = toy_config(
        **{
            "train.steps": 1,
            "train.parallelism": parallelism,
            "mesh.data": 2,
            "mesh.fsdp": 4,
        }
    )
    first = trainer.run(config, tmp_path, PretrainedToyTask(), make_iterator(16))
    kernel = first.state["params"]["conv1"]["kernel"]
    np.testing.assert_array_equal(np.asarray(kernel), 0.5)
    np.testing.assert_array_equal(
        np.asarray(first.state["ema"]["conv1"]["kernel"]), 0.5
    )
    np.testing.assert_array_equal(
        np.asarray(first.state["frozen"]["encoder"]["bias"]), 2.0
    )
    if parallelism == "jit":
        assert kernel.sharding.spec[3] == "fsdp"
    config.train.steps = 2
    trainer.run(config, tmp_path, PretrainedToyTask(), make_iterator(16))
    assert PretrainedToyTask.calls == 1  # a resume restores, it does not reload

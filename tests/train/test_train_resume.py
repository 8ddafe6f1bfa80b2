"""Exact resume: SIGTERM mid-run, rerun the same command, end bit-identical to an uninterrupted
run with the same data order."""

import json
import signal
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import trainer_procs

STEPS = 20
FLAGS = (
    f"--config.train.steps={STEPS}",
    "--config.checkpoint.every=100",
    "--config.log.every=5",
)


def _final_state(workdir):
    tree = ocp.PyTreeCheckpointer().restore(
        workdir / "checkpoints" / str(STEPS) / "state"
    )
    return {k: jax.device_get(tree[k]) for k in ("params", "ema", "opt_state", "rng")}


def _order(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.multiprocess
# Reading the final checkpoints back without a target layout is fine here (same 8 devices).
@pytest.mark.filterwarnings("ignore:Sharding info not provided when restoring")
def test_sigterm_then_resume_is_bit_identical(tmp_path):
    whole = trainer_procs.run(
        tmp_path / "whole", *FLAGS, f"--config.task.log_to={tmp_path / 'whole.jsonl'}"
    )
    assert whole.returncode == 0, whole.stdout[-3000:]

    cut = tmp_path / "cut"
    order = tmp_path / "cut.jsonl"
    proc = trainer_procs.start(
        cut, *FLAGS, f"--config.task.log_to={order}", "--config.task.slow_after=6"
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if order.exists() and len(_order(order)) >= 9:
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert "preempted at step" in out
    stopped = len(_order(order))
    assert 9 <= stopped < STEPS

    resumed = trainer_procs.run(cut, *FLAGS, f"--config.task.log_to={order}")
    assert resumed.returncode == 0, resumed.stdout[-3000:]

    # Same data order: interrupted + resumed batches == uninterrupted batches.
    assert _order(order) == _order(tmp_path / "whole.jsonl")
    want, got = _final_state(tmp_path / "whole"), _final_state(cut)
    for (path, a), b in zip(jax.tree.leaves_with_path(want), jax.tree.leaves(got)):
        assert np.array_equal(a, b), jax.tree_util.keystr(path)

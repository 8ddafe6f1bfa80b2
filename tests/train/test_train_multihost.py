"""Two processes on 127.0.0.1 (gloo CPU collectives) train together; a missing peer fails fast."""

import json
import socket
import time

import pytest
import trainer_procs

from unires_jax.train.distributed import EXIT_PEER_TIMEOUT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_flags(port, process_id, timeout=60):
    return (
        f"--coordinator_address=127.0.0.1:{port}",
        "--num_processes=2",
        f"--process_id={process_id}",
        f"--distributed_timeout={timeout}",
    )


@pytest.mark.multiprocess
def test_two_processes_train_and_write_one_checkpoint(tmp_path):
    port = _free_port()
    flags = (
        "--config.train.steps=3",
        "--config.checkpoint.every=3",
        "--config.mesh.data=2",
        "--config.mesh.fsdp=2",
    )
    procs = [
        trainer_procs.start(tmp_path, *flags, *_cluster_flags(port, i), devices=2)
        for i in (0, 1)
    ]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=180)[0])
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    step_dir = tmp_path / "checkpoints" / "3"
    assert (step_dir / "state").is_dir()
    data = sorted(p.name for p in (step_dir / "data").iterdir() if p.suffix == ".json")
    assert data == ["process_0-of-2.json", "process_1-of-2.json"]
    states = [json.loads((step_dir / "data" / n).read_text()) for n in data]
    assert all(s["count"] == 3 for s in states)
    # Only process 0 writes logs: one row per step, not two.
    rows = [
        json.loads(line)
        for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == [1, 2, 3]


def _run_cluster(workdir, *flags):
    port = _free_port()
    procs = [
        trainer_procs.start(workdir, *flags, *_cluster_flags(port, i), devices=2)
        for i in (0, 1)
    ]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=180)[0])
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    return outputs


@pytest.mark.multiprocess
def test_two_processes_resume_from_the_previous_step_when_the_newest_is_damaged(
    tmp_path,
):
    """Process 0 checks the manifests and sets the damaged step aside; both processes resume
    from the step it chose."""
    flags = (
        "--config.train.steps=3",
        "--config.checkpoint.every=1",
        "--config.mesh.data=2",
        "--config.mesh.fsdp=2",
    )
    _run_cluster(tmp_path, *flags)
    ckpts = tmp_path / "checkpoints"
    data_file = ckpts / "3" / "data" / "process_1-of-2.json"
    data_file.write_text(data_file.read_text().replace("3", "9"))

    outputs = _run_cluster(tmp_path, *flags)
    assert "checkpoint step 3 is damaged" in outputs[0], outputs[0][-3000:]
    assert "data/process_1-of-2.json" in outputs[0]
    assert (ckpts / "3.damaged-changed").is_dir() and (ckpts / "3").is_dir()
    assert "resumed from step 2" in (tmp_path / "train.log").read_text()
    states = [
        json.loads((ckpts / "3" / "data" / f"process_{i}-of-2.json").read_text())
        for i in (0, 1)
    ]
    assert all(s["count"] == 3 for s in states)


@pytest.mark.multiprocess
def test_missing_peer_fails_within_timeout_with_readable_error(tmp_path):
    port = _free_port()
    start = time.monotonic()
    result = trainer_procs.run(
        tmp_path, *_cluster_flags(port, 0, timeout=5), devices=2, timeout=60
    )
    elapsed = time.monotonic() - start
    assert result.returncode == EXIT_PEER_TIMEOUT, result.stdout[-3000:]
    assert "multi-host start-up timed out after 5 s" in result.stdout
    assert "process 0 of 2, coordinator 127.0.0.1" in result.stdout
    assert elapsed < 45

"""Fault injection: SIGKILL at varied points (during checkpoint saves too) and damaged newest
checkpoints, each followed by the same command; the run ends in the same final state as an
uninterrupted one (bit for bit: same devices, exact resume)."""

import os
import shutil
import signal
import stat

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import trainer_procs

STEPS = 8
FLAGS = (
    f"--config.train.steps={STEPS}",
    "--config.checkpoint.every=2",
    "--config.checkpoint.keep=3",
)
DEVICES = 2  # compiles faster than 8; every run in this file uses the same count
UMASK = 0o027

pytestmark = [
    pytest.mark.multiprocess,
    # The final checkpoints are read back as host values: no target layout needed.
    pytest.mark.filterwarnings("ignore:Sharding info not provided when restoring"),
]


def _run(workdir, fault=None):
    return trainer_procs.run(workdir, *FLAGS, devices=DEVICES, fault=fault, umask=UMASK)


def _final_state(workdir):
    tree = ocp.PyTreeCheckpointer().restore(
        workdir / "checkpoints" / str(STEPS) / "state"
    )
    return {k: jax.device_get(tree[k]) for k in ("params", "ema", "opt_state", "rng")}


def _assert_same_final_state(want_dir, got_dir):
    want, got = _final_state(want_dir), _final_state(got_dir)
    for (path, a), b in zip(jax.tree.leaves_with_path(want), jax.tree.leaves(got)):
        assert np.array_equal(a, b), jax.tree_util.keystr(path)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: checkpoints 4, 6 and 8 kept."""
    workdir = tmp_path_factory.mktemp("reference")
    result = _run(workdir)
    assert result.returncode == 0, result.stdout[-3000:]
    return workdir


@pytest.fixture
def interrupted(reference, tmp_path):
    """The reference run as if it had stopped after saving step 6."""
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    shutil.rmtree(workdir / "checkpoints" / str(STEPS))
    return workdir


def test_files_follow_the_umask(reference):
    """Everything the trainer writes (metrics, logs, checkpoints and their manifests) gets the
    modes the umask gives new files, not mkstemp/mkdtemp's 0600/0700."""
    wrong = []
    for root, dirs, files in os.walk(reference):
        for name in dirs + files:
            path = os.path.join(root, name)
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            want = (0o777 if name in dirs else 0o666) & ~UMASK
            if mode != want:
                wrong.append(f"{oct(mode)} {os.path.relpath(path, reference)}")
    assert not wrong, wrong[:10]
    assert list(reference.glob("checkpoints/*/unires_manifest.json"))


def _committed(workdir):
    return sorted(
        int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()
    )


def test_sigkill_at_varied_points_then_rerun_ends_in_the_same_state(
    reference, tmp_path
):
    workdir = tmp_path / "run"
    ckpts = workdir / "checkpoints"
    # (fault, what is committed after the kill): each rerun of the same command resumes.
    faults = (
        # Inside the save of step 4 (steps 1-4 trained, step 2 saved): step 4 half written.
        ("data_save:4", [2]),
        # Step 6 written and listed in its manifest, not yet committed: resumes from 4 next.
        ("after_manifest:6", [2, 4]),
        # Handing out batch 8, right after step 6's save started in the background.
        ("batch:8", None),
    )
    for fault, committed in faults:
        result = _run(workdir, fault)
        assert result.returncode == -signal.SIGKILL, (fault, result.stdout[-3000:])
        if committed is not None:
            assert _committed(workdir) == committed, fault
        if fault.startswith("after_manifest"):
            assert (ckpts / "6.orbax-checkpoint-tmp" / "unires_manifest.json").exists()
    result = _run(workdir)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "damaged" not in result.stdout, result.stdout[-3000:]
    resumed = [
        line.split("resumed from step ")[1].split()[0]
        for line in (workdir / "train.log").read_text().splitlines()
        if "resumed from step" in line
    ]
    assert resumed[:2] == ["2", "4"] and resumed[2] in ("4", "6"), resumed
    _assert_same_final_state(reference, workdir)


def _largest_state_file(step_dir):
    """The biggest file of the train state: array data (zstd chunks in an OCDBT file)."""
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_newest_checkpoint_resumes_from_the_previous_intact_one(
    interrupted, reference, damage
):
    """Issue case 3: a truncated file gave a raw tensorstore traceback; flipped bytes resumed
    silently and hit NaN at the next step, with a message to rerun from that same step."""
    step_dir = interrupted / "checkpoints" / "6"
    victim = _largest_state_file(step_dir)
    data = bytearray(victim.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        middle = len(data) // 2
        data[middle : middle + 16] = b"\xff" * 16
    victim.write_bytes(bytes(data))
    relative = victim.relative_to(step_dir).as_posix()

    result = _run(interrupted)
    assert result.returncode == 0, result.stdout[-3000:]
    out = result.stdout
    assert "checkpoint step 6" in out and relative in out, out[-3000:]
    assert "resumed from step 4" in (interrupted / "train.log").read_text()
    assert "non-finite" not in out
    aside = [
        p.name for p in (interrupted / "checkpoints").iterdir() if "damaged" in p.name
    ]
    assert len(aside) == 1 and aside[0].startswith("6.damaged-"), aside
    _assert_same_final_state(reference, interrupted)

    # The damaged step was set aside, not retried: the next rerun has nothing to skip.
    again = _run(interrupted)
    assert again.returncode == 0 and "damaged" not in again.stdout, again.stdout[-3000:]

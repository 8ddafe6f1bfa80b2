"""run_tpu.sh: valid bash, shellcheck-clean, and a complete dry run for a v5e-32 slice."""

import shutil
import subprocess

import pytest
import trainer_procs

SCRIPT = trainer_procs.REPO / "run_tpu.sh"


def _dry_run(*args):
    return subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_bash_syntax():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True, timeout=30)


@pytest.mark.skipif(
    shutil.which("shellcheck") is None,
    reason="shellcheck is not installed (Debian package `shellcheck`; .ci/run installs it)",
)
def test_shellcheck_is_clean():
    out = subprocess.run(
        ["shellcheck", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout


def test_dry_run_prints_the_full_sequence_for_v5e_32():
    out = _dry_run(
        "--name",
        "unires-v5e",
        "--zone",
        "us-west4-a",
        "--type",
        "v5e-32",
        "--ckpt-dir",
        "gs://bucket/ckpt",
        "--",
        "--config=configs/unires_sd21.py",
        "--workdir=/tmp/unires",
        "--config.train.steps=10",
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("+ ")]
    steps = [
        "gcloud compute tpus tpu-vm describe unires-v5e --zone=us-west4-a",
        (
            "gcloud compute tpus tpu-vm create unires-v5e --zone=us-west4-a "
            "--accelerator-type=v5litepod-32 --version=v2-alpha-tpuv5-lite"
        ),
        "tar -C",
        "gcloud compute tpus tpu-vm scp",
        "--worker=all '--command=mkdir -p unires-jax && tar -xzf",
        "pip install -q -e '\\''./unires-jax[tpu]'\\'' gcsfs",
        (
            "nohup unires train --distributed=auto --config=configs/unires_sd21.py "
            "--workdir=/tmp/unires --config.train.steps=10 "
            "--config.checkpoint.directory=gs://bucket/ckpt"
        ),
        "--worker=0 '--command=tail -n +1 -F unires-train.log'",
    ]
    assert len(lines) == len(steps)
    for line, want in zip(lines, steps):
        assert want in line, (want, line)
    install_and_launch = [
        line for line in lines if "--worker=all" in line and "ssh" in line
    ]
    assert len(install_and_launch) == 3


def test_dry_run_rejects_unknown_tpu_type():
    out = _dry_run(
        "--name", "x", "--zone", "z", "--type", "v4-8", "--", "--config=c.py"
    )
    assert out.returncode == 2 and "use v5e-N" in out.stderr

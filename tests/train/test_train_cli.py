"""`unires train` flag handling, through the sub-command module (registered by cli/main.py)."""

import argparse
import json
import subprocess
import sys

import trainer_procs
from trainer_toy_task import ToyTask

from unires_jax.cli import train as train_cli
from unires_jax.train.tasks import FAMILIES

CONFIG = str(trainer_procs.CONFIG)


def test_all_flags_reach_absl_including_config_overrides():
    parser = argparse.ArgumentParser(prog="unires")
    train_cli.add_parser(parser.add_subparsers(dest="command"))
    argv = [
        "train",
        "--config",
        CONFIG,
        "--workdir=/w",
        "--config.train.steps=3",
        "--help",
    ]
    args = parser.parse_args(argv)
    assert args.command == "train" and args.flags == argv[1:]


def test_help_and_missing_flags(capsys):
    assert train_cli.main(["--help"]) == 0
    assert "--config.key=value" in capsys.readouterr().out
    assert train_cli.main([f"--config={CONFIG}"]) == 2
    assert "--config and --workdir are required" in capsys.readouterr().err


def test_unknown_family_is_reported(tmp_path, capsys):
    assert "toy" not in FAMILIES  # FAMILIES holds real families only
    code = train_cli.main([f"--config={CONFIG}", f"--workdir={tmp_path}"])
    assert code == 2
    assert (
        "config.task.family='toy' is not a known model family"
        in capsys.readouterr().err
    )


def test_mistyped_override_fails_on_the_locked_config(tmp_path, capsys):
    code = train_cli.main(
        [f"--config={CONFIG}", f"--workdir={tmp_path}", "--config.train.stepz=3"]
    )
    assert code == 2
    assert "stepz" in capsys.readouterr().err


def test_trains_with_overrides(tmp_path, monkeypatch):
    monkeypatch.setitem(FAMILIES, "toy", ToyTask.from_config)
    code = train_cli.main(
        [
            f"--config={CONFIG}",
            f"--workdir={tmp_path}",
            "--config.train.steps=2",
            "--config.mesh.fsdp=2",
        ]
    )
    assert code == 0
    rows = [
        json.loads(line)
        for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == [1, 2]


def test_python_dash_m_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "unires_jax.train", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=trainer_procs.REPO,
        check=False,
    )
    assert out.returncode == 0 and "unires train" in out.stdout

"""`unires train` flag handling, through the sub-command module (registered by cli/main.py)."""

import argparse
import json
import os
import shutil
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


def _shared_experiment(tmp_path, planted, own_common=True):
    """A config copied to a shared folder `shared/exp/configs/`, with `planted` module names
    dropped into `shared/exp` (the folder above configs/) by someone else. Each planted module
    appends its name to the returned marker file and fails. `own_common`: the config checks that
    `from configs import common` found the copy next to it."""
    exp = tmp_path / "shared" / "exp"
    (exp / "configs").mkdir(parents=True)
    shutil.copy(trainer_procs.REPO / "configs" / "common.py", exp / "configs")
    marker = tmp_path / "planted-modules-ran.txt"
    for name in planted:
        (exp / f"{name}.py").write_text(
            f"open({str(marker)!r}, 'a').write('{name}\\n')\n"
            f"raise ImportError('planted {name}.py ran')\n"
        )
    config = exp / "configs" / "toy.py"
    check = (
        f"    assert common.__file__.startswith({str(exp / 'configs')!r}), common.__file__\n"
        if own_common
        else ""
    )
    config.write_text(
        "import sys\n"
        f"sys.path.append({str(trainer_procs.CONFIG.parent)!r})  # the toy task's folder\n"
        "from configs import common  # this folder's common.py\n"
        "from trainer_toy_task import toy_config\n\n\n"
        "def get_config(arg=''):\n"
        f"{check}"
        "    return toy_config(**{'train.steps': 1})\n"
    )
    return config, marker


def test_unires_train_does_not_import_modules_planted_above_the_config(tmp_path):
    """Issue case 4: `unires train --config=PATH` put dirname(dirname(PATH)) first on sys.path,
    so a `flax.py` planted there ran. `from configs import common` still resolves."""
    config, marker = _shared_experiment(tmp_path, ["flax", "orbax", "optax"])
    env = trainer_procs.env()
    # As installed: the package is importable, the repository (and its configs/) is not.
    env["PYTHONPATH"] = ""
    unires = os.path.join(os.path.dirname(sys.executable), "unires")
    out = subprocess.run(
        [unires, "train", f"--config={config}", f"--workdir={tmp_path / 'w'}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert not marker.exists(), marker.read_text() + out.stderr[-3000:]
    # The config loaded (toy is not a registered family outside the test runner).
    assert out.returncode == 2, out.stderr[-3000:]
    assert "config.task.family='toy' is not a known model family" in out.stderr


def test_training_from_a_shared_config_folder_runs_no_planted_module(tmp_path):
    # The runner has imported flax and `configs` (the repository's) already; matplotlib is first
    # imported at the end of a run (curves.png).
    config, marker = _shared_experiment(tmp_path, ["matplotlib"], own_common=False)
    command = trainer_procs.command(tmp_path / "w")
    command[2] = f"--config={config}"
    out = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=trainer_procs.env(),
        check=False,
    )
    assert not marker.exists(), marker.read_text() + out.stdout[-3000:]
    assert out.returncode == 0, out.stdout[-3000:]
    assert (tmp_path / "w" / "curves.png").exists()

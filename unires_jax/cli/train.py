"""`unires train --config configs/NAME.py --workdir DIR [--config.key=value ...]`.

Everything after `train` is parsed as absl flags, so ml_collections overrides work as usual:
`--config=configs/x.py:local`, `--config.train.steps=10`, `--config.mesh.fsdp=4`. Multi-host:
`--distributed=auto` on every worker of a TPU slice, or `--coordinator_address=HOST:PORT
--num_processes=N --process_id=I` for an explicit cluster. Also runnable as
`python -m unires_jax.train ...`.

Exit status: 0 when done, 128 + signal number after a preemption (checkpoint saved: rerun the same
command to resume), 1 on a non-finite loss or a checkpoint that cannot be restored, 2 on bad
flags, 75 when peers did not connect. A damaged newest checkpoint is set aside and the previous
intact one used (see unires_jax/train/checkpoint.py).
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import logging
import os
import sys

from absl import flags
from ml_collections import config_flags

_USAGE = (
    "usage: unires train --config=configs/NAME.py[:ARG] --workdir=DIR [--config.KEY=VALUE ...]\n"
    "                    [--distributed=auto | --coordinator_address=HOST:PORT "
    "--num_processes=N --process_id=I]\n"
    "                    [--distributed_timeout=SECONDS] [--export=DIR]"
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model family from a config file (resumes from --workdir)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # Every flag goes to absl (ml_collections' --config.key=value overrides); "+" as the
        # prefix keeps argparse from claiming any "--..." argument.
        prefix_chars="+",
        add_help=False,
    )
    parser.add_argument(
        "flags", nargs="*", help="absl flags (see `unires train --help`)"
    )


def run(args: argparse.Namespace) -> int:
    return main(list(args.flags))


def _define_flags(argv: list[str]) -> flags.FlagValues:
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file(
        "config",
        None,
        "experiment config file (configs/*.py)",
        flag_values=fv,
        lock_config=True,
        # --config.key=value overrides are read from here (default: sys.argv).
        sys_argv=argv,
    )
    flags.DEFINE_string(
        "workdir", None, "checkpoints, metrics and samples go here", flag_values=fv
    )
    flags.DEFINE_enum(
        "distributed",
        "none",
        ["none", "auto"],
        "auto: jax.distributed.initialize() detects the cluster (TPU slices)",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "coordinator_address", None, "HOST:PORT of process 0", flag_values=fv
    )
    flags.DEFINE_integer("num_processes", None, "number of processes", flag_values=fv)
    flags.DEFINE_integer("process_id", None, "this process's index", flag_values=fv)
    flags.DEFINE_integer(
        "distributed_timeout", 300, "seconds to wait for all processes", flag_values=fv
    )
    flags.DEFINE_string(
        "export",
        None,
        "when training has finished, write the EMA model here as an inference checkpoint "
        "(families with an `export` method, e.g. unires: `unires restore --checkpoint DIR`)",
        flag_values=fv,
    )
    return fv


def _config_path(argv: list[str]) -> str | None:
    """The file of `--config=configs/x.py[:arg]` (absolute), or None."""
    for i, arg in enumerate(argv):
        value = None
        if arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        elif arg == "--config" and i + 1 < len(argv):
            value = argv[i + 1]
        if value:
            return os.path.abspath(value.split(":", 1)[0])
    return None


def _expose_configs_package(config_path: str | None) -> None:
    """Lets a config in a folder named `configs/` import its siblings (`from configs import
    common`) from any working directory.

    Only the name `configs` is bound, to that folder; nothing goes on `sys.path`. Putting the
    folder above `configs/` first on `sys.path` (as before) ran any module planted there, e.g. a
    `flax.py` in a shared folder, in place of the installed package. A `configs` package that is
    already imported (e.g. by a notebook) is left alone.
    """
    if config_path is None:
        return
    folder = os.path.dirname(config_path)
    if os.path.basename(folder) != "configs" or "configs" in sys.modules:
        return
    spec = importlib.machinery.ModuleSpec("configs", None, is_package=True)
    spec.submodule_search_locations = [folder]
    sys.modules["configs"] = importlib.util.module_from_spec(spec)


def main(argv: list[str]) -> int:
    """Parses absl-style `argv` (without the program name) and runs the trainer."""
    if any(a in ("-h", "--help", "--helpfull") for a in argv):
        print(__doc__ + "\n" + _USAGE)
        return 0
    _expose_configs_package(_config_path(argv))
    argv = ["unires train"] + list(argv)
    fv = _define_flags(argv)
    try:
        fv(argv)
        if fv.config is None or fv.workdir is None:
            raise flags.Error("--config and --workdir are required")
    except (flags.Error, AttributeError, KeyError) as err:
        # AttributeError/KeyError: an override names a key the locked config does not have.
        message = str(err.args[0]) if err.args else str(err)
        print(f"unires train: error: {message}\n{_USAGE}", file=sys.stderr)
        return 2

    from unires_jax.train import distributed

    try:
        distributed.initialize(
            fv.coordinator_address,
            fv.num_processes,
            fv.process_id,
            auto=fv.distributed == "auto",
            timeout_s=fv.distributed_timeout,
        )
    except ValueError as err:
        print(f"unires train: error: {err}", file=sys.stderr)
        return 2

    from unires_jax.train import task as task_lib
    from unires_jax.train import trainer
    from unires_jax.train.tasks import FAMILIES

    config = fv.config
    family = (
        config.task.family if "task" in config and "family" in config.task else None
    )
    if family not in FAMILIES:
        print(
            f"unires train: error: config.task.family={family!r} is not a known model family; "
            f"known: {sorted(FAMILIES)} (unires_jax/train/tasks/__init__.py)",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(
        logging.WARNING
    )  # orbax logs every file it writes
    task = FAMILIES[family](config)
    export = task_lib.hooks(task).export
    if fv.export and export is None:
        print(
            f"unires train: error: family {family!r} cannot --export", file=sys.stderr
        )
        return 2
    from unires_jax.train.checkpoint import CheckpointError

    try:
        result = trainer.run(config, fv.workdir, task)
    except (trainer.NonFiniteLossError, CheckpointError) as err:
        print(f"unires train: error: {err}", file=sys.stderr)
        return 1
    if result.status == "preempted":
        print(
            f"unires train: preempted at step {result.step}; checkpoint saved in "
            f"{fv.workdir}. Rerun the same command to resume.",
            file=sys.stderr,
        )
        return 128 + int(result.signum or 15)
    if fv.export:
        import jax

        if jax.process_index() == 0:
            export(result.state, fv.export)
            print(f"exported {fv.export}")
    return 0

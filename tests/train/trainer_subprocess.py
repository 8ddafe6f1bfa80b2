"""Runs `unires train` with the toy family registered (FAMILIES is empty until the integrator
adds the real families): `python tests/train/trainer_subprocess.py --config ... --workdir ...`.

Test hooks (environment variables; the library has none):
  UNIRES_TEST_UMASK=0o027     run under this umask.
  UNIRES_TEST_FAULT=KIND:STEP  SIGKILL this process at a chosen point (tests/train/test_train_faults.py):
    batch:N           when the data iterator hands out batch N (1-based; the count survives resumes)
    data_save:N       inside the checkpoint save of step N, before its data-position file is written
                      (the train state is being written; nothing of step N is committed)
    after_manifest:N  after step N's files and manifest are written, before orbax commits the step
"""

import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from trainer_toy_task import LoggedIterator, ToyTask

from unires_jax.cli import train as train_cli
from unires_jax.train import checkpoint
from unires_jax.train.tasks import FAMILIES


def _die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _install_fault(spec: str) -> None:
    kind, _, value = spec.partition(":")
    n = int(value)
    if kind == "batch":
        take = LoggedIterator.__next__

        def next_or_die(self):
            batch = take(self)
            if self.count == n:
                _die()
            return batch

        LoggedIterator.__next__ = next_or_die
    elif kind == "data_save":
        save = checkpoint.DataStateHandler.save

        def save_or_die(self, directory, args):
            # The toy iterator's batch count is the step being saved.
            if json.loads(args.encoded)["count"] == n:
                _die()
            return save(self, directory, args)

        checkpoint.DataStateHandler.save = save_or_die
    elif kind == "after_manifest":
        write = checkpoint.write_manifest

        def write_then_die(folder, step):
            out = write(folder, step)
            if step == n:
                _die()
            return out

        checkpoint.write_manifest = write_then_die
    else:
        raise ValueError(f"UNIRES_TEST_FAULT={spec!r}: unknown kind {kind!r}")


if __name__ == "__main__":
    if os.environ.get("UNIRES_TEST_UMASK"):
        os.umask(int(os.environ["UNIRES_TEST_UMASK"], 8))
    if os.environ.get("UNIRES_TEST_FAULT"):
        _install_fault(os.environ["UNIRES_TEST_FAULT"])
    FAMILIES["toy"] = ToyTask.from_config
    sys.exit(train_cli.main(sys.argv[1:]))

"""Runs `unires train` with the toy family registered (FAMILIES is empty until the integrator
adds the real families): `python tests/train/trainer_subprocess.py --config ... --workdir ...`."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from trainer_toy_task import ToyTask

from unires_jax.cli import train as train_cli
from unires_jax.train.tasks import FAMILIES

if __name__ == "__main__":
    FAMILIES["toy"] = ToyTask.from_config
    sys.exit(train_cli.main(sys.argv[1:]))

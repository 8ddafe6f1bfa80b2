"""Config file for subprocess tests: `--config tests/train/trainer_toy_config.py`."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from trainer_toy_task import toy_config


def get_config(arg: str = ""):
    del arg
    return toy_config()

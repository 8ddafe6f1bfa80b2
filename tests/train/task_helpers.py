"""Helpers shared by the Task tests: a config file's `get_config`, and synthetic batches."""

import importlib.util
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]


def config_file(name, arg=None):
    """`get_config(arg)` of configs/<name>.py."""
    sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location(name, ROOT / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def synthetic_batches(batch: int, size: int):
    """An endless iterator of {"hq", "lq", "task_id"} with get/set_state (noisy flat images)."""

    class Batches:
        def __init__(self):
            self.i = 0

        def __next__(self):
            rng = np.random.default_rng(self.i)
            self.i += 1
            hq = rng.uniform(0.2, 0.8, (batch, 1, 1, 3)) * np.ones((1, size, size, 1))
            lq = np.clip(hq + rng.normal(0, 0.1, hq.shape), 0, 1)
            return {
                "hq": hq.astype(np.float32),
                "lq": lq.astype(np.float32),
                "task_id": np.zeros(batch, np.int32),
            }

        def get_state(self):
            return {"i": self.i}

        def set_state(self, state):
            self.i = state["i"]

    return Batches()

"""Model families the trainer can run, by the name used in `config.task.family`.

Each value builds a Task (`unires_jax/train/task.py`) from the full config:
`FAMILIES[name](config) -> Task`. One explicit entry per family; no string imports.
"""

from __future__ import annotations

from collections.abc import Callable

import ml_collections

from unires_jax.train.task import Task
from unires_jax.train.tasks.anyir import AnyIRTask
from unires_jax.train.tasks.residual import ResidualTask
from unires_jax.train.tasks.unires import UniResTask

FAMILIES: dict[str, Callable[[ml_collections.ConfigDict], Task]] = {
    "unires": UniResTask,
    "residual": ResidualTask,
    "anyir": AnyIRTask,
}

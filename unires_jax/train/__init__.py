"""One trainer for every model family: Task protocol, sharded jit / pmap steps, checkpoints.

Entry points: `unires train ...` (unires_jax/cli/train.py), `python -m unires_jax.train ...`, or
`unires_jax.train.run(config, workdir, task, train_iter)` from Python.
"""

from unires_jax.train.task import DataIterator, Task
from unires_jax.train.trainer import NonFiniteLossError, RunResult, run

__all__ = ["DataIterator", "NonFiniteLossError", "RunResult", "Task", "run"]

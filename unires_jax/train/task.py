"""The Task protocol: what a model family gives the one trainer.

Required (three methods):

- `init(rngs: nnx.Rngs) -> nnx.Module`: builds the model with random weights. It runs under
  `jax.eval_shape` (for shapes and shardings) and under `jax.jit` (to create the weights directly
  sharded), so it must not read files; load pretrained weights in `load_pretrained`. Build the
  trained layers to compute in `config.precision.compute_dtype`: the trainer casts the weights
  to it, but a flax layer promotes its inputs and weights to its own `dtype`.
- `loss_fn(model, batch, rng) -> (loss, aux)`: the mean loss over `batch` (a dict of arrays with a
  leading batch axis) and a dict of scalar metrics (batch means). `rng` is a raw PRNG key for the
  step. It never calls collectives: the trainer reduces across devices.
- `eval(model, batch) -> dict[str, jax.Array]`: scalar metrics (batch means) on a held-out batch,
  computed with the EMA weights.

Optional attributes, each with the default used when absent:

- `frozen: tuple[str, ...] = ()`: "/"-separated sub-module paths that are not trained (e.g.
  ("vae", "text_encoder") for UniRes): no gradients, optimiser state or EMA.
- `load_pretrained(model) -> None = None`: called once on a fresh run (not on resume) with the
  sharded, randomly initialised model; assigns pretrained values to its variables.
- `sample_images(model, rng) -> [N, H, W, C] in [0, 1] = None`: images for the periodic PNG grid
  (diffusion families), computed with the EMA weights.
- `make_train_iterator(config, process_index, process_count) -> DataIterator = None` and
  `make_eval_iterator(...)`: data factories used by the CLI; each process's iterator yields its
  own `global_batch / process_count` examples per step.
- `export(state, dst) -> None = None`: writes the trained model of a trainer state
  (`RunResult.state`) as a checkpoint in the one format (`unires_jax/convert/checkpoint.py`)
  that `unires_jax.restore.load` reads (`unires train --export DIR`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np
from flax import nnx

Batch = dict[str, np.ndarray]


@runtime_checkable
class Task(Protocol):
    """A model family: how to build it, its training loss and its evaluation metrics."""

    def init(self, rngs: nnx.Rngs) -> nnx.Module: ...

    def loss_fn(
        self, model: nnx.Module, batch: dict[str, jax.Array], rng: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array]]: ...

    def eval(
        self, model: nnx.Module, batch: dict[str, jax.Array]
    ) -> dict[str, jax.Array]: ...


@runtime_checkable
class DataIterator(Protocol):
    """An iterator of per-process batches whose position can be saved and restored.

    grain's `DatasetIterator` and `DataLoaderIterator` satisfy it. `get_state()` must return a
    JSON-serialisable value or bytes, and describe the position after the last returned batch.
    """

    def __next__(self) -> Batch: ...

    def get_state(self) -> Any: ...

    def set_state(self, state: Any) -> None: ...


IteratorFactory = Callable[[Any, int, int], DataIterator]


@dataclasses.dataclass(frozen=True)
class TaskHooks:
    """The optional parts of a Task, resolved once (see the module docstring)."""

    frozen: tuple[str, ...]
    load_pretrained: Callable[[nnx.Module], None] | None
    sample_images: Callable[[nnx.Module, jax.Array], jax.Array] | None
    make_train_iterator: IteratorFactory | None
    make_eval_iterator: IteratorFactory | None
    export: Callable[[dict, Any], None] | None


def hooks(task: Any) -> TaskHooks:
    """Checks that `task` implements the protocol and resolves its optional hooks.

    Raises:
      TypeError: naming the missing method(s) or a malformed `frozen`.
    """
    missing = [
        m for m in ("init", "loss_fn", "eval") if not callable(getattr(task, m, None))
    ]
    if missing:
        raise TypeError(
            f"{type(task).__name__} is not a Task: missing {missing} "
            "(see the protocol in unires_jax/train/task.py)"
        )
    frozen = getattr(task, "frozen", ())
    if isinstance(frozen, str) or not all(isinstance(f, str) for f in frozen):
        raise TypeError(
            f"{type(task).__name__}.frozen must be a tuple of sub-module paths, got {frozen!r}"
        )
    return TaskHooks(
        frozen=tuple(frozen),
        load_pretrained=getattr(task, "load_pretrained", None),
        sample_images=getattr(task, "sample_images", None),
        make_train_iterator=getattr(task, "make_train_iterator", None),
        make_eval_iterator=getattr(task, "make_eval_iterator", None),
        export=getattr(task, "export", None),
    )


def take(iterator: Iterator[Batch] | DataIterator) -> Batch:
    """Next batch, with a readable error when a finite iterator runs out."""
    try:
        return next(iterator)
    except StopIteration:
        raise RuntimeError(
            "the training data iterator ran out of batches; make it repeat (e.g. grain "
            "MapDataset.repeat()) or lower config.train.steps"
        ) from None

"""Preemption-safe checkpoints: orbax CheckpointManager plus the data iterator's position.

Layout under `directory`: one folder per step, holding `state/` (the train state pytree, saved
sharded by orbax) and `data/process_<i>-of-<n>.json` (each process's iterator state). Saves are
asynchronous; keep-last-k plus the best by a metric. `PreemptionWatcher` turns SIGTERM / SIGINT
into a flag that the training loop polls, so the loop can save and exit between steps.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import math
import signal
import threading
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from orbax.checkpoint._src.metadata import array_metadata_store
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

if TYPE_CHECKING:
    from typing import Self  # Python >= 3.11; annotations are not evaluated at run time

_log = logging.getLogger(__name__)


def _encode_data_state(state: Any) -> str:
    if isinstance(state, bytes):
        return json.dumps({"__bytes_b64__": base64.b64encode(state).decode("ascii")})
    return json.dumps(state)


def _decode_data_state(text: str) -> Any:
    value = json.loads(text)
    if isinstance(value, dict) and set(value) == {"__bytes_b64__"}:
        return base64.b64decode(value["__bytes_b64__"])
    return value


class DataStateHandler(ocp.CheckpointHandler):
    """Writes each process's iterator state (captured at save time) to its own JSON file."""

    def save(self, directory: epath.Path, args: DataStateSave) -> None:
        name = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
        (directory / name).write_text(args.encoded)

    def restore(
        self, directory: epath.Path, args: DataStateRestore | None = None
    ) -> Any:
        name = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
        path = directory / name
        if not path.exists():
            found = sorted(p.name for p in directory.iterdir())
            raise FileNotFoundError(
                f"{path} is missing (found {found}): the checkpoint was written by a different "
                "number of processes; the data position cannot be restored per process. Resume "
                "with the same process count, or start a new workdir from these weights."
            )
        return _decode_data_state(path.read_text())

    def metadata(self, directory: epath.Path) -> None:
        return None


@ocp.args.register_with_handler(DataStateHandler, for_save=True)
@dataclasses.dataclass
class DataStateSave(ocp.args.CheckpointArgs):
    encoded: str


@ocp.args.register_with_handler(DataStateHandler, for_restore=True)
@dataclasses.dataclass
class DataStateRestore(ocp.args.CheckpointArgs):
    pass


# Replica-parallel saving splits a replicated array's write across its replicas; each split is a
# compiled slice per shape, which costs seconds for the many small arrays of a train state and
# only pays off for large ones.
_MIN_REPLICA_PARALLEL_BYTES = 16 << 20


def _state_handler() -> ocp.PyTreeCheckpointHandler:
    arrays = ocp.type_handlers.ArrayHandler(
        min_slice_bytes_for_replica_parallel=_MIN_REPLICA_PARALLEL_BYTES,
        array_metadata_store=array_metadata_store.Store(),
    )
    registry = ocp.type_handlers.create_type_handler_registry(
        (jax.Array, arrays),
        (np.ndarray, ocp.type_handlers.NumpyHandler()),
        (int, ocp.type_handlers.ScalarHandler()),
        (float, ocp.type_handlers.ScalarHandler()),
        (np.number, ocp.type_handlers.ScalarHandler()),
    )
    return ocp.PyTreeCheckpointHandler(type_handler_registry=registry)


class Checkpointer:
    """Saves and restores (train state, data iterator state) pairs.

    Args:
      directory: where step folders go (created if absent).
      keep: number of most recent checkpoints kept.
      keep_best: also keep this many best checkpoints by `best_metric` (0: none).
      best_metric: key of the metrics dict passed to `save` used to rank checkpoints.
      best_mode: "min" or "max".
      async_save: write in a background thread (the call returns after device-to-host copies).
    """

    def __init__(
        self,
        directory: str | epath.Path,
        *,
        keep: int = 3,
        keep_best: int = 1,
        best_metric: str = "loss",
        best_mode: str = "min",
        async_save: bool = True,
    ):
        if best_mode not in ("min", "max"):
            raise ValueError(
                f"config.checkpoint.best_mode={best_mode!r}: use 'min' or 'max'"
            )
        self.directory = epath.Path(directory)
        policies = [pp.LatestN(n=max(int(keep), 1))]
        if keep_best > 0:
            policies.append(
                pp.BestN(
                    get_metric_fn=lambda m: float(m[best_metric]),
                    # BestN keeps the *last* n after sorting; descending order keeps the minima.
                    reverse=best_mode == "min",
                    n=int(keep_best),
                    keep_checkpoints_without_metrics=False,
                )
            )
        options = ocp.CheckpointManagerOptions(
            enable_async_checkpointing=async_save,
            preservation_policy=pp.AnyPreservationPolicy(policies),
            create=True,
        )
        self._best_metric = best_metric
        registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
        state_handler = _state_handler()
        registry.add("state", ocp.args.PyTreeSave, state_handler)
        registry.add("state", ocp.args.PyTreeRestore, state_handler)
        registry.add("data", DataStateSave, DataStateHandler())
        registry.add("data", DataStateRestore, DataStateHandler())
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, handler_registry=registry
        )

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(
        self, step: int, state: Any, data_state: Any, metrics: dict | None = None
    ) -> None:
        """Starts saving `state` (a pytree of global arrays) and `data_state` at `step`.

        `metrics` ranks checkpoints for keep-best; only its finite `best_metric` entry is used.
        """
        ranked = None
        if metrics and self._best_metric in metrics:
            value = float(metrics[self._best_metric])
            ranked = {self._best_metric: value} if math.isfinite(value) else None
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeSave(state),
                data=DataStateSave(_encode_data_state(data_state)),
            ),
            metrics=ranked,
            force=True,
        )

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, Any]:
        """Restores (state, data_state) at `step` onto the shardings in `abstract_state`.

        Args:
          step: a step from `latest_step()` / `all_steps()`.
          abstract_state: pytree of `jax.ShapeDtypeStruct`s with `.sharding` set: the layout
            to restore into (it may use a different mesh than the one that saved).
        """
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(
                    abstract_state,
                    restore_args=ocp.checkpoint_utils.construct_restore_args(
                        abstract_state
                    ),
                ),
                data=DataStateRestore(),
            ),
        )
        return restored["state"], restored["data"]

    def wait(self) -> None:
        """Blocks until pending asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


class PreemptionWatcher:
    """Context manager that records SIGTERM / SIGINT instead of dying mid-step.

    The first signal sets `requested` (the loop then saves and exits); a second SIGINT raises
    KeyboardInterrupt at once. Previous handlers are restored on exit. Outside the main thread
    (where Python cannot install handlers) it only supports `request()`.
    """

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def request(self, signum: int = signal.SIGTERM) -> None:
        self.signum = signum

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        _log.warning(
            "received %s: saving a checkpoint after this step",
            signal.Signals(signum).name,
        )
        self.signum = signum

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

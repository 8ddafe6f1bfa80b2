"""Preemption-safe checkpoints: orbax CheckpointManager plus the data iterator's position.

Layout under `directory`: one folder per step, holding `state/` (the train state pytree, saved
sharded by orbax), `data/process_<i>-of-<n>.json` (each process's iterator state) and
`unires_manifest.json` (size and SHA-256 of every file of the step). Saves are asynchronous;
keep-last-k plus the best by a metric. `PreemptionWatcher` turns SIGTERM / SIGINT into a flag
that the training loop polls, so the loop can save and exit between steps.

Integrity: process 0 writes the manifest after all processes have written the step and before
orbax commits it (renames `<step>.orbax-checkpoint-tmp` to `<step>`), so every committed step
has one; it carries a hash of its own contents. `Checkpointer.newest_intact_step` checks the
newest step against its manifest, moves a damaged step aside to `<step>.damaged-<reason>`
(orbax no longer sees it; nothing is deleted) and tries the previous one. Steps older than every
step with a manifest were written before manifests existed: they are used with a warning that
they cannot be verified.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import math
import os
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from orbax.checkpoint._src.metadata import array_metadata_store
from orbax.checkpoint._src.path import atomicity_types
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

if TYPE_CHECKING:
    from typing import Self  # Python >= 3.11; annotations are not evaluated at run time

_log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint could not be restored; the message names the folder and what to do."""


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
            raise CheckpointError(
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


MANIFEST = "unires_manifest.json"
_MANIFEST_FORMAT = "unires-train-step"
# orbax rewrites these at the step's root when it commits, after the manifest is written: they are
# checked for being present and readable, not hashed.
_COMMIT_FILES = ("_CHECKPOINT_METADATA", "commit_success.txt")
_CHUNK = 8 << 20


@dataclasses.dataclass(frozen=True)
class Damage:
    """Why a step folder does not match its manifest: `kind` is "manifest" (missing or
    damaged), "missing", "truncated" or "changed"; `detail` is a sentence naming the file."""

    kind: str
    detail: str


def _relative_files(folder: epath.Path) -> list[str]:
    return sorted(
        (root / name).relative_to(folder).as_posix()
        for root, _, names in folder.walk()
        for name in names
    )


def _digest(path: epath.Path) -> tuple[int, str]:
    h, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _manifest_hash(body: dict) -> str:
    fields = {k: v for k, v in body.items() if k != "manifest_sha256"}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def write_manifest(folder: epath.Path, step: int) -> None:
    """Writes `folder/unires_manifest.json`: size and SHA-256 of every file of the step.

    Written to a temporary name and renamed, so a reader sees the whole manifest or none.
    """
    files = {}
    for name in _relative_files(folder):
        if name in _COMMIT_FILES or name in (MANIFEST, f".{MANIFEST}.tmp"):
            continue
        size, sha = _digest(folder / name)
        files[name] = {"size": size, "sha256": sha}
    body = {"format": _MANIFEST_FORMAT, "version": 1, "step": int(step), "files": files}
    body["manifest_sha256"] = _manifest_hash(body)
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    tmp.replace(folder / MANIFEST)


def check_step(folder: epath.Path) -> Damage | None:
    """Compares a step folder with its manifest; None when every listed file matches."""
    path = folder / MANIFEST
    if not path.exists():
        return Damage(
            "manifest",
            f"{MANIFEST} is missing: the save did not finish, or the file was removed",
        )
    try:
        body = json.loads(path.read_text())
        files = dict(body["files"])
        intact = body["manifest_sha256"] == _manifest_hash(body)
    except (ValueError, KeyError, TypeError):  # UnicodeDecodeError is a ValueError
        intact = False
    if not intact:
        return Damage(
            "manifest", f"{MANIFEST} is damaged (it does not match its own hash)"
        )
    for name in _COMMIT_FILES:
        if not (folder / name).exists():
            return Damage("missing", f"{name} is missing")
    try:
        json.loads((folder / "_CHECKPOINT_METADATA").read_text())
    except ValueError:
        return Damage("changed", "_CHECKPOINT_METADATA is not readable JSON")
    # Sizes first (cheap), then contents.
    for name, want in sorted(files.items()):
        if not (folder / name).exists():
            return Damage("missing", f"{name} is missing")
        size = (folder / name).stat().length
        if size != want["size"]:
            kind = "truncated" if size < want["size"] else "changed"
            return Damage(
                kind, f"{name} is {kind}: {size} bytes, {want['size']} were written"
            )
    for name, want in sorted(files.items()):
        _, sha = _digest(folder / name)
        if sha != want["sha256"]:
            return Damage(
                "changed",
                f"{name} has changed since it was written (SHA-256 {sha[:16]}..., the "
                f"manifest says {want['sha256'][:16]}...)",
            )
    return None


def _from_process_0(value: int | None) -> int | None:
    """Process 0's value (None travels as -1) on every process."""
    from jax.experimental import multihost_utils

    got = int(
        multihost_utils.broadcast_one_to_all(np.int32(-1 if value is None else value))
    )
    return None if got < 0 else got


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
        if "://" not in os.fspath(directory):
            directory = os.path.abspath(directory)  # orbax needs absolute local paths
        self.directory = epath.Path(directory)
        self._async = async_save
        self._saving: int | None = None  # the step whose save is in flight
        self._verified: set[int] = set()
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
            # Always the async checkpointer: its post-finalization callback (process 0, all
            # processes' files written, not yet committed) writes the manifest. A synchronous
            # save waits right after starting.
            enable_async_checkpointing=True,
            async_options=ocp.AsyncOptions(
                post_finalization_callback=self._write_manifest
            ),
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
        """The newest complete checkpoint's step, or None (unchecked: see newest_intact_step)."""
        return self._manager.latest_step()

    def step_dir(self, step: int) -> epath.Path:
        return self.directory / str(step)

    def newest_intact_step(
        self, warn: Callable[[str], None] = _log.warning
    ) -> int | None:
        """The newest step whose files match its manifest, or None; damaged ones are set aside.

        Process 0 checks the steps from the newest down: a damaged step folder is renamed to
        `<step>.damaged-<reason>` (orbax no longer lists it, so it is never retried; nothing is
        deleted), and the previous step is tried. Every process gets process 0's answer.

        Args:
          warn: called with one readable line per skipped or unverifiable step, and when no
            checkpoint is intact (the caller then starts from scratch).
        """
        step = self._check_steps(warn) if jax.process_index() == 0 else None
        if jax.process_count() > 1:
            step = _from_process_0(step)  # also a barrier: process 0's renames are done
            self._manager.reload()
        return step

    def is_verified(self, step: int) -> bool:
        """Whether newest_intact_step checked `step` against its manifest (process 0 only)."""
        return step in self._verified

    def _check_steps(self, warn: Callable[[str], None]) -> int | None:
        steps = sorted(self._manager.all_steps(), reverse=True)
        listed = [s for s in steps if (self.step_dir(s) / MANIFEST).exists()]
        oldest_listed = min(listed, default=None)
        skipped = []
        try:
            for step in steps:
                folder = self.step_dir(step)
                if oldest_listed is None or step < oldest_listed:
                    warn(
                        f"checkpoint step {step} ({folder}) has no {MANIFEST}: it was written "
                        "before manifests existed, so its files cannot be verified; resuming "
                        "from it"
                    )
                    return step
                damage = check_step(folder)
                if damage is None:
                    self._verified.add(step)
                    return step
                aside = self._set_aside(step, damage.kind)
                skipped.append(step)
                warn(
                    f"checkpoint step {step} is damaged and was skipped: {folder}: "
                    f"{damage.detail}. The folder was moved to {aside} (kept for inspection; "
                    "delete it when done); trying the previous checkpoint"
                )
            if skipped:
                warn(
                    f"no intact checkpoint in {self.directory} (damaged steps {skipped} were "
                    "set aside): training starts from scratch at step 0"
                )
            return None
        finally:
            if skipped:
                self._manager.reload()

    def _set_aside(self, step: int, kind: str) -> epath.Path:
        target = self.directory / f"{step}.damaged-{kind}"
        n = 2
        while target.exists():
            target = self.directory / f"{step}.damaged-{kind}-{n}"
            n += 1
        self.step_dir(step).rename(target)
        return target

    def _write_manifest(self) -> None:
        """orbax's post-finalization callback: the step is written, not yet committed."""
        step = self._saving
        tmp = self.directory / f"{step}{atomicity_types.TMP_DIR_SUFFIX}"
        # Object stores (no renames) write the step in place.
        folder = tmp if tmp.exists() else self.step_dir(step)
        if step is None or not folder.exists():
            raise FileNotFoundError(
                f"{folder}: the checkpoint of step {step} is not where orbax writes it, so "
                f"its {MANIFEST} cannot be written (unires_jax/train/checkpoint.py)"
            )
        write_manifest(folder, step)

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
        self._manager.wait_until_finished()  # the previous save's callback reads self._saving
        self._saving = step
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeSave(state),
                data=DataStateSave(_encode_data_state(data_state)),
            ),
            metrics=ranked,
            force=True,
        )
        if not self._async:
            self._manager.wait_until_finished()

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, Any]:
        """Restores (state, data_state) at `step` onto the shardings in `abstract_state`.

        Args:
          step: a step from `latest_step()` / `all_steps()`.
          abstract_state: pytree of `jax.ShapeDtypeStruct`s with `.sharding` set: the layout
            to restore into (it may use a different mesh than the one that saved).
        """
        try:
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
        except CheckpointError:
            raise
        except Exception as err:  # orbax and tensorstore raise many types; all end here
            folder = self.step_dir(step)
            why = (
                "Its files match its manifest: did the config (model or optimizer) change since "
                "it was written? Use that config, or a new --workdir."
                if self.is_verified(step)
                else f"If its files are damaged, move it aside (e.g. to {folder}.damaged) and "
                "rerun to resume from the previous checkpoint."
            )
            raise CheckpointError(
                f"{folder}: restoring checkpoint step {step} failed ({str(err)[:500]}). {why}"
            ) from err
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

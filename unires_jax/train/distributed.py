"""Multi-host start-up: `jax.distributed.initialize` from flags or the TPU environment.

Call `initialize` before anything touches a JAX device. A missing peer would otherwise make JAX's
coordination client abort the process after its timeout with a C++ stack trace; a watchdog thread
turns that into a readable message and exit status `EXIT_PEER_TIMEOUT` shortly before.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import jax
import numpy as np

EXIT_PEER_TIMEOUT = 75  # EX_TEMPFAIL: a peer did not show up; retrying may succeed.


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    auto: bool = False,
    timeout_s: int = 300,
    local_device_ids: list[int] | None = None,
) -> None:
    """Connects this process to the others of a multi-host job (no-op for a single process).

    Args:
      coordinator_address: "host:port" of process 0's coordinator; with num_processes and
        process_id for an explicit cluster (e.g. two processes on 127.0.0.1).
      num_processes, process_id: cluster size and this process's index.
      auto: let JAX detect the cluster (TPU VM pod slices, SLURM, ...): the way to start on every
        worker of a TPU slice (`run_tpu.sh` passes --distributed=auto).
      timeout_s: how long to wait for all processes to connect.
      local_device_ids: restrict this process to these local devices.

    Raises:
      ValueError: on an incomplete set of flags.
    The process exits with status EXIT_PEER_TIMEOUT and a readable message when peers do not
    connect within `timeout_s`.
    """
    explicit = (coordinator_address, num_processes, process_id)
    if not auto and all(v is None for v in explicit):
        return
    if not auto and any(v is None for v in explicit):
        raise ValueError(
            "multi-host flags: give all of --coordinator_address, --num_processes and "
            f"--process_id (got {explicit}), or --distributed=auto on a TPU slice"
        )
    # Cross-process collectives on CPU devices go through gloo (no effect on TPU/GPU devices).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    who = (
        "auto-detected cluster"
        if auto
        else f"process {process_id} of {num_processes}, coordinator {coordinator_address}"
    )
    done = threading.Event()
    watchdog = threading.Thread(
        target=_watchdog, args=(done, timeout_s, who), daemon=True
    )
    watchdog.start()
    try:
        kwargs = {
            "coordinator_address": coordinator_address,
            "num_processes": num_processes,
            "process_id": process_id,
            "local_device_ids": local_device_ids,
            # Longer than the watchdog, so the readable message wins over JAX's abort.
            "initialization_timeout": int(timeout_s) + 60,
        }
        jax.distributed.initialize(**{k: v for k, v in kwargs.items() if v is not None})
    except Exception as err:
        raise RuntimeError(f"jax.distributed.initialize failed ({who}): {err}") from err
    finally:
        done.set()


def _watchdog(done: threading.Event, timeout_s: float, who: str) -> None:
    if done.wait(timeout_s):
        return
    sys.stderr.write(
        f"\nunires train: multi-host start-up timed out after {timeout_s:.0f} s ({who}).\n"
        "Not every process connected to the coordinator. Check that all processes were started "
        "with the same --coordinator_address and --num_processes and distinct --process_id, "
        "that process 0 is running, and that the port is reachable (see "
        "unires_jax/train/distributed.py).\n"
    )
    sys.stderr.flush()
    time.sleep(0.1)
    os._exit(EXIT_PEER_TIMEOUT)


def any_process(flag: bool) -> bool:
    """True on every process if `flag` is True on any (e.g. a preemption signal seen by one)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    flags = multihost_utils.process_allgather(np.asarray([int(bool(flag))], np.int32))
    return bool(np.asarray(flags).max())

"""The one trainer for every model family: `run(config, workdir, task, train_iter)`.

It owns the mesh, abstract state, compiled step, orbax checkpoints, metrics, the NaN check and
preemption handling; a family only supplies a Task (`train/task.py`). A restart with the same
workdir resumes from the newest checkpoint: same parameters, EMA, optimiser state, RNG and data
position, so the continued run is bit-identical to an uninterrupted one on the same devices.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import jax
import ml_collections
import numpy as np
import tqdm

from unires_jax.train import checkpoint as ckpt_lib
from unires_jax.train import distributed, engine, sharding
from unires_jax.train import metrics as metrics_lib
from unires_jax.train import pmap as pmap_lib
from unires_jax.train import task as task_lib

_log = logging.getLogger(__name__)

# curves.png is redrawn at checkpoints at most this often (and always at the end of a run).
_PLOT_EVERY_S = 600.0


class NonFiniteLossError(FloatingPointError):
    """Raised when a step's loss or gradient norm is NaN or Inf; names the step."""


@dataclasses.dataclass(frozen=True)
class RunResult:
    """How a run ended.

    Attributes:
      step: the last completed step.
      status: "completed" or "preempted" (a signal arrived; a checkpoint was saved).
      signum: the signal number when preempted.
      metrics: the last logged scalars.
      state: the final train state as saved in checkpoints (a dict of global arrays: step,
        params, ema, opt_state, rng, frozen, rest), or None when nothing was trained.
    """

    step: int
    status: str
    signum: int | None = None
    metrics: dict = dataclasses.field(default_factory=dict)
    state: dict | None = None


def make_engine(config: ml_collections.ConfigDict, setup: engine.Setup):
    """The jit engine on the configured mesh, or the pmap engine."""
    if config.train.parallelism == "jit":
        m = config.mesh
        return engine.JitEngine(setup, sharding.make_mesh(m.data, m.fsdp, m.tensor))
    if config.train.parallelism == "pmap":
        return pmap_lib.PmapEngine(setup)
    raise ValueError(
        f"config.train.parallelism={config.train.parallelism!r}: use 'jit' or 'pmap'"
    )


class _Interval:
    """Host-side accumulation of per-step metrics between two log points."""

    def __init__(self):
        self.reset(time.perf_counter())

    def reset(self, now: float) -> None:
        self.start, self.steps, self.sums, self.last = now, 0, {}, {}

    def add(self, values: dict[str, float]) -> None:
        self.steps += 1
        self.last = values
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v

    def means(self) -> dict[str, float]:
        out = {
            k: v / self.steps for k, v in self.sums.items() if k not in ("lr", "finite")
        }
        out["lr"] = self.last.get("lr", float("nan"))
        return out


def run(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    task: task_lib.Task,
    train_iter: task_lib.DataIterator | None = None,
    eval_iter: task_lib.DataIterator | None = None,
) -> RunResult:
    """Trains `task` for config.train.steps updates, resuming from workdir if possible.

    Args:
      config: a config from `configs/common.py:base_config()` plus the family's fields.
      workdir: checkpoints, metrics and samples go here; a rerun resumes from it.
      task: the model family (see `unires_jax/train/task.py`).
      train_iter: this process's iterator of [global_batch / process_count, ...] numpy batches
        with get_state/set_state; default: `task.make_train_iterator(config, index, count)`.
      eval_iter: optional iterator of eval batches (same shape rule); default:
        `task.make_eval_iterator(...)` when the Task has it and config.train.eval_every > 0.

    Returns:
      A RunResult; "preempted" after SIGTERM/SIGINT (rerun the same command to resume).

    Raises:
      NonFiniteLossError: the loss or gradient norm became NaN/Inf; the message names the step,
        the last good checkpoint (which is kept) and what to change before rerunning.
      checkpoint.CheckpointError: the newest intact checkpoint could not be restored.
    """
    workdir = os.fspath(workdir)
    hooks = task_lib.hooks(task)
    pi, pc = jax.process_index(), jax.process_count()
    if train_iter is None:
        if hooks.make_train_iterator is None:
            raise ValueError(
                f"{type(task).__name__} has no make_train_iterator; pass train_iter to "
                "unires_jax.train.trainer.run"
            )
        train_iter = hooks.make_train_iterator(config, pi, pc)
    if (
        eval_iter is None
        and hooks.make_eval_iterator is not None
        and config.train.eval_every
    ):
        eval_iter = hooks.make_eval_iterator(config, pi, pc)

    setup = engine.make_setup(config, task, hooks)
    eng = make_engine(config, setup)
    total = int(config.train.steps)
    engine.check_batch_size(
        int(config.train.batch_size), eng.batch_shards, setup.grad_accum_steps, pc
    )
    c = config.checkpoint
    ckpt = ckpt_lib.Checkpointer(
        c.directory or os.path.join(workdir, "checkpoints"),
        keep=c.keep,
        keep_best=c.keep_best,
        best_metric=c.best_metric,
        best_mode=c.best_mode,
        async_save=c.async_save,
    )
    writer = metrics_lib.MetricWriter(workdir, enabled=pi == 0)
    try:
        return _train(config, setup, eng, ckpt, writer, train_iter, eval_iter, total)
    finally:
        ckpt.close()
        writer.plot()
        writer.close()


def _train(config, setup, eng, ckpt, writer, train_iter, eval_iter, total) -> RunResult:
    def warn(line: str) -> None:
        _log.warning(line)
        writer.text(line)

    # Walks back past damaged checkpoints (set aside, so a rerun never retries them).
    start = ckpt.newest_intact_step(warn)
    if start is None:
        state, start = eng.init(), 0
        writer.text(f"fresh start: {total} steps, batch {config.train.batch_size}")
    else:
        tree, data_state = ckpt.restore(start, eng.checkpoint_target())
        state = eng.from_checkpoint(tree)
        train_iter.set_state(data_state)
        checked = " (files match its manifest)" if ckpt.is_verified(start) else ""
        writer.text(f"resumed from step {start}{checked}")
    if start >= total:
        return RunResult(step=start, status="completed")

    local_batch = task_lib.take(train_iter)
    _check_local_batch(local_batch, int(config.train.batch_size))
    batch = eng.put_batch(local_batch)
    eng.compile(batch)
    if eng.step_memory is not None:
        line, over = metrics_lib.memory_report(
            eng.step_memory, metrics_lib.device_memory_limit(jax.local_devices()[0])
        )
        writer.text(line)
        if over:
            # XLA may still run it (rematerialising, or failing at the first allocation).
            _log.warning(line)
    peak = float(config.log.peak_flops_per_device) or metrics_lib.peak_flops_per_device(
        jax.devices()[0].device_kind
    )
    eval_start = eval_iter.get_state() if eval_iter is not None else None
    examples = int(config.train.batch_size)
    log_cfg = config.log
    interval = _Interval()
    last_saved = start
    last_plot = time.monotonic()
    logged: dict = {}
    pending = None  # (step, device metrics) not yet checked on the host
    bar = tqdm.tqdm(
        total=total,
        initial=start,
        disable=jax.process_index() != 0 or not log_cfg.progress_bar,
    )

    def check(step_and_metrics):
        step_no, dev_metrics = step_and_metrics
        values = eng.host_metrics(dev_metrics)
        if values.get("finite", 1.0) < 1.0:
            ckpt.wait()
            raise NonFiniteLossError(
                _non_finite_message(step_no, values, ckpt, start, last_saved)
            )
        interval.add(values)
        return values

    with ckpt_lib.PreemptionWatcher() as watcher:
        for step_no in range(start + 1, total + 1):
            _maybe_profile(log_cfg, step_no, writer.workdir)
            state, dev_metrics = eng.step(state, batch)
            if pending is not None:
                check(pending)
            pending = (step_no, dev_metrics)
            preempted = distributed.any_process(watcher.requested)
            save_now = (
                step_no % config.checkpoint.every == 0 or step_no == total or preempted
            )
            log_now = step_no % log_cfg.every == 0 or step_no == total
            if save_now or log_now:
                check(pending)
                pending = None
            if log_now:
                logged = _log_interval(
                    writer, interval, step_no, examples, eng, peak, bar
                )
            if (
                eval_iter is not None
                and config.train.eval_every
                and (step_no % config.train.eval_every == 0)
            ):
                logged.update(
                    _evaluate(
                        config, eng, state, eval_iter, eval_start, writer, step_no
                    )
                )
            if (
                setup.hooks.sample_images is not None
                and log_cfg.sample_every
                and (step_no % log_cfg.sample_every == 0)
            ):
                rng = jax.random.fold_in(jax.random.PRNGKey(config.train.seed), step_no)
                writer.images(step_no, "samples", eng.sample(state, rng))
            if save_now:
                best = logged.get(config.checkpoint.best_metric)
                metrics = (
                    {config.checkpoint.best_metric: best} if best is not None else None
                )
                ckpt.save(
                    step_no, eng.checkpoint_tree(state), train_iter.get_state(), metrics
                )
                last_saved = step_no
                if time.monotonic() - last_plot > _PLOT_EVERY_S:
                    writer.plot()
                    last_plot = time.monotonic()
            bar.update(1)
            if preempted:
                ckpt.wait()
                _maybe_profile(log_cfg, step_no + 1, writer.workdir, stop_only=True)
                signum = watcher.signum
                writer.text(
                    f"preempted at step {step_no} (signal {signum}); checkpoint saved"
                )
                bar.close()
                return RunResult(
                    step_no, "preempted", signum, logged, eng.checkpoint_tree(state)
                )
            if step_no < total:
                batch = eng.put_batch(task_lib.take(train_iter))
    bar.close()
    ckpt.wait()
    _maybe_profile(log_cfg, total + 1, writer.workdir, stop_only=True)
    return RunResult(total, "completed", None, logged, eng.checkpoint_tree(state))


def _non_finite_message(step_no, values, ckpt, start, last_saved) -> str:
    """Says where training can go on from without sending the user round in a loop: resuming is
    exact, so an unchanged rerun reaches the same non-finite step again."""
    if not last_saved:
        where = f"No checkpoint was saved yet in {ckpt.directory}; a rerun starts from step 0"
    else:
        where = f"The last good checkpoint is step {last_saved} in {ckpt.directory}"
        if last_saved == start:
            intact = (
                ", whose files match its manifest" if ckpt.is_verified(start) else ""
            )
            where += f" (this run resumed from step {start}{intact})"
    return (
        f"non-finite loss or gradient at step {step_no} (loss={values['loss']}, "
        f"grad_norm={values['grad_norm']}): training stopped and that update was not applied. "
        f"{where}. Resuming is exact (same state, same batches), so rerunning the same command "
        f"will repeat the non-finite value at step {step_no}. Check the data of that step, or "
        "rerun with a lower --config.optim.lr / --config.optim.clip_norm (they apply from the "
        f"resumed step), or move the newest step folders of {ckpt.directory} aside to resume "
        "from an earlier step."
    )


def _check_local_batch(batch: dict, global_batch: int) -> None:
    sizes = {k: np.shape(v)[0] for k, v in batch.items()}
    want = global_batch // jax.process_count()
    if any(s != want for s in sizes.values()):
        raise ValueError(
            f"the data iterator yields batches with leading sizes {sizes}; this process expects "
            f"config.train.batch_size / process_count = {want}"
        )


def _log_interval(writer, interval, step_no, examples, eng, peak, bar) -> dict:
    now = time.perf_counter()
    elapsed = now - interval.start
    values = interval.means()
    step_time = elapsed / max(interval.steps, 1)
    values["step_time_s"] = step_time
    values["examples_per_s"] = examples / step_time
    util = metrics_lib.mfu(eng.flops_per_step, step_time, peak)
    if util is not None:
        values["mfu"] = util
    writer.scalars(step_no, values)
    bar.set_postfix(loss=f"{values['loss']:.4g}", refresh=False)
    interval.reset(now)
    return values


def _evaluate(config, eng, state, eval_iter, eval_start, writer, step_no) -> dict:
    eval_iter.set_state(eval_start)
    totals: dict = {}
    for _ in range(int(config.train.eval_steps)):
        out = eng.host_metrics(
            eng.evaluate(state, eng.put_batch(task_lib.take(eval_iter)))
        )
        for k, v in out.items():
            totals[k] = totals.get(k, 0.0) + v
    values = {
        f"eval/{k}": v / max(int(config.train.eval_steps), 1) for k, v in totals.items()
    }
    writer.scalars(step_no, values)
    return values


def _maybe_profile(
    log_cfg, step_no: int, workdir: str, stop_only: bool = False
) -> None:
    """Traces steps [profile_start, profile_start + profile_steps) into workdir/profile."""
    first, count = int(log_cfg.profile_start), int(log_cfg.profile_steps)
    if count <= 0 or jax.process_index() != 0:
        return
    if step_no == first and not stop_only:
        jax.profiler.start_trace(os.path.join(workdir, "profile"))
    elif step_no == first + count or (stop_only and first < step_no < first + count):
        jax.effects_barrier()
        jax.profiler.stop_trace()

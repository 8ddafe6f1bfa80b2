"""A tiny conv-net regression Task and grain data for the trainer tests.

The network uses the same logical axis annotations as the real models
(unires_jax/models/partitioning.py), has a frozen sub-module ("encoder") like UniRes' VAE/text
encoder, and a 3-channel output conv that cannot be split over fsdp=2/4 (replication fallback).
"""

from __future__ import annotations

import json
import os
import signal
import time

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from configs import common
from unires_jax.models import partitioning as P

SIZE = 8  # image side


def _conv(cin, cout, rngs):
    return nnx.Conv(
        cin,
        cout,
        (3, 3),
        rngs=rngs,
        kernel_init=P.partitioned(nnx.initializers.lecun_normal(), P.CONV_KERNEL),
        bias_init=P.partitioned(nnx.initializers.zeros_init(), P.CONV_BIAS),
    )


class ToyNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.encoder = _conv(3, 8, rngs)
        self.conv1 = _conv(8, 16, rngs)
        self.norm = nnx.GroupNorm(
            16,
            num_groups=4,
            rngs=rngs,
            scale_init=P.partitioned(nnx.initializers.ones_init(), P.NORM),
            bias_init=P.partitioned(nnx.initializers.zeros_init(), P.NORM),
        )
        self.dense = nnx.Linear(
            16,
            16,
            rngs=rngs,
            kernel_init=P.partitioned(nnx.initializers.lecun_normal(), P.DENSE_KERNEL),
            bias_init=P.partitioned(nnx.initializers.zeros_init(), P.DENSE_BIAS),
        )
        self.conv2 = _conv(16, 3, rngs)

    def __call__(self, x):
        h = self.encoder(x)
        h = nnx.silu(self.norm(self.conv1(h)))
        h = h + self.dense(h.mean(axis=(1, 2)))[:, None, None, :]
        return x + self.conv2(h)


def abstract_toy_net() -> ToyNet:
    """Shapes only; eager sharding off because the annotations name logical, not mesh, axes."""
    with nnx.use_eager_sharding(False):
        return nnx.eval_shape(lambda: ToyNet(nnx.Rngs(0)))


class ToyTask:
    """Restores lq -> hq with an MSE loss; optional input noise drawn from the step rng."""

    frozen = ("encoder",)

    def __init__(self, noise_std=0.0, nan_at=0, log_to=None, slow_after=0):
        self.noise_std = noise_std
        self.nan_at = nan_at
        self.log_to = log_to
        self.slow_after = slow_after

    @classmethod
    def from_config(cls, config):
        """The `FAMILIES` entry for subprocess tests: options come from config.task."""
        t = config.task
        return cls(t.noise_std, t.nan_at, t.log_to or None, t.slow_after)

    def init(self, rngs):
        return ToyNet(rngs)

    def loss_fn(self, model, batch, rng):
        lq = batch["lq"]
        if self.noise_std:
            lq = lq + self.noise_std * jax.random.normal(rng, lq.shape, lq.dtype)
        out = model(lq)
        err = jnp.square(out.astype(jnp.float32) - batch["hq"].astype(jnp.float32))
        loss = err.mean()
        return loss, {
            "mae": jnp.abs(out - batch["hq"]).astype(jnp.float32).mean(),
            "compute_is_bf16": jnp.float32(out.dtype == jnp.bfloat16),
        }

    def eval(self, model, batch):
        out = model(batch["lq"])
        return {"mse": jnp.square(out - batch["hq"]).mean()}

    def sample_images(self, model, rng):
        lq = jax.random.uniform(rng, (4, SIZE, SIZE, 3))
        return jnp.clip(model(lq), 0, 1)

    def make_train_iterator(self, config, process_index, process_count):
        it = make_iterator(
            config.train.batch_size,
            process_index,
            process_count,
            seed=config.train.seed,
            nan_at=self.nan_at,
            log_to=self.log_to,
        )
        it.slow_after = self.slow_after
        return it

    def make_eval_iterator(self, config, process_index, process_count):
        return make_iterator(
            config.train.batch_size, process_index, process_count, seed=123
        )


class StatefulNet(ToyNet):
    """ToyNet plus BatchNorm statistics and a Dropout holding its own RNG stream: non-parameter
    variables that the trainer carries in TrainState.rest."""

    def __init__(self, rngs: nnx.Rngs):
        super().__init__(rngs)
        self.bn = nnx.BatchNorm(3, use_running_average=False, momentum=0.5, rngs=rngs)
        self.drop = nnx.Dropout(0.2, rngs=rngs)

    def __call__(self, x):
        return super().__call__(self.drop(self.bn(x)))


class StatefulTask(ToyTask):
    def init(self, rngs):
        return StatefulNet(rngs)


def _example(index: int) -> dict:
    rng = np.random.default_rng(int(index))
    hq = rng.uniform(0.0, 1.0, (SIZE, SIZE, 3)).astype(np.float32)
    lq = (0.5 * hq + 0.2).astype(np.float32)
    return {"hq": hq, "lq": lq, "index": np.int32(index)}


class LoggedIterator:
    """Wraps a grain iterator: counts batches, can inject NaN at batch `nan_at` (1-based), send
    this process SIGTERM when handing out batch `kill_at`, and append each batch's example
    indices to a JSON-lines file (to compare data order)."""

    def __init__(self, inner, nan_at=0, log_to=None, kill_at=0):
        self.inner, self.nan_at, self.log_to, self.count = inner, nan_at, log_to, 0
        self.kill_at = kill_at
        self.slow_after = 0  # sleep 0.2 s per batch after this many (0: never)

    def __iter__(self):
        return self

    def __next__(self):
        batch = dict(next(self.inner))
        self.count += 1
        if self.slow_after and self.count > self.slow_after:
            time.sleep(0.2)  # gives a test time to send a signal mid-run
        if self.count == self.nan_at:
            batch["lq"] = np.full_like(batch["lq"], np.nan)
        if self.log_to:
            with open(self.log_to, "a") as f:
                f.write(json.dumps([self.count, batch["index"].tolist()]) + "\n")
        if self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return batch

    def get_state(self):
        return {"inner": self.inner.get_state(), "count": self.count}

    def set_state(self, state):
        self.inner.set_state(state["inner"])
        self.count = state["count"]


def make_iterator(
    global_batch,
    process_index=0,
    process_count=1,
    seed=0,
    nan_at=0,
    log_to=None,
    kill_at=0,
):
    """Each process gets its own slice of a shuffled, repeated dataset of 256 examples."""
    ds = grain.MapDataset.range(256).shuffle(seed=seed).repeat()
    ds = ds[process_index::process_count].map(_example)
    ds = ds.batch(global_batch // process_count, drop_remainder=True)
    return LoggedIterator(
        iter(ds.to_iter_dataset()), nan_at=nan_at, log_to=log_to, kill_at=kill_at
    )


def toy_config(**overrides):
    """base_config() with small, fast settings; overrides as {"section.key": value}."""
    c = common.base_config()
    c.task.update(family="toy", noise_std=0.0, nan_at=0, log_to="", slow_after=0)
    c.train.update(steps=5, batch_size=16, seed=0)
    # XLA's CPU backend at -O0 compiles ~10x faster (threefry RNG especially); tiny nets only.
    c.train.compiler_options = {"xla_backend_optimization_level": 0}
    c.optim.update(lr=1e-2, warmup_steps=2, schedule="cosine")
    c.ema.decay = 0.9
    c.checkpoint.update(every=5, keep=2)
    c.log.update(every=1, progress_bar=False)
    for key, value in overrides.items():
        section, name = key.split(".")
        c[section][name] = value
    return c

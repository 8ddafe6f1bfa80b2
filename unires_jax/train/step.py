"""Train state and the pure train / eval step functions shared by the jit and pmap paths.

The step is written for one logical device: under `jax.jit` with shardings XLA partitions it;
under `jax.pmap` (`train/pmap.py`) the same function runs per device with `Collectives` that
average gradients and metrics across devices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from unires_jax.train import optim
from unires_jax.train.task import Task


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training; a pytree.

    Attributes:
      step: [] int32, number of completed optimiser updates.
      params: trainable parameters (float32 master weights), a pure dict.
      ema: exponential moving average of `params`.
      opt_state: optimiser state for `params`.
      rng: [2] uint32 raw PRNG key, split once per step.
      frozen: frozen parameters (Task.frozen / config.optim.frozen), a pure dict.
      rest: non-parameter variables (normalisation statistics, RNG counters), a pure dict.
    """

    step: jax.Array
    params: dict
    ema: dict
    opt_state: Any
    rng: jax.Array
    frozen: dict
    rest: dict


@dataclasses.dataclass(frozen=True)
class Collectives:
    """Cross-device operations used by the step; identities under jit (XLA inserts them).

    Attributes:
      mean: averages a pytree over devices.
      device_rng: makes a per-device key from the step key.
    """

    mean: Callable[[Any], Any] = lambda tree: tree
    device_rng: Callable[[jax.Array], jax.Array] = lambda key: key


# The jit path's collectives: XLA inserts the reductions itself.
NO_COLLECTIVES = Collectives()


@dataclasses.dataclass(frozen=True)
class Model:
    """How a Task's model splits into (frozen, trainable, rest) states and merges back."""

    graphdef: nnx.GraphDef
    frozen_filter: Any

    def merge(self, frozen: dict, params: dict, rest: dict) -> nnx.Module:
        return nnx.merge(self.graphdef, frozen, params, rest)

    def split(self, model: nnx.Module) -> tuple[dict, dict, dict]:
        _, frozen, params, rest = nnx.split(model, self.frozen_filter, nnx.Param, ...)
        return (
            nnx.to_pure_dict(frozen),
            nnx.to_pure_dict(params),
            nnx.to_pure_dict(rest),
        )


def abstract_model(task: Task, frozen_prefixes: tuple[str, ...], seed: int):
    """Shapes of the task's model without allocating it.

    Returns:
      (model, states): a `Model` and the abstract `nnx.State`s (frozen, params, rest) whose
      variables still carry their logical-axis metadata.
    """
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: task.init(nnx.Rngs(seed)))
    optim.check_frozen_prefixes(nnx.state(abstract, nnx.Param), frozen_prefixes)
    filt = optim.frozen_filter(frozen_prefixes)
    graphdef, frozen, params, rest = nnx.split(abstract, filt, nnx.Param, ...)
    return Model(graphdef, filt), (frozen, params, rest)


def make_init_fn(task: Task, model: Model, tx: optax.GradientTransformation, seed: int):
    """Returns `init() -> TrainState`, meant to run under `jax.jit` with output shardings."""

    def init() -> TrainState:
        key = jax.random.PRNGKey(seed)
        init_key, train_key = jax.random.split(key)
        with nnx.use_eager_sharding(False):
            module = task.init(nnx.Rngs(init_key))
        frozen, params, rest = model.split(module)
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            ema=jax.tree.map(jnp.copy, params),
            opt_state=tx.init(params),
            rng=train_key,
            frozen=frozen,
            rest=rest,
        )

    return init


def _split_microbatches(batch: dict, k: int) -> dict:
    """[B, ...] -> [k, B/k, ...]; microbatch j holds examples j, j+k, j+2k, ...

    Strided (not contiguous) microbatches keep each device's examples in every microbatch, so the
    split is the same under jit (global batch) and pmap (per-device batch).
    """

    def split(x):
        if x.shape[0] % k:
            raise ValueError(
                f"batch leading dimension {x.shape[0]} is not divisible by "
                f"config.train.grad_accum_steps={k}"
            )
        return jnp.swapaxes(x.reshape((x.shape[0] // k, k) + x.shape[1:]), 0, 1)

    return jax.tree.map(split, batch)


def make_train_step(
    task: Task,
    model: Model,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    *,
    grad_accum_steps: int,
    compute_dtype: jnp.dtype,
    ema_decay: float,
    ema_every: int = 1,
    collectives: Collectives = NO_COLLECTIVES,
):
    """Builds `step(state, batch) -> (state, metrics)`.

    One call is one optimiser update on the global batch (`grad_accum_steps` microbatches whose
    gradients are averaged). Parameters are float32; the forward/backward pass runs in
    `compute_dtype` (parameters and floating batch arrays cast inside the differentiated function,
    so gradients arrive in float32). An update whose loss or gradient norm is not finite is not
    applied (`metrics["finite"] == 0`), so the state stays at the last good values.

    Args:
      task, model: the Task and its split description.
      tx, schedule: from `optim.make_optimizer`.
      grad_accum_steps: microbatches per update (>= 1).
      compute_dtype: e.g. jnp.bfloat16 or jnp.float32.
      ema_decay: EMA decay per EMA update.
      ema_every: the EMA is updated after every `ema_every`-th optimiser update (steps
        ema_every, 2 ema_every, ...) and carried unchanged otherwise (ema-pytorch's
        `update_every`, 10 in FoundIR's trainer).
      collectives: cross-device reductions (pmap) or identities (jit).

    Returns:
      The step function. metrics: loss, grad_norm, param_norm, lr, finite, plus the Task's aux.
    """

    def loss_on(params, frozen, rest, batch, rng):
        cast = lambda t: optim.cast_floating(t, compute_dtype)
        module = model.merge(cast(frozen), cast(params), rest)
        loss, aux = task.loss_fn(module, cast(batch), rng)
        _, _, new_rest = model.split(module)
        aux = {k: jnp.asarray(v, jnp.float32) for k, v in aux.items()}
        return jnp.asarray(loss, jnp.float32), (aux, new_rest)

    grad_fn = jax.value_and_grad(loss_on, has_aux=True)

    def step(state: TrainState, batch: dict):
        rng, step_key = jax.random.split(state.rng)
        step_key = collectives.device_rng(step_key)
        if grad_accum_steps == 1:
            (loss, (aux, rest)), grads = grad_fn(
                state.params,
                state.frozen,
                state.rest,
                batch,
                jax.random.fold_in(step_key, 0),
            )
        else:
            grads, loss, aux, rest = _accumulate(
                grad_fn, loss_on, state, batch, step_key, grad_accum_steps
            )
        grads, loss, aux = collectives.mean((grads, loss, aux))
        rest = _mean_floating(rest, collectives)

        grad_norm = optax.global_norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = optim.ema_update(state.ema, params, ema_decay)
        if ema_every > 1:
            due = (state.step + 1) % ema_every == 0
            ema = jax.tree.map(lambda n, o: jnp.where(due, n, o), ema, state.ema)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree.map(
            lambda n, o: _select(finite, n, o), new, old
        )
        new_state = TrainState(
            step=state.step + 1,
            params=keep(params, state.params),
            ema=keep(ema, state.ema),
            opt_state=keep(opt_state, state.opt_state),
            rng=rng,
            frozen=state.frozen,
            rest=keep(rest, state.rest),
        )
        metrics = {
            "loss": loss,
            "grad_norm": grad_norm,
            "param_norm": optax.global_norm(new_state.params),
            "lr": jnp.asarray(schedule(state.step), jnp.float32),
            "finite": finite.astype(jnp.float32),
            **aux,
        }
        return new_state, metrics

    return step


def _accumulate(grad_fn, loss_on, state: TrainState, batch: dict, step_key, k: int):
    """Mean gradients, loss and aux over k strided microbatches (a scan: one copy in the HLO)."""
    micro = _split_microbatches(batch, k)
    aux_shape = jax.eval_shape(
        lambda: loss_on(
            state.params,
            state.frozen,
            state.rest,
            jax.tree.map(lambda x: x[0], micro),
            step_key,
        )[1][0]
    )

    def body(carry, xs):
        grads, loss, aux, rest = carry
        index, mb = xs
        (l, (a, rest)), g = grad_fn(
            state.params, state.frozen, rest, mb, jax.random.fold_in(step_key, index)
        )
        add = lambda x, y: jax.tree.map(jnp.add, x, y)
        return (add(grads, g), loss + l, add(aux, a), rest), None

    zeros = (
        jax.tree.map(jnp.zeros_like, state.params),
        jnp.zeros((), jnp.float32),
        jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), aux_shape),
        state.rest,
    )
    (grads, loss, aux, rest), _ = jax.lax.scan(body, zeros, (jnp.arange(k), micro))
    grads, loss, aux = jax.tree.map(lambda x: x / k, (grads, loss, aux))
    return grads, loss, aux, rest


def _select(pred: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
    """new where pred else old, for numeric arrays; PRNG key arrays always take `new`."""
    if jax.dtypes.issubdtype(new.dtype, jax.dtypes.prng_key):
        return new
    return jnp.where(pred, new, old)


def _mean_floating(tree, collectives: Collectives):
    """Averages floating leaves across devices (batch statistics); counters stay per device."""
    leaves, treedef = jax.tree.flatten(tree)
    floating = [
        i for i, x in enumerate(leaves) if jnp.issubdtype(x.dtype, jnp.floating)
    ]
    averaged = collectives.mean([leaves[i] for i in floating])
    for i, x in zip(floating, averaged):
        leaves[i] = x
    return jax.tree.unflatten(treedef, leaves)


def make_eval_step(
    task: Task,
    model: Model,
    compute_dtype: jnp.dtype,
    collectives: Collectives = NO_COLLECTIVES,
):
    """Builds `eval_step(state, batch) -> metrics` on the EMA weights."""

    def eval_step(state: TrainState, batch: dict):
        cast = lambda t: optim.cast_floating(t, compute_dtype)
        module = model.merge(cast(state.frozen), cast(state.ema), state.rest)
        metrics = task.eval(module, cast(batch))
        return collectives.mean(
            {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
        )

    return eval_step


def make_sample_fn(sample_images: Callable, model: Model):
    """Builds `sample(state, rng) -> [N, H, W, C]` on the EMA weights (float32)."""

    def sample(state: TrainState, rng: jax.Array):
        module = model.merge(state.frozen, state.ema, state.rest)
        return jnp.asarray(sample_images(module, rng), jnp.float32)

    return sample

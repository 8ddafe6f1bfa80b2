"""Execution engines: how the pure step functions are placed on devices.

`Setup` holds what both paths share (the model split, optimiser, pure step functions, abstract
state). `JitEngine` is the default path: a mesh, parameters and optimiser state sharded by the
logical rule table, `jax.jit` with in/out shardings and donation, compiled ahead of time.
`train/pmap.py` has the `pmap` fallback with the same interface.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh

from unires_jax.train import metrics as metrics_lib
from unires_jax.train import optim, sharding, step
from unires_jax.train.step import NO_COLLECTIVES, Collectives, TrainState
from unires_jax.train.task import Task, TaskHooks

# Keys of TrainState written to checkpoints (all of them: frozen weights included, so a resume
# does not depend on pretrained files staying the same).
CHECKPOINT_KEYS = ("step", "params", "ema", "opt_state", "rng", "frozen", "rest")


@dataclasses.dataclass(frozen=True)
class Setup:
    """Everything about a run that does not depend on how devices are used."""

    task: Task
    hooks: TaskHooks
    model: step.Model
    abstract_states: (
        tuple  # (frozen, params, rest) abstract nnx.States with logical names
    )
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    init_fn: Callable[[], TrainState]
    grad_accum_steps: int
    compute_dtype: Any
    ema_decay: float
    ema_every: int  # optimiser updates between EMA updates
    compiler_options: dict  # passed to every `.compile()` (XLA debug options)

    def train_step(self, collectives: Collectives = NO_COLLECTIVES):
        return step.make_train_step(
            self.task,
            self.model,
            self.tx,
            self.schedule,
            grad_accum_steps=self.grad_accum_steps,
            compute_dtype=self.compute_dtype,
            ema_decay=self.ema_decay,
            ema_every=self.ema_every,
            collectives=collectives,
        )

    def eval_step(self, collectives: Collectives = NO_COLLECTIVES):
        return step.make_eval_step(
            self.task, self.model, self.compute_dtype, collectives
        )

    def abstract_train_state(self) -> TrainState:
        return jax.eval_shape(self.init_fn)


def make_setup(
    config: ml_collections.ConfigDict, task: Task, hooks: TaskHooks
) -> Setup:
    """Builds the device-independent part of a run from the config and the Task."""
    frozen = tuple(hooks.frozen) + tuple(config.optim.frozen)
    seed = int(config.train.seed)
    model, abstract_states = step.abstract_model(task, frozen, seed)
    tx, schedule = optim.make_optimizer(config.optim, int(config.train.steps))
    try:
        compute_dtype = jnp.dtype(config.precision.compute_dtype)
    except TypeError:
        raise ValueError(
            f"config.precision.compute_dtype={config.precision.compute_dtype!r}: use "
            "'float32' or 'bfloat16'"
        ) from None
    if config.train.grad_accum_steps < 1:
        raise ValueError("config.train.grad_accum_steps must be >= 1")
    if int(config.ema.every) < 1:
        raise ValueError(f"config.ema.every={config.ema.every}: must be >= 1")
    return Setup(
        task=task,
        hooks=hooks,
        model=model,
        abstract_states=abstract_states,
        tx=tx,
        schedule=schedule,
        init_fn=step.make_init_fn(task, model, tx, seed),
        grad_accum_steps=int(config.train.grad_accum_steps),
        compute_dtype=compute_dtype,
        ema_decay=float(config.ema.decay),
        ema_every=int(config.ema.every),
        compiler_options=dict(config.train.compiler_options),
    )


def state_to_tree(state: TrainState) -> dict:
    return {k: getattr(state, k) for k in CHECKPOINT_KEYS}


def tree_to_state(tree: dict) -> TrainState:
    return TrainState(**{k: tree[k] for k in CHECKPOINT_KEYS})


def check_batch_size(
    global_batch: int, shards: int, grad_accum: int, processes: int
) -> None:
    """Raises a readable error when the global batch cannot be split evenly."""
    need = shards * grad_accum
    if global_batch % need or global_batch % processes:
        raise ValueError(
            f"config.train.batch_size={global_batch} must be divisible by the batch shards "
            f"({shards}) x config.train.grad_accum_steps ({grad_accum}) = {need} and by the "
            f"process count ({processes})"
        )


def _place(value, sharding: jax.sharding.Sharding) -> jax.Array:
    """Puts a value that `load_pretrained` may have replaced into its sharding.

    Untouched global arrays are resharded (a no-op when already placed); host values (numpy, or
    arrays on one local device) are sliced per device, so every process only uploads its shards
    (every process must hold the same pretrained values).
    """
    if isinstance(value, jax.Array) and (
        value.sharding == sharding
        or jax.process_count() == 1
        or not value.is_fully_addressable
    ):
        return jax.device_put(value, sharding)
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


class JitEngine:
    """The sharded `jax.jit` path on a ("data", "fsdp", "tensor") mesh."""

    def __init__(self, setup: Setup, mesh: Mesh):
        self.setup = setup
        self.mesh = mesh
        rep = sharding.replicated(mesh)
        frozen_a, params_a, _ = setup.abstract_states
        param_sh = sharding.state_shardings(params_a, mesh, what="params")
        abstract = setup.abstract_train_state()
        self.state_shardings = TrainState(
            step=rep,
            params=param_sh,
            ema=param_sh,
            opt_state=optim.opt_state_shardings(
                setup.tx, abstract.opt_state, param_sh, rep
            ),
            rng=rep,
            frozen=sharding.state_shardings(frozen_a, mesh, what="frozen params"),
            rest=jax.tree.map(lambda _: rep, abstract.rest),
        )
        self._abstract = abstract
        self._batch_sharding = sharding.batch_sharding(mesh)
        self._compiled = None
        self._eval = None
        self._sample = None
        self.flops_per_step: float | None = None
        self.step_memory: metrics_lib.StepMemory | None = None

    @property
    def batch_shards(self) -> int:
        return sharding.batch_parallelism(self.mesh)

    def init(self) -> TrainState:
        """Creates the initial state directly in its shardings."""
        init = jax.jit(self.setup.init_fn, out_shardings=self.state_shardings)
        state = init.lower().compile(self.setup.compiler_options)()
        if self.setup.hooks.load_pretrained is not None:
            state = self._load_pretrained(state)
        return state

    def _load_pretrained(self, state: TrainState) -> TrainState:
        module = self.setup.model.merge(state.frozen, state.params, state.rest)
        self.setup.hooks.load_pretrained(module)
        frozen, params, rest = self.setup.model.split(module)
        sh = self.state_shardings
        params = jax.tree.map(_place, params, sh.params)
        return state.replace(
            params=params,
            ema=jax.tree.map(jnp.copy, params),
            frozen=jax.tree.map(_place, frozen, sh.frozen),
            rest=jax.tree.map(_place, rest, sh.rest),
        )

    def put_batch(self, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """This process's slice [B/processes, ...] -> global arrays [B, ...] split over the mesh."""
        n = jax.process_count()
        return {
            k: jax.make_array_from_process_local_data(
                self._batch_sharding, v, (v.shape[0] * n,) + v.shape[1:]
            )
            for k, v in local_batch.items()
        }

    def compile(self, batch: dict[str, jax.Array]) -> None:
        """Lowers and compiles the train step for these batch shapes (ahead of the first step)."""
        abstract_state = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            self._abstract,
            self.state_shardings,
        )
        batch_sh = {k: self._batch_sharding for k in batch}
        jitted = jax.jit(
            self.setup.train_step(),
            in_shardings=(self.state_shardings, batch_sh),
            out_shardings=(self.state_shardings, sharding.replicated(self.mesh)),
            donate_argnums=(0,),
        )
        abstract_batch = {
            k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=self._batch_sharding)
            for k, v in batch.items()
        }
        self._compiled = jitted.lower(abstract_state, abstract_batch).compile(
            self.setup.compiler_options
        )
        flops = metrics_lib.compiled_flops(self._compiled)
        self.flops_per_step = flops * self.setup.grad_accum_steps if flops else None
        self.step_memory = metrics_lib.compiled_memory(self._compiled)

    def step(self, state: TrainState, batch: dict[str, jax.Array]):
        return self._compiled(state, batch)

    def evaluate(
        self, state: TrainState, batch: dict[str, jax.Array]
    ) -> dict[str, jax.Array]:
        if self._eval is None:
            fn = jax.jit(
                self.setup.eval_step(), out_shardings=sharding.replicated(self.mesh)
            )
            self._eval = fn.lower(state, batch).compile(self.setup.compiler_options)
        return self._eval(state, batch)

    def sample(self, state: TrainState, rng: jax.Array) -> np.ndarray:
        if self._sample is None:
            fn = step.make_sample_fn(self.setup.hooks.sample_images, self.setup.model)
            fn = jax.jit(fn, out_shardings=sharding.replicated(self.mesh))
            self._sample = fn.lower(state, rng).compile(self.setup.compiler_options)
        return np.asarray(self._sample(state, rng))

    def checkpoint_tree(self, state: TrainState) -> dict:
        return state_to_tree(state)

    def checkpoint_target(self) -> dict:
        """Abstract arrays with this mesh's shardings: where a restore puts the state."""
        return state_to_tree(
            jax.tree.map(
                lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                self._abstract,
                self.state_shardings,
            )
        )

    def from_checkpoint(self, tree: dict) -> TrainState:
        return tree_to_state(tree)

    def host_metrics(self, metrics: dict[str, jax.Array]) -> dict[str, float]:
        return {k: float(v) for k, v in jax.device_get(metrics).items()}

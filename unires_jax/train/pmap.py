"""The `pmap` fallback path (config.train.parallelism = "pmap").

Wraps the same pure train step as the jit path: every local device holds a full replica of the
state and 1/n of this process's batch; gradients, loss and metrics are averaged over all devices
of all processes with `pmean`. This is the only file that names an `axis_name`.

Randomness: each device folds its index into the step key, so the noise a Task draws differs per
device (as it must), and therefore differs from the jit path's; deterministic losses give the
same updates on both paths.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from unires_jax.train import metrics as metrics_lib
from unires_jax.train import sharding, step
from unires_jax.train.engine import Setup, state_to_tree, tree_to_state
from unires_jax.train.step import Collectives, TrainState

AXIS = "devices"


def collectives() -> Collectives:
    """Mean over all pmapped devices and a per-device PRNG key."""
    return Collectives(
        mean=lambda tree: jax.lax.pmean(tree, AXIS),
        device_rng=lambda key: jax.random.fold_in(key, jax.lax.axis_index(AXIS)),
    )


class PmapEngine:
    """Replicated state on the local devices, `jax.pmap` over them. Same interface as JitEngine."""

    def __init__(self, setup: Setup):
        self.setup = setup
        self.devices = jax.local_devices()
        self._local_mesh = Mesh(np.array(self.devices), (AXIS,))
        self._stacked = NamedSharding(self._local_mesh, PartitionSpec(AXIS))
        # Checkpoints hold fully replicated global arrays, the same tree the jit path saves.
        self._global = sharding.replicated(sharding.make_mesh(devices=jax.devices()))
        self._abstract = setup.abstract_train_state()
        self._compiled = None
        self._eval = None
        self._sample = None
        self.flops_per_step: float | None = None
        self.step_memory: metrics_lib.StepMemory | None = None

    @property
    def batch_shards(self) -> int:
        return jax.device_count()

    def _replicate(self, tree):
        """Single-copy arrays -> [n, ...] arrays with one replica per local device."""
        n = len(self.devices)
        return jax.tree.map(
            lambda x: jax.device_put(
                jnp.broadcast_to(x, (n,) + x.shape), self._stacked
            ),
            tree,
        )

    def init(self) -> TrainState:
        state = (
            jax.jit(self.setup.init_fn).lower().compile(self.setup.compiler_options)()
        )
        if self.setup.hooks.load_pretrained is not None:
            module = self.setup.model.merge(state.frozen, state.params, state.rest)
            self.setup.hooks.load_pretrained(module)
            frozen, params, rest = self.setup.model.split(module)
            state = state.replace(
                params=params,
                ema=jax.tree.map(jnp.copy, params),
                frozen=frozen,
                rest=rest,
            )
        return self._replicate(state)

    def put_batch(self, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """[B_local, ...] -> [n, B_local / n, ...] split over the local devices."""
        n = len(self.devices)
        return {
            k: jax.device_put(
                v.reshape((n, v.shape[0] // n) + v.shape[1:]), self._stacked
            )
            for k, v in local_batch.items()
        }

    def compile(self, batch: dict[str, jax.Array]) -> None:
        n = len(self.devices)
        stacked = lambda a: jax.ShapeDtypeStruct(
            (n,) + a.shape, a.dtype, sharding=self._stacked
        )
        fn = jax.pmap(
            self.setup.train_step(collectives()), axis_name=AXIS, donate_argnums=(0,)
        )
        abstract_batch = {
            k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in batch.items()
        }
        self._compiled = fn.lower(
            jax.tree.map(stacked, self._abstract), abstract_batch
        ).compile(self.setup.compiler_options)
        flops = metrics_lib.compiled_flops(self._compiled)
        self.flops_per_step = flops * self.setup.grad_accum_steps if flops else None
        self.step_memory = metrics_lib.compiled_memory(self._compiled)

    def step(self, state: TrainState, batch: dict[str, jax.Array]):
        state, metrics = self._compiled(state, batch)
        return state, jax.tree.map(lambda m: m[0], metrics)

    def evaluate(
        self, state: TrainState, batch: dict[str, jax.Array]
    ) -> dict[str, jax.Array]:
        if self._eval is None:
            fn = jax.pmap(self.setup.eval_step(collectives()), axis_name=AXIS)
            self._eval = fn.lower(state, batch).compile(self.setup.compiler_options)
        return jax.tree.map(lambda m: m[0], self._eval(state, batch))

    def _unreplicate(self, tree):
        return jax.tree.map(lambda x: x.addressable_shards[0].data[0], tree)

    def sample(self, state: TrainState, rng: jax.Array) -> np.ndarray:
        if self._sample is None:
            fn = step.make_sample_fn(self.setup.hooks.sample_images, self.setup.model)
            local = self._unreplicate(state)
            self._sample = (
                jax.jit(fn).lower(local, rng).compile(self.setup.compiler_options)
            )
        return np.asarray(self._sample(self._unreplicate(state), rng))

    def checkpoint_tree(self, state: TrainState) -> dict:
        """Stacked replicas -> fully replicated global arrays (no host copy)."""

        def to_global(x):
            by_device = {s.device: s.data for s in x.addressable_shards}
            shape = x.shape[1:]
            arrays = [by_device[d].reshape(shape) for d in self._global_devices()]
            return jax.make_array_from_single_device_arrays(shape, self._global, arrays)

        return state_to_tree(jax.tree.map(to_global, state))

    def _global_devices(self):
        return [
            d
            for d in self._global.mesh.devices.flat
            if d.process_index == jax.process_index()
        ]

    def checkpoint_target(self) -> dict:
        return state_to_tree(
            jax.tree.map(
                lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=self._global),
                self._abstract,
            )
        )

    def from_checkpoint(self, tree: dict) -> TrainState:
        """Fully replicated global arrays -> stacked replicas on the local devices."""

        def to_stacked(x):
            by_device = {s.device: s.data for s in x.addressable_shards}
            arrays = [by_device[d][None] for d in self.devices]
            return jax.make_array_from_single_device_arrays(
                (len(self.devices),) + x.shape, self._stacked, arrays
            )

        return tree_to_state(jax.tree.map(to_stacked, tree))

    def host_metrics(self, metrics: dict[str, jax.Array]) -> dict[str, float]:
        return {k: float(v) for k, v in jax.device_get(metrics).items()}

"""Sampling many weight candidates for one image, sharded over every device.

The search evaluates hundreds of weight vectors on one image. This engine runs them with the
`Restorer`'s model and math but organised for throughput:

- Step 0 is shared: every candidate starts from the same noise x_T, so each expert's first
  step (x_1 and the x0 prediction with all weight on that expert) is computed once per
  (image, seed, steps) and cached. The DDIM step is affine in the noise prediction, so a
  candidate's first step (weights summing to one) is the same weighted sum of the cached
  ones: no UNet call.
- Later steps evaluate only the (candidate, expert) pairs with a nonzero weight.
- Candidates are laid out on a 1-D mesh of all devices (axis "candidates") with `shard_map`.
  They are first packed into `shards` virtual shards (whole candidates, balanced by pair
  count: longest first onto the least-loaded shard, at most `pairs_per_device` pairs each, so
  memory is bounded); each call runs one virtual shard per device. Per-shard shapes are
  rounded up to powers of two so few programs are compiled; the padding pairs have weight 0
  and are not counted as UNet evaluations.
- Reproducible across device counts: XLA's float results depend on a call's batch size, so
  the batch shapes depend only on the packing into virtual shards, never on the number of
  devices. Any device count that divides `shards` gives bitwise identical outputs (the
  default, 8 or the device count rounded up to a multiple of 8, covers 1, 2, 4 and 8).
- Decoding (VAE + AdaIN colour fix) is sharded the same way.

The same code runs on CPU, GPU and TPU; on several hosts every process runs it with the same
arguments (inputs are built with `jax.make_array_from_callback`, outputs all-gathered).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from unires_jax.restore.restorer import PreparedImage, Restorer
from unires_jax.search import programs as programs_lib
from unires_jax.search.log import image_hash
from unires_jax.search.programs import AXIS


@dataclasses.dataclass
class SearchImage:
    """One image prepared for the search, with its cached first-step expert predictions."""

    prepared: PreparedImage
    hash: str
    # (seed, steps) -> {expert index: (x_1, x0) after the first step with weight 1 on that
    # expert, each [h, w, c] float32}. The DDIM step is affine in eps, so a weight vector's
    # first step (weights summing to 1) is the same weighted sum of these.
    first_step: dict[tuple[int, int], dict[int, tuple[np.ndarray, np.ndarray]]] = (
        dataclasses.field(default_factory=dict)
    )


@dataclasses.dataclass
class Batch:
    """One call's worth of sampled candidates.

    Attributes:
      indices: `[n]` rows of the weight matrix given to `CandidateSampler.run`.
      latents: `[n, h, w, c]` latents after the last step run.
      x0: `[n, h, w, c]` the x0 prediction of the last step run.
      images: `[n, H, W, 3]` in [0, 1] (decoded `latents` or `x0`, see `run`), or None.
      unet_evaluations: UNet image-evaluations spent on this batch (padding not counted).
    """

    indices: np.ndarray
    latents: np.ndarray
    x0: np.ndarray
    images: np.ndarray | None
    unet_evaluations: int


@dataclasses.dataclass
class _QueuedImages:
    """Decodes queued on the devices: row i of the result is chunks[where[i, 0]][where[i, 1]],
    passed through `finish` (`PreparedImage.finish`: the projection onto an upscaled input)."""

    chunks: list[jax.Array]
    where: np.ndarray  # [n, 2]
    finish: Callable[[np.ndarray], np.ndarray]

    def fetch(self) -> np.ndarray:
        hosts = [_to_host(c) for c in self.chunks]
        if not len(self.where):
            return np.zeros((0,) + hosts[0].shape[1:], np.float32) if hosts else None
        return self.finish(np.stack([hosts[c][r] for c, r in self.where]))


@dataclasses.dataclass
class _Pending:
    """A dispatched call whose results are still on the devices (see `CandidateSampler.run`)."""

    cand: np.ndarray  # [n] weight rows
    slot: np.ndarray  # [n] their slots in xs / x0s
    xs: jax.Array  # [slots, h, w, c] latents
    x0s: jax.Array  # [slots, h, w, c] x0 predictions
    evals: int
    images: _QueuedImages | None = None

    def fetch(self) -> Batch:
        images = None if self.images is None else self.images.fetch()
        return Batch(
            self.cand,
            _to_host(self.xs)[self.slot],
            _to_host(self.x0s)[self.slot],
            images,
            self.evals,
        )


def _bucket(n: int, cap: int) -> int:
    """Per-shard batch size for n items: the smallest of 1, 2, 3, 4, 6, 8, 12, 16, ... (powers of
    two and 1.5 times them) >= n, at most cap but never below n. A run compiles a handful of
    shapes at most, padding wastes at most a third of a call (pure powers of two would waste
    up to half: 5 pairs in 8 slots), and a nearly empty shard (common when few candidates
    spread over the virtual shards) is not padded to a big batch."""
    power = 1 << max(0, n - 1).bit_length()  # the power of two >= n
    size = 3 * power // 4 if power >= 4 and 3 * power // 4 >= n else power
    return max(n, min(cap, size))


def plan_rounds(nnz: np.ndarray, shards: int, capacity: int) -> list[list[list[int]]]:
    """Packs candidates into rounds: rounds[r][s] = candidate indices in shard s of round r.

    Longest-first onto the least-loaded shard, so shards carry nearly equal pair counts and
    each carries at most `capacity` pairs (a candidate with more pairs than `capacity` gets a
    shard to itself).

    Args:
      nnz: `[N]` pairs (nonzero weights) per candidate.
      shards: shards per round.
      capacity: pairs per shard.
    """
    order = np.argsort(-np.asarray(nnz), kind="stable")
    rounds, i = [], 0
    while i < len(order):
        loads = np.zeros(shards, np.int64)
        slots: list[list[int]] = [[] for _ in range(shards)]
        while i < len(order):
            d = int(np.argmin(loads))
            c = int(order[i])
            if loads[d] + nnz[c] > capacity and loads[d] > 0:
                break
            loads[d] += nnz[c]
            slots[d].append(c)
            i += 1
        rounds.append(slots)
    return rounds


class CandidateSampler:
    """Sharded many-candidate sampling and decoding with a Restorer's model.

    Args:
      restorer: the model and settings (steps, eta, tiling, colour fix).
      devices: devices to shard over (default: all).
      pairs_per_device: at most this many (candidate, expert) pairs per device per UNet call
        (default: the restorer's `max_pairs_per_call`).
      decode_per_device: images per device per VAE call.
      shards: virtual shards per packing round, a multiple of the device count (default: the
        device count rounded up to a multiple of 8). Outputs do not depend on the device
        count as long as it divides `shards`; `shards=len(devices)` trades that for fewer,
        fuller calls when candidates are few.
    """

    def __init__(
        self,
        restorer: Restorer,
        *,
        devices: Sequence[jax.Device] | None = None,
        pairs_per_device: int | None = None,
        decode_per_device: int = 1,
        shards: int | None = None,
    ):
        self.restorer = restorer
        self.experts = restorer.experts
        devices = list(jax.devices() if devices is None else devices)
        self.mesh = Mesh(np.array(devices), (AXIS,))
        self.devices = len(devices)
        self.pairs_per_device = int(
            pairs_per_device or restorer.settings.max_pairs_per_call
        )
        self.decode_per_device = int(decode_per_device)
        if self.pairs_per_device < 1 or self.decode_per_device < 1:
            raise ValueError("pairs_per_device and decode_per_device must be >= 1")
        self.shards = int(shards or -(-max(8, self.devices) // 8) * 8)
        if self.shards % self.devices:
            raise ValueError(
                f"shards={self.shards} must be a multiple of the {self.devices} devices"
            )
        parts = restorer.program_parts()
        self._unet_graph, self._vae_graph = parts.unet_graph, parts.vae_graph
        self._static = programs_lib.static_options(parts)
        self._replicated = NamedSharding(self.mesh, P())
        self._sharded = NamedSharding(self.mesh, P(AXIS))
        # Placed on every device once, not per call.
        self._unet_state = _replicate(parts.unet_state, self._replicated)
        self._vae_state = _replicate(parts.vae_state, self._replicated)
        self._context = _replicate(parts.context, self._replicated)
        self._total_experts = int(
            parts.context.shape[0]
        )  # user experts + quality words
        self._schedule = _replicate(parts.schedule, self._replicated)
        self.unet_evaluations = 0  # real (unpadded) UNet image-evaluations, all calls
        self.unet_evaluations_padded = 0  # including padding pairs
        self._programs = programs_lib.programs(self.mesh)

    # --- images ------------------------------------------------------------------------------

    def prepare(self, image: np.ndarray) -> SearchImage:
        """Encodes the image's conditions once (see `Restorer.prepare`)."""
        return SearchImage(self.restorer.prepare(image), image_hash(np.asarray(image)))

    def full_weights(self, weights: np.ndarray) -> np.ndarray:
        """User weights `[N, K]` -> validated float32 `[N, K_total]` (quality words appended)."""
        return self.restorer.weights_matrix(np.asarray(weights, np.float64))

    def cost(
        self,
        weights: np.ndarray,
        *,
        start: int,
        stop: int,
        image: SearchImage | None = None,
        seed: int = 0,
        steps: int | None = None,
    ) -> int:
        """UNet evaluations `run` would spend (first-step predictions already cached are free)."""
        full = self.full_weights(weights)
        nnz = np.count_nonzero(full, axis=1)
        if start == 0:
            active = set(np.flatnonzero(full.any(axis=0)).tolist())
            cached = set()
            if image is not None:
                cached = set(
                    image.first_step.get(
                        (seed, steps or self.restorer.settings.steps), {}
                    )
                )
            return len(active - cached) + int(nnz.sum()) * (stop - 1)
        return int(nnz.sum()) * (stop - start)

    # --- sampling ----------------------------------------------------------------------------

    def _timesteps(self, steps: int):
        ts, prev = self.restorer.timesteps(steps)
        return np.asarray(ts, np.int32), np.asarray(prev, np.int32)

    def _first_step(
        self, image: SearchImage, experts: np.ndarray, *, seed: int, steps: int
    ):
        """The first step of each expert alone, from the shared noise (cached): `[K_total, h,
        w, c]` latents and x0 predictions (zeros for experts not requested)."""
        cache = image.first_step.setdefault((seed, steps), {})
        missing = [int(k) for k in experts if int(k) not in cache]
        if missing:
            one_hot = np.eye(self._total_experts, dtype=np.float32)[missing]
            x_t = np.asarray(self.restorer.initial_noise(image.prepared, seed))
            x = np.broadcast_to(x_t, (len(missing),) + x_t.shape[1:])
            batch = self._sample_full(
                image, one_hot, x=x, start=0, stop=1, steps=steps, seed=seed, first=None
            )
            for j, k in enumerate(missing):
                cache[k] = (batch.latents[j], batch.x0[j])
        shape = (self._total_experts,) + tuple(image.prepared.conditions.shape[1:])
        x1, x0 = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        for k, (a, b) in cache.items():
            x1[k], x0[k] = a, b
        return x1, x0

    def run(
        self,
        image: SearchImage,
        weights: np.ndarray,
        *,
        steps: int | None = None,
        seed: int = 0,
        x: np.ndarray | None = None,
        start: int = 0,
        stop: int | None = None,
        decode: str | None = "latents",
    ) -> Iterator[Batch]:
        """Runs DDIM steps [start, stop) for every weight vector, yielding one Batch per call.

        Args:
          image: from `prepare`.
          weights: `[N, K]` user weights (validated by the restorer: sum 1, max_negative).
          steps: DDIM steps of the full run (default: the restorer's).
          seed: start-noise seed.
          x: `[N, h, w, c]` latents entering step `start` (required when start > 0).
          start, stop: the step range; stop defaults to `steps`.
          decode: "latents" (the finished images), "x0" (the last x0 prediction, for scoring
            unfinished candidates) or None.

        Yields:
          Batches covering every row of `weights` once, in a packing order (see `indices`).
        """
        steps = steps or self.restorer.settings.steps
        stop = steps if stop is None else stop
        if not 0 <= start < stop <= steps:
            raise ValueError(
                f"need 0 <= start < stop <= steps={steps}; got start={start}, stop={stop}"
            )
        if (x is None) != (start == 0):
            raise ValueError(
                "pass x (the latents entering step `start`) exactly when start > 0"
            )
        if decode not in ("latents", "x0", None):
            raise ValueError(f"decode must be 'latents', 'x0' or None, got {decode!r}")
        full = self.full_weights(weights)
        if x is not None and len(x) != len(full):
            raise ValueError(f"x has {len(x)} latents for {len(full)} weight vectors")
        first = None
        if start == 0:
            x1, x0 = self._first_step(
                image, np.flatnonzero(full.any(axis=0)), seed=seed, steps=steps
            )
            first = (self._put(x1, replicated=True), self._put(x0, replicated=True))
        # One call ahead: call i+1 (and its decode) is queued on the devices before call i's
        # results are fetched, so the caller's scoring of batch i overlaps the next call.
        ready = None
        for pending in self._run_full(
            image,
            full,
            x=x,
            start=start,
            stop=stop,
            steps=steps,
            seed=seed,
            first=first,
        ):
            if decode is not None:
                pending.images = self._decode_device(
                    image,
                    pending.xs if decode == "latents" else pending.x0s,
                    pending.slot,
                )
            if ready is not None:
                yield ready.fetch()
            ready = pending
        if ready is not None:
            yield ready.fetch()

    def _sample_full(self, image, full, **kwargs) -> Batch:
        batches = [pending.fetch() for pending in self._run_full(image, full, **kwargs)]
        order = np.argsort(np.concatenate([b.indices for b in batches]))
        return Batch(
            np.arange(len(order)),
            np.concatenate([b.latents for b in batches])[order],
            np.concatenate([b.x0 for b in batches])[order],
            None,
            sum(b.unet_evaluations for b in batches),
        )

    def _run_full(
        self, image, full, *, x, start, stop, steps, seed, first
    ) -> Iterator[_Pending]:
        """Sampling of validated `[N, K_total]` weights; `first` (the cached per-expert first
        step) replaces step 0, else step `start` runs from `x`."""
        ts, prev = self._timesteps(steps)
        ts_d, prev_d = self._put(ts, replicated=True), self._put(prev, replicated=True)
        conditions = self._put(np.asarray(image.prepared.conditions), replicated=True)
        nnz = np.count_nonzero(full, axis=1)
        capacity = max(self.pairs_per_device, int(nnz.max()))
        for virtual in plan_rounds(nnz, self.shards, capacity):
            # One shape for slots and pairs: a shard never holds more candidates than pairs.
            size = _bucket(max(int(nnz[c].sum()) for c in virtual), capacity)
            for g in range(0, self.shards, self.devices):
                slots = virtual[g : g + self.devices]
                if any(slots):
                    yield self._call(
                        full,
                        nnz,
                        slots,
                        size,
                        x,
                        start,
                        stop,
                        seed,
                        first,
                        conditions,
                        ts_d,
                        prev_d,
                    )

    def _call(
        self,
        full,
        nnz,
        slots,
        size,
        x,
        start,
        stop,
        seed,
        first,
        conditions,
        ts_d,
        prev_d,
    ) -> _Pending:
        """One sharded call: device d runs the candidates slots[d] (`size` slots and pairs)."""
        w_slots = np.zeros((self.devices * size, full.shape[1]), np.float32)
        pair_n = np.zeros(self.devices * size, np.int32)
        pair_k = np.zeros(self.devices * size, np.int32)
        pair_w = np.zeros(self.devices * size, np.float32)
        cand, slot = [], []
        for d, cands in enumerate(slots):
            p = d * size
            for j, c in enumerate(cands):
                w_slots[d * size + j] = full[c]
                cand.append(c)
                slot.append(d * size + j)
                for k in np.flatnonzero(full[c]):
                    pair_n[p], pair_k[p], pair_w[p] = j, k, full[c, k]
                    p += 1
            # Padding pairs: weight 0, on the last slot so the indices stay sorted.
            pair_n[p : (d + 1) * size] = size - 1
        cand, slot = np.array(cand, np.int64), np.array(slot, np.int64)
        seed_d = jnp.int32(seed)
        if first is not None:
            xs, x0s = self._programs.mix_first(first[0], first[1], self._put(w_slots))
            begin = 1
        else:
            x_slots = np.zeros((self.devices * size,) + tuple(x.shape[1:]), np.float32)
            x_slots[slot] = np.asarray(x)[cand]
            xs, x0s, begin = self._put(x_slots), None, start
        evals = 0
        if begin < stop:
            xs, x0s = self._programs.advance(
                self._unet_graph,
                self._static,
                (self._schedule, self._unet_state, conditions, self._context),
                (xs, self._put(pair_n), self._put(pair_k), self._put(pair_w)),
                (ts_d, prev_d, jnp.int32(begin), jnp.int32(stop), seed_d),
            )
            evals = int(nnz[cand].sum()) * (stop - begin)
            self.unet_evaluations_padded += self.devices * size * (stop - begin)
        self.unet_evaluations += evals
        self.restorer.unet_evaluations += evals
        return _Pending(cand, slot, xs, x0s, evals)

    def sample(self, image: SearchImage, weights: np.ndarray, **kwargs) -> Batch:
        """`run` gathered into one Batch in the row order of `weights`."""
        batches = list(self.run(image, weights, **kwargs))
        order = np.argsort(np.concatenate([b.indices for b in batches]))

        def cat(name):
            parts = [getattr(b, name) for b in batches]
            return None if parts[0] is None else np.concatenate(parts)[order]

        return Batch(
            np.arange(len(order)),
            cat("latents"),
            cat("x0"),
            cat("images"),
            sum(b.unet_evaluations for b in batches),
        )

    # --- decoding ----------------------------------------------------------------------------

    def decode(self, image: SearchImage, latents: np.ndarray) -> np.ndarray:
        """Latents `[n, h, w, c]` -> images `[n, H, W, 3]` in [0, 1] (colour-fixed as configured)."""
        latents = np.asarray(latents, np.float32)
        if not len(latents):
            p = image.prepared
            return np.zeros((0, p.height, p.width, 3), np.float32)
        # One fixed shape per call (a few rows on each device, row i on device i // rows), so
        # the decode program compiles once however many latents come.
        step = self.devices * self.decode_per_device
        queued = []
        for lo in range(0, len(latents), step):
            part = latents[lo : lo + step]
            padded = np.zeros((step,) + latents.shape[1:], np.float32)
            padded[: len(part)] = part
            queued.append(
                self._decode_device(image, self._put(padded), np.arange(len(part)))
            )
        return np.concatenate([q.fetch() for q in queued])

    def _decode_device(
        self, image: SearchImage, array: jax.Array, slots: np.ndarray
    ) -> _QueuedImages:
        """Queues the decoding of rows `slots` of the sharded `array` (each device decodes the
        rows it holds, `decode_per_device` per call)."""
        prepared = image.prepared
        color_fix = self.restorer.settings.color_fix
        per_shard = array.shape[0] // self.devices
        slots = np.asarray(slots, np.int64)
        device_of = slots // per_shard
        local = [slots[device_of == d] - d * per_shard for d in range(self.devices)]
        position = {d: np.flatnonzero(device_of == d) for d in range(self.devices)}
        m = self.decode_per_device
        calls = -(-max(len(rows) for rows in local) // m)
        lq = self._put(np.asarray(prepared.lq), replicated=True)
        chunks, where = [], np.zeros((len(slots), 2), np.int64)
        for c in range(calls):
            rows = np.zeros(self.devices * m, np.int32)
            for d in range(self.devices):
                part = local[d][c * m : (c + 1) * m]
                # Padding rows repeat a real row of the device (or row 0): decoded, never read.
                rows[d * m : (d + 1) * m] = part[0] if len(part) else 0
                rows[d * m : d * m + len(part)] = part
                where[position[d][c * m : c * m + len(part)]] = np.stack(
                    [np.full(len(part), c), d * m + np.arange(len(part))], axis=1
                )
            chunks.append(
                self._programs.decode(
                    self._vae_graph,
                    self._static,
                    self._vae_state,
                    array,
                    self._put(rows),
                    lq,
                    color_fix=color_fix,
                    height=prepared.height,
                    width=prepared.width,
                )
            )
        return _QueuedImages(chunks, where, prepared.finish)

    # --- placement ---------------------------------------------------------------------------

    def _put(self, array: np.ndarray, *, replicated: bool = False) -> jax.Array:
        sharding = self._replicated if replicated else self._sharded
        array = np.asarray(array)
        return jax.make_array_from_callback(
            array.shape, sharding, lambda index: array[index]
        )


def _replicate(tree, sharding: NamedSharding):
    """Places a pytree of arrays on every device of the mesh (works across hosts)."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(a):
        host = np.asarray(a)
        return jax.make_array_from_callback(
            host.shape, sharding, lambda index: host[index]
        )

    return jax.tree.map(put, tree)


def _to_host(array: jax.Array) -> np.ndarray:
    """A global array as one numpy array on every process."""
    if jax.process_count() == 1:
        return np.asarray(array)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(array, tiled=True))


# --- the sharded programs ---------------------------------------------------------------------

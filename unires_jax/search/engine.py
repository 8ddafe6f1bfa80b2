"""Sampling many weight candidates for one image, sharded over every device.

The search evaluates hundreds of weight vectors on one image. This engine runs them with the
`Restorer`'s model and math but organised for throughput:

- Step 0 is shared: every candidate starts from the same noise x_T, so each expert's first
  prediction eps_k(x_T) is computed once per (image, seed, steps) and cached; every candidate
  batch mixes the cached predictions (sum_k w_k eps_k) instead of calling the UNet.
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
import functools
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from unires_jax.diffusion.ddim import ddim_step, final_alpha_cumprod
from unires_jax.diffusion.schedules import Schedule
from unires_jax.restore.color import adain_color_fix
from unires_jax.restore.restorer import PreparedImage, Restorer
from unires_jax.restore.tiling import tiled_apply
from unires_jax.search.log import image_hash

AXIS = "candidates"


@dataclasses.dataclass(frozen=True)
class _Static:
    """Hashable options of the jitted programs (one compilation per distinct value)."""

    expert_condition: tuple[int, ...]
    latent_tile: int
    latent_overlap: int
    eta: float
    set_alpha_to_one: bool
    scaling: float
    tile: int
    overlap: int


def _restorer_parts(restorer: Restorer):
    """The model pieces a Restorer keeps for its own jitted sampler.

    Read from the Restorer's attributes in this one place (it has no public accessor for
    them); a Restorer built from the same model and settings gives the same pieces.
    """
    options = restorer._sample_options
    codec = restorer._encode_options
    static = _Static(
        expert_condition=tuple(options.expert_condition),
        latent_tile=options.latent_tile,
        latent_overlap=options.latent_overlap,
        eta=options.eta,
        set_alpha_to_one=options.set_alpha_to_one,
        scaling=codec.scaling,
        tile=codec.tile,
        overlap=codec.overlap,
    )
    return (
        restorer._unet_graph,
        restorer._unet_state,
        restorer._vae_graph,
        restorer._vae_state,
        restorer._context,
        restorer._schedule,
        static,
    )


@dataclasses.dataclass
class SearchImage:
    """One image prepared for the search, with its cached first-step expert predictions."""

    prepared: PreparedImage
    hash: str
    # (seed, steps) -> {expert index: eps_k(x_T) [h, w, c] float32}
    first_eps: dict[tuple[int, int], dict[int, np.ndarray]] = dataclasses.field(default_factory=dict)


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


def _bucket(n: int, cap: int) -> int:
    """Smallest power of two >= n, at most cap (and at least n)."""
    return max(n, min(cap, 1 << max(0, n - 1).bit_length()))


def plan_rounds(nnz: np.ndarray, devices: int, capacity: int) -> list[list[list[int]]]:
    """Packs candidates into calls: rounds[r][d] = candidate indices on device d in call r.

    Longest-first onto the least-loaded device, so devices carry nearly equal pair counts and
    each carries at most `capacity` pairs (candidates with more pairs than `capacity` get a
    device to themselves).

    Args:
      nnz: `[N]` pairs (nonzero weights) per candidate.
      devices: number of devices.
      capacity: pairs per device per call.
    """
    order = np.argsort(-np.asarray(nnz), kind="stable")
    rounds, i = [], 0
    while i < len(order):
        loads = np.zeros(devices, np.int64)
        slots: list[list[int]] = [[] for _ in range(devices)]
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
        self.pairs_per_device = int(pairs_per_device or restorer.settings.max_pairs_per_call)
        self.decode_per_device = int(decode_per_device)
        if self.pairs_per_device < 1 or self.decode_per_device < 1:
            raise ValueError("pairs_per_device and decode_per_device must be >= 1")
        self.shards = int(shards or -(-max(8, self.devices) // 8) * 8)
        if self.shards % self.devices:
            raise ValueError(
                f"shards={self.shards} must be a multiple of the {self.devices} devices"
            )
        (self._unet_graph, unet_state, self._vae_graph, vae_state, context, schedule,
         self._static) = _restorer_parts(restorer)
        self._replicated = NamedSharding(self.mesh, P())
        self._sharded = NamedSharding(self.mesh, P(AXIS))
        # Placed on every device once, not per call.
        self._unet_state = _replicate(unet_state, self._replicated)
        self._vae_state = _replicate(vae_state, self._replicated)
        self._context = _replicate(context, self._replicated)
        self._total_experts = int(context.shape[0])  # user experts + quality words
        self._schedule = _replicate(schedule, self._replicated)
        self.unet_evaluations = 0  # real (unpadded) UNet image-evaluations, all calls
        self.unet_evaluations_padded = 0  # including padding pairs
        self._programs = _programs(self.mesh)

    # --- images ------------------------------------------------------------------------------

    def prepare(self, image: np.ndarray) -> SearchImage:
        """Encodes the image's conditions once (see `Restorer.prepare`)."""
        return SearchImage(self.restorer.prepare(image), image_hash(np.asarray(image)))

    def full_weights(self, weights: np.ndarray) -> np.ndarray:
        """User weights `[N, K]` -> validated float32 `[N, K_total]` (quality words appended)."""
        return self.restorer.weights_matrix(np.asarray(weights, np.float64))

    def cost(self, weights: np.ndarray, *, start: int, stop: int, image: SearchImage | None = None,
             seed: int = 0, steps: int | None = None) -> int:
        """UNet evaluations `run` would spend (first-step predictions already cached are free)."""
        full = self.full_weights(weights)
        nnz = np.count_nonzero(full, axis=1)
        if start == 0:
            active = set(np.flatnonzero(full.any(axis=0)).tolist())
            cached = set()
            if image is not None:
                cached = set(image.first_eps.get((seed, steps or self.restorer.settings.steps), {}))
            return len(active - cached) + int(nnz.sum()) * (stop - 1)
        return int(nnz.sum()) * (stop - start)

    # --- sampling ----------------------------------------------------------------------------

    def _timesteps(self, steps: int):
        ts, prev = self.restorer._timesteps(steps)
        return np.asarray(ts, np.int32), np.asarray(prev, np.int32)

    def _first_step_eps(self, image: SearchImage, experts: np.ndarray, *, seed: int, steps: int) -> np.ndarray:
        """eps_k(x_T) for every expert in `experts` (cached per image, seed and steps) -> [K_total, h, w, c]."""
        cache = image.first_eps.setdefault((seed, steps), {})
        missing = [int(k) for k in experts if int(k) not in cache]
        if missing:
            ts, _ = self._timesteps(steps)
            # Experts per device per call depends only on `shards` (see the module docstring).
            per_shard = -(-len(missing) // self.shards)
            ks = np.array(missing + [missing[-1]] * (per_shard * self.shards - len(missing)), np.int32)
            x_t = self._put(np.asarray(self.restorer.initial_noise(image.prepared, seed)), replicated=True)
            conditions = self._put(np.asarray(image.prepared.conditions), replicated=True)
            step = per_shard * self.devices
            computed = 0
            for i in range(0, len(missing), step):
                eps = _to_host(self._programs.first_eps(
                    self._unet_graph, self._static, self._unet_state, conditions, self._context,
                    x_t, self._put(ks[i:i + step]), jnp.int32(ts[0]),
                ))
                for j, k in enumerate(missing[i:i + step]):
                    cache[k] = eps[j]
                computed += step
            self.unet_evaluations += len(missing)
            self.unet_evaluations_padded += computed
        h, w, c = image.prepared.conditions.shape[1:]
        out = np.zeros((self._total_experts, h, w, c), np.float32)
        for k, e in cache.items():
            out[k] = e
        return out

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
            raise ValueError(f"need 0 <= start < stop <= steps={steps}; got start={start}, stop={stop}")
        if (x is None) != (start == 0):
            raise ValueError("pass x (the latents entering step `start`) exactly when start > 0")
        if decode not in ("latents", "x0", None):
            raise ValueError(f"decode must be 'latents', 'x0' or None, got {decode!r}")
        full = self.full_weights(weights)
        if x is not None and len(x) != len(full):
            raise ValueError(f"x has {len(x)} latents for {len(full)} weight vectors")
        ts, prev = self._timesteps(steps)
        ts_d, prev_d = self._put(ts, replicated=True), self._put(prev, replicated=True)
        nnz = np.count_nonzero(full, axis=1)
        first_step = None
        if start == 0:
            eps0 = self._first_step_eps(image, np.flatnonzero(full.any(axis=0)), seed=seed, steps=steps)
            x_t = np.asarray(self.restorer.initial_noise(image.prepared, seed))
            first_step = (self._put(eps0, replicated=True), self._put(x_t, replicated=True))
        conditions = self._put(np.asarray(image.prepared.conditions), replicated=True)
        capacity = max(self.pairs_per_device, int(nnz.max()))
        for virtual in plan_rounds(nnz, self.shards, capacity):
            n_loc = _bucket(max(len(s) for s in virtual), capacity)
            p_loc = _bucket(max(int(nnz[s].sum()) for s in virtual), capacity)
            for g in range(0, self.shards, self.devices):
                slots = virtual[g:g + self.devices]
                if any(slots):
                    yield self._call(image, full, nnz, slots, n_loc, p_loc, x, start, stop, seed,
                                     first_step, conditions, ts_d, prev_d, decode)

    def _call(self, image, full, nnz, slots, n_loc, p_loc, x, start, stop, seed, first_step,
              conditions, ts_d, prev_d, decode) -> Batch:
        """One sharded call: device d runs the candidates slots[d] (n_loc slots, p_loc pairs)."""
        w_slots = np.zeros((self.devices * n_loc, full.shape[1]), np.float32)
        pair_n = np.zeros(self.devices * p_loc, np.int32)
        pair_k = np.zeros(self.devices * p_loc, np.int32)
        pair_w = np.zeros(self.devices * p_loc, np.float32)
        cand, slot = [], []
        for d, cands in enumerate(slots):
            p = d * p_loc
            for j, c in enumerate(cands):
                w_slots[d * n_loc + j] = full[c]
                cand.append(c)
                slot.append(d * n_loc + j)
                for k in np.flatnonzero(full[c]):
                    pair_n[p], pair_k[p], pair_w[p] = j, k, full[c, k]
                    p += 1
            # Padding pairs: weight 0, on the last slot so the indices stay sorted.
            pair_n[p:(d + 1) * p_loc] = n_loc - 1
        cand, slot = np.array(cand, np.int64), np.array(slot, np.int64)
        seed_d = jnp.int32(seed)
        if start == 0:
            eps0, x_t = first_step
            xs, x0s = self._programs.mix_first(
                self._static, self._schedule, eps0, x_t, self._put(w_slots), ts_d, prev_d, seed_d
            )
            first = 1
        else:
            x_slots = np.zeros((self.devices * n_loc,) + tuple(x.shape[1:]), np.float32)
            x_slots[slot] = np.asarray(x)[cand]
            xs, x0s, first = self._put(x_slots), None, start
        evals = 0
        if first < stop:
            xs, x0s = self._programs.advance(
                self._unet_graph, self._static, self._schedule, self._unet_state, conditions,
                self._context, xs, self._put(pair_n), self._put(pair_k), self._put(pair_w),
                ts_d, prev_d, jnp.int32(first), jnp.int32(stop), seed_d,
            )
            evals = int(nnz[cand].sum()) * (stop - first)
            self.unet_evaluations_padded += self.devices * p_loc * (stop - first)
        self.unet_evaluations += evals
        self.restorer.unet_evaluations += evals
        latents, x0 = _to_host(xs)[slot], _to_host(x0s)[slot]
        images = None
        if decode is not None:
            images = self.decode(image, latents if decode == "latents" else x0)
        return Batch(cand, latents, x0, images, evals)

    def sample(self, image: SearchImage, weights: np.ndarray, **kwargs) -> Batch:
        """`run` gathered into one Batch in the row order of `weights`."""
        batches = list(self.run(image, weights, **kwargs))
        order = np.argsort(np.concatenate([b.indices for b in batches]))

        def cat(name):
            parts = [getattr(b, name) for b in batches]
            return None if parts[0] is None else np.concatenate(parts)[order]

        return Batch(np.arange(len(order)), cat("latents"), cat("x0"), cat("images"),
                     sum(b.unet_evaluations for b in batches))

    # --- decoding ----------------------------------------------------------------------------

    def decode(self, image: SearchImage, latents: np.ndarray) -> np.ndarray:
        """Latents `[n, h, w, c]` -> images `[n, H, W, 3]` in [0, 1] (colour-fixed as configured)."""
        prepared = image.prepared
        color_fix = bool(self.restorer.settings.color_fix) and prepared.height * prepared.width > 1
        per_call = self.devices * self.decode_per_device
        lq = self._put(np.asarray(prepared.lq), replicated=True)
        out = []
        for i in range(0, len(latents), per_call):
            chunk = np.asarray(latents[i:i + per_call], np.float32)
            padded = np.zeros((per_call,) + chunk.shape[1:], np.float32)
            padded[: len(chunk)] = chunk
            images = self._programs.decode(
                self._vae_graph, self._static, self._vae_state, self._put(padded), lq,
                color_fix=color_fix, height=prepared.height, width=prepared.width,
            )
            out.append(_to_host(images)[: len(chunk)])
        return np.concatenate(out) if out else np.zeros((0, prepared.height, prepared.width, 3), np.float32)

    # --- placement ---------------------------------------------------------------------------

    def _put(self, array: np.ndarray, *, replicated: bool = False) -> jax.Array:
        sharding = self._replicated if replicated else self._sharded
        array = np.asarray(array)
        return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def _replicate(tree, sharding: NamedSharding):
    """Places a pytree of arrays on every device of the mesh (works across hosts)."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(a):
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def _to_host(array: jax.Array) -> np.ndarray:
    """A global array as one numpy array on every process."""
    if jax.process_count() == 1:
        return np.asarray(array)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(array, tiled=True))


# --- the sharded programs ---------------------------------------------------------------------


def _eps_fn(unet, static: _Static, conditions, context):
    """eps(x_t [P, h, w, c], t [P], k [P]) for (latent, expert) pairs, tiled like the Restorer."""
    expert_condition = jnp.asarray(static.expert_condition, jnp.int32)

    def eps_fn(x_t, t, k):
        cond = conditions[expert_condition[k]]
        inputs = jnp.concatenate([x_t, cond.astype(x_t.dtype)], axis=-1)
        ctx = context[k]
        if max(inputs.shape[1:3]) > static.latent_tile:
            return tiled_apply(
                lambda tile: unet(tile, t, ctx), inputs, static.latent_tile, static.latent_overlap
            )
        return unet(inputs, t, ctx)

    return eps_fn


def _update(static: _Static, schedule: Schedule, ts, prev, i, x_t, eps, seed):
    """One DDIM step with the mixed prediction; ancestral noise as `sampler.combined_ddim`."""
    noise = None
    if static.eta != 0:
        rng = jax.random.key(seed)
        noise = jax.random.normal(jax.random.fold_in(rng, i), x_t.shape[1:], jnp.float32)
        noise = jnp.broadcast_to(noise, x_t.shape)
    return ddim_step(
        schedule, eps, ts[i], prev[i], x_t,
        final_alpha_cumprod=final_alpha_cumprod(schedule, static.set_alpha_to_one),
        eta=static.eta, noise=noise, return_x0=True,
    )


@dataclasses.dataclass(frozen=True)
class _Programs:
    first_eps: object
    mix_first: object
    advance: object
    decode: object


@functools.lru_cache(maxsize=None)
def _programs(mesh: Mesh) -> _Programs:
    """The jitted, shard_mapped programs for one mesh (shared by every sampler on it)."""
    rep, shard = P(), P(AXIS)

    @functools.partial(jax.jit, static_argnames=("unet_graph", "static"))
    def first_eps(unet_graph, static, unet_state, conditions, context, x_t, experts, t0):
        def local(unet_state, conditions, context, x_t, experts, t0):
            unet = nnx.merge(unet_graph, unet_state)
            n = experts.shape[0]
            x = jnp.broadcast_to(x_t, (n,) + x_t.shape[1:])
            t = jnp.full((n,), t0, jnp.int32)
            return _eps_fn(unet, static, conditions, context)(x, t, experts).astype(jnp.float32)

        return jax.shard_map(
            local, mesh=mesh, in_specs=(rep, rep, rep, rep, shard, rep), out_specs=shard,
            check_vma=False,
        )(unet_state, conditions, context, x_t, experts, t0)

    @functools.partial(jax.jit, static_argnames=("static",))
    def mix_first(static, schedule, eps0, x_t, weights, ts, prev, seed):
        def local(schedule, eps0, x_t, weights, ts, prev, seed):
            # sum_k w_k eps_k as elementwise products in expert order: a matmul's rounding
            # would depend on the batch size (see the module docstring).
            mixed = weights[:, 0, None, None, None] * eps0[0]
            for k in range(1, eps0.shape[0]):
                mixed = mixed + weights[:, k, None, None, None] * eps0[k]
            x = jnp.broadcast_to(x_t, (weights.shape[0],) + x_t.shape[1:])
            x1, x0 = _update(static, schedule, ts, prev, 0, x, mixed, seed)
            return x1, x0.astype(jnp.float32)

        return jax.shard_map(
            local, mesh=mesh, in_specs=(rep, rep, rep, shard, rep, rep, rep),
            out_specs=(shard, shard), check_vma=False,
        )(schedule, eps0, x_t, weights, ts, prev, seed)

    @functools.partial(jax.jit, static_argnames=("unet_graph", "static"))
    def advance(unet_graph, static, schedule, unet_state, conditions, context, x, pair_n, pair_k,
                pair_w, ts, prev, start, stop, seed):
        def local(schedule, unet_state, conditions, context, x, pair_n, pair_k, pair_w, ts, prev,
                  start, stop, seed):
            unet = nnx.merge(unet_graph, unet_state)
            eps_fn = _eps_fn(unet, static, conditions, context)
            n_loc = x.shape[0]

            def body(i, carry):
                x_t, _ = carry
                t = jnp.full(pair_n.shape, ts[i], jnp.int32)
                eps = eps_fn(x_t[pair_n], t, pair_k).astype(jnp.float32)
                mixed = jax.ops.segment_sum(
                    eps * pair_w[:, None, None, None], pair_n, num_segments=n_loc,
                    indices_are_sorted=True,
                )
                x_prev, x0 = _update(static, schedule, ts, prev, i, x_t, mixed, seed)
                return x_prev, x0.astype(jnp.float32)

            return jax.lax.fori_loop(start, stop, body, (x, jnp.zeros_like(x, jnp.float32)))

        return jax.shard_map(
            local, mesh=mesh,
            in_specs=(rep, rep, rep, rep, shard, shard, shard, shard, rep, rep, rep, rep, rep),
            out_specs=(shard, shard), check_vma=False,
        )(schedule, unet_state, conditions, context, x, pair_n, pair_k, pair_w, ts, prev, start,
          stop, seed)

    @functools.partial(
        jax.jit, static_argnames=("vae_graph", "static", "color_fix", "height", "width")
    )
    def decode(vae_graph, static, vae_state, latents, lq, *, color_fix, height, width):
        def local(vae_state, latents, lq):
            vae = nnx.merge(vae_graph, vae_state)
            z = latents / static.scaling
            tile, overlap = static.tile // 8, static.overlap // 8
            if max(z.shape[1:3]) > tile:
                image = tiled_apply(vae.decode, z, tile, overlap, scale=8)
            else:
                image = vae.decode(z)
            image = jnp.clip((image.astype(jnp.float32) + 1.0) / 2.0, 0.0, 1.0)
            image = image[:, :height, :width]
            if color_fix:
                reference = jnp.broadcast_to(lq[:height, :width], image.shape)
                image = jnp.clip(adain_color_fix(image, reference), 0.0, 1.0)
            return image

        return jax.shard_map(
            local, mesh=mesh, in_specs=(rep, shard, rep), out_specs=shard, check_vma=False
        )(vae_state, latents, lq)

    return _Programs(first_eps, mix_first, advance, decode)

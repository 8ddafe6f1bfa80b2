"""The jitted, `shard_map`-ped programs of the candidate sampler (one set per device mesh).

Each program runs SPMD over the 1-D mesh axis "candidates": the model weights, conditions and
schedule are replicated; candidate slots, their (candidate, expert) pairs and the latents are
split evenly, so each device runs whole candidates (see engine.py for the layout).

- `advance`: DDIM steps [start, stop) (traced bounds: one compilation for every range) with
  the weighted mixture of the pairs' UNet predictions.
- `mix_first`: a candidate's first step as the weighted sum of the experts' cached first steps.
- `decode`: VAE decoding, crop and AdaIN colour fix, as the Restorer decodes.
- `take`: candidate rows gathered into a compact sharded batch (for decoding).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from unires_jax.diffusion.ddim import ddim_step, final_alpha_cumprod
from unires_jax.diffusion.schedules import Schedule
from unires_jax.restore.color import adain_color_fix
from unires_jax.restore.restorer import Restorer
from unires_jax.restore.tiling import tiled_apply

AXIS = "candidates"


@dataclasses.dataclass(frozen=True)
class Static:
    """Hashable options of the jitted programs (one compilation per distinct value)."""

    expert_condition: tuple[int, ...]
    latent_tile: int
    latent_overlap: int
    eta: float
    set_alpha_to_one: bool
    scaling: float
    tile: int
    overlap: int
    factor: int  # pixels per latent cell of the codec (8 for the SD VAE)


def restorer_parts(restorer: Restorer):
    """The model pieces a Restorer keeps for its own jitted sampler.

    Read from the Restorer's attributes in this one place (it has no public accessor for
    them); a Restorer built from the same model and settings gives the same pieces.
    """
    options = restorer._sample_options
    codec = restorer._encode_options
    static = Static(
        expert_condition=tuple(options.expert_condition),
        latent_tile=options.latent_tile,
        latent_overlap=options.latent_overlap,
        eta=options.eta,
        set_alpha_to_one=options.set_alpha_to_one,
        scaling=codec.scaling,
        tile=codec.tile,
        overlap=codec.overlap,
        factor=codec.factor,
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


def _eps_fn(unet, static: Static, conditions, context):
    """eps(x_t [P, h, w, c], t [P], k [P]) for (latent, expert) pairs, tiled like the Restorer."""
    expert_condition = jnp.asarray(static.expert_condition, jnp.int32)

    def eps_fn(x_t, t, k):
        cond = conditions[expert_condition[k]]
        inputs = jnp.concatenate([x_t, cond.astype(x_t.dtype)], axis=-1)
        ctx = context[k]
        if max(inputs.shape[1:3]) > static.latent_tile:
            return tiled_apply(
                lambda tile: unet(tile, t, ctx),
                inputs,
                static.latent_tile,
                static.latent_overlap,
            )
        return unet(inputs, t, ctx)

    return eps_fn


def _update(static: Static, schedule: Schedule, ts, prev, i, x_t, eps, seed):
    """One DDIM step with the mixed prediction; ancestral noise as `sampler.combined_ddim`."""
    noise = None
    if static.eta != 0:
        rng = jax.random.key(seed)
        noise = jax.random.normal(
            jax.random.fold_in(rng, i), x_t.shape[1:], jnp.float32
        )
        noise = jnp.broadcast_to(noise, x_t.shape)
    return ddim_step(
        schedule,
        eps,
        ts[i],
        prev[i],
        x_t,
        final_alpha_cumprod=final_alpha_cumprod(schedule, static.set_alpha_to_one),
        eta=static.eta,
        noise=noise,
        return_x0=True,
    )


@dataclasses.dataclass(frozen=True)
class Programs:
    mix_first: object
    advance: object
    decode: object
    take: object


@functools.cache
def programs(mesh: Mesh) -> Programs:
    """The jitted, shard_mapped programs for one mesh (shared by every sampler on it)."""
    rep, shard = P(), P(AXIS)

    @jax.jit
    def mix_first(x1, x0, weights):
        def local(x1, x0, weights):
            # sum_k w_k x_k as elementwise products in expert order: a matmul's rounding would
            # depend on the batch size (see the module docstring).
            w = weights[:, :, None, None, None]
            mixed_x1, mixed_x0 = w[:, 0] * x1[0], w[:, 0] * x0[0]
            for k in range(1, x1.shape[0]):
                mixed_x1 = mixed_x1 + w[:, k] * x1[k]
                mixed_x0 = mixed_x0 + w[:, k] * x0[k]
            return mixed_x1, mixed_x0

        return jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(rep, rep, shard),
            out_specs=(shard, shard),
            check_vma=False,
        )(x1, x0, weights)

    @functools.partial(jax.jit, static_argnames=("unet_graph", "static"))
    def advance(
        unet_graph,
        static,
        schedule,
        unet_state,
        conditions,
        context,
        x,
        pair_n,
        pair_k,
        pair_w,
        ts,
        prev,
        start,
        stop,
        seed,
    ):
        def local(
            schedule,
            unet_state,
            conditions,
            context,
            x,
            pair_n,
            pair_k,
            pair_w,
            ts,
            prev,
            start,
            stop,
            seed,
        ):
            unet = nnx.merge(unet_graph, unet_state)
            eps_fn = _eps_fn(unet, static, conditions, context)
            n_loc = x.shape[0]

            def body(i, carry):
                x_t, _ = carry
                t = jnp.full(pair_n.shape, ts[i], jnp.int32)
                eps = eps_fn(x_t[pair_n], t, pair_k).astype(jnp.float32)
                mixed = jax.ops.segment_sum(
                    eps * pair_w[:, None, None, None],
                    pair_n,
                    num_segments=n_loc,
                    indices_are_sorted=True,
                )
                x_prev, x0 = _update(static, schedule, ts, prev, i, x_t, mixed, seed)
                return x_prev, x0.astype(jnp.float32)

            return jax.lax.fori_loop(
                start, stop, body, (x, jnp.zeros_like(x, jnp.float32))
            )

        return jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(
                rep,
                rep,
                rep,
                rep,
                shard,
                shard,
                shard,
                shard,
                rep,
                rep,
                rep,
                rep,
                rep,
            ),
            out_specs=(shard, shard),
            check_vma=False,
        )(
            schedule,
            unet_state,
            conditions,
            context,
            x,
            pair_n,
            pair_k,
            pair_w,
            ts,
            prev,
            start,
            stop,
            seed,
        )

    @functools.partial(
        jax.jit, static_argnames=("vae_graph", "static", "color_fix", "height", "width")
    )
    def decode(vae_graph, static, vae_state, latents, lq, *, color_fix, height, width):
        def local(vae_state, latents, lq):
            vae = nnx.merge(vae_graph, vae_state)
            z = latents / static.scaling
            f = static.factor
            tile, overlap = static.tile // f, static.overlap // f
            if max(z.shape[1:3]) > tile:
                image = tiled_apply(vae.decode, z, tile, overlap, scale=f)
            else:
                image = vae.decode(z)
            image = jnp.clip((image.astype(jnp.float32) + 1.0) / 2.0, 0.0, 1.0)
            image = image[:, :height, :width]
            if color_fix:
                reference = jnp.broadcast_to(lq[:height, :width], image.shape)
                image = jnp.clip(adain_color_fix(image, reference), 0.0, 1.0)
            return image

        return jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(rep, shard, rep),
            out_specs=shard,
            check_vma=False,
        )(vae_state, latents, lq)

    @functools.partial(jax.jit, out_shardings=NamedSharding(mesh, shard))
    def take(array, index):
        # Gathers candidate rows into a compact, evenly sharded batch on the devices (no host
        # round trip before decoding).
        return array[index]

    return Programs(mix_first, advance, decode, take)

"""The jitted, `shard_map`-ped programs of the candidate sampler (one set per device mesh).

Each program runs SPMD over the 1-D mesh axis "candidates": the model weights, conditions and
schedule are replicated; candidate slots, their (candidate, expert) pairs and the latents are
split evenly, so each device runs whole candidates (see engine.py for the layout).

- `advance`: DDIM steps [start, stop) (traced bounds: one compilation for every range) with
  the weighted mixture of the pairs' UNet predictions.
- `mix_first`: a candidate's first step as the weighted sum of the experts' cached first steps.
- `decode`: VAE decoding, crop and colour fix (the Restorer's own `decode_latents`) of
  chosen rows of each device's own shard.

None of them uses a cross-device collective.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from unires_jax.diffusion.ddim import final_alpha_cumprod, mixed_ddim_step
from unires_jax.restore.restorer import ProgramParts, conditioned_eps_fn, decode_latents

AXIS = "candidates"


@dataclasses.dataclass(frozen=True)
class Static:
    """Hashable options of the jitted programs: the Restorer's own (one compilation each)."""

    sample: object  # the Restorer's sample options
    codec: object  # the Restorer's codec options


def static_options(parts: ProgramParts) -> Static:
    """The programs' static options for a Restorer's `program_parts()`."""
    return Static(sample=parts.sample_options, codec=parts.codec_options)


@dataclasses.dataclass(frozen=True)
class Programs:
    mix_first: object
    advance: object
    decode: object


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
    def advance(unet_graph, static, model, candidates, steps):
        """model: (schedule, unet_state, conditions, context), replicated; candidates: (x,
        pair_n, pair_k, pair_w), sharded; steps: (ts, prev, start, stop, seed), replicated."""

        def local(model, candidates, steps):
            schedule, unet_state, conditions, context = model
            x, pair_n, pair_k, pair_w = candidates
            ts, prev, start, stop, seed = steps
            unet = nnx.merge(unet_graph, unet_state)
            eps_fn = conditioned_eps_fn(unet, static.sample, conditions, context)
            options = static.sample
            rng = jax.random.key(seed) if options.eta != 0 else None

            def body(i, carry):
                x_t, _ = carry
                t = jnp.full(pair_n.shape, ts[i], jnp.int32)
                eps = eps_fn(x_t[pair_n], t, pair_k)
                return mixed_ddim_step(
                    schedule,
                    eps,
                    i,
                    x_t,
                    ts,
                    prev,
                    final_alpha_cumprod=final_alpha_cumprod(
                        schedule, options.set_alpha_to_one
                    ),
                    eta=options.eta,
                    rng=rng,
                    pair_n=pair_n,
                    pair_w=pair_w,
                )

            return jax.lax.fori_loop(
                start, stop, body, (x, jnp.zeros_like(x, jnp.float32))
            )

        return jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(rep, shard, rep),
            out_specs=(shard, shard),
            check_vma=False,
        )(model, candidates, steps)

    @functools.partial(
        jax.jit, static_argnames=("vae_graph", "static", "color_fix", "height", "width")
    )
    def decode(
        vae_graph, static, vae_state, latents, rows, lq, *, color_fix, height, width
    ):
        # Each device decodes rows of its own shard (`rows` are shard-local indices), so no
        # data crosses devices: a cross-device gather here would be a collective, and XLA's
        # CPU collectives abort when one of many fake devices sharing few cores is late.
        def local(vae_state, latents, rows, lq):
            vae = nnx.merge(vae_graph, vae_state)
            return decode_latents(
                vae,
                latents[rows],
                lq,
                options=static.codec,
                color_fix=color_fix,
                height=height,
                width=width,
            )

        return jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(rep, shard, shard, rep),
            out_specs=shard,
            check_vma=False,
        )(vae_state, latents, rows, lq)

    return Programs(mix_first, advance, decode)

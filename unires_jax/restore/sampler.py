"""Combined K-expert DDIM sampling: eps~ = sum_k w_k eps(z_t, condition_k, prompt_k).

Many weight vectors for one image are sampled in one batch. Only the (vector, expert) pairs with
a nonzero weight are evaluated, all of one step in a single batched UNet call, and the weighted
sum is a segment sum over pairs. At the first step every vector starts from the same noise, so
each active expert is evaluated once there and its prediction shared by all vectors.

Shapes: latents `[N, h, w, c]`; weights `[N, K]`; a pair list of length P indexes (vector n,
expert k, weight w) for every nonzero weight, padded (with weight 0) to a multiple of `pad_to`
so the batch divides evenly over devices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from unires_jax.diffusion.ddim import mixed_ddim_step
from unires_jax.diffusion.schedules import Schedule

# eps_fn(x_t [P, h, w, c], t [P] int32, expert [P] int32) -> model output [P, h, w, c]
ExpertFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class ExpertPairs:
    """The nonzero entries of a weight matrix, as static numpy index arrays."""

    n: np.ndarray  # [P] int32, which weight vector
    k: np.ndarray  # [P] int32, which expert
    w: np.ndarray  # [P] float32, the weight (0 for padding)
    active: np.ndarray  # [A] int32, experts with a nonzero weight in any vector
    num_vectors: int

    @property
    def size(self) -> int:
        return int(self.n.shape[0])


# A pytree, so a jitted sampler takes the index arrays as (traced) arguments and recompiles only
# when their lengths change.
jax.tree_util.register_dataclass(
    ExpertPairs, data_fields=["n", "k", "w", "active"], meta_fields=["num_vectors"]
)


def expert_pairs(weights: np.ndarray, *, pad_to: int = 1) -> ExpertPairs:
    """Lists the nonzero (vector, expert) entries of `weights` [N, K], padded to `pad_to`."""
    weights = np.asarray(weights, np.float32)
    n_idx, k_idx = np.nonzero(weights)
    if n_idx.size == 0:
        raise ValueError(
            "every weight is zero; at least one expert must have a nonzero weight"
        )
    w = weights[n_idx, k_idx]
    pad = (-n_idx.size) % pad_to
    if pad:
        n_idx = np.concatenate([n_idx, np.zeros(pad, n_idx.dtype)])
        k_idx = np.concatenate([k_idx, np.full(pad, k_idx[0], k_idx.dtype)])
        w = np.concatenate([w, np.zeros(pad, np.float32)])
    return ExpertPairs(
        n=n_idx.astype(np.int32),
        k=k_idx.astype(np.int32),
        w=w.astype(np.float32),
        active=np.unique(k_idx[: n_idx.size - pad]).astype(np.int32),
        num_vectors=int(weights.shape[0]),
    )


def unet_evaluations(
    pairs: ExpertPairs, *, start: int, stop: int, shared_start: bool
) -> int:
    """UNet image-evaluations that `combined_ddim` performs for steps [start, stop)."""
    steps = stop - start
    if steps <= 0:
        return 0
    if shared_start:
        return int(pairs.active.size) + (steps - 1) * pairs.size
    return steps * pairs.size


def combined_ddim(
    eps_fn: ExpertFn,
    x: jax.Array,
    weights: jax.Array,
    pairs: ExpertPairs,
    s: Schedule,
    timesteps: np.ndarray,
    prev_timesteps: np.ndarray,
    *,
    final_alpha_cumprod: jax.Array | float,
    eta: float = 0.0,
    rng: jax.Array | None = None,
    start: int = 0,
    stop: int | None = None,
    return_x0: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Runs DDIM steps [start, stop) with the weighted expert mixture, as one `lax.scan`.

    Args:
      eps_fn: evaluates experts on a batch of (latent, expert) pairs.
      x: latents entering step `start`: `[1, h, w, c]` (shared start noise, each expert
        evaluated once at that step) or `[N, h, w, c]`.
      weights: `[N, K]` float32, the same matrix `pairs` was made from.
      pairs: `expert_pairs(weights)`.
      s: the noise schedule.
      timesteps, prev_timesteps: the full run's `[n]` DDIM timesteps and their predecessors.
      final_alpha_cumprod: alpha-bar past the last step.
      eta: DDIM eta (0 = deterministic). The ancestral noise of step i is the same for every
        vector (keyed by `rng` and i, shaped like one latent), so a batch of N vectors gives
        what N separate runs with the same seed give.
      rng: PRNG key, needed when eta > 0.
      start, stop: the step range; stop defaults to the end.
      return_x0: also return the x0 prediction after the last step run, `[N, h, w, c]`.

    Returns:
      Latents `[N, h, w, c]` after step stop-1 (and the last x0 prediction).
    """
    n_steps = len(timesteps)
    stop = n_steps if stop is None else stop
    if not 0 <= start < stop <= n_steps:
        raise ValueError(
            f"need 0 <= start < stop <= {n_steps}; got start={start}, stop={stop}"
        )
    if eta != 0 and rng is None:
        raise ValueError("eta > 0 needs an rng key")
    num = pairs.num_vectors
    latent_shape = x.shape[1:]
    ts = jnp.asarray(timesteps, jnp.int32)
    prev = jnp.asarray(prev_timesteps, jnp.int32)

    def step(i, x_t, eps, **pairs):
        return mixed_ddim_step(
            s,
            eps,
            i,
            x_t,
            ts,
            prev,
            final_alpha_cumprod=final_alpha_cumprod,
            eta=eta,
            rng=rng,
            **pairs,
        )

    if x.shape[0] == 1:
        # Shared start: evaluate each active expert once and mix per vector.
        active = jnp.asarray(pairs.active)
        x_shared = jnp.broadcast_to(x, (active.shape[0],) + latent_shape)
        t = jnp.full((active.shape[0],), ts[start], jnp.int32)
        eps = eps_fn(x_shared, t, active).astype(jnp.float32)
        mixed = jnp.einsum(
            "na,a...->n...", weights[:, pairs.active].astype(jnp.float32), eps
        )
        x, x0 = step(start, jnp.broadcast_to(x, (num,) + latent_shape), mixed)
        start += 1
    elif x.shape[0] != num:
        raise ValueError(
            f"x has batch {x.shape[0]}, expected 1 or {num} (the weight vectors)"
        )
    else:
        x0 = jnp.zeros_like(x, jnp.float32)

    pair_n = jnp.asarray(pairs.n)
    pair_k = jnp.asarray(pairs.k)
    pair_w = jnp.asarray(pairs.w)

    def body(carry, i):
        x_t, _ = carry
        t = jnp.full((pairs.size,), ts[i], jnp.int32)
        eps = eps_fn(x_t[pair_n], t, pair_k)
        return step(i, x_t, eps, pair_n=pair_n, pair_w=pair_w), None

    if start < stop:
        (x, x0), _ = jax.lax.scan(
            body, (x, x0.astype(jnp.float32)), jnp.arange(start, stop)
        )
    return (x, x0) if return_x0 else x

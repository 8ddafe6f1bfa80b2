"""Optimiser, learning-rate schedule, EMA and freezing of named sub-modules.

Freezing: parameters under a frozen sub-module path (e.g. "vae", "text_encoder") are split off
from the trainable ones before differentiation (an NNX filter, i.e. a mask on the state), so they
get no gradients, no optimiser state and no EMA, and XLA drops the backward pass through them.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx


def make_schedule(cfg: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """Linear warm-up from 0 to `cfg.lr`, then cosine decay or a constant.

    Args:
      cfg: the `optim` config section: lr, schedule ("cosine" | "constant"), warmup_steps,
        min_lr_ratio (cosine end value as a fraction of lr).
      total_steps: number of optimiser updates in the run (cosine reaches its end value there).

    Returns:
      step -> learning rate.
    """
    warmup = int(cfg.warmup_steps)
    if cfg.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0,
            peak_value=cfg.lr,
            warmup_steps=warmup,
            decay_steps=max(total_steps, warmup + 1),
            end_value=cfg.lr * cfg.min_lr_ratio,
        )
    if cfg.schedule == "constant":
        if warmup == 0:
            return optax.constant_schedule(cfg.lr)
        return optax.join_schedules(
            [
                optax.linear_schedule(0.0, cfg.lr, warmup),
                optax.constant_schedule(cfg.lr),
            ],
            [warmup],
        )
    raise ValueError(
        f"config.optim.schedule={cfg.schedule!r}: use 'cosine' or 'constant' "
        "(see unires_jax/train/optim.py)"
    )


def _decay_mask(params):
    """Weight decay on kernels and embeddings only, not on biases and norm scales (ndim < 2)."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(
    cfg: ml_collections.ConfigDict, total_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Global-norm clipping followed by AdamW with the configured schedule.

    Args:
      cfg: the `optim` config section (lr, schedule, warmup_steps, min_lr_ratio, b1, b2, eps,
        weight_decay, clip_norm; clip_norm <= 0 disables clipping).
      total_steps: run length for the schedule.

    Returns:
      (transformation, schedule).
    """
    schedule = make_schedule(cfg, total_steps)
    parts = []
    if cfg.clip_norm > 0:
        parts.append(optax.clip_by_global_norm(cfg.clip_norm))
    parts.append(
        optax.adamw(
            schedule,
            b1=cfg.b1,
            b2=cfg.b2,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
            mask=_decay_mask,
        )
    )
    return optax.chain(*parts), schedule


def _path_str(path: tuple) -> str:
    return "/".join(str(k) for k in path)


def frozen_filter(prefixes: Sequence[str]):
    """NNX filter selecting `nnx.Param`s under any of the sub-module paths in `prefixes`.

    Args:
      prefixes: "/"-separated sub-module paths, e.g. ("vae", "text_encoder", "unet/conv_in").

    Returns:
      A filter `(path, value) -> bool` for `nnx.split` / `nnx.state`.
    """
    prefixes = tuple(p.strip("/") for p in prefixes if p.strip("/"))

    def is_frozen(path: tuple, value) -> bool:
        if not isinstance(value, nnx.Param):
            return False
        p = _path_str(path)
        return any(p == f or p.startswith(f + "/") for f in prefixes)

    return is_frozen


def check_frozen_prefixes(model_state: nnx.State, prefixes: Sequence[str]) -> None:
    """Raises if a frozen prefix matches no parameter (a typo would silently train everything)."""
    paths = [_path_str(path) for path, _ in nnx.to_flat_state(model_state)]
    for f in (p.strip("/") for p in prefixes):
        if f and not any(p == f or p.startswith(f + "/") for p in paths):
            top = sorted({p.split("/")[0] for p in paths})
            raise ValueError(
                f"frozen sub-module {f!r} (Task.frozen or config.optim.frozen) matches no "
                f"parameter; top-level sub-modules are {top}"
            )


def ema_update(ema, params, decay: float | jax.Array):
    """Exponential moving average of weights: ema <- decay * ema + (1 - decay) * params.

    Args:
      ema, params: pytrees with the same structure (float32 master weights).
      decay: in [0, 1); 0 makes the EMA a copy of the parameters.

    Returns:
      The updated EMA pytree.
    """
    return jax.tree.map(
        lambda e, p: e * decay + p.astype(e.dtype) * (1.0 - decay), ema, params
    )


def opt_state_shardings(
    tx: optax.GradientTransformation, abstract_opt_state, param_shardings, other
):
    """Shardings for an optimiser state: moments follow their parameters, counters get `other`.

    Args:
      tx: the transformation that produced the state.
      abstract_opt_state: `jax.eval_shape(tx.init, params)`.
      param_shardings: a pytree of shardings with the structure of the parameters.
      other: sharding for non-parameter leaves (step counters), usually replicated.

    Returns:
      A pytree of shardings with the structure of the optimiser state.
    """
    is_sharding = lambda x: isinstance(x, jax.sharding.Sharding)
    return optax.tree_map_params(
        tx,
        lambda _, s: s,
        abstract_opt_state,
        param_shardings,
        transform_non_params=lambda _: other,
        is_leaf=is_sharding,
    )


def cast_floating(tree, dtype: jnp.dtype):
    """Casts the floating-point leaves of a pytree to `dtype` (integers and keys untouched)."""

    def cast(x):
        if (
            hasattr(x, "dtype")
            and jnp.issubdtype(x.dtype, jnp.floating)
            and x.dtype != dtype
        ):
            return x.astype(dtype)
        return x

    return jax.tree.map(cast, tree)

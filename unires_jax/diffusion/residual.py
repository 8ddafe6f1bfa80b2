"""Residual diffusion (RDDM, as FoundIR uses it): the schedule, forward process, loss and sampler.

Names here follow the paper: alpha_bar weights the residual R = LQ - HQ, beta_bar weights the
low-quality image, sigma is the noise std. The official FoundIR code (`ResidualDiffusion` in
`src/model.py`) calls them `alphas_cumsum`, `delta_cumsum` and `betas_cumsum` (the paper's beta is
the code's delta). Images are in [-1, 1]; with T = 1000 training steps

    I_t = (1 - alpha_bar_t) * HQ + (alpha_bar_t - beta_bar_t) * LQ + sigma_t * eps,
    alpha_bar_t = 1 - sqrt(c_t),  sigma_t = sqrt(1 - c_t),  c_t = prod_{s<=t} (1 - beta^DDPM_s),
    beta_bar_t = cumsum(linspace(1e-6, delta_end, T))_t.

The network sees concat(I_t, LQ) on the channel axis and the continuous time alpha_bar_t * T,
and predicts R. Sampling is deterministic (eta = 0): start from
(1 - beta_bar_T) * LQ + 0.1 * noise, then per step R_hat = clip(net(.)), x0 = clip(LQ - R_hat),
x <- x - (alpha_bar_t - alpha_bar_t') R_hat + (beta_bar_t - beta_bar_t') LQ; the last step
returns x0. The tables reproduce the official float32 ones (torch's float32 linspace and its
float64-accumulated cumprod / cumsum), so the time inputs agree to float32 rounding.

Shapes: images `[B, H, W, C]`; timesteps `t` are `[B]` int32 or a scalar.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

# predict_residual(x_in [B, H, W, 2C] = concat(x_t, LQ), time [B] float32) -> R_hat [B, H, W, C]
ResidualFn = Callable[[jax.Array, jax.Array], jax.Array]

# Official ResidualDiffusion / test.py values.
DDPM_BETA_START = 1e-4
DDPM_BETA_END = 0.02
DELTA_START = 1e-6
DELTA_END = 1.4e-3  # test.py and the training scripts; the class default is 1.5e-3
START_SCALE = 0.1  # sqrt(sum_scale), sum_scale = 0.01 for conditional models
SAMPLING_STEPS = 4


@dataclasses.dataclass(frozen=True)
class ResidualSchedule:
    """Per-timestep tables of the residual diffusion, each `[num_steps]` float32 numpy.

    A pytree (arrays are leaves, `num_steps` is static), so it can be passed into `jax.jit`.

    Attributes:
        alpha_bar: residual weight (official `alphas_cumsum`), 1 - sqrt(c_t).
        beta_bar: LQ weight (official `delta_cumsum`).
        sigma: noise std (official `betas_cumsum`), sqrt(1 - c_t).
        num_steps: number of training timesteps T (timesteps are 0 .. T-1).
    """

    alpha_bar: np.ndarray | jax.Array
    beta_bar: np.ndarray | jax.Array
    sigma: np.ndarray | jax.Array
    num_steps: int


jax.tree_util.register_dataclass(
    ResidualSchedule,
    data_fields=["alpha_bar", "beta_bar", "sigma"],
    meta_fields=["num_steps"],
)


def _torch_linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    """torch.linspace(start, end, steps, dtype=torch.float32), bit for bit.

    torch steps in float32 from `start` for the first half and back from `end` for the second;
    the products are formed before the float32 rounding (checked against torch 2.13 on CPU).
    """
    if steps == 1:
        return np.array([start], np.float32)
    s, e = np.float32(start), np.float32(end)
    step = np.float64(np.float32((e - s) / np.float32(steps - 1)))
    i = np.arange(steps, dtype=np.float64)
    out = np.where(i < steps // 2, s + step * i, e - step * (steps - 1 - i))
    return out.astype(np.float32)


def residual_schedule(
    num_steps: int = 1000,
    delta_end: float = DELTA_END,
    *,
    beta_start: float = DDPM_BETA_START,
    beta_end: float = DDPM_BETA_END,
    delta_start: float = DELTA_START,
) -> ResidualSchedule:
    """The official schedule (`ResidualDiffusion.__init__`, linear DDPM betas).

    Args:
        num_steps: training timesteps T.
        delta_end: last per-step LQ increment (FoundIR: 1.4e-3, so beta_bar_T = 0.7005).
        beta_start, beta_end: DDPM betas, linear.
        delta_start: first per-step LQ increment.

    Returns:
        The tables; with the defaults alpha_bar[-1] = 0.993647, beta_bar[-1] = 0.7005.
    """
    if num_steps < 2:
        raise ValueError(f"residual_schedule: num_steps={num_steps}; need at least 2")
    betas = _torch_linspace_f32(beta_start, beta_end, num_steps)
    # torch's CPU cumprod / cumsum accumulate float32 in float64 and round each output.
    c = np.cumprod((np.float32(1) - betas).astype(np.float64)).astype(np.float32)
    alpha_bar = np.float32(1) - np.sqrt(c)
    sigma = np.sqrt(np.float32(1) - c)
    delta = _torch_linspace_f32(delta_start, delta_end, num_steps)
    beta_bar = np.clip(np.cumsum(delta.astype(np.float64)).astype(np.float32), 0, 1)
    return ResidualSchedule(
        alpha_bar=alpha_bar, beta_bar=beta_bar, sigma=sigma, num_steps=num_steps
    )


def _at(table, t, ndim: int) -> jax.Array:
    """table[t] shaped to broadcast over an `ndim`-D image batch."""
    v = jnp.asarray(table, jnp.float32)[jnp.asarray(t)]
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def time_input(s: ResidualSchedule, t: jax.Array | int) -> jax.Array:
    """The network's time input alpha_bar[t] * T (continuous; official `alphas_cumsum[t]*T`).

    Args:
        t: [B] int32 timesteps or a scalar.

    Returns:
        float32 of t's shape (993.6472, 942.1161, 719.6659, 276.0626 at t = 999, 749, 499, 249).
    """
    return jnp.asarray(s.alpha_bar, jnp.float32)[jnp.asarray(t)] * np.float32(
        s.num_steps
    )


def add_noise(
    s: ResidualSchedule, hq: jax.Array, lq: jax.Array, eps: jax.Array, t: jax.Array
) -> jax.Array:
    """Samples q(I_t | HQ, LQ) (official `q_sample`).

    I_t = HQ + alpha_bar_t (LQ - HQ) + sigma_t eps - beta_bar_t LQ
        = (1 - alpha_bar_t) HQ + (alpha_bar_t - beta_bar_t) LQ + sigma_t eps.

    Args:
        hq, lq, eps: [B, H, W, C] (images in [-1, 1], eps standard normal).
        t: [B] int32 timesteps in [0, T).

    Returns:
        [B, H, W, C] float32.
    """
    if hq.shape != lq.shape or hq.shape != eps.shape:
        raise ValueError(
            f"add_noise: hq {hq.shape}, lq {lq.shape} and eps {eps.shape} must have one shape"
        )
    n = hq.ndim
    residual = lq - hq
    return (
        hq
        + _at(s.alpha_bar, t, n) * residual
        + _at(s.sigma, t, n) * eps
        - _at(s.beta_bar, t, n) * lq
    )


def residual_target(hq: jax.Array, lq: jax.Array) -> jax.Array:
    """What the network learns to predict: R = LQ - HQ."""
    return lq - hq


def residual_loss(predicted: jax.Array, hq: jax.Array, lq: jax.Array) -> jax.Array:
    """L1 loss between the predicted and true residual (official `loss_type='l1'`).

    Mean over each example's pixels, then over the batch, as the official `p_losses`.

    Args:
        predicted: [B, H, W, C] network output.
        hq, lq: [B, H, W, C].

    Returns:
        scalar float32.
    """
    target = residual_target(hq, lq)
    if predicted.shape != target.shape:
        raise ValueError(
            f"residual_loss: prediction {predicted.shape} and target {target.shape} differ"
        )
    err = jnp.abs(predicted.astype(jnp.float32) - target.astype(jnp.float32))
    return jnp.mean(jnp.mean(err.reshape(err.shape[0], -1), axis=1))


def network_input(x_t: jax.Array, lq: jax.Array) -> jax.Array:
    """concat(I_t, LQ) on the channel axis, I_t first (official `torch.cat((x, x_input), 1)`)."""
    return jnp.concatenate([x_t, lq], axis=-1)


def sampling_timesteps(steps: int, num_steps: int = 1000) -> np.ndarray:
    """The descending timesteps visited by the sampler (official `ddim_sample`).

    `int(linspace(-1, T - 1, steps + 1))` reversed, without the final -1:
    (999, 749, 499, 249) for 4 steps, (999, 665, 332) for 3.

    Returns:
        [steps] int32.
    """
    if not 1 <= steps <= num_steps:
        raise ValueError(
            f"sampling_timesteps: steps={steps}; need 1 <= steps <= {num_steps} (T)"
        )
    times = np.trunc(_torch_linspace_f32(-1, num_steps - 1, steps + 1)).astype(np.int32)
    return times[::-1][:-1].copy()


def initial_sample(
    s: ResidualSchedule,
    lq: jax.Array,
    noise: jax.Array,
    *,
    start_scale: float = START_SCALE,
) -> jax.Array:
    """The sampler's start (1 - beta_bar_T) * LQ + start_scale * noise (0.29950005 LQ + 0.1 n)."""
    if noise.shape != lq.shape:
        raise ValueError(
            f"initial_sample: noise {noise.shape} and lq {lq.shape} differ"
        )
    lq_weight = np.float32(1) - jnp.asarray(s.beta_bar, jnp.float32)[-1]
    return lq_weight * lq + np.float32(start_scale) * noise


def sample(
    predict_residual: ResidualFn,
    lq: jax.Array,
    s: ResidualSchedule,
    *,
    noise: jax.Array,
    steps: int = SAMPLING_STEPS,
    start_scale: float = START_SCALE,
) -> jax.Array:
    """The deterministic residual sampler (official `ddim_sample`, eta = 0, pred_res).

    One `lax.scan` over the steps, so the network is traced once; call it inside `jax.jit` with
    the network closed over. For steps = T the official code switches to its stochastic
    `p_sample_loop`; here every step count uses the same deterministic update.

    Args:
        predict_residual: `(concat(x_t, LQ) [B, H, W, 2C], time [B] float32) -> R_hat
            [B, H, W, C]`, time = alpha_bar[t] * T.
        lq: [B, H, W, C] low-quality image in [-1, 1].
        s: the schedule.
        noise: [B, H, W, C] standard normal, the only random draw of the run.
        steps: number of network calls (static), at `sampling_timesteps(steps, T)`.
        start_scale: std of the starting noise (official sqrt(sum_scale) = 0.1).

    Returns:
        [B, H, W, C] float32 restored image in [-1, 1]: clip(LQ - clip(R_hat)) of the last step.
    """
    t = sampling_timesteps(steps, s.num_steps)
    t_next = np.concatenate([t[1:], [-1]]).astype(np.int32)
    alpha_bar = jnp.asarray(s.alpha_bar, jnp.float32)
    beta_bar = jnp.asarray(s.beta_bar, jnp.float32)
    last = t_next < 0
    # Moves to t_next; zero at the last step, whose update is never used.
    d_alpha = jnp.where(last, 0.0, alpha_bar[t] - alpha_bar[np.maximum(t_next, 0)])
    d_beta = jnp.where(last, 0.0, beta_bar[t] - beta_bar[np.maximum(t_next, 0)])
    times = time_input(s, t)
    lq = lq.astype(jnp.float32)
    batch = lq.shape[0]
    x = initial_sample(s, lq, noise.astype(jnp.float32), start_scale=start_scale)

    def body(carry, step):
        x_t, _ = carry
        time, da, db = step
        out = predict_residual(network_input(x_t, lq), jnp.full((batch,), time))
        pred_res = jnp.clip(out.astype(jnp.float32), -1.0, 1.0)
        x0 = jnp.clip(lq - pred_res, -1.0, 1.0)
        return (x_t - da * pred_res + db * lq, x0), None

    (_, x0), _ = jax.lax.scan(body, (x, jnp.zeros_like(lq)), (times, d_alpha, d_beta))
    return x0

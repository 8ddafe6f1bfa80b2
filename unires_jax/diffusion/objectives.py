"""The UniRes multi-task training objective, as a pure function.

Given VAE latents of the high-quality (HQ) and low-quality (LQ) images and the text embedding of
each example's task prompt: noise the HQ latent, concatenate the LQ latent on the channel axis,
predict the noise (or v) for the prompt, mean squared error. Condition dropout makes the model
also learn blind restoration (empty prompt) and unconditional denoising (zero LQ latent).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from unires_jax.diffusion.schedules import Schedule, add_noise, training_target

# unet_fn(x [B, h, w, c_noisy + c_lq], t [B] int32, context [B, L, D]) -> [B, h, w, c_noisy]
UNetFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class ObjectiveSettings:
    """Dropout and augmentation probabilities (paper defaults; quality words off by default).

    Attributes:
      lq_dropout: probability that the LQ latent is replaced by zeros.
      text_dropout: probability that the prompt is replaced by "" (independent of lq_dropout).
      positive_words: probability that the prompt is replaced by the positive-quality words.
      negative_words: probability that the prompt is replaced by the negative-quality words
        and LQ / HQ are swapped (appendix A.7).
      timestep_skew: training timesteps follow the density x ** timestep_skew on [0, T),
        floored (see `sample_timesteps`): 0 is the usual uniform draw; > 0 spends more of
        training on the noisiest steps, where an x0-predicting model's estimate rests on the
        LQ alone.
    """

    lq_dropout: float = 0.1
    text_dropout: float = 0.1
    positive_words: float = 0.0
    negative_words: float = 0.0
    timestep_skew: float = 0.0

    def __post_init__(self):
        if self.timestep_skew < 0:
            raise ValueError(f"timestep_skew={self.timestep_skew}: must be >= 0")


def sample_timesteps(
    rng: jax.Array, batch: int, num_train_timesteps: int, skew: float
) -> jax.Array:
    """[batch] int32 timesteps in [0, T): the continuous density x ** skew on [0, T], floored.

    So P(t) = ((t + 1) ** (skew + 1) - t ** (skew + 1)) / T ** (skew + 1), close to
    (t + 1/2) ** skew up to normalisation; skew 0 is jax.random.randint's uniform draw itself.
    Inverse-CDF sampling: t = floor(T * u ** (1 / (skew + 1))).
    """
    if skew == 0:
        return jax.random.randint(rng, (batch,), 0, num_train_timesteps, jnp.int32)
    u = jax.random.uniform(rng, (batch,))
    t = jnp.floor(num_train_timesteps * u ** (1.0 / (1.0 + skew)))
    return jnp.clip(t, 0, num_train_timesteps - 1).astype(jnp.int32)


def _per_example(mask: jax.Array, x: jax.Array) -> jax.Array:
    return mask.reshape(mask.shape + (1,) * (x.ndim - 1))


def unires_loss(
    unet_fn: UNetFn,
    s: Schedule,
    hq_latent: jax.Array,
    lq_latent: jax.Array,
    context: jax.Array,
    rng: jax.Array,
    *,
    empty_context: jax.Array,
    settings: ObjectiveSettings = ObjectiveSettings(),
    positive_context: jax.Array | None = None,
    negative_context: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """UniRes denoising loss for one batch.

    Args:
      unet_fn: the UNet, taking the noisy and LQ latents concatenated.
      s: the noise schedule (its prediction_type picks the eps or v target).
      hq_latent, lq_latent: scaled VAE latents `[B, h, w, c]`.
      context: text embeddings of each example's task prompt `[B, L, D]`.
      rng: PRNG key.
      empty_context: embedding of the empty prompt `[L, D]`.
      settings: dropout / augmentation probabilities.
      positive_context, negative_context: embeddings `[L, D]` of the quality words; needed
        when their probabilities are nonzero.

    Returns:
      (loss, aux) with aux = per-example loss `[B]`, the timesteps and the dropout masks.
    """
    batch = hq_latent.shape[0]
    k_t, k_eps, k_lq, k_text, k_aug = jax.random.split(rng, 5)
    t = sample_timesteps(k_t, batch, s.num_train_timesteps, settings.timestep_skew)
    eps = jax.random.normal(k_eps, hq_latent.shape, jnp.float32)

    u = jax.random.uniform(k_aug, (batch,))
    use_pos = u < settings.positive_words
    use_neg = (u >= settings.positive_words) & (
        u < settings.positive_words + settings.negative_words
    )
    if settings.positive_words:
        context = jnp.where(use_pos[:, None, None], positive_context[None], context)
    if settings.negative_words:
        context = jnp.where(use_neg[:, None, None], negative_context[None], context)
        swap = _per_example(use_neg, hq_latent)
        hq_latent, lq_latent = (
            jnp.where(swap, lq_latent, hq_latent),
            jnp.where(swap, hq_latent, lq_latent),
        )

    drop_lq = jax.random.bernoulli(k_lq, settings.lq_dropout, (batch,))
    drop_text = jax.random.bernoulli(k_text, settings.text_dropout, (batch,))
    lq_latent = jnp.where(_per_example(drop_lq, lq_latent), 0.0, lq_latent)
    context = jnp.where(
        drop_text[:, None, None], empty_context[None].astype(context.dtype), context
    )

    x0 = hq_latent.astype(jnp.float32)
    x_t = add_noise(s, x0, eps, t)
    target = training_target(s, x0, eps, t)
    inputs = jnp.concatenate([x_t, lq_latent.astype(jnp.float32)], axis=-1)
    prediction = unet_fn(inputs, t, context).astype(jnp.float32)
    per_example = jnp.mean(
        (prediction - target) ** 2, axis=tuple(range(1, prediction.ndim))
    )
    aux = {
        "per_example_loss": per_example,
        "timesteps": t,
        "lq_dropped": drop_lq,
        "text_dropped": drop_text,
        "negative_swap": use_neg,
    }
    return jnp.mean(per_example), aux

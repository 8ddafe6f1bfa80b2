"""`Restorer`: UniRes inference end to end (image -> latents -> K-expert DDIM -> image).

The prompts are fixed, so their text embeddings are computed once per loaded model; the LQ and
DownLQ latents once per image (`prepare`); sampling is one jitted `lax.scan`. Images larger than
the tile size run as overlapping latent tiles, in the UNet and in the VAE, so memory is bounded
by the tile size.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import time
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.convert.ldm import load_ldm
from unires_jax.diffusion import experts as experts_lib
from unires_jax.diffusion.ddim import (
    ddim_prev_timesteps,
    ddim_settings_from_diffusers_config,
    ddim_timesteps,
    final_alpha_cumprod,
)
from unires_jax.diffusion.schedules import schedule_from_diffusers_config
from unires_jax.models.ldm import LatentDiffusion
from unires_jax.restore import deblur as deblur_lib
from unires_jax.restore import ensemble as ensemble_lib
from unires_jax.restore import sampler
from unires_jax.restore import upscale as upscale_lib
from unires_jax.restore.color import apply_color_fix, color_fix_method
from unires_jax.restore.tiling import tiled_apply

DEFAULT_MODEL_DIR = (
    pathlib.Path(__file__).resolve().parent.parent / "assets" / "default_model"
)


@dataclasses.dataclass(frozen=True)
class RestoreSettings:
    """Inference options (defaults follow the paper: DDIM, eta 0, DownLQ x4, AdaIN on).

    Attributes:
      steps: DDIM steps.
      eta: DDIM eta.
      downlq_factor: the DownLQ condition is the LQ image downscaled by this factor and
        bicubic-upscaled back.
      color_fix: colour correction of the output toward the LQ image: "adain" (the paper's
        per-channel mean/std), "wavelet" (StableSR's: the LQ's low frequencies, which also
        fixes local colour) or "none"; True / False mean "adain" / "none".
      tile: images with a side longer than this many pixels run as overlapping tiles.
      tile_overlap: overlap of neighbouring tiles in pixels.
      max_negative: at most this many negative weights per vector (None: no limit).
      quality_words: add +1 eps(positive words) and -1 eps(negative words) (paper A.7).
      max_pairs_per_call: cap on (weight vector, expert) pairs in one UNet batch; larger
        weight batches are split into chunks.
      ensemble: geometric self-ensemble size (1, 2, 4 or 8): `restore` averages this many
        flipped / rotated restorations, each with its own seed (see `restore/ensemble.py`);
        higher PSNR, smoother texture, `ensemble` times the cost.
      upscale: restore at this many times the input's size (1 to 8): the input is upscaled
        by bicubic interpolation first (see `restore/upscale.py`).
      consistency: with `upscale` > 1, project every output onto the input (its antialiased
        bicubic downscale is exactly the input); off for noisy or compressed small inputs.
      deblur: at the input's size (`upscale` 1), fit a straight-motion or defocus PSF to the
        input and, when the fit is confident, make every output consistent with it: the
        frequencies the blur kept come from the input (see `restore/deblur.py`).
    """

    steps: int = 50
    eta: float = 0.0
    downlq_factor: int = 4
    color_fix: bool | str = True
    tile: int = 512
    tile_overlap: int = 64
    max_negative: int | None = None
    quality_words: bool = False
    max_pairs_per_call: int = 64
    ensemble: int = 1
    upscale: int = 1
    consistency: bool = True
    deblur: bool = True

    def __post_init__(self):
        _check_int("steps", self.steps, 1, MAX_STEPS)
        _check_int("tile", self.tile, 8, None)
        _check_int("tile_overlap", self.tile_overlap, 0, self.tile - 1)
        _check_int("downlq_factor", self.downlq_factor, 1, None)
        _check_int("max_pairs_per_call", self.max_pairs_per_call, 1, None)
        if self.max_negative is not None:
            _check_int("max_negative", self.max_negative, 0, None)
        if not (isinstance(self.eta, (int, float)) and 0 <= self.eta <= 1e3):
            raise ValueError(
                f"eta={self.eta!r}: expected a number >= 0 (0 = deterministic DDIM)"
            )
        object.__setattr__(self, "color_fix", color_fix_method(self.color_fix))
        object.__setattr__(
            self, "ensemble", ensemble_lib.check_ensemble_size(self.ensemble)
        )
        object.__setattr__(self, "upscale", upscale_lib.check_upscale(self.upscale))


# DDIM steps cannot exceed the training timesteps (1000 for every Stable Diffusion schedule).
MAX_STEPS = 1000


def _check_int(name: str, value, lo: int, hi: int | None) -> None:
    """A ValueError naming the setting (and its command-line flag) and the allowed range."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}={value!r} ({flag}): expected a whole number")
    if value < lo or (hi is not None and value > hi):
        allowed = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
        raise ValueError(f"{name}={value} ({flag}): expected a whole number {allowed}")


@dataclasses.dataclass
class PreparedImage:
    """One image's cached conditions: padded pixels and the LQ / DownLQ latents, and the
    consistency with the input every decoded image is given (with `RestoreSettings.upscale`
    the small input's; with `deblur`, the fitted PSF's when the fit was confident)."""

    lq: jax.Array  # [Hp, Wp, 3] in [0, 1], padded
    height: int
    width: int
    conditions: jax.Array  # [C, h, w, c] scaled latents, C = 1 (LQ) or 2 (LQ, DownLQ)
    consistency: upscale_lib.InputConsistency | deblur_lib.BlurConsistency | None = None
    psf: deblur_lib.PsfEstimate | None = None  # the fitted PSF, confident or not

    def finish(self, images: np.ndarray) -> np.ndarray:
        """Decoded images `[N, H, W, 3]` as returned to callers (made consistent with the
        input when there is a consistency)."""
        return images if self.consistency is None else self.consistency.project(images)


def to_float_image(image: Any) -> np.ndarray:
    """[H, W, 3] uint8 / uint16 / float in [0, 1] -> float32 [H, W, 3] in [0, 1]."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"unsupported image dtype {array.dtype}; use uint8, uint16 or float"
        )
    if array.size and (np.nanmin(array) < -1e-3 or np.nanmax(array) > 1 + 1e-3):
        raise ValueError("float images must be in [0, 1]")
    if not np.all(np.isfinite(array)):
        raise ValueError("image contains NaN or infinity")
    return np.clip(array, 0.0, 1.0).astype(np.float32)


class Restorer:
    """UniRes restoration with a weighted mixture of expert noise predictions."""

    def __init__(
        self,
        ldm: LatentDiffusion,
        *,
        experts: Sequence[experts_lib.Expert] = experts_lib.DEFAULT_EXPERTS,
        settings: RestoreSettings = RestoreSettings(),
    ):
        if ldm.lq_channels <= 0:
            raise ValueError(
                f"{ldm.source}: this model's UNet takes no LQ-latent channels, so it is a plain "
                "text-to-image model, not a UniRes model; fine-tune it first (unires train)."
            )
        self.ldm = ldm
        self.settings = settings
        self._given_experts = tuple(experts)
        self._experts = list(experts)
        if settings.quality_words:
            self._experts += list(experts_lib.QUALITY_WORD_EXPERTS)
        self._condition_names = sorted({e.condition for e in self._experts})
        if self._condition_names[0] != experts_lib.CONDITION_LQ:
            self._condition_names.remove(experts_lib.CONDITION_LQ)
            self._condition_names.insert(0, experts_lib.CONDITION_LQ)
        self._expert_condition = np.array(
            [self._condition_names.index(e.condition) for e in self._experts], np.int32
        )
        # Fixed prompts: encoded once per loaded model.
        self._context = ldm.encode_prompts([e.prompt for e in self._experts])
        self._schedule = schedule_from_diffusers_config(ldm.scheduler_config)
        self._ddim = ddim_settings_from_diffusers_config(ldm.scheduler_config)
        levels = len(ldm.unet.cfg.block_out_channels)
        f = int(ldm.vae.cfg.downsample_factor)
        # Pixels per latent-grid cell the UNet needs: the codec's factor, and each level halves.
        self.pad_multiple = f * 2 ** (levels - 1)
        if settings.tile % self.pad_multiple or settings.tile_overlap % f:
            raise ValueError(
                f"tile={settings.tile} must be a multiple of {self.pad_multiple} and "
                f"tile_overlap={settings.tile_overlap} a multiple of {f} for this model"
            )
        self.unet_evaluations = 0
        self._unet_graph, self._unet_state = nnx.split(ldm.unet)
        self._vae_graph, self._vae_state = nnx.split(ldm.vae)
        # Hashable static options of the module-level jitted functions, so every Restorer with
        # the same model shapes and settings shares one compilation.
        self._encode_options = _CodecOptions(
            factor=f,
            scaling=float(ldm.vae.scaling_factor),
            tile=settings.tile,
            overlap=settings.tile_overlap,
            downlq_factor=settings.downlq_factor,
        )
        self._sample_options = _SampleOptions(
            expert_condition=tuple(int(c) for c in self._expert_condition),
            latent_tile=settings.tile // f,
            latent_overlap=settings.tile_overlap // f,
            eta=float(settings.eta),
            set_alpha_to_one=bool(self._ddim.set_alpha_to_one),
        )

    @classmethod
    def load(
        cls,
        checkpoint_dir: str | pathlib.Path | None = None,
        *,
        dtype: Any = jnp.float32,
        attention: str | None = None,
        **settings,
    ) -> Restorer:
        """Loads a UniRes checkpoint; None means the embedded default model.

        `dtype` and `attention` are `load_ldm`'s (None: the fastest correct attention on this
        backend); `settings` override the checkpoint's stored `RestoreSettings`.
        """
        if checkpoint_dir is None:
            checkpoint_dir = DEFAULT_MODEL_DIR
            if not checkpoint_dir.is_dir():
                raise FileNotFoundError(
                    f"{checkpoint_dir}: the embedded default UniRes model is not in this "
                    "installation. Pass --checkpoint DIR (a UniRes checkpoint written by "
                    "`unires train` / `unires convert`)."
                )
        ldm = load_ldm(checkpoint_dir, dtype=jnp.dtype(dtype), attention=attention)
        return cls.from_ldm(ldm, **settings)

    @classmethod
    def from_ldm(cls, ldm: LatentDiffusion, **settings) -> Restorer:
        """A Restorer with the experts and settings stored with the model (`settings` override
        them)."""
        experts = tuple(
            experts_lib.Expert(**e) for e in ldm.extra.get("experts", [])
        ) or (experts_lib.DEFAULT_EXPERTS)
        defaults = dict(ldm.extra.get("settings", {}))
        defaults.update(settings)
        return cls(ldm, experts=experts, settings=RestoreSettings(**defaults))

    def with_settings(self, **changes) -> Restorer:
        """The same model and experts with some settings changed (e.g. `upscale=4`)."""
        return Restorer(
            self.ldm,
            experts=self._given_experts,
            settings=dataclasses.replace(self.settings, **changes),
        )

    @property
    def unet_record(self) -> dict[str, str]:
        """How the UNet runs (`--dtype`, `--attention`), for sidecars: both change the floats."""
        cfg = self.ldm.unet.cfg
        return {"dtype": jnp.dtype(cfg.dtype).name, "attention": cfg.attention}

    @property
    def experts(self) -> list[str]:
        """Expert names in weight order (the quality-word experts are not user weights)."""
        return [
            e.name
            for e in self._experts
            if e.name not in experts_lib.QUALITY_WORD_WEIGHTS
        ]

    # --- conditions --------------------------------------------------------------------------

    def prepare(self, image: Any) -> PreparedImage:
        """Pads the image and encodes the LQ (and, if used, DownLQ) latents once (after
        upscaling it, with `settings.upscale` > 1; at the input's size, with `settings.deblur`,
        the blur PSF is fitted to it first)."""
        lq = to_float_image(image)
        consistency = psf = None
        factor = self.settings.upscale
        if factor > 1:
            if self.settings.consistency:
                consistency = upscale_lib.InputConsistency.of(lq, factor)
            lq = upscale_lib.upscale_input(lq, factor)
        elif self.settings.deblur:
            psf, consistency = deblur_lib.estimate_consistency(lq)
        height, width = lq.shape[:2]
        m = self.pad_multiple
        padded = np.pad(lq, ((0, -height % m), (0, -width % m), (0, 0)), mode="edge")
        want_downlq = experts_lib.CONDITION_DOWNLQ in self._condition_names
        conditions = _encode_conditions(
            self._vae_graph,
            self._vae_state,
            jnp.asarray(padded),
            options=self._encode_options,
            want_downlq=want_downlq,
            height=height,
            width=width,
        )
        return PreparedImage(
            jnp.asarray(padded), height, width, conditions, consistency, psf
        )

    # --- sampling ----------------------------------------------------------------------------

    def timesteps(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """The DDIM timesteps of a `steps`-step run and the timestep each one steps to."""
        n_train = self._schedule.num_train_timesteps
        ts = ddim_timesteps(
            n_train, steps, self._ddim.timestep_spacing, self._ddim.steps_offset
        )
        return ts, ddim_prev_timesteps(ts, n_train)

    def initial_noise(self, prepared: PreparedImage, seed: int) -> jax.Array:
        """x_T [1, h, w, c] for a seed (shared by every weight vector)."""
        h, w, c = prepared.conditions.shape[1:]
        return jax.random.normal(jax.random.key(seed), (1, h, w, c), jnp.float32)

    def weights_matrix(self, weights) -> np.ndarray:
        """Validated `[N, K]` weights (dict, `[K]` or `[N, K]`) with quality words appended."""
        matrix = experts_lib.weights_matrix(
            weights, self.experts, max_negative=self.settings.max_negative
        )
        if self.settings.quality_words:
            extra = np.array(
                list(experts_lib.QUALITY_WORD_WEIGHTS.values()), np.float32
            )
            matrix = np.concatenate(
                [matrix, np.broadcast_to(extra, (len(matrix), extra.size))], 1
            )
        return matrix

    def sample_latents(
        self,
        prepared: PreparedImage,
        weights: np.ndarray,
        *,
        steps: int | None = None,
        seed: int = 0,
        x: jax.Array | None = None,
        start: int = 0,
        stop: int | None = None,
        return_x0: bool = False,
    ):
        """Runs DDIM steps [start, stop) for the full `[N, K]` weight matrix (validated).

        `x` defaults to the seed's shared noise; pass the latents a previous call returned to
        continue a run (used by the successive-halving search). Returns latents `[N, h, w, c]`
        (and the last x0 prediction).
        """
        steps = steps or self.settings.steps
        ts, prev = self.timesteps(steps)
        stop = steps if stop is None else stop
        x = (
            self.initial_noise(prepared, seed)
            if x is None
            else jnp.asarray(x, jnp.float32)
        )
        weights = np.asarray(weights, np.float32)
        outs, x0s = [], []
        for chunk in self._chunks(weights):
            x_chunk = x if x.shape[0] == 1 else x[chunk]
            pairs = sampler.expert_pairs(weights[chunk])
            result = _sample(
                self._unet_graph,
                self._sample_options,
                self._schedule,
                self._unet_state,
                prepared.conditions,
                self._context,
                x_chunk,
                jnp.asarray(weights[chunk]),
                pairs,
                jnp.asarray(ts),
                jnp.asarray(prev),
                seed,
                start=start,
                stop=stop,
            )
            self.unet_evaluations += sampler.unet_evaluations(
                pairs, start=start, stop=stop, shared_start=x_chunk.shape[0] == 1
            )
            outs.append(result[0])
            x0s.append(result[1])
        latents = jnp.concatenate(outs)
        return (latents, jnp.concatenate(x0s)) if return_x0 else latents

    def _chunks(self, weights: np.ndarray) -> list[slice]:
        per_vector = max(1, int(np.count_nonzero(weights, axis=1).max()))
        size = max(1, self.settings.max_pairs_per_call // per_vector)
        return [
            slice(i, min(i + size, len(weights))) for i in range(0, len(weights), size)
        ]

    # --- decoding ----------------------------------------------------------------------------

    def decode(
        self,
        prepared: PreparedImage,
        latents: jax.Array,
        *,
        color_fix: bool | str | None = None,
    ) -> np.ndarray:
        """Latents `[N, h, w, c]` -> images `[N, H, W, 3]` float32 in [0, 1], colour-corrected
        (`color_fix`: as RestoreSettings.color_fix; None: the settings') and, when upscaling,
        projected onto the input."""
        color_fix = color_fix_method(
            self.settings.color_fix if color_fix is None else color_fix
        )
        out = [
            _decode_one(
                self._vae_graph,
                self._vae_state,
                latents[i],
                prepared.lq,
                options=self._encode_options,
                color_fix=color_fix,
                height=prepared.height,
                width=prepared.width,
            )
            for i in range(latents.shape[0])
        ]
        return prepared.finish(np.stack([np.asarray(o) for o in out]))

    def program_parts(self) -> ProgramParts:
        """The pieces this Restorer's jitted sampler runs on, for programs that must sample
        exactly as it does (the weight search's sharded programs)."""
        return ProgramParts(
            unet_graph=self._unet_graph,
            unet_state=self._unet_state,
            vae_graph=self._vae_graph,
            vae_state=self._vae_state,
            context=self._context,
            schedule=self._schedule,
            sample_options=self._sample_options,
            codec_options=self._encode_options,
        )

    # --- the public one-call API --------------------------------------------------------------

    def restore(
        self,
        image: Any,
        weights: Mapping[str, float] | Sequence[float] | np.ndarray,
        *,
        steps: int | None = None,
        seed: int = 0,
        color_fix: bool | str | None = None,
    ) -> np.ndarray:
        """Restores one image with one (`[K]` or dict) or many (`[N, K]`) weight vectors.

        With `settings.ensemble` = E > 1 the result is the mean of E restorations of flipped /
        rotated copies of the image, copy i sampled with seed `seed + i` (copy 0 is the plain
        restoration).

        Returns float32 `[H, W, 3]` (one vector) or `[N, H, W, 3]` in [0, 1], `settings.upscale`
        times the input's size.
        """
        return self._restore(
            image, weights, steps=steps, seed=seed, color_fix=color_fix
        )[0]

    def _restore(self, image, weights, *, steps, seed, color_fix, first_copy=None):
        """`restore`'s images and the PreparedImage of the plain (untransformed) copy.

        `first_copy`: the plain copy's restoration `[H, W, 3]` when the caller already has it (a
        weight search's chosen image): it is not sampled again.
        """
        batched = np.ndim(weights) == 2
        matrix = self.weights_matrix(weights)
        if first_copy is not None and (batched or len(matrix) != 1):
            raise ValueError("first_copy goes with one weight vector")
        pixels = to_float_image(image)
        total = plain = None
        for index in range(self.settings.ensemble):
            copy = np.ascontiguousarray(ensemble_lib.transform(pixels, index))
            prepared = self.prepare(copy)
            if index == 0:
                plain = prepared
            if index == 0 and first_copy is not None:
                back = np.asarray(first_copy, np.float32)[None]
            else:
                latents = self.sample_latents(
                    prepared, matrix, steps=steps, seed=seed + index
                )
                images = self.decode(prepared, latents, color_fix=color_fix)
                back = np.stack(
                    [ensemble_lib.inverse_transform(x, index) for x in images]
                )
            total = back if total is None else total + back
        images = total / np.float32(self.settings.ensemble)
        return (images if batched else images[0]), plain

    def timed_restore(
        self, image, weights, *, steps=None, seed=0, color_fix=None, first_copy=None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """`restore` plus wall-clock seconds, UNet evaluations spent and, when a PSF was fitted,
        what deblurring found (for sidecars and logs). `first_copy`: see `_restore`."""
        before = self.unet_evaluations
        t0 = time.perf_counter()
        out, prepared = self._restore(
            image,
            weights,
            steps=steps,
            seed=seed,
            color_fix=color_fix,
            first_copy=first_copy,
        )
        info: dict[str, Any] = {
            "seconds": time.perf_counter() - t0,
            "unet_evaluations": self.unet_evaluations - before,
        }
        if prepared.psf is not None:
            info["deblur"] = deblur_lib.psf_record(prepared.psf)
        return out, info


# --- jitted computations (module level: compiled once per model shape and options) -----------


@dataclasses.dataclass(frozen=True)
class _CodecOptions:
    factor: int
    scaling: float
    tile: int
    overlap: int
    downlq_factor: int


@dataclasses.dataclass(frozen=True)
class _SampleOptions:
    expert_condition: tuple[int, ...]
    latent_tile: int
    latent_overlap: int
    eta: float
    set_alpha_to_one: bool


@dataclasses.dataclass(frozen=True)
class ProgramParts:
    """What a Restorer's jitted sampler runs on: the split modules, the encoded expert prompts
    `[K, L, D]`, the noise schedule, and the hashable static options (one compilation each)."""

    unet_graph: Any
    unet_state: Any
    vae_graph: Any
    vae_state: Any
    context: jax.Array
    schedule: Any
    sample_options: _SampleOptions
    codec_options: _CodecOptions


def _downlq(padded: jax.Array, height: int, width: int, factor: int) -> jax.Array:
    """The LQ image downscaled by `factor` and bicubic-upscaled back (on the unpadded region,
    then re-padded, so padding does not bleed into the content)."""
    content = padded[:height, :width]
    small = (max(1, round(height / factor)), max(1, round(width / factor)))
    down = jax.image.resize(content, small + (3,), "bicubic", antialias=True)
    up = jnp.clip(jax.image.resize(down, (height, width, 3), "bicubic"), 0.0, 1.0)
    return jnp.pad(
        up,
        ((0, padded.shape[0] - height), (0, padded.shape[1] - width), (0, 0)),
        mode="edge",
    )


def _encode(vae, image: jax.Array, options: _CodecOptions) -> jax.Array:
    """[Hp, Wp, 3] in [0, 1] -> scaled latent mean [h, w, c], tiled for big images."""
    x = image[None] * 2.0 - 1.0

    def enc(tile):
        mean, _ = vae.encode(tile)
        return mean

    if max(x.shape[1:3]) > options.tile:
        mean = tiled_apply(
            enc, x, options.tile, options.overlap, scale=Fraction(1, options.factor)
        )
    else:
        mean = enc(x)
    return mean[0].astype(jnp.float32) * options.scaling


@functools.partial(
    jax.jit, static_argnames=("vae_graph", "options", "want_downlq", "height", "width")
)
def _encode_conditions(
    vae_graph, vae_state, padded, *, options, want_downlq, height, width
):
    vae = nnx.merge(vae_graph, vae_state)
    images = [padded]
    if want_downlq:
        images.append(_downlq(padded, height, width, options.downlq_factor))
    return jnp.stack([_encode(vae, img, options) for img in images])


def conditioned_eps_fn(
    unet, options: _SampleOptions, conditions: jax.Array, context: jax.Array
):
    """eps(x_t [B, h, w, c], t [B], k [B]) of expert k on its condition latent, tiled when large.

    Shared by the Restorer's sampler and the weight search's sharded programs, so both compute
    the very same prediction.
    """
    expert_condition = jnp.asarray(options.expert_condition, jnp.int32)

    def eps_fn(x_t, t, k):
        cond = conditions[expert_condition[k]]
        inputs = jnp.concatenate([x_t, cond.astype(x_t.dtype)], axis=-1)
        ctx = context[k]
        if max(inputs.shape[1:3]) > options.latent_tile:
            return tiled_apply(
                lambda tile: unet(tile, t, ctx),
                inputs,
                options.latent_tile,
                options.latent_overlap,
            )
        return unet(inputs, t, ctx)

    return eps_fn


def decode_latents(
    vae,
    latents: jax.Array,
    lq: jax.Array,
    *,
    options: _CodecOptions,
    color_fix: str,
    height: int,
    width: int,
) -> jax.Array:
    """Scaled latents [B, h, w, c] -> images [B, height, width, 3] in [0, 1].

    VAE decoding (tiled when large), crop of the padding, and the colour fix `color_fix`
    ("adain", "wavelet" or "none") toward the padded LQ image `lq` [Hp, Wp, 3]. Shared by the
    Restorer and the weight search.
    """
    z = latents / options.scaling
    f = options.factor
    tile, overlap = options.tile // f, options.overlap // f
    if max(z.shape[1:3]) > tile:
        image = tiled_apply(vae.decode, z, tile, overlap, scale=f)
    else:
        image = vae.decode(z)
    image = jnp.clip((image.astype(jnp.float32) + 1.0) / 2.0, 0.0, 1.0)
    image = image[:, :height, :width]
    reference = jnp.broadcast_to(lq[:height, :width], image.shape)
    return apply_color_fix(image, reference, color_fix)


@functools.partial(jax.jit, static_argnames=("unet_graph", "options", "start", "stop"))
def _sample(
    unet_graph,
    options,
    schedule,
    unet_state,
    conditions,
    context,
    x,
    weights,
    pairs,
    ts,
    prev,
    seed,
    *,
    start,
    stop,
):
    unet = nnx.merge(unet_graph, unet_state)
    return sampler.combined_ddim(
        conditioned_eps_fn(unet, options, conditions, context),
        x,
        weights,
        pairs,
        schedule,
        ts,
        prev,
        final_alpha_cumprod=final_alpha_cumprod(schedule, options.set_alpha_to_one),
        eta=options.eta,
        rng=jax.random.key(seed) if options.eta else None,
        start=start,
        stop=stop,
        return_x0=True,
    )


@functools.partial(
    jax.jit, static_argnames=("vae_graph", "options", "color_fix", "height", "width")
)
def _decode_one(vae_graph, vae_state, latent, lq, *, options, color_fix, height, width):
    vae = nnx.merge(vae_graph, vae_state)
    return decode_latents(
        vae,
        latent[None],
        lq,
        options=options,
        color_fix=color_fix,
        height=height,
        width=width,
    )[0]

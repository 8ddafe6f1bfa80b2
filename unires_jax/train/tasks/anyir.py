"""The AnyIR Task: one all-in-one network trained on a mixture of degradations, no prompts.

The loss is the released code's (`train.py`, `utils/loss_utils.py` `FFTLoss`):
L1(restored, HQ) + w * L1(stack(Re, Im) of rfft2(restored), same of rfft2(HQ)), the transform
over H and W per channel, unnormalised (torch's default "backward" norm), w =
`task.fft_loss_weight` (0.1 released; 0 gives the paper's plain L1). The network sees the LQ
image in [0, 1] and returns LQ + its residual (not clipped, as in the official training).
BatchNorm runs in training mode in `loss_fn` (batch statistics; the running ones are updated and
kept by the trainer in its non-parameter state) and in inference mode in `eval`. v1's drop-path
draws from the step's key.

Data: the pipeline's task ids are ignored by the network; they only pick each example's source
and degradation. Paired sources (Rain100L, GoPro, LOL, a dehazing training set) give LQ images;
the denoising tasks "denoise15", "denoise25", "denoise50" add Gaussian noise of that sigma (on
the 0..255 scale, clipped, as the official `Degradation.single_degrade`) to clean photos.

Config keys read (defaults in configs/anyir_released.py, configs/anyir_paper.py,
configs/anyir_tiny.py):
  model: `AnyIRConfig` fields.
  task.fft_loss_weight: w above.
  task.restore: inference settings stored at export (`AnyIRSettings` fields: tile, tile_overlap).
  task.eval_sources: source spec of the eval iterator's every data task ("" = the training
    sources, drawn with another seed).
  task.epochs: the epoch count the schedule was derived from (recorded at export).
  data: the grain pipeline section (`unires_jax.data.pipeline.default_config()` keys).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from unires_jax.convert.config_io import config_from_dict
from unires_jax.models.anyir import AnyIR, AnyIRConfig
from unires_jax.quality.fidelity import psnr
from unires_jax.train.tasks.data_options import iterator_options

# The denoising tasks of the official mixture and their Gaussian sigma (0..255).
DENOISE_SIGMAS = {"denoise15": 15.0, "denoise25": 25.0, "denoise50": 50.0}


def gaussian_noise(
    sigma: float, hq: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """HQ [H, W, 3] in [0, 1] + N(0, (sigma/255)^2), clipped to [0, 1] (module level: picklable)."""
    from unires_jax.data.degradations.noise import add_gaussian_noise

    return add_gaussian_noise(hq, sigma, False, rng)


DEGRADATIONS = {
    task: functools.partial(gaussian_noise, sigma)
    for task, sigma in DENOISE_SIGMAS.items()
}


def fft_l1(restored: jax.Array, target: jax.Array) -> jax.Array:
    """Mean |rfft2(restored) - rfft2(target)| over the stacked real and imaginary parts.

    Args:
      restored, target: [B, H, W, C]; the transform runs over H and W, in float32.
    """
    if restored.shape != target.shape:
        raise ValueError(f"fft_l1: shapes differ: {restored.shape} vs {target.shape}")
    diff = jnp.fft.rfft2(restored.astype(jnp.float32), axes=(1, 2)) - jnp.fft.rfft2(
        target.astype(jnp.float32), axes=(1, 2)
    )
    return 0.5 * (jnp.mean(jnp.abs(diff.real)) + jnp.mean(jnp.abs(diff.imag)))


def anyir_loss(
    restored: jax.Array, target: jax.Array, fft_weight: float
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The released objective: L1 + fft_weight * `fft_l1`; ([], {"l1", "fft_l1"})."""
    l1 = jnp.mean(jnp.abs(restored.astype(jnp.float32) - target.astype(jnp.float32)))
    aux = {"l1": l1}
    if fft_weight == 0.0:  # the paper's recipe: no transform computed
        return l1, aux
    aux["fft_l1"] = fft_l1(restored, target)
    return l1 + fft_weight * aux["fft_l1"], aux


class AnyIRTask:
    """Task protocol implementation for AnyIR (see unires_jax/train/task.py)."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        self.model_cfg = config_from_dict(
            AnyIRConfig, dict(config.model), source="config.model"
        )
        # The trainer casts the weights to the compute dtype; the layers compute in their own.
        compute_dtype = jnp.dtype(config.precision.compute_dtype)
        self.train_cfg = dataclasses.replace(self.model_cfg, dtype=compute_dtype)
        self.fft_weight = float(config.task.fft_loss_weight)
        if self.fft_weight < 0:
            raise ValueError(
                f"config.task.fft_loss_weight={self.fft_weight}: must be >= 0"
            )

    # --- Task protocol ---------------------------------------------------------------------

    def init(self, rngs: nnx.Rngs) -> AnyIR:
        return AnyIR(
            self.train_cfg, rngs=rngs
        )  # training mode: BatchNorm on batch statistics

    def _forward(self, model: AnyIR, lq: jax.Array, rng: jax.Array | None) -> jax.Array:
        key = rng if self.model_cfg.version == "v1" else None
        return model(lq.astype(self.train_cfg.dtype), dropout_key=key).astype(
            jnp.float32
        )

    def loss_fn(self, model: AnyIR, batch, rng):
        model.train()
        restored = self._forward(model, batch["lq"], rng)
        return anyir_loss(restored, batch["hq"], self.fft_weight)

    def eval(self, model: AnyIR, batch):
        model.eval()  # BatchNorm on its running statistics, no drop-path
        hq = batch["hq"].astype(jnp.float32)
        lq = batch["lq"].astype(jnp.float32)
        restored = self._forward(model, lq, None)
        loss, _ = anyir_loss(restored, hq, self.fft_weight)
        out_psnr = jnp.mean(psnr(hq, jnp.clip(restored, 0.0, 1.0)))
        lq_psnr = jnp.mean(psnr(hq, lq))
        return {
            "loss": loss,
            "psnr": out_psnr,
            "psnr_lq": lq_psnr,
            "psnr_gain": out_psnr - lq_psnr,
        }

    # --- data ------------------------------------------------------------------------------

    def _data_config(self, config, *, batch_size: int, seed: int):
        data = ml_collections.ConfigDict(config.data.to_dict())
        data.batch_size = batch_size
        data.seed = seed
        empty = [t for t in data.tasks if not data.sources.get(t)]
        if empty:
            raise KeyError(
                f"config.data.sources gives no source for {empty}: give each task a built "
                "dataset as --config.data.sources.TASK=NAME:SPLIT (the configs' defaults: "
                "configs/anyir_released.py; dehazing: `unires data build reside_ots`, then "
                "reside_ots:train), or drop the task"
            )
        return data

    def make_train_iterator(self, config, process_index: int, process_count: int):
        from unires_jax.data.pipeline import make_train_iterator

        data = self._data_config(config, **iterator_options(config, evaluation=False))
        return make_train_iterator(
            data,
            process_index=process_index,
            process_count=process_count,
            degradations=DEGRADATIONS,
        )

    def make_eval_iterator(self, config, process_index: int, process_count: int):
        """Eval batches of one forward pass (the microbatch size), drawn with another seed."""
        from unires_jax.data import sources as sources_lib
        from unires_jax.data.pipeline import make_train_iterator

        data = self._data_config(config, **iterator_options(config, evaluation=True))
        spec = config.task.eval_sources
        sources = None
        if spec:
            source = sources_lib.open_sources(spec, data_dir=data.data_dir or None)
            sources = {task: source for task in data.tasks}
        return make_train_iterator(
            data,
            process_index=process_index,
            process_count=process_count,
            degradations=DEGRADATIONS,
            sources=sources,
        )

    # --- export ----------------------------------------------------------------------------

    def to_model(self, state: dict, *, use_ema: bool = True) -> AnyIR:
        """The float32 inference model of a trainer state (RunResult.state or a checkpoint)."""
        from unires_jax.convert.anyir import model_from_train_state

        return model_from_train_state(self.model_cfg, state, use_ema=use_ema)

    def export(self, state: dict, dst) -> None:
        """Writes the EMA weights and BatchNorm statistics of a trainer state as an "anyir"
        checkpoint at `dst`, with the `task.restore` settings (`unires_jax.restore.load`)."""
        from unires_jax.convert.anyir import save_anyir

        extra = {"trained_by": "unires train", "epochs": float(self.config.task.epochs)}
        if "step" in state:
            extra["steps"] = int(jax.device_get(state["step"]))
        save_anyir(
            self.to_model(state),
            self.model_cfg,
            dst,
            settings=dict(self.config.task.restore),
            extra=extra,
        )

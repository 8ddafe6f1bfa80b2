"""The residual-diffusion Task (FoundIR / DiffUIR): train the DiffUIR UNet to predict LQ - HQ.

The objective is the official one (`ResidualDiffusion.p_losses`, objective "pred_res", L1):
images in [-1, 1]; t ~ U{0, ..., T-1}; I_t = `add_noise(HQ, LQ, eps, t)`; the UNet sees
concat(I_t, LQ) and the continuous time alpha_bar[t] * T and predicts R = LQ - HQ; the loss is
the L1 distance to the true residual (`unires_jax.diffusion.residual`). The family has no
prompts: the data pipeline's task ids are ignored, except to pick which FoundIR degradation
groups feed each data task (the incremental stages of configs/residual_foundir.py).

Config keys read (defaults in configs/residual_tiny.py and configs/residual_foundir.py):
  model: `DiffUIRConfig` fields (`config_io.config_fields(tiny_diffuir())`).
  task.schedule: `residual_schedule` arguments (num_steps, delta_end).
  task.restore: inference settings stored at export and used by `eval` / `sample_images`
    (steps, start_scale, tile, tile_overlap, blend: `ResidualSettings` fields).
  task.groups: data task -> tuple of FoundIR degradation folders (e.g. "01Blur") whose records
    it reads; a data task not named reads all of its sources' records.
  task.eval_sources: source spec of the eval iterator's every data task ("" = the training
    sources, drawn with another seed).
  task.sample_crop: side of the held-out photo crops restored for the PNG sample grid.
  data: the grain pipeline section (`unires_jax.data.pipeline.default_config()` keys).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from unires_jax.convert.config_io import config_from_dict
from unires_jax.diffusion import residual as residual_lib
from unires_jax.models.diffuir import DiffUIRConfig, DiffUIRUNet
from unires_jax.quality.fidelity import psnr
from unires_jax.train.tasks.data_options import iterator_options

_log = logging.getLogger(__name__)

# Degradations applied to the held-out sample photos for the PNG grid (one per row).
_SAMPLE_DEGRADATIONS = ("noise25", "motion", "defocus")


class ResidualTask:
    """Task protocol implementation for residual diffusion (see unires_jax/train/task.py)."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        self.model_cfg = config_from_dict(
            DiffUIRConfig, dict(config.model), source="config.model"
        )
        # As in the UniRes task: the trainer casts the weights to the compute dtype, but a flax
        # layer computes in its own `dtype` and would promote bfloat16 weights back to float32
        # activations, so the trained UNet is built in the compute dtype (float32 master
        # weights are `param_dtype`'s; exports store float32).
        compute_dtype = jnp.dtype(config.precision.compute_dtype)
        self.train_cfg = dataclasses.replace(self.model_cfg, dtype=compute_dtype)
        self.schedule = residual_lib.residual_schedule(**dict(config.task.schedule))
        self.sample_steps = int(config.task.restore.steps)
        self.start_scale = float(config.task.restore.start_scale)

    # --- Task protocol ---------------------------------------------------------------------

    def init(self, rngs: nnx.Rngs) -> DiffUIRUNet:
        return DiffUIRUNet(self.train_cfg, rngs=rngs)

    def _loss(self, model: DiffUIRUNet, batch, rng) -> jax.Array:
        hq = batch["hq"].astype(jnp.float32) * 2.0 - 1.0
        lq = batch["lq"].astype(jnp.float32) * 2.0 - 1.0
        k_t, k_eps = jax.random.split(rng)
        t = jax.random.randint(k_t, (hq.shape[0],), 0, self.schedule.num_steps)
        eps = jax.random.normal(k_eps, hq.shape, jnp.float32)
        x_t = residual_lib.add_noise(self.schedule, hq, lq, eps, t)
        x_in = residual_lib.network_input(x_t, lq).astype(self.train_cfg.dtype)
        predicted = model(x_in, residual_lib.time_input(self.schedule, t))
        return residual_lib.residual_loss(predicted, hq, lq)

    def loss_fn(self, model: DiffUIRUNet, batch, rng):
        loss = self._loss(model, batch, rng)
        return loss, {"l1": loss}

    def restore_batch(
        self, model: DiffUIRUNet, lq: jax.Array, rng: jax.Array
    ) -> jax.Array:
        """The sampler of `task.restore` on [B, H, W, 3] LQ in [0, 1] -> [B, H, W, 3] in [0, 1]."""
        lq = lq.astype(jnp.float32) * 2.0 - 1.0
        dtype = self.train_cfg.dtype
        out = residual_lib.sample(
            lambda x, time: model(x.astype(dtype), time),
            lq,
            self.schedule,
            noise=jax.random.normal(rng, lq.shape, jnp.float32),
            steps=self.sample_steps,
            start_scale=self.start_scale,
        )
        return (out + 1.0) / 2.0

    def eval(self, model: DiffUIRUNet, batch):
        # Fixed keys, so successive evaluations of the same batch are comparable.
        loss = self._loss(model, batch, jax.random.key(0))
        hq = batch["hq"].astype(jnp.float32)
        lq = batch["lq"].astype(jnp.float32)
        restored = self.restore_batch(model, lq, jax.random.key(1))
        out_psnr = jnp.mean(psnr(hq, restored))
        lq_psnr = jnp.mean(psnr(hq, lq))
        return {
            "loss": loss,
            "psnr": out_psnr,
            "psnr_lq": lq_psnr,
            "psnr_gain": out_psnr - lq_psnr,
        }

    def sample_images(self, model: DiffUIRUNet, rng: jax.Array) -> jax.Array:
        """Rows of (LQ, restored, HQ) for held-out photo crops, one degradation per row."""
        lq, hq = _sample_inputs(int(self.config.task.sample_crop))
        restored = self.restore_batch(model, jnp.asarray(lq), rng)
        rows = jnp.stack([jnp.asarray(lq), restored, jnp.asarray(hq)], axis=1)
        return rows.reshape((-1,) + rows.shape[2:])

    # --- data ------------------------------------------------------------------------------

    def _data_config(self, config, *, batch_size: int, seed: int):
        data = ml_collections.ConfigDict(config.data.to_dict())
        data.batch_size = batch_size
        data.seed = seed
        return data

    def _sources(self, data, spec_for_task):
        """Opened sources per data task, restricted to `task.groups` where it names the task."""
        from unires_jax.data import sources as sources_lib

        groups = dict(self.config.task.groups)
        unknown = sorted(set(groups) - set(data.tasks))
        if unknown:
            raise KeyError(
                f"config.task.groups names {unknown}, which are not data tasks "
                f"(config.data.tasks = {tuple(data.tasks)})"
            )
        opened = {}
        out = {}
        for task in data.tasks:
            spec = spec_for_task(task)
            if spec not in opened:
                opened[spec] = sources_lib.open_sources(
                    spec, data_dir=data.data_dir or None
                )
            source = opened[spec]
            if task in groups:
                source = GroupSubset(
                    source, tuple(groups[task]), spec=spec, data_dir=data.data_dir
                )
            out[task] = source
        return out

    def make_train_iterator(self, config, process_index: int, process_count: int):
        from unires_jax.data.pipeline import make_train_iterator

        data = self._data_config(config, **iterator_options(config, evaluation=False))
        return make_train_iterator(
            data,
            process_index=process_index,
            process_count=process_count,
            sources=self._sources(data, lambda task: data.sources[task]),
        )

    def make_eval_iterator(self, config, process_index: int, process_count: int):
        """Eval batches of one forward pass (the microbatch size), drawn with another seed."""
        from unires_jax.data.pipeline import make_train_iterator

        data = self._data_config(config, **iterator_options(config, evaluation=True))
        spec = config.task.eval_sources
        return make_train_iterator(
            data,
            process_index=process_index,
            process_count=process_count,
            sources=self._sources(
                data, lambda task: spec if spec else data.sources[task]
            ),
        )

    # --- export ----------------------------------------------------------------------------

    def to_unet(self, state: dict, *, use_ema: bool = True) -> DiffUIRUNet:
        """The float32 inference UNet of a trainer state (RunResult.state or a checkpoint)."""
        trained = jax.device_get(state["ema"] if use_ema else state["params"])
        model = nnx.eval_shape(lambda: DiffUIRUNet(self.model_cfg, rngs=nnx.Rngs(0)))
        params = nnx.state(model, nnx.Param)
        params.replace_by_pure_dict(
            jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), trained)
        )
        nnx.update(model, params)
        return model

    def export(self, state: dict, dst) -> None:
        """Writes the EMA UNet of a trainer state as a "residual" checkpoint at `dst` (the Task
        protocol's optional export hook), with the `task.restore` inference settings and the
        schedule, as `unires_jax.restore.load` reads them."""
        from unires_jax.convert.foundir import save_foundir

        extra = {"trained_by": "unires train"}
        if "step" in state:
            extra["steps"] = int(jax.device_get(state["step"]))
        save_foundir(
            self.to_unet(state),
            self.model_cfg,
            dst,
            settings=dict(self.config.task.restore),
            schedule=dict(self.config.task.schedule),
            extra=extra,
        )


def _sample_inputs(crop: int) -> tuple[np.ndarray, np.ndarray]:
    """(LQ, HQ) [N, crop, crop, 3] in [0, 1]: centre crops of the held-out sample photos, each
    with the next of `_SAMPLE_DEGRADATIONS` (fixed seeds)."""
    from unires_jax.data.degradations import fixed_degradation
    from unires_jax.data.sample_photos import load_sample_photos

    photos = list(load_sample_photos("heldout").values())
    lq, hq = [], []
    for i, name in enumerate(_SAMPLE_DEGRADATIONS):
        image = photos[i % len(photos)]
        h, w = image.shape[:2]
        if min(h, w) < crop:
            raise ValueError(
                f"config.task.sample_crop={crop} is larger than a held-out photo ({h}x{w})"
            )
        top, left = (h - crop) // 2, (w - crop) // 2
        clean = image[top : top + crop, left : left + crop].astype(np.float32) / 255.0
        degraded = fixed_degradation(name, clean, np.random.default_rng(i))
        lq.append(np.clip(degraded, 0.0, 1.0))
        hq.append(clean)
    return np.stack(lq).astype(np.float32), np.stack(hq).astype(np.float32)


class GroupSubset:
    """The records of a source whose "group" is one of `groups` (FoundIR: `NN<Type>` folders).

    A record's group is its folder path as built (`train/01Blur`); a name matches its last
    part. Finding the records reads every record's group once: for a built dataset with the
    images left encoded, and cached in the dataset's folder (`groups-<split>.json`) when it is
    writable, since on FoundIR's million pairs the pass reads the whole split.

    Args:
      source: a random-access source (`__len__`, `__getitem__` -> dict with "group").
      groups: the group names to keep.
      spec: the source spec it was opened from (for the cache and error messages).
      data_dir: where built datasets live ("" = the TFDS default).
    """

    def __init__(self, source, groups: tuple[str, ...], *, spec: str = "", data_dir=""):
        if not groups:
            raise ValueError(f"{spec}: config.task.groups gives an empty group list")
        self._source = source
        names = _record_groups(source, spec, data_dir)
        keep = set(groups)
        self._indices = np.asarray(
            [i for i, g in enumerate(names) if g.rsplit("/", 1)[-1] in keep], np.int64
        )
        found = {g.rsplit("/", 1)[-1] for g in names}
        missing = sorted(keep - found)
        if missing:
            raise KeyError(
                f"{spec}: no records in group(s) {missing}; the source has {sorted(found)}. "
                "Check config.task.groups against the dataset's NN<Type> folders."
            )

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, index: int):
        return self._source[int(self._indices[index])]

    def __repr__(self) -> str:
        return f"GroupSubset({len(self)} of {len(self._source)} records)"


def _record_groups(source, spec: str, data_dir) -> list[str]:
    """The "group" of every record of `source`, without decoding images where it can."""
    kind, _, split = spec.partition(":")
    built = bool(split) and "," not in spec and "@" not in spec
    if built and kind not in ("sample_photos", "photos", "dead_leaves", "folder"):
        return _built_groups(kind, split, data_dir)
    return [_text(source[i].get("group", b"")) for i in range(len(source))]


def _built_groups(name: str, split: str, data_dir) -> list[str]:
    import tensorflow_datasets as tfds

    from unires_jax.data.builders.catalog import get_builder

    builder = get_builder(name, data_dir=data_dir or None)
    cache = pathlib.Path(builder.data_dir) / f"groups-{split}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    skip = {
        key: tfds.decode.SkipDecoding()
        for key in ("hq", "lq")
        if key in builder.info.features
    }
    raw = builder.as_data_source(split=split, decoders=skip)
    groups = [_text(raw[i]["group"]) for i in range(len(raw))]
    try:
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(groups))
        os.replace(tmp, cache)
    except OSError as e:
        _log.warning(
            "%s: cannot cache the record groups (%s); the next run reads them again",
            cache,
            e,
        )
    return groups


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

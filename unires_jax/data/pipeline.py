"""The training input pipeline (grain): a weighted mixture of restoration tasks, as LQ / HQ batches.

For every task, records come from its sources (built TFDS datasets, a folder, or the packaged
sample photos); each host reads a disjoint 1/process_count slice of every source. Each task's
stream is shuffled (a new order every epoch) and repeated forever; the task streams are
interleaved by the configured weights; each element is randomly cropped and flipped and, when its
source holds clean images only, degraded on the fly by the task's degradation. Elements are
batched to the per-host share of the global batch.

Batches are dicts of numpy arrays:
  "hq":      float32 [B, H, W, 3] in [0, 1], the clean target.
  "lq":      float32 [B, H, W, 3] in [0, 1], the degraded input (same size: super-resolution
             inputs are bicubic-upsampled back to the crop size).
  "task_id": int32 [B], the task's position in `config.tasks`; `task_prompts(config.tasks)`
             maps it to the prompt string.

The iterator is a grain `DatasetIterator`: `get_state()` returns a JSON-compatible dict that the
trainer saves with its checkpoint, `set_state(state)` on a fresh iterator from the same config
continues exactly where it left off. The output does not depend on `num_workers`.

Config keys (an ml_collections.ConfigDict section; `default_config()` gives every default):
  tasks:        tuple of task names; "task_id" is the position in this tuple.
  weights:      task -> sampling weight (normalised over tasks; UniRes: .32/.28/.18/.22).
  sources:      task -> comma-separated source specs (see `unires_jax.data.sources`):
                "<dataset>:<split>" (built with `unires data build`), "folder:<path>",
                "sample_photos[:split]" (packaged photos, no build step), "photos:train"
                (every installed training photo, several scales) or "dead_leaves[:size]"
                (procedural); "spec@weight" on every spec mixes them in those proportions.
                Tasks with the same specs share one opened source.
  data_dir:     where the datasets were built ("" = the TFDS default, ~/tensorflow_datasets).
  crop_size:    side of the square random crop, in pixels.
  degradation_margin: pixels of the photo around the crop (as far as the photo reaches) that
                are degraded with it and then cut away, so blur kernels and resampling see the
                crop's real surroundings instead of its padded edge (0: degrade the crop alone).
  flip:         random horizontal flips.
  batch_size:   GLOBAL batch size; each host yields batch_size // process_count.
  degradation_recipe: how clean images are degraded per task, a key of
                `unires_jax.data.degradations.DEGRADATION_RECIPES`: "paper" (the UniRes
                recipe, default), "canonical" (textbook operators), "mixed" (half each) or
                "broad" (the ranges users meet, clean-ish to heavy and mixtures: the default
                model's).
  seed:         seed of shuffling, crops, flips and degradations.
  num_workers:  grain worker processes (0 = transform in the main process).
  read_threads: threads per process that read and transform elements.
  read_buffer:  elements each process reads ahead.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grain
import ml_collections
import numpy as np
import PIL.Image

from unires_jax.data import sources as sources_lib

Degradation = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# Seed streams derived from config.seed, one per use, so changing one use leaves the others.
_SHUFFLE_STREAM = 0
_ELEMENT_STREAM = 1


def default_config() -> ml_collections.ConfigDict:
    """The UniRes training mixture (sources as in the paper; build them with `unires data build`)."""
    c = ml_collections.ConfigDict()
    c.tasks = ("sr", "motion", "defocus", "denoise")
    c.weights = {"sr": 0.32, "motion": 0.28, "defocus": 0.18, "denoise": 0.22}
    c.sources = {
        "sr": "df2k:train,lsdir:train",
        "motion": "gopro:train,oid_motion:train",
        "defocus": "dpdd:train",
        "denoise": "sidd:train",
    }
    c.data_dir = ""
    c.crop_size = 512
    c.degradation_margin = 0
    c.flip = True
    c.degradation_recipe = "paper"
    c.batch_size = 256
    c.seed = 0
    c.num_workers = 8
    c.read_threads = 2
    c.read_buffer = 64
    return c


def sample_photos_config() -> ml_collections.ConfigDict:
    """Every task on the packaged sample photos (train split), degraded on the fly: no downloads."""
    c = default_config()
    c.sources = {task: "sample_photos:train" for task in c.tasks}
    c.crop_size = 128
    c.batch_size = 8
    c.num_workers = 0
    return c


def task_prompts(tasks: Sequence[str]) -> list[str]:
    """The prompt of each task, in task-id order (from `unires_jax.data.degradations`)."""
    from unires_jax.data import degradations

    missing = [t for t in tasks if t not in degradations.TASK_PROMPTS]
    if missing:
        raise KeyError(
            f"no prompt for task(s) {missing}; known: {sorted(degradations.TASK_PROMPTS)}"
        )
    return [degradations.TASK_PROMPTS[t] for t in tasks]


def make_train_iterator(
    config: ml_collections.ConfigDict,
    *,
    process_index: int | None = None,
    process_count: int | None = None,
    degradations: Mapping[str, Degradation] | None = None,
    sources: Mapping[str, Any] | None = None,
) -> grain.DatasetIterator:
    """A checkpointable iterator over this host's training batches (see the module docstring).

    Args:
      config: the data config section (keys in the module docstring).
      process_index: this host's index (default `jax.process_index()`).
      process_count: number of hosts (default `jax.process_count()`).
      degradations: task -> degradation for sources of clean images; defaults to
        `unires_jax.data.degradations.TASK_DEGRADATIONS`. Functions must be picklable by
        cloudpickle when `num_workers > 0`.
      sources: task -> random-access source, replacing `config.sources` (tests, custom data).

    Returns:
      A grain iterator with `get_state()` / `set_state()`.
    """
    dataset = make_train_dataset(
        config,
        process_index=process_index,
        process_count=process_count,
        degradations=degradations,
        sources=sources,
    )
    return iter(dataset)


def make_train_dataset(
    config: ml_collections.ConfigDict,
    *,
    process_index: int | None = None,
    process_count: int | None = None,
    degradations: Mapping[str, Degradation] | None = None,
    sources: Mapping[str, Any] | None = None,
) -> grain.IterDataset:
    """The grain dataset behind `make_train_iterator` (same arguments)."""
    index, count = _resolve_process(process_index, process_count)
    tasks = tuple(config.tasks)
    weights = _task_weights(tasks, config.weights)
    per_host_batch = _per_host_batch(config.batch_size, count)
    if sources is None:
        data_dir = config.data_dir or None
        # Tasks that name the same specs share one opened source: photos are decoded once.
        opened = {
            spec: sources_lib.open_sources(spec, data_dir=data_dir)
            for spec in dict.fromkeys(config.sources[t] for t in tasks)
        }
        sources = {t: opened[config.sources[t]] for t in tasks}
    degrade = _task_degradations(
        tasks, sources, degradations, config.get("degradation_recipe", "paper")
    )

    streams = []
    for task_id, task in enumerate(tasks):
        source = sources[task]
        if len(source) < count:
            raise ValueError(
                f"task {task!r}: its sources hold {len(source)} records, fewer than the "
                f"{count} hosts that each need a disjoint share; add data or use fewer hosts."
            )
        stream = grain.MapDataset.source(source)[index::count]
        stream = stream.shuffle(
            seed=_seed(config.seed, _SHUFFLE_STREAM, task_id)
        ).repeat()
        streams.append(stream.map(functools.partial(_tag_task, task_id=task_id)))
    mixed = grain.MapDataset.mix(streams, weights)
    pairs = mixed.random_map(
        _PairMaker(
            crop_size=int(config.crop_size),
            margin=int(config.get("degradation_margin", 0)),
            flip=bool(config.flip),
            degradations=degrade,
        ),
        seed=_seed(config.seed, _ELEMENT_STREAM, index),
    )
    read = grain.ReadOptions(
        num_threads=config.read_threads, prefetch_buffer_size=config.read_buffer
    )
    dataset = pairs.to_iter_dataset(read)
    if config.num_workers > 0:
        _mark_absl_flags_parsed()
        dataset = dataset.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=config.num_workers),
            worker_init_fn=_init_worker,
        )
    # Batching after the workers keeps the element order independent of num_workers.
    return dataset.batch(per_host_batch, drop_remainder=True)


def _resolve_process(index: int | None, count: int | None) -> tuple[int, int]:
    if index is None or count is None:
        import jax

        index = jax.process_index() if index is None else index
        count = jax.process_count() if count is None else count
    if not 0 <= index < count:
        raise ValueError(f"process_index {index} is not in [0, process_count={count})")
    return index, count


def _task_weights(tasks: tuple[str, ...], weights: Mapping[str, float]) -> list[float]:
    if not tasks:
        raise ValueError("config.tasks is empty: name at least one task")
    unknown = sorted(set(weights) - set(tasks))
    missing = [t for t in tasks if t not in weights]
    if unknown or missing:
        raise KeyError(
            f"config.weights must have exactly the tasks {list(tasks)}: missing {missing}, "
            f"unknown {unknown}"
        )
    values = [float(weights[t]) for t in tasks]
    if min(values) <= 0:
        raise ValueError(
            f"task weights must be positive (drop a task from config.tasks): {values}"
        )
    return values


def _per_host_batch(batch_size: int, count: int) -> int:
    if batch_size % count:
        raise ValueError(
            f"global batch_size {batch_size} is not divisible by the {count} hosts; "
            "choose a multiple of the host count"
        )
    return batch_size // count


def _seed(seed: int, stream: int, index: int) -> int:
    """A 32-bit seed for one (stream, index) use of the config seed."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


def _has_clean_records(source: Any) -> bool:
    if isinstance(source, (sources_lib.ConcatSource, sources_lib.WeightedSource)):
        return any(_has_clean_records(s) for s in source.parts)
    return "lq" not in source[0]


def _task_degradations(
    tasks: tuple[str, ...],
    sources: Mapping[str, Any],
    degradations: Mapping[str, Degradation] | None,
    recipe: str = "paper",
) -> tuple[Degradation | None, ...]:
    """Per task id, the degradation for its clean records (None if all its sources are paired)."""
    missing_sources = [t for t in tasks if t not in sources]
    if missing_sources:
        raise KeyError(f"no source for task(s) {missing_sources}")
    clean = {t: _has_clean_records(sources[t]) for t in tasks}
    if degradations is None and any(clean.values()):
        from unires_jax.data import degradations as library

        if recipe not in library.DEGRADATION_RECIPES:
            raise KeyError(
                f"data.degradation_recipe {recipe!r} is unknown; expected one of "
                f"{sorted(library.DEGRADATION_RECIPES)}"
            )
        degradations = library.DEGRADATION_RECIPES[recipe]
    result = []
    for task in tasks:
        if not clean[task]:
            result.append(None)
            continue
        if task not in degradations:
            raise KeyError(
                f"task {task!r} reads clean images and needs a degradation, but the degradations "
                f"given cover only {sorted(degradations)}"
            )
        result.append(degradations[task])
    return tuple(result)


def _tag_task(record: dict[str, Any], *, task_id: int) -> tuple[int, dict[str, Any]]:
    return task_id, record


@dataclasses.dataclass(frozen=True)
class _PairMaker:
    """Turns one (task_id, record) into a cropped, flipped, float LQ / HQ pair."""

    crop_size: int
    flip: bool
    degradations: tuple[Degradation | None, ...]
    margin: int = 0

    def __call__(
        self, element: tuple[int, dict[str, Any]], rng: np.random.Generator
    ) -> dict:
        task_id, record = element
        hq = np.asarray(record["hq"])
        lq = record.get("lq")
        if lq is not None:
            lq = np.asarray(lq)
            if lq.shape[:2] != hq.shape[:2]:
                # Real SR pairs: the model works at one size, so LQ is upsampled to HQ's.
                lq = resize_bicubic(lq.astype(np.float32) / 255.0, hq.shape[:2])
                lq = np.clip(np.rint(lq * 255.0), 0, 255).astype(np.uint8)
        top, left = self._crop_offsets(hq.shape, rng, record.get("name"))
        flip = self.flip and rng.random() < 0.5
        degrade_seed = int(rng.integers(2**63))
        size = self.crop_size
        window = (slice(top, top + size), slice(left, left + size))
        if lq is None:
            m = self.margin
            t0, l0 = max(0, top - m), max(0, left - m)
            context = (
                hq[t0 : top + size + m, l0 : left + size + m].astype(np.float32) / 255.0
            )
            lq = self._degrade(task_id, context, np.random.default_rng(degrade_seed))
            lq = lq[top - t0 : top - t0 + size, left - l0 : left - l0 + size]
        else:
            lq = lq[window].astype(np.float32) / 255.0
        hq = hq[window].astype(np.float32) / 255.0
        if flip:
            hq, lq = hq[:, ::-1], lq[:, ::-1]
        return {
            "hq": np.ascontiguousarray(hq, dtype=np.float32),
            "lq": np.ascontiguousarray(np.clip(lq, 0.0, 1.0), dtype=np.float32),
            "task_id": np.int32(task_id),
        }

    def _crop_offsets(self, shape, rng, name) -> tuple[int, int]:
        height, width = shape[:2]
        if height < self.crop_size or width < self.crop_size:
            label = name.decode() if isinstance(name, bytes) else name
            raise ValueError(
                f"image {label!r} is {height}x{width}, smaller than crop_size {self.crop_size}; "
                "lower config.crop_size or remove the image from the source"
            )
        return (
            int(rng.integers(height - self.crop_size + 1)),
            int(rng.integers(width - self.crop_size + 1)),
        )

    def _degrade(
        self, task_id: int, hq: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        lq = np.asarray(self.degradations[task_id](hq, rng), dtype=np.float32)
        if lq.ndim != 3 or lq.shape[-1] != 3:
            raise ValueError(
                f"task {task_id}: degradation returned shape {lq.shape}, not [H, W, 3]"
            )
        if lq.shape[:2] != hq.shape[:2]:
            # Super-resolution degradations return the small image; bring it back to crop size.
            lq = resize_bicubic(lq, hq.shape[:2])
        return lq


def resize_bicubic(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize (Pillow's kernel) of float32 [H, W, C] to `size` = (height, width)."""
    height, width = size
    channels = [
        np.asarray(
            PIL.Image.fromarray(
                np.ascontiguousarray(image[..., c], dtype=np.float32)
            ).resize((width, height), PIL.Image.Resampling.BICUBIC)
        )
        for c in range(image.shape[-1])
    ]
    return np.stack(channels, axis=-1)


def _mark_absl_flags_parsed() -> None:
    # grain reads its absl flags when it starts workers; outside an absl app (pytest, notebooks)
    # they are unparsed and reading them raises UnparsedFlagAccessError. Marking them parsed
    # keeps every flag at its default.
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _init_worker(worker_index: int, worker_count: int) -> None:
    del worker_index, worker_count
    _mark_absl_flags_parsed()

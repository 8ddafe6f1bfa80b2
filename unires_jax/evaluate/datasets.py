"""What an evaluation runs on: samples of (LQ image, ground truth), each with a stable id and a
degradation type (the summary's groups).

- `pair_folder(DIR)`: `DIR/GT/` and `DIR/LQ/` with matching file names (any sub-folders, matched
  by path without extension), or one such pair of folders per degradation type, `DIR/<type>/GT`
  and `DIR/<type>/LQ`, as the FoundIR test set is laid out.
- `built_dataset(NAME, SPLIT)`: any TFDS builder of `unires_jax.data.builders.BUILDERS`. A
  paired dataset gives its own LQ images; a dataset of clean images is degraded on the fly with
  `degradations` (`unires_jax.data.degradations.specs`), each image with each degradation.
  Builders that need no download (sample_photos) are built on first use.

A sample loads its pixels only when asked (`Sample.load`), deterministically: the same id gives
the same images in every run, so a resumed evaluation continues on identical inputs.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import pathlib
from collections.abc import Callable, Sequence

import numpy as np

from unires_jax.data.degradations import specs as degradation_specs
from unires_jax.restore import image_io
from unires_jax.restore.inputs import collect_inputs

# (LQ [h, w, 3], ground truth [H, W, 3] or None), float32 in [0, 1].
Pixels = tuple[np.ndarray, np.ndarray | None]


@dataclasses.dataclass(frozen=True)
class Sample:
    """One evaluation case.

    Attributes:
      id: unique and stable across runs (the resume key; also the output image's path).
      degradation: the summary group ("noise:25", a FoundIR type folder, ...).
      source: where the images come from (file paths or dataset:split/name), for the record.
      load: returns (LQ, ground truth) as float32 `[H, W, 3]` in [0, 1].
      scale: ground-truth size / LQ size (a super-resolution sample has scale > 1).
    """

    id: str
    degradation: str
    source: str
    load: Callable[[], Pixels] = dataclasses.field(repr=False, compare=False)
    scale: int = 1


class DatasetError(ValueError):
    """A dataset or pair folder that cannot be evaluated on (names what is wrong)."""


# --- GT/LQ folders ----------------------------------------------------------------------------------


def _rgb(path: pathlib.Path) -> np.ndarray:
    loaded = image_io.read_image(path)
    peak = 65535.0 if loaded.pixels.dtype == np.uint16 else 255.0
    return loaded.pixels.astype(np.float32) / np.float32(peak)


def _by_stem(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    return {item.relative.as_posix(): item.path for item in collect_inputs([folder])}


def pair_folder(root: str | os.PathLike, *, limit: int | None = None) -> list[Sample]:
    """The samples of a GT/LQ folder layout (see the module docstring).

    Raises:
      DatasetError: no GT/LQ folders, or files without a partner (the first few are named).
    """
    root = pathlib.Path(root)
    if (root / "GT").is_dir() and (root / "LQ").is_dir():
        groups = [("all", root)]
    else:
        groups = (
            sorted(
                (d.name, d)
                for d in root.iterdir()
                if d.is_dir() and (d / "GT").is_dir() and (d / "LQ").is_dir()
            )
            if root.is_dir()
            else []
        )
    if not groups:
        raise DatasetError(
            f"{root}: expected GT/ and LQ/ folders with matching file names, or <type>/GT and "
            "<type>/LQ per degradation type (as the FoundIR test set)"
        )
    samples = []
    for degradation, folder in groups:
        gt, lq = _by_stem(folder / "GT"), _by_stem(folder / "LQ")
        lonely = sorted(set(gt) ^ set(lq))
        if lonely:
            raise DatasetError(
                f"{folder}: {len(lonely)} file(s) in GT/ or LQ/ have no partner with the same "
                f"name, e.g. {lonely[:5]}"
            )
        for stem in sorted(gt)[:limit]:
            sample_id = stem if degradation == "all" else f"{degradation}/{stem}"
            samples.append(
                Sample(
                    id=sample_id,
                    degradation=degradation,
                    source=f"{lq[stem]} | {gt[stem]}",
                    load=lambda lq=lq[stem], gt=gt[stem]: (_rgb(lq), _rgb(gt)),
                )
            )
    return samples


# --- TFDS builders ----------------------------------------------------------------------------------


def _center_crop(image: np.ndarray, size: int | None, multiple: int) -> np.ndarray:
    """The centred `size` x `size` crop (whole sides if smaller), sides cut to a `multiple`."""
    h, w = image.shape[:2]
    ch, cw = (h, w) if size is None else (min(h, size), min(w, size))
    ch, cw = ch - ch % multiple, cw - cw % multiple
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(image[top : top + ch, left : left + cw])


def _seed(sample_id: str, seed: int) -> int:
    digest = hashlib.sha256(f"{seed}/{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def built_dataset(
    name: str,
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    degradations: Sequence[degradation_specs.Degradation] = (),
    crop: int | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> list[Sample]:
    """The samples of a built TFDS dataset split (see the module docstring).

    Args:
      name, split: a `unires_jax.data.builders` dataset and one of its splits.
      data_dir: where it is built (None: TFDS's default, ~/tensorflow_datasets).
      degradations: applied to every clean image (needed for datasets without LQ images).
      crop: centre crop of the ground truth to at most crop x crop (None: whole images).
      limit: at most this many dataset records (in dataset order).
      seed: the noise seed of the synthetic degradations (each sample's is derived from it and
        its id).

    Raises:
      DatasetError: unknown or unbuilt dataset (with the command that builds it), no such split,
        or a clean dataset without degradations.
    """
    from unires_jax.data.builders import catalog

    if name not in catalog.BUILDERS:
        raise DatasetError(
            f"unknown dataset {name!r}; known: {', '.join(catalog.BUILDERS)}"
        )
    builder_cls = catalog.BUILDERS[name]
    if builder_cls.MANUAL_DOWNLOAD_INSTRUCTIONS is None and not catalog.is_built(
        name, data_dir=data_dir
    ):
        catalog.build(
            name, data_dir=data_dir
        )  # installed files only: nothing to download
    try:
        source = catalog.open_built(name, split, data_dir=data_dir)
    except (FileNotFoundError, KeyError) as e:
        raise DatasetError(e.args[0] if e.args else str(e)) from None
    count = len(source) if limit is None else min(limit, len(source))
    paired = "lq" in source[0] if count else False
    if not paired and not degradations:
        raise DatasetError(
            f"dataset {name!r} holds clean images only: say how to degrade them, e.g. "
            "--degrade noise:25,jpeg:10,down:4"
        )
    by_degradation = getattr(builder_cls, "GROUP_IS_DEGRADATION", False)
    samples = []
    for index in range(count):
        record_name = _text(source[index]["name"])
        origin = f"{name}:{split}/{record_name}"
        if paired:
            group = _text(source[index]["group"]) if by_degradation else name
            samples.append(
                Sample(
                    id=record_name,
                    degradation=group,
                    source=origin,
                    load=functools.partial(_paired, source, index, crop),
                )
            )
            continue
        for degradation in degradations:
            sample_id = f"{degradation.spec}/{record_name}"
            samples.append(
                Sample(
                    id=sample_id,
                    degradation=degradation.spec,
                    source=origin,
                    load=functools.partial(
                        _degraded,
                        source,
                        index,
                        degradation,
                        crop,
                        _seed(sample_id, seed),
                    ),
                    scale=degradation.scale,
                )
            )
    return samples


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, np.float32) / np.float32(255.0)


def _paired(source, index: int, crop: int | None) -> Pixels:
    record = source[index]
    lq, hq = _float(record["lq"]), _float(record["hq"])
    if crop is not None and lq.shape == hq.shape:
        return _center_crop(lq, crop, 1), _center_crop(hq, crop, 1)
    return lq, hq


def _degraded(source, index, degradation, crop, seed) -> Pixels:
    hq = _center_crop(_float(source[index]["hq"]), crop, degradation.scale)
    return degradation.apply(hq, np.random.default_rng(seed)), hq

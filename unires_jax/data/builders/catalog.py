"""Every dataset builder by name, and the build / open / list operations used by the CLI.

The names here are the ones users type (`unires data build gopro`) and the ones the input
pipeline's source specs use (`gopro:train`).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tempfile
from typing import Any

import tensorflow_datasets as tfds

from unires_jax.data import sources
from unires_jax.data.builders import folders
from unires_jax.data.builders.bsd68 import BSD68
from unires_jax.data.builders.bsd400_wed import BSD400WED
from unires_jax.data.builders.df2k import DF2K
from unires_jax.data.builders.diverse_photos import DiversePhotos
from unires_jax.data.builders.dpdd import DPDD
from unires_jax.data.builders.drealsr import DRealSR
from unires_jax.data.builders.foundir import FoundIR
from unires_jax.data.builders.gopro import GoPro
from unires_jax.data.builders.lol import LOL
from unires_jax.data.builders.lsdir import LSDIR
from unires_jax.data.builders.oid_motion import OIDMotion
from unires_jax.data.builders.rain100l import Rain100L
from unires_jax.data.builders.realsr import RealSR
from unires_jax.data.builders.reside_ots import ResideOTS
from unires_jax.data.builders.sample_photos import SamplePhotos
from unires_jax.data.builders.sidd import SIDD
from unires_jax.data.builders.sots import SOTS

BUILDERS: dict[str, type[folders.ImageBuilder]] = {
    cls.name: cls
    for cls in (
        # UniRes training sets, by task.
        DF2K,
        LSDIR,
        GoPro,
        OIDMotion,
        DPDD,
        SIDD,
        # UniRes evaluation sets.
        DiversePhotos,
        RealSR,
        DRealSR,
        # FoundIR.
        FoundIR,
        # AnyIR (GoPro above is shared).
        BSD400WED,
        BSD68,
        Rain100L,
        ResideOTS,
        SOTS,
        LOL,
        # Shipped with the installed packages; no download.
        SamplePhotos,
    )
}


@dataclasses.dataclass(frozen=True)
class BuildReport:
    """What a build produced: examples per split and the corrupt files it skipped."""

    name: str
    data_dir: str
    splits: dict[str, int]
    skipped: list[tuple[str, str]]

    def summary(self) -> str:
        sizes = ", ".join(f"{split}: {n}" for split, n in sorted(self.splits.items()))
        report = sources.SkipReport(list(self.skipped))
        return f"{self.name} in {self.data_dir}: {sizes}\n{report.summary()}"


def get_builder(name: str, *, data_dir: str | os.PathLike | None = None, **kwargs: Any):
    """A builder instance by dataset name (extra kwargs go to the builder, e.g. `degrade`)."""
    if name not in BUILDERS:
        raise KeyError(
            f"unknown dataset {name!r}; known datasets: {', '.join(BUILDERS)}"
        )
    return BUILDERS[name](data_dir=os.fspath(data_dir) if data_dir else None, **kwargs)


def build(
    name: str,
    *,
    manual_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    **kwargs: Any,
) -> BuildReport:
    """Builds one dataset into `data_dir` (array_record) from its manual folder.

    Args:
      name: dataset name (a key of `BUILDERS`).
      manual_dir: the folder with the downloaded files (not needed for sample_photos).
      data_dir: where to write; None means the TFDS default (~/tensorflow_datasets).
      **kwargs: builder options (e.g. `degrade` for oid_motion, `file_lists` for diverse_photos).

    Returns:
      The report: examples per split and skipped corrupt files. A dataset that is already built
      is not rebuilt; its stored report is returned.

    Raises:
      folders.LayoutError: the manual folder is missing or has the wrong layout.
      PermissionError, NotADirectoryError: nothing can be written in `data_dir`.
    """
    builder = get_builder(name, data_dir=data_dir, **kwargs)
    if not builder.is_prepared():
        _check_writable(os.fspath(builder.data_dir), data_dir)
    if builder.MANUAL_DOWNLOAD_INSTRUCTIONS and not builder.is_prepared():
        if manual_dir is None or not os.path.isdir(manual_dir):
            raise folders.LayoutError(
                f"{name}: needs the manually downloaded data; got --manual_dir={manual_dir}, "
                f"which is not a folder.\n{builder.MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )
        builder.check_manual_dir(manual_dir)
    config = tfds.download.DownloadConfig(
        manual_dir=os.fspath(manual_dir) if manual_dir else None
    )
    builder.download_and_prepare(download_config=config)
    return BuildReport(
        name=name,
        data_dir=os.fspath(builder.data_dir),
        splits={
            split: info.num_examples for split, info in builder.info.splits.items()
        },
        skipped=[tuple(item) for item in builder.info.metadata.get("skipped", [])],
    )


def _check_writable(folder: str, data_dir: str | os.PathLike | None) -> None:
    """Raises, naming the folder, if the dataset folder cannot be created and written: TFDS
    would otherwise fail part-way with a traceback. Probes by creating a temporary file in the
    deepest existing folder, so read-only file systems are caught, as root too."""
    if "://" in folder:  # a cloud bucket: TFDS reports its own errors
        return
    given = os.fspath(data_dir) if data_dir else "(default)"
    existing = pathlib.Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(
            f"--data_dir {given}: {existing} is a file, not a folder, so {folder} cannot be "
            "created; choose another --data_dir"
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise PermissionError(
            f"--data_dir {given}: cannot write in {existing} (read-only? {e.strerror or e}); "
            "choose a writable --data_dir"
        ) from None


def is_built(name: str, *, data_dir: str | os.PathLike | None = None) -> bool:
    """Whether `name` has been built into `data_dir`."""
    return get_builder(name, data_dir=data_dir).is_prepared()


def open_built(name: str, split: str, *, data_dir: str | os.PathLike | None = None):
    """The random-access data source of one built split (decoded records, no TensorFlow).

    Raises:
      FileNotFoundError: the dataset is not built in `data_dir`.
      KeyError: the split does not exist.
    """
    builder = get_builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"dataset {name!r} is not built in {builder.data_dir}. Build it first: "
            f"`unires data build {name} --manual_dir <folder> --data_dir "
            f"{data_dir or '<data_dir>'}` (see `unires data list`)."
        )
    if split not in builder.info.splits:
        raise KeyError(
            f"dataset {name!r} has no split {split!r}; it has {list(builder.info.splits)}"
        )
    return builder.as_data_source(split=split)

"""Folder layouts of the manually downloaded datasets, and the builder base shared by them.

A dataset's layout is a tuple of `FolderSpec`s, one per (split, group of folders). Paths are
relative to the manual folder and use two kinds of placeholder:

- `<label>` in a *group* path matches one directory name (a GoPro sequence, a SIDD scene);
- `<field>` in a *file* pattern matches part of a file name; a file's extension may be any of
  `sources.IMAGE_EXTENSIONS` in any case; `[text]` is optional literal text.

LQ and HQ files are paired by the values of the fields that both patterns share, e.g.
`hq="GT_SRGB_<id>"`, `lq="NOISY_SRGB_<id>"`. Several LQ files may share one HQ file (SOTS:
`hazy/<id>_<a>_<b>` -> `gt/<id>`). The same layout text is printed as the builder's
`MANUAL_DOWNLOAD_INSTRUCTIONS` and in the error raised for a missing or wrong folder, so the two
never disagree.

Corrupt image files are skipped during the build, counted, and recorded in the dataset's metadata
(`builder.info.metadata["skipped"]`).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import pathlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow_datasets as tfds
from etils import epath

from unires_jax.data import sources

_FIELD = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")
_TOKEN = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>|\[([^\]]*)\]")
# How many unpaired or missing paths an error message names before summarising.
_SHOW = 5


class LayoutError(FileNotFoundError):
    """A manual dataset folder is missing or does not have the expected layout."""


@dataclasses.dataclass(frozen=True)
class FolderSpec:
    """Where one split's images of one kind of folder live under the manual folder.

    Attributes:
      split: the TFDS split the examples go to ("train", "test", ...).
      group: folder path relative to the manual folder; `<label>` segments match any directory.
      hq: file pattern of the HQ (clean / ground-truth) images, relative to a group folder.
      lq: file pattern of the LQ images, or None for a dataset of clean images only.
      required: whether a missing group folder is an error (False: the split is left out).
    """

    split: str
    group: str
    hq: str
    lq: str | None = None
    required: bool = True

    def __post_init__(self):
        for pattern in (self.hq, self.lq):
            if pattern is not None and _FIELD.search(os.path.dirname(pattern)):
                raise ValueError(
                    f"{pattern!r}: placeholders are only allowed in the file name"
                )
        if self.lq is not None and not pair_fields(self.hq, self.lq):
            raise ValueError(
                f"{self.hq!r} and {self.lq!r} share no <field> to pair files by"
            )


@dataclasses.dataclass(frozen=True)
class Example:
    """One example found on disk: its name (path relative to the manual folder) and files."""

    name: str
    group: str
    hq: pathlib.Path
    lq: pathlib.Path | None = None


def pair_fields(hq: str, lq: str) -> tuple[str, ...]:
    """The placeholder fields that an HQ and an LQ file pattern share, in HQ order."""
    lq_fields = set(_FIELD.findall(lq))
    return tuple(f for f in _FIELD.findall(hq) if f in lq_fields)


def _stem_regex(stem_pattern: str) -> re.Pattern[str]:
    parts, last = [], 0
    for match in _TOKEN.finditer(stem_pattern):
        parts.append(re.escape(stem_pattern[last : match.start()]))
        field, optional = match.groups()
        parts.append(f"(?P<{field}>.+?)" if field else f"(?:{re.escape(optional)})?")
        last = match.end()
    parts.append(re.escape(stem_pattern[last:]))
    return re.compile("^" + "".join(parts) + "$")


def _match_files(
    group_dir: pathlib.Path, pattern: str
) -> dict[str, tuple[dict[str, str], pathlib.Path]]:
    """Files of `group_dir` matching a file pattern: stem -> (field values, path)."""
    folder = group_dir / os.path.dirname(pattern)
    regex = _stem_regex(os.path.basename(pattern))
    found = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if not (path.is_file() and sources.is_image_file(path)):
                continue
            match = regex.match(path.stem)
            if match:
                found[path.stem] = (match.groupdict(), path)
    return found


def _glob_groups(root: pathlib.Path, group: str) -> list[pathlib.Path]:
    return sorted(p for p in root.glob(_FIELD.sub("*", group)) if p.is_dir())


def describe_layout(layout: Sequence[FolderSpec]) -> str:
    """The layout as indented lines, one per file pattern (used in instructions and errors)."""
    lines = []
    for spec in layout:
        note = "" if spec.required else "   (optional)"
        ext = ".png|.jpg|..."
        if spec.lq is None:
            lines.append(
                f"  {spec.group}/{spec.hq}{ext}   [{spec.split}: images]{note}"
            )
        else:
            lines.append(f"  {spec.group}/{spec.lq}{ext}   [{spec.split}: LQ]{note}")
            lines.append(
                f"  {spec.group}/{spec.hq}{ext}   [{spec.split}: HQ, paired by "
                f"{', '.join('<' + f + '>' for f in pair_fields(spec.hq, spec.lq))}]{note}"
            )
    return "\n".join(lines)


def instructions(about: str, layout: Sequence[FolderSpec]) -> str:
    """MANUAL_DOWNLOAD_INSTRUCTIONS text: where to get the data and the exact layout expected."""
    return (
        f"{about.strip()}\n\nExpected layout under the manual folder (--manual_dir); "
        "<label> matches any name:\n" + describe_layout(layout) + "\n"
    )


def find_examples(
    manual_dir: str | os.PathLike | None, layout: Sequence[FolderSpec], dataset: str
) -> dict[str, list[Example]]:
    """Finds every example of a layout under the manual folder, checking the layout.

    Args:
      manual_dir: the folder holding the downloaded dataset.
      layout: the dataset's folder specs.
      dataset: the dataset name, for messages.

    Returns:
      split -> examples (splits of absent optional folders are left out).

    Raises:
      LayoutError: a required folder is missing, a folder has no matching images, or files have
        no partner; the message lists every problem and the layout that was expected.
    """
    root = pathlib.Path(manual_dir) if manual_dir else None
    if root is None or not root.is_dir():
        raise LayoutError(
            _layout_message(dataset, root, layout, [f"folder {root} does not exist"])
        )
    problems: list[str] = []
    splits: dict[str, list[Example]] = {}
    for spec in layout:
        groups = _glob_groups(root, spec.group)
        if not groups:
            if spec.required:
                problems.append(f"missing folder {root / spec.group}")
            continue
        for group_dir in groups:
            examples = _pair_group(root, group_dir, spec, problems)
            splits.setdefault(spec.split, []).extend(examples)
    if not problems and not any(splits.values()):
        problems.append("no split folder found at all")
    if problems:
        raise LayoutError(_layout_message(dataset, root, layout, problems))
    return {split: examples for split, examples in splits.items() if examples}


def _pair_group(
    root: pathlib.Path, group_dir: pathlib.Path, spec: FolderSpec, problems: list[str]
) -> list[Example]:
    group = group_dir.relative_to(root).as_posix()
    hq_files = _match_files(group_dir, spec.hq)
    if not hq_files:
        problems.append(
            f"{group_dir / os.path.dirname(spec.hq)}: no image files matching {spec.hq!r}"
        )
        return []
    if spec.lq is None:
        return [
            Example(path.relative_to(root).as_posix(), group, path)
            for _, path in hq_files.values()
        ]
    lq_files = _match_files(group_dir, spec.lq)
    if not lq_files:
        problems.append(
            f"{group_dir / os.path.dirname(spec.lq)}: no image files matching {spec.lq!r}"
        )
        return []
    fields = pair_fields(spec.hq, spec.lq)
    hq_by_key = {
        tuple(values[f] for f in fields): path for values, path in hq_files.values()
    }
    examples, used, unpaired = [], set(), []
    for values, lq_path in lq_files.values():
        key = tuple(values[f] for f in fields)
        if key not in hq_by_key:
            unpaired.append(lq_path.name)
            continue
        used.add(key)
        examples.append(
            Example(
                lq_path.relative_to(root).as_posix(), group, hq_by_key[key], lq_path
            )
        )
    lonely_hq = sorted(hq_by_key[k].name for k in hq_by_key.keys() - used)
    for side, names, other in (("LQ", unpaired, spec.hq), ("HQ", lonely_hq, spec.lq)):
        if names:
            problems.append(
                f"{group_dir}: {len(names)} {side} file(s) have no partner matching {other!r}, "
                f"e.g. {', '.join(names[:_SHOW])}"
            )
    return examples


def _layout_message(
    dataset: str,
    root: pathlib.Path | None,
    layout: Sequence[FolderSpec],
    problems: list[str],
) -> str:
    shown = problems[:20] + (
        [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
    )
    return (
        f"{dataset}: the manual folder {root} does not have the expected layout:\n"
        + "\n".join(f"  - {p}" for p in shown)
        + f"\nExpected under {root}:\n{describe_layout(layout)}\n"
        f"Fix: download the data as `unires data list --layouts` (the builder's "
        f"MANUAL_DOWNLOAD_INSTRUCTIONS) describes and pass the folder as --manual_dir."
    )


def _png_image() -> tfds.features.Image:
    return tfds.features.Image(shape=(None, None, 3), encoding_format="png")


def image_features(*, paired: bool, **extra: Any) -> tfds.features.FeaturesDict:
    """Features of an image dataset: "hq" (and "lq") PNG images, "name", "group", extras."""
    features = {
        "hq": _png_image(),
        "name": tfds.features.Text(),
        "group": tfds.features.Text(),
    }
    if paired:
        features["lq"] = _png_image()
    features.update(extra)
    return tfds.features.FeaturesDict(features)


class LocalDatasetInfo(tfds.core.DatasetInfo):
    """DatasetInfo of a dataset that is never in TFDS's public GCS bucket (all of ours).

    A builder not yet prepared asks the bucket for precomputed info, and TFDS makes a temporary
    directory before it finds there is none: one stray /tmp/tmp*tfds folder per builder
    constructed. There is nothing to fetch, so nothing is asked.
    """

    def initialize_from_bucket(self) -> None:
        return None


class ImageBuilder(tfds.core.GeneratorBasedBuilder):
    """Base of every unires-jax builder: array_record output, no global TFDS registration.

    Builders are listed in `unires_jax.data.builders.BUILDERS` rather than TFDS's registry, so
    importing them twice (tests, re-exports in data_builders/) never collides. Subclasses record
    corrupt files in `self.skipped`, which is written to the dataset metadata.
    """

    VERSION = tfds.core.Version("1.0.0")
    DESCRIPTION = ""
    HOMEPAGE = ""
    CITATION = ""

    def __init_subclass__(cls, **kwargs):
        kwargs.setdefault("skip_registration", True)
        super().__init_subclass__(**kwargs)

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        # TFDS's own lookup of a packaged builder's source file touches
        # `importlib_resources.abc`, which needs the `importlib_resources` backport that TFDS does
        # not install (ModuleNotFoundError without TensorFlow's dependencies); the file path is
        # all it needs.
        return epath.Path(inspect.getfile(cls))

    def __init__(self, **kwargs):
        kwargs.setdefault("file_format", "array_record")
        super().__init__(**kwargs)
        self.skipped = sources.SkipReport()

    def check_manual_dir(self, manual_dir: str | os.PathLike | None) -> None:
        """Raises LayoutError if the manual folder lacks what the build needs (default: nothing).

        `catalog.build` calls it before TFDS starts, so a wrong folder fails with the expected
        layout and leaves nothing half-written.
        """
        del manual_dir

    def _make_info(self, features: tfds.features.FeaturesDict) -> tfds.core.DatasetInfo:
        return LocalDatasetInfo(
            builder=self,
            description=self.DESCRIPTION,
            features=features,
            homepage=self.HOMEPAGE or None,
            citation=self.CITATION or None,
            metadata=tfds.core.MetadataDict(),
        )

    def _record_skipped(self) -> None:
        self.info.metadata["skipped"] = [list(item) for item in self.skipped.skipped]


class ImageFolderBuilder(ImageBuilder):
    """A dataset stored as folders of image files: subclasses only declare `LAYOUT` and text."""

    LAYOUT: tuple[FolderSpec, ...] = ()

    def _info(self) -> tfds.core.DatasetInfo:
        return self._make_info(image_features(paired=any(s.lq for s in self.LAYOUT)))

    def check_manual_dir(self, manual_dir: str | os.PathLike | None) -> None:
        find_examples(manual_dir, self.LAYOUT, self.name)

    def _split_generators(self, dl_manager):
        splits = find_examples(dl_manager.manual_dir, self.LAYOUT, self.name)
        return {
            split: self._generate_examples(examples)
            for split, examples in splits.items()
        }

    def _generate_examples(
        self, examples: Sequence[Example]
    ) -> Iterator[tuple[str, dict]]:
        for example in examples:
            record = {"name": example.name, "group": example.group}
            try:
                for key, path in (("hq", example.hq), ("lq", example.lq)):
                    if path is not None:
                        record[key], _ = sources.read_png_bytes(path)
            except sources.CorruptImageError as e:
                self.skipped.add(path, e)  # The pair goes with its unreadable half.
                continue
            yield example.name, record
        self._record_skipped()

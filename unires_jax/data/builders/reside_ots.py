"""RESIDE OTS: synthetic outdoor haze, hazy / clear pairs; the AnyIR dehazing TRAINING set.

AnyIR (Amazingren/AnyIR, `utils/dataset_utils.py` `AnyIRTrainDataset`), like PromptIR before it,
trains dehazing on the RESIDE OTS pairs named by the list file `hazy/hazy_outside.txt` of its
`--data_file_dir`. Each line of the list is a hazy image's path relative to `--dehaze_dir`, e.g.
`synthetic/part1/0025_0.8_0.04.jpg` (scene id, atmospheric light, scattering coefficient); its
clear image is `original/<scene id>` with the hazy file's extension, in the same `--dehaze_dir`.
The manual folder here is that `--dehaze_dir`. PromptIR's list (va1shn9v/PromptIR
`data_dir/hazy/hazy_outside.txt`) names 72,135 hazy images of 2,061 scenes (35 each).

SOTS outdoor (builder `sots`) is the dehazing TEST set; this one is only ever trained on.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Sequence
from typing import NoReturn

from unires_jax.data import sources
from unires_jax.data.builders import folders

LIST_FILE = "hazy_outside.txt"
HAZY_DIR = "synthetic"
CLEAR_DIR = "original"
# A hazy file name: <scene id>_<atmospheric light>_<beta>; the id is the text before the first
# underscore (the official `_get_nonhazy_name`).
_HAZY_STEM = re.compile(r"^(?P<id>[^_]+)_(?P<airlight>[^_]+)_(?P<beta>[^_]+)$")
# How many missing or unpaired files an error names before summarising.
_SHOW = 5

_LAYOUT_TEXT = (
    f"  {HAZY_DIR}/<part>/<id>_<airlight>_<beta>.jpg   [train: LQ (hazy)]\n"
    f"  {CLEAR_DIR}/<id>.jpg   [train: HQ (clear), paired by <id>; same extension as the "
    "hazy file preferred]\n"
    f"  {LIST_FILE}   (optional: the official list; when present only the hazy files it names "
    "are built, one path relative to this folder per line, e.g. "
    f"{HAZY_DIR}/part1/0025_0.8_0.04.jpg)"
)


def clear_id(hazy: str | os.PathLike) -> str:
    """The scene id of a hazy file: its name up to the first underscore."""
    return pathlib.PurePath(hazy).name.split("_")[0]


def read_list(path: str | os.PathLike) -> list[str]:
    """The hazy paths of a list file, in order, without blank lines or repeats."""
    lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    return list(dict.fromkeys(line.strip() for line in lines if line.strip()))


class ResideOTS(folders.ImageFolderBuilder):
    """RESIDE OTS hazy / clear pairs, optionally restricted to the official AnyIR list."""

    name = "reside_ots"
    DESCRIPTION = (
        "RESIDE OTS dehazing training pairs (LQ = hazy, HQ = clear), as the AnyIR / PromptIR "
        "hazy_outside.txt list names them."
    )
    HOMEPAGE = "https://sites.google.com/view/reside-dehaze-datasets"
    CITATION = "Li et al., Benchmarking Single-Image Dehazing and Beyond, TIP 2019."
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download RESIDE OTS (Outdoor Training Set) from the RESIDE page and arrange it as "
        "AnyIR / PromptIR's Train/Dehaze folder: the hazy parts under synthetic/ (part1 ... "
        "part4) and the clear images under original/. Copy the official list "
        "(data_dir/hazy/hazy_outside.txt of the AnyIR or PromptIR code) into the folder to "
        "build exactly the official pairs; without it every hazy image found is built. Pass "
        "the folder (the official --dehaze_dir) as --manual_dir.\n\n"
        "Expected layout under the manual folder (--manual_dir):\n"
        + _LAYOUT_TEXT
        + "\n"
    )

    def _info(self):
        return self._make_info(folders.image_features(paired=True))

    def check_manual_dir(self, manual_dir) -> None:
        self._find_pairs(manual_dir)

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(self._find_pairs(dl_manager.manual_dir))
        }

    def _find_pairs(self, manual_dir) -> list[folders.Example]:
        """Every (hazy, clear) pair to build; raises LayoutError naming what is missing."""
        root = pathlib.Path(manual_dir) if manual_dir else None
        if root is None or not root.is_dir():
            self._fail(root, [f"folder {root} does not exist"])
        problems = [
            f"missing folder {root / folder}"
            for folder in (HAZY_DIR, CLEAR_DIR)
            if not (root / folder).is_dir()
        ]
        if problems:
            self._fail(root, problems)
        list_file = root / LIST_FILE
        if list_file.is_file():
            hazy = self._listed(root, list_file, problems)
        else:
            hazy = self._scanned(root, problems)
        clear = self._clear_images(root / CLEAR_DIR)
        pairs, unpaired = [], []
        for path in hazy:
            match = self._clear_for(path, clear)
            if match is None:
                unpaired.append(path.relative_to(root).as_posix())
                continue
            name = path.relative_to(root).as_posix()
            pairs.append(folders.Example(name, os.path.dirname(name), match, path))
        if unpaired:
            problems.append(
                f"{len(unpaired)} hazy file(s) have no clear image "
                f"{root / CLEAR_DIR}/<id>.<ext>, e.g. {', '.join(unpaired[:_SHOW])}"
            )
        if not problems and not pairs:
            problems.append(f"no hazy images found under {root / HAZY_DIR}")
        if problems:
            self._fail(root, problems)
        return pairs

    def _listed(
        self, root: pathlib.Path, list_file: pathlib.Path, problems: list[str]
    ) -> list[pathlib.Path]:
        names = read_list(list_file)
        if not names:
            problems.append(f"{list_file} lists no files")
        found, missing = [], []
        for name in names:
            path = root / name
            (found if path.is_file() else missing).append(path)
        if missing:
            problems.append(
                f"{list_file}: {len(missing)} listed hazy file(s) not found, e.g. "
                f"{', '.join(str(p) for p in missing[:_SHOW])} (complete the download, or "
                "remove their lines from the list)"
            )
        return found

    def _scanned(self, root: pathlib.Path, problems: list[str]) -> list[pathlib.Path]:
        parts = sorted(p for p in (root / HAZY_DIR).iterdir() if p.is_dir())
        if not parts:
            problems.append(f"{root / HAZY_DIR}: no <part> folders")
        return [
            path
            for part in parts
            for path in sorted(part.iterdir())
            if path.is_file()
            and sources.is_image_file(path)
            and _HAZY_STEM.match(path.stem)
        ]

    @staticmethod
    def _clear_images(folder: pathlib.Path) -> dict[str, list[pathlib.Path]]:
        by_stem: dict[str, list[pathlib.Path]] = {}
        for path in sorted(folder.iterdir()):
            if path.is_file() and sources.is_image_file(path):
                by_stem.setdefault(path.stem, []).append(path)
        return by_stem

    @staticmethod
    def _clear_for(
        hazy: pathlib.Path, clear: dict[str, Sequence[pathlib.Path]]
    ) -> pathlib.Path | None:
        """original/<id> with the hazy file's extension (the official rule), else the one
        clear image of that id with another image extension; None if there is none (or several
        and none with the hazy file's extension)."""
        candidates = clear.get(clear_id(hazy), ())
        for path in candidates:
            if path.suffix == hazy.suffix:
                return path
        return candidates[0] if len(candidates) == 1 else None

    def _fail(self, root: pathlib.Path | None, problems: list[str]) -> NoReturn:
        raise folders.LayoutError(
            f"{self.name}: the manual folder {root} does not have the expected layout:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + f"\nExpected under {root}:\n{_LAYOUT_TEXT}\n"
            "Fix: arrange RESIDE OTS as `unires data list --layouts` (the builder's "
            "MANUAL_DOWNLOAD_INSTRUCTIONS) describes and pass the folder as --manual_dir."
        )

"""Input files and folders -> the list of inputs, and their output names (one expander for
`unires restore`, `unires quality score` and `unires eval`).

Folders are searched recursively; every regular file in them whose name does not start with "."
is an input (so a stray non-image is reported by the reader, never silently skipped), and outputs
mirror the sub-folders below the given folder.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Iterable, Sequence


@dataclasses.dataclass(frozen=True)
class InputFile:
    """One input and where its output goes.

    Attributes:
      path: the input file (may not exist or not be an image: reading reports it).
      relative: output location relative to the output folder, without suffix.
    """

    path: pathlib.Path
    relative: pathlib.PurePath


def collect_inputs(
    paths: Iterable[str | os.PathLike], *, exclude: Sequence[str | os.PathLike] = ()
) -> list[InputFile]:
    """Expands files and folders into inputs, in the given order (folders sorted, recursive).

    A file reached twice (named, and inside a named folder) is an input once.

    Args:
      paths: files or folders. Paths that do not exist are kept, so reading reports them.
      exclude: folders not to descend into (e.g. the output folder inside an input folder).
    """
    skip = {pathlib.Path(p).resolve() for p in exclude}
    out, seen = [], set()

    def add(file: pathlib.Path, relative: pathlib.PurePath) -> None:
        key = file.resolve()
        if key not in seen:
            seen.add(key)
            out.append(InputFile(file, relative))

    for path in map(pathlib.Path, paths):
        if not path.is_dir():
            add(path, pathlib.PurePath(path.stem))
            continue
        for root, dirs, files in os.walk(path):
            root = pathlib.Path(root)
            dirs[:] = sorted(
                d
                for d in dirs
                if not d.startswith(".") and (root / d).resolve() not in skip
            )
            for name in sorted(f for f in files if not f.startswith(".")):
                if (root / name).is_file():
                    add(root / name, (root / name).relative_to(path).with_suffix(""))
    return out


def plan_outputs(
    inputs: Sequence[InputFile],
    output_dir: pathlib.Path,
    suffixes: Sequence[str],
    *,
    name_suffix: str = "",
) -> list[pathlib.Path]:
    """Output paths, one per input, no two sharing a name (nor a sidecar).

    An output is named after its input's stem plus `name_suffix` (e.g. "_restored") and the
    extension in `suffixes`. Names that collide (same stem from two folders, or `a.png` and
    `a.jpg`) get `_2`, `_3`, ... in input order; names compare case-insensitively so
    case-insensitive file systems are safe.
    """
    taken: set[str] = set()
    out = []
    for item, suffix in zip(inputs, suffixes):
        base = item.relative.with_name(item.relative.name + name_suffix)
        stem, n = base, 1
        while str(stem).lower() in taken:
            n += 1
            stem = base.with_name(f"{base.name}_{n}")
        taken.add(str(stem).lower())
        out.append(output_dir / stem.parent / (stem.name + suffix))
    return out

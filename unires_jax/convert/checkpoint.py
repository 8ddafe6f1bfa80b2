"""The one checkpoint format of every model family: a folder with `checkpoint.json` and its files.

    checkpoint.json              {"format": "unires-jax-checkpoint", "version": 1,
                                  "family": "unires" | ...,   which restorer reads it
                                  "config": {...},            the networks' configs
                                  "settings": {...},          default inference settings
                                  "extra": {...},             anything else (training facts)
                                  "files": {relative path: {"bytes": n, "sha256": hex}},
                                  "sha256": hex}              of this document without this key
    params/<network>.safetensors  one per network, float32, keys = NNX parameter paths ("a.0.b")
    <other files>                 what a family needs besides weights (UniRes: tokenizer/)

`read` verifies the document's own hash and the size and SHA-256 of every listed file before it
returns, so a damaged or truncated file is named before any slow work starts; `save` writes a
temporary folder and renames it, so an interrupted save leaves nothing behind. This module owns
the format; each family decides what goes into config, settings and the params files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from flax import nnx

from unires_jax.convert import weight_files

META = "checkpoint.json"
FORMAT = "unires-jax-checkpoint"
VERSION = 1
PARAMS_DIR = "params"
_CHUNK = 1 << 20


class CheckpointError(ValueError):
    """A checkpoint folder that is missing, damaged or not in this format (names the file)."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint folder (see the module docstring for the fields)."""

    path: pathlib.Path
    family: str
    config: dict[str, Any]
    settings: dict[str, Any]
    extra: dict[str, Any]
    files: dict[str, dict[str, Any]]

    def file(self, relative: str) -> pathlib.Path:
        """A stored file or folder (one whose files are listed) by its relative path."""
        prefix = relative.rstrip("/") + "/"
        if relative not in self.files and not any(
            f.startswith(prefix) for f in self.files
        ):
            raise CheckpointError(
                f"{self.path / META}: lists no file {relative!r}; it has {sorted(self.files)}"
            )
        return self.path / relative

    def param_names(self) -> list[str]:
        """The networks that have a params file."""
        prefix, suffix = f"{PARAMS_DIR}/", ".safetensors"
        return sorted(
            f[len(prefix) : -len(suffix)]
            for f in self.files
            if f.startswith(prefix) and f.endswith(suffix)
        )

    def params(self, name: str) -> dict[str, np.ndarray]:
        """One network's parameters by dotted path (float32, as stored)."""
        return weight_files.read_safetensors(
            self.file(f"{PARAMS_DIR}/{name}.safetensors")
        )


def is_checkpoint(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder in this format (not whether it is intact: `read` checks)."""
    return (pathlib.Path(path) / META).is_file()


def read_family(path: str | os.PathLike) -> str:
    """The family tag of a checkpoint folder, without verifying its files (cheap)."""
    return _read_meta(pathlib.Path(path))["family"]


def read(path: str | os.PathLike) -> Checkpoint:
    """Reads and verifies a checkpoint folder.

    Raises:
      CheckpointError: no such folder, unreadable or altered `checkpoint.json`, a listed file
        missing, of the wrong size or with other contents; the message names the file.
    """
    path = pathlib.Path(path)
    meta = _read_meta(path)
    for relative, entry in meta["files"].items():
        _verify(path, relative, entry)
    return Checkpoint(
        path=path,
        family=meta["family"],
        config=dict(meta.get("config", {})),
        settings=dict(meta.get("settings", {})),
        extra=dict(meta.get("extra", {})),
        files=dict(meta["files"]),
    )


def save(
    dst: str | os.PathLike,
    *,
    family: str,
    config: Mapping[str, Any],
    params: Mapping[str, Mapping[str, np.ndarray]],
    settings: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    files: Mapping[str, str | os.PathLike] | None = None,
) -> pathlib.Path:
    """Writes a checkpoint folder atomically (a temporary folder renamed at the end).

    Args:
      dst: the new folder; it must not exist.
      family: the restorer family that reads it (`unires_jax.restore.FAMILIES`).
      config: JSON-ready network configs.
      params: network name -> {dotted parameter path: array}; stored as float32 safetensors.
      settings: JSON-ready default inference settings.
      extra: JSON-ready facts for the record.
      files: relative path in the checkpoint -> a file or folder to copy there.

    Returns:
      The folder written.
    """
    from safetensors.numpy import save_file

    dst = pathlib.Path(dst).absolute()
    if dst.exists():
        raise FileExistsError(
            f"{dst}: already exists; choose a new folder or remove it first"
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        for name, arrays in params.items():
            if not arrays:
                continue
            target = tmp / PARAMS_DIR / f"{name}.safetensors"
            target.parent.mkdir(parents=True, exist_ok=True)
            save_file(
                {k: np.ascontiguousarray(v, np.float32) for k, v in arrays.items()},
                target,
            )
        for relative, source in (files or {}).items():
            source, target = pathlib.Path(source), tmp / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copyfile(source, target)
        listed = sorted(
            p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file()
        )
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "family": family,
            "config": dict(config),
            "settings": dict(settings or {}),
            "extra": dict(extra or {}),
            "files": {f: _describe(tmp / f) for f in listed},
        }
        meta["sha256"] = _meta_hash(meta)
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n")
        _follow_umask(tmp)
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


def _follow_umask(folder: pathlib.Path) -> None:
    """mkdtemp makes the folder 0700 (and some writers make files 0600); a checkpoint is shared
    like any other folder, so it gets the modes the user's umask gives new files."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


# --- NNX modules <-> flat parameter dicts --------------------------------------------------------


def module_params(module: nnx.Module) -> dict[str, np.ndarray]:
    """A module's parameters as {dotted path: float32 array} (what `save` stores)."""
    flat = jax.tree_util.tree_flatten_with_path(
        nnx.state(module, nnx.Param).to_pure_dict()
    )[0]
    return {_dotted(p): np.asarray(v, np.float32) for p, v in flat}


def assign_params(
    module: nnx.Module, arrays: Mapping[str, np.ndarray], *, dtype: Any, source: str
) -> None:
    """Writes {dotted path: array} into a (possibly abstract) module's parameters, cast to dtype.

    Raises:
      CheckpointError: names missing, unexpected or mis-shaped parameters and `source`.
    """
    state = nnx.state(module, nnx.Param)
    pure = state.to_pure_dict()
    paths, treedef = jax.tree_util.tree_flatten_with_path(pure)
    names = [_dotted(p) for p, _ in paths]
    missing = [n for n in names if n not in arrays]
    unexpected = sorted(set(arrays) - set(names))
    wrong = [
        f"{n} {tuple(arrays[n].shape)} (expected {tuple(leaf.shape)})"
        for n, (_, leaf) in zip(names, paths)
        if n in arrays and tuple(arrays[n].shape) != tuple(leaf.shape)
    ]
    if missing or unexpected or wrong:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing, e.g. {missing[:3]}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected, e.g. {unexpected[:3]}")
        if wrong:
            problems.append(f"{len(wrong)} of the wrong shape, e.g. {wrong[:3]}")
        raise CheckpointError(
            f"{source}: the parameters do not fit the stored config: {'; '.join(problems)}"
        )
    values = [jax.numpy.asarray(arrays[n], dtype) for n in names]
    state.replace_by_pure_dict(jax.tree_util.tree_unflatten(treedef, values))
    nnx.update(module, state)


def _dotted(path) -> str:
    parts = []
    for key in path:
        for attr in ("key", "idx", "name"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return ".".join(parts)


# --- hashing --------------------------------------------------------------------------------------


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _describe(path: pathlib.Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": _sha256(path)}


def _meta_hash(meta: Mapping[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


_FIX = (
    "The checkpoint is damaged or was changed after it was written: copy it again from its "
    "source (or re-export / re-convert it)."
)


def _read_meta(path: pathlib.Path) -> dict[str, Any]:
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such folder (expected a checkpoint folder)")
    meta_path = path / META
    if not meta_path.is_file():
        raise CheckpointError(
            f"{meta_path}: missing; {path} is not a unires-jax checkpoint"
        )
    try:
        meta = json.loads(meta_path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{meta_path}: not valid JSON ({e}). {_FIX}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: not a {FORMAT!r} document. {_FIX}")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{meta_path}: format version {meta.get('version')!r}; this unires-jax reads "
            f"version {VERSION} (was it written by a newer unires-jax?)"
        )
    if meta.get("sha256") != _meta_hash(meta):
        raise CheckpointError(
            f"{meta_path}: its contents do not match its own hash. {_FIX}"
        )
    if not isinstance(meta.get("files"), dict) or not isinstance(
        meta.get("family"), str
    ):
        raise CheckpointError(f"{meta_path}: no 'files' table or 'family' tag. {_FIX}")
    return meta


def _verify(path: pathlib.Path, relative: str, entry: Mapping[str, Any]) -> None:
    target = path / relative
    if pathlib.PurePosixPath(relative).is_absolute() or ".." in relative.split("/"):
        raise CheckpointError(
            f"{path / META}: file entry {relative!r} is outside the folder"
        )
    if not target.is_file():
        raise CheckpointError(f"{target}: missing (listed in {META}). {_FIX}")
    size = target.stat().st_size
    if size != entry.get("bytes"):
        raise CheckpointError(
            f"{target}: {size} bytes, {META} says {entry.get('bytes')} (truncated?). {_FIX}"
        )
    if _sha256(target) != entry.get("sha256"):
        raise CheckpointError(
            f"{target}: contents differ from its SHA-256 in {META}. {_FIX}"
        )

"""Reads PyTorch-side weight files into flat dicts of numpy arrays, without importing torch.

Two formats:
- safetensors (preferred): parsed directly (8-byte header length, JSON header, raw buffer), so
  float16 and bfloat16 tensors load as numpy arrays (bfloat16 via ml_dtypes) with no framework.
- PyTorch `.bin` / `.pth` / `.pt` / `.ckpt` (a zip of a pickle plus raw storages, or the legacy
  pre-1.6 stream of pickles and raw storages): unpickled with an allow-list that only rebuilds
  tensors and ordered dicts. Pickle can still run code in principle, so callers must pass
  `allow_pickle=True` to opt in. `read_torch_tree` returns a whole nested training checkpoint
  (model, optimizer and EMA dicts) through the same allow-list.

Sharded checkpoints (`*.safetensors.index.json` / `*.bin.index.json` with a `weight_map`) are
read shard by shard.

Every offset, size and stride a file claims is checked against the bytes it holds before an array
is built, so a damaged or crafted file raises WeightFileError naming it, never reads out of bounds.
"""

from __future__ import annotations

import collections
import functools
import io
import itertools
import json
import math
import pathlib
import pickle
import struct
import zipfile
from collections.abc import Mapping
from typing import NamedTuple

import ml_dtypes
import numpy as np

_SAFETENSORS_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}

_TORCH_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class WeightFileError(ValueError):
    """A weight file is missing, truncated or in a format we do not read."""


def read_safetensors(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """Reads every tensor of a .safetensors file as a numpy array (PyTorch layout)."""
    path = pathlib.Path(path)
    raw = path.read_bytes()
    if len(raw) < 8:
        raise WeightFileError(
            f"{path}: file is {len(raw)} bytes, too short for safetensors"
        )
    (header_len,) = struct.unpack("<Q", raw[:8])
    if 8 + header_len > len(raw):
        raise WeightFileError(
            f"{path}: header length {header_len} exceeds the file; truncated?"
        )
    try:
        header = json.loads(raw[8 : 8 + header_len])
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise WeightFileError(f"{path}: unreadable safetensors header ({e})") from e
    if not isinstance(header, dict):
        raise WeightFileError(
            f"{path}: the safetensors header is a JSON {type(header).__name__}, not an object"
        )
    buffer = memoryview(raw)[8 + header_len :]
    entries = []
    for name, info in header.items():
        if name != "__metadata__":
            entries.append((name, *_safetensors_entry(path, name, info, len(buffer))))
    # Tensors may not share bytes: sorted by start, each must end before the next begins.
    entries.sort(key=lambda e: (e[3], e[4]))
    for before, after in itertools.pairwise(entries):
        if after[3] < before[4]:
            raise WeightFileError(
                f"{path}: tensors {before[0]!r} (bytes {before[3]}-{before[4]}) and "
                f"{after[0]!r} (bytes {after[3]}-{after[4]}) overlap; the file is damaged"
            )
    return {
        name: np.frombuffer(buffer[start:end], dtype=dtype).reshape(shape).copy()
        for name, dtype, shape, start, end in entries
    }


def _safetensors_entry(path: pathlib.Path, name: str, info, size: int):
    """(dtype, shape, start, end) of one header entry, checked against a buffer of `size` bytes."""
    if (
        not isinstance(info, dict)
        or not {"dtype", "shape", "data_offsets"} <= info.keys()
    ):
        raise WeightFileError(
            f"{path}: header entry {name!r} is not a tensor record (dtype, shape, data_offsets)"
        )
    dtype = (
        _SAFETENSORS_DTYPES.get(info["dtype"])
        if isinstance(info["dtype"], str)
        else None
    )
    if dtype is None:
        raise WeightFileError(
            f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}"
        )
    shape, offsets = info["shape"], info["data_offsets"]
    if not _is_int_list(shape) or min(shape, default=0) < 0:
        raise WeightFileError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
    if (
        not _is_int_list(offsets)
        or len(offsets) != 2
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise WeightFileError(
            f"{path}: tensor {name!r} has invalid data_offsets {offsets!r}"
        )
    start, end = offsets
    if end > size:
        raise WeightFileError(
            f"{path}: tensor {name!r} runs past the end of file; truncated?"
        )
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    if end - start != nbytes:
        raise WeightFileError(
            f"{path}: tensor {name!r} of shape {shape} ({info['dtype']}) needs {nbytes} bytes, "
            f"but its data_offsets span {end - start}"
        )
    return dtype, tuple(shape), start, end


def _is_int_list(value) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    )


class _TensorUnpickler(pickle.Unpickler):
    """Unpickles a torch state dict, rebuilding tensors as numpy arrays; refuses anything else."""

    def __init__(
        self, file, archive: zipfile.ZipFile, prefix: str, source: pathlib.Path
    ):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._source = source
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        rebuild = functools.partial(_rebuild_tensor, source=self._source)
        return _allowed_class(module, name, rebuild, self._source)

    def persistent_load(self, pid):
        if (
            not isinstance(pid, tuple)
            or len(pid) != 5
            or pid[0] != "storage"
            or not isinstance(pid[1], str)
            or pid[1] not in _TORCH_STORAGE_DTYPES
            or not _is_int_list([pid[4]])
            or pid[4] < 0
        ):
            raise WeightFileError(f"{self._source}: unsupported storage {pid!r}")
        _, storage_type, key, _location, numel = pid
        if key not in self._storages:
            member = f"{self._prefix}/data/{key}"
            try:
                data = self._archive.read(member)
            except KeyError:
                raise WeightFileError(
                    f"{self._source}: storage record {member} is missing; truncated?"
                ) from None
            dtype = np.dtype(_TORCH_STORAGE_DTYPES[storage_type])
            if len(data) < numel * dtype.itemsize:
                raise WeightFileError(
                    f"{self._source}: storage {key!r} claims {numel} elements "
                    f"({numel * dtype.itemsize} bytes) but holds {len(data)} bytes"
                )
            self._storages[key] = np.frombuffer(data, dtype=dtype, count=numel)
        return self._storages[key]


def _allowed_class(module: str, name: str, rebuild, source: pathlib.Path):
    """The only classes a weight pickle may name: ordered dicts, tensors, parameters, storage
    types (a marker string that persistent_load maps to a dtype). Anything else is refused."""
    if rebuild is not None:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in (
            "_rebuild_tensor_v2",
            "_rebuild_tensor",
        ):
            return rebuild
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, *rest: data
        if module == "torch" and name in _TORCH_STORAGE_DTYPES:
            return name
    raise WeightFileError(
        f"{source}: refusing to unpickle {module}.{name}; only tensors and dicts are allowed in "
        "a weight file. Convert it to safetensors."
    )


def _rebuild_tensor(
    storage, storage_offset, size, stride, *_unused, source: pathlib.Path
):
    if not isinstance(storage, np.ndarray):
        raise WeightFileError(
            f"{source}: a tensor record without a storage ({storage!r})"
        )
    what = f"{source}: a tensor record"
    return _strided(storage, _Tensor(None, storage_offset, size, stride), what)


def _require_pickle_opt_in(path: pathlib.Path, allow_pickle: bool) -> None:
    if not allow_pickle:
        raise WeightFileError(
            f"{path}: {path.suffix or 'PyTorch'} weights are Python pickles, which can run code "
            "when loaded. Pass allow_pickle=True (CLI: --allow-pickle) if you trust this file, "
            "or convert it to safetensors."
        )


def read_torch_bin(
    path: str | pathlib.Path, *, allow_pickle: bool = False
) -> dict[str, np.ndarray]:
    """Reads a PyTorch zip-format `.bin` state dict as numpy arrays, without torch."""
    path = pathlib.Path(path)
    _require_pickle_opt_in(path, allow_pickle)
    if not zipfile.is_zipfile(path):
        state = _read_legacy_torch(
            path
        )  # torch.save before 1.6 (e.g. lpips' head files)
    else:
        state = _read_zip_torch(path)
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    return {k: v for k, v in state.items() if isinstance(v, np.ndarray)}


def read_torch_tree(path: str | pathlib.Path, *, allow_pickle: bool = False) -> dict:
    """Reads a whole `torch.save`d dict, nested (a training checkpoint: model, optimizer, EMA).

    The same restricted unpickler as `read_torch_bin`: tensors become numpy arrays, and besides
    tensors and (ordered) dicts only the values a pickle builds without naming a class (int,
    float, bool, str, bytes, None, lists, tuples) can appear; any other object is refused.
    Every storage of the file is read, optimizer state included (about 5x the model's size for
    an Adam checkpoint with an EMA copy).

    Args:
        path: a zip-format (torch >= 1.6) `.pt` / `.pth` / `.ckpt` / `.bin` file.
        allow_pickle: must be True: the file is a pickle.

    Returns:
        The saved dict, with nested mappings as plain dicts (keys as saved, e.g. ints for
        optimizer state), tensors as numpy arrays in PyTorch layout.

    Raises:
        WeightFileError: no opt-in, a missing, legacy-format or damaged file, a top level that
            is not a dict, or a disallowed object (names the file).
    """
    path = pathlib.Path(path)
    _require_pickle_opt_in(path, allow_pickle)
    if not path.is_file():
        raise WeightFileError(f"{path}: file not found")
    if not zipfile.is_zipfile(path):
        raise WeightFileError(
            f"{path}: not a zip-format PyTorch file; nested checkpoints are read only in the "
            "format of torch >= 1.6 (re-save it with torch.save, or export the state dict to "
            "safetensors)"
        )
    return _plain_tree(_read_zip_torch(path))


def _plain_tree(value):
    """OrderedDicts -> dicts, recursively through dicts, lists and tuples."""
    if isinstance(value, Mapping):
        return {k: _plain_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_tree(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain_tree(v) for v in value)
    return value


def _read_zip_torch(path: pathlib.Path) -> Mapping:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise WeightFileError(f"{path}: not a readable zip archive ({e})") from e
    with archive:
        pkl_names = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pkl_names) != 1:
            raise WeightFileError(
                f"{path}: expected one data.pkl in the archive, found {pkl_names}"
            )
        prefix = pkl_names[0][: -len("/data.pkl")]
        try:
            with archive.open(pkl_names[0]) as f:
                state = _TensorUnpickler(f, archive, prefix, path).load()
        except WeightFileError:
            raise
        except (
            pickle.UnpicklingError,
            zipfile.BadZipFile,
            EOFError,
            ValueError,
            TypeError,
        ) as e:
            raise WeightFileError(
                f"{path}: not a readable PyTorch weight file ({type(e).__name__}: {e}); "
                "truncated or damaged?"
            ) from e
    if not isinstance(state, Mapping):
        raise WeightFileError(
            f"{path}: expected a state dict, got {type(state).__name__}"
        )
    return state


def read_weights(
    path: str | pathlib.Path, *, allow_pickle: bool = False
) -> dict[str, np.ndarray]:
    """Reads a single weight file or a sharded index (`*.index.json`) by its suffix."""
    path = pathlib.Path(path)
    if not path.exists():
        raise WeightFileError(f"{path}: file not found")
    name = path.name
    if name.endswith(".index.json"):
        index = json.loads(path.read_text())
        if "weight_map" not in index:
            raise WeightFileError(f"{path}: sharded index without a 'weight_map'")
        out: dict[str, np.ndarray] = {}
        for shard in sorted(set(index["weight_map"].values())):
            out.update(read_weights(path.parent / shard, allow_pickle=allow_pickle))
        return out
    if name.endswith(".safetensors"):
        return read_safetensors(path)
    if name.endswith((".bin", ".pt", ".pth", ".ckpt")):
        return read_torch_bin(path, allow_pickle=allow_pickle)
    raise WeightFileError(
        f"{path}: unknown weight file type (expected .safetensors or .bin)"
    )


def find_weight_file(
    folder: pathlib.Path, stems: tuple[str, ...], variant: str | None = None
) -> pathlib.Path:
    """Picks the weight file of a diffusers/transformers component folder.

    Prefers safetensors over .bin, and a sharded index over a single file when only the index
    exists. `stems` are the base names, e.g. ("diffusion_pytorch_model",) or ("model",
    "pytorch_model"). `variant` selects e.g. "fp16" files (`model.fp16.safetensors`).
    """
    infix = f".{variant}" if variant else ""
    candidates = []
    for suffix in (".safetensors", ".bin"):
        for stem in stems:
            candidates.append(folder / f"{stem}{infix}{suffix}")
            candidates.append(folder / f"{stem}{infix}{suffix}.index.json")
    for candidate in candidates:
        if candidate.exists():
            return candidate
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    raise WeightFileError(
        f"{folder}: no weight file found; expected one of {[c.name for c in candidates[:4]]} "
        f"(found: {present or 'nothing'})"
    )


# --- PyTorch's legacy (pre-1.6, non-zip) serialization ----------------------------------------
#
#   pickle(magic) pickle(protocol 1001) pickle(sys_info) pickle(state dict with storage ids)
#   pickle(sorted storage keys), then per key: int64 element count + raw little-endian data.

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _Storage(NamedTuple):
    key: str
    dtype: type
    numel: int


class _Tensor(NamedTuple):
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild(storage, offset, size, stride, *_unused, source: pathlib.Path) -> _Tensor:
    if not isinstance(storage, _Storage):
        raise WeightFileError(
            f"{source}: a tensor record without a storage ({storage!r})"
        )
    return _Tensor(storage, offset, tuple(size), tuple(stride))


class _LegacyUnpickler(pickle.Unpickler):
    """Unpickles one legacy section; tensors become _Tensor placeholders, nothing else is built."""

    def __init__(self, file, source: pathlib.Path, tensors: bool):
        super().__init__(file)
        self._source = source
        self._tensors = tensors

    def find_class(self, module, name):
        # The header sections hold plain values: only the state dict may name classes.
        rebuild = (
            functools.partial(_rebuild, source=self._source) if self._tensors else None
        )
        return _allowed_class(module, name, rebuild, self._source)

    def persistent_load(self, pid):
        # pid[5] is set for a view into a shared storage (torch < 0.4); not read here.
        if (
            not isinstance(pid, tuple)
            or len(pid) != 6
            or pid[0] != "storage"
            or pid[1] not in _TORCH_STORAGE_DTYPES
            or pid[5] is not None
        ):
            raise WeightFileError(f"{self._source}: unsupported legacy storage {pid!r}")
        _, storage_type, key, _location, numel, _view = pid
        return _Storage(str(key), _TORCH_STORAGE_DTYPES[storage_type], int(numel))


def _read_legacy_torch(path: pathlib.Path) -> dict[str, np.ndarray]:
    """Reads a legacy-format torch.save state dict as numpy arrays, without torch."""
    f = io.BytesIO(path.read_bytes())

    def section(tensors: bool = False):
        try:
            return _LegacyUnpickler(f, path, tensors).load()
        except WeightFileError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
            raise WeightFileError(
                f"{path}: not a PyTorch weight file ({type(e).__name__}: {e}); truncated?"
            ) from e

    if section() != _LEGACY_MAGIC or section() != _LEGACY_PROTOCOL:
        raise WeightFileError(
            f"{path}: not a PyTorch weight file (no legacy torch.save header)"
        )
    sys_info = section()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise WeightFileError(f"{path}: only little-endian PyTorch files are read")
    state = section(tensors=True)
    keys = section()
    if not isinstance(state, Mapping) or not isinstance(keys, list):
        raise WeightFileError(f"{path}: expected a state dict and its storage keys")
    tensors = {k: v for k, v in state.items() if isinstance(v, _Tensor)}
    storages = {t.storage.key: t.storage for t in tensors.values()}
    raw: dict[str, np.ndarray] = {}
    for key in keys:  # storages lie back to back, in this order
        header = f.read(8)
        if len(header) != 8:
            raise WeightFileError(f"{path}: storage data ends early; truncated?")
        (numel,) = struct.unpack("<q", header)
        storage = storages.get(str(key))
        if storage is None or numel != storage.numel or numel < 0:
            raise WeightFileError(f"{path}: storage {key!r} does not match its tensors")
        nbytes = numel * np.dtype(storage.dtype).itemsize
        buffer = f.read(nbytes)
        if len(buffer) != nbytes:
            raise WeightFileError(f"{path}: storage {key!r} ends early; truncated?")
        raw[storage.key] = np.frombuffer(buffer, dtype=storage.dtype)
    out = {}
    for name, t in tensors.items():
        if t.storage.key not in raw:
            raise WeightFileError(f"{path}: tensor {name!r} has no stored data")
        out[name] = _strided(raw[t.storage.key], t, f"{path}: tensor {name!r}")
    return out


def _strided(storage: np.ndarray, t: _Tensor, what: str) -> np.ndarray:
    """The tensor's elements of `storage` (a view by offset, size and stride), copied.

    Offset, sizes and strides come from the file, so they are checked before `as_strided`, which
    would otherwise read whatever memory they point at (or crash the process).
    """
    offset, size, stride = t.offset, t.size, t.stride
    if (
        not _is_int_list([offset])
        or not _is_int_list(size)
        or not _is_int_list(stride)
        or len(size) != len(stride)
    ):
        raise WeightFileError(
            f"{what} has an invalid offset {offset!r}, size {size!r} or stride {stride!r}"
        )
    if offset < 0 or min(size, default=0) < 0 or min(stride, default=0) < 0:
        raise WeightFileError(
            f"{what} has a negative offset, size or stride (offset {offset}, size "
            f"{tuple(size)}, stride {tuple(stride)})"
        )
    if math.prod(size) == 0:
        return np.zeros(tuple(size), storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.size:
        raise WeightFileError(
            f"{what} reaches outside its storage: size {tuple(size)}, stride {tuple(stride)} "
            f"and offset {offset} need element {last}, the storage holds {storage.size}"
        )
    try:
        view = np.lib.stride_tricks.as_strided(
            storage[offset:],
            shape=tuple(size),
            strides=tuple(s * storage.itemsize for s in stride),
            writeable=False,
        )
        return np.array(view)
    except (
        MemoryError,
        ValueError,
    ):  # a stride-0 (broadcast) record may claim too much
        raise WeightFileError(
            f"{what} of size {tuple(size)} does not fit in memory"
        ) from None

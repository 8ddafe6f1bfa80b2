"""Weight files written by torch / safetensors read back identically without torch; crafted bad
files raise WeightFileError naming the file (never a crash)."""

import collections
import io
import json
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from unires_jax.convert import weight_files


def _state():
    g = torch.Generator().manual_seed(0)
    return {
        "conv.weight": torch.randn(8, 4, 3, 3, generator=g),
        "half": torch.randn(5, 7, generator=g).half(),
        "bf16": torch.randn(3, 2, generator=g).to(torch.bfloat16),
        "strided": torch.randn(6, 4, generator=g).t(),  # non-contiguous view
        "offset": torch.randn(10, generator=g)[3:7],  # storage offset
        "int": torch.arange(5),
        "scalar": torch.tensor(2.5),
    }


def _as_numpy(t: torch.Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:
        return t.float().numpy()
    return t.numpy()


def test_torch_bin_reads_like_torch(tmp_path):
    state = _state()
    path = tmp_path / "model.bin"
    torch.save(state, path)
    got = weight_files.read_weights(path, allow_pickle=True)
    assert set(got) == set(state)
    for k, v in state.items():
        np.testing.assert_array_equal(np.asarray(got[k], np.float64), _as_numpy(v).astype(np.float64))
        assert got[k].shape == tuple(v.shape)


def test_safetensors_reads_all_dtypes(tmp_path):
    state = {k: v.contiguous() for k, v in _state().items()}
    path = tmp_path / "model.safetensors"
    save_file(state, path)
    got = weight_files.read_weights(path)
    for k, v in state.items():
        np.testing.assert_array_equal(np.asarray(got[k], np.float64), _as_numpy(v).astype(np.float64))


def test_bin_needs_allow_pickle(tmp_path):
    path = tmp_path / "model.bin"
    torch.save({"a": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=r"model\.bin.*allow_pickle=True"):
        weight_files.read_weights(path)


def test_bin_refuses_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.bin"
    torch.save({"a": torch.zeros(2), "b": torch.nn.Linear(2, 2)}, path)
    with pytest.raises(ValueError, match=r"evil\.bin: refusing to unpickle"):
        weight_files.read_weights(path, allow_pickle=True)


def test_truncated_safetensors_names_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"a": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(ValueError, match=r"model\.safetensors.*truncated"):
        weight_files.read_weights(path)


def test_sharded_index(tmp_path):
    save_file({"a": torch.ones(2)}, tmp_path / "m-00001.safetensors")
    save_file({"b": torch.zeros(3)}, tmp_path / "m-00002.safetensors")
    index = tmp_path / "m.safetensors.index.json"
    index.write_text('{"weight_map": {"a": "m-00001.safetensors", "b": "m-00002.safetensors"}}')
    got = weight_files.read_weights(index)
    assert sorted(got) == ["a", "b"]


def test_find_weight_file_prefers_safetensors_and_lists_folder(tmp_path):
    (tmp_path / "diffusion_pytorch_model.bin").write_bytes(b"")
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    assert weight_files.find_weight_file(tmp_path, ("diffusion_pytorch_model",)).suffix == ".safetensors"
    with pytest.raises(ValueError, match="no weight file found"):
        weight_files.find_weight_file(tmp_path / "missing", ("model",))


# --- crafted bad files: every reader checks its bounds ----------------------------------------


class _StorageRef:
    """Pickled as the persistent id torch writes for a storage."""

    def __init__(self, numel, legacy):
        self.numel, self.legacy = numel, legacy


class _TensorRef:
    """Pickled as torch does: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, (
            *self.args,
            False,
            collections.OrderedDict(),
        )


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if not isinstance(obj, _StorageRef):
            return None
        pid = ("storage", torch.FloatStorage, "0", "cpu", obj.numel)
        return (*pid, None) if obj.legacy else pid


def _pickle(obj):
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def _legacy_header():
    """Before torch 1.6: magic, protocol, sys_info, then the state, the storage keys, and per
    storage an element count and its bytes."""
    return (
        _pickle(weight_files._LEGACY_MAGIC)
        + _pickle(1001)
        + _pickle({"little_endian": True})
    )


def _crafted_torch_file(
    path, offset, size, stride, *, numel=4, data=None, legacy=False
):
    """A torch file whose one tensor "w" claims offset/size/stride in a float storage of `numel`
    elements holding `data` (default: numel floats 0, 1, 2, ...)."""
    data = np.arange(numel, dtype=np.float32).tobytes() if data is None else data
    state = _pickle({"w": _TensorRef(_StorageRef(numel, legacy), offset, size, stride)})
    if legacy:
        path.write_bytes(
            _legacy_header() + state + _pickle(["0"]) + struct.pack("<q", numel) + data
        )
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", state)
            archive.writestr("archive/data/0", data)
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_crafted_torch_file_reads_its_one_tensor(tmp_path, legacy):
    path = _crafted_torch_file(tmp_path / "ok.bin", 1, (3,), (1,), legacy=legacy)
    np.testing.assert_array_equal(
        weight_files.read_weights(path, allow_pickle=True)["w"], [1, 2, 3]
    )


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize(
    "offset, size, stride, kw",
    [
        (0, (10**6,), (1,), {}),  # the segfault of the issue: as_strided out of bounds
        (0, (2, 2), (3, 1), {}),
        (0, (3,), (-1,), {}),
        (-2, (2,), (1,), {}),
        (0, (-4,), (1,), {}),
        (10, (), (), {}),
        (0, (2, 2), (1,), {}),
        (0, ("2",), (1,), {}),
        (0, (4,), (1,), {"numel": 100, "data": bytes(16)}),
    ],
    ids=[
        "size-past-storage",
        "stride-past-storage",
        "negative-stride",
        "negative-offset",
        "negative-size",
        "scalar-offset-past-storage",
        "size-stride-lengths-differ",
        "size-not-an-int",
        "storage-shorter-than-numel",
    ],
)
def test_torch_tensor_records_outside_their_storage_raise(
    tmp_path, legacy, offset, size, stride, kw
):
    path = _crafted_torch_file(
        tmp_path / "bad.bin", offset, size, stride, legacy=legacy, **kw
    )
    with pytest.raises(weight_files.WeightFileError, match=r"bad\.bin: "):
        weight_files.read_weights(path, allow_pickle=True)


def test_damaged_torch_zip_names_the_file(tmp_path):
    path = tmp_path / "model.bin"
    torch.save({"a": torch.zeros(100)}, path)
    data = bytearray(path.read_bytes())
    start = (
        data.index(b"data.pkl") + 60
    )  # inside the pickle record: its CRC no longer matches
    data[start : start + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(weight_files.WeightFileError, match=r"model\.bin: "):
        weight_files.read_weights(path, allow_pickle=True)


def test_torch_zip_without_its_storage_record_names_the_file(tmp_path):
    path = _crafted_torch_file(tmp_path / "bad.bin", 0, (4,), (1,))
    with zipfile.ZipFile(path) as archive:
        pickle_only = archive.read("archive/data.pkl")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_only)
    missing = r"bad\.bin: .*archive/data/0 is missing"
    with pytest.raises(weight_files.WeightFileError, match=missing):
        weight_files.read_weights(path, allow_pickle=True)


def _safetensors(path, header, buffer=bytes(64), *, raw_header=None):
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + buffer)
    return path


@pytest.mark.parametrize(
    "header, raw_header",
    [
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 100]}}, None),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}}, None),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]}}, None),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, None),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, None),
        ({"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, None),
        (
            {
                "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
            },
            None,
        ),
        ({"a": {"dtype": "F32", "shape": [4]}}, None),
        ({"a": [0, 16]}, None),
        (None, b"[1, 2, 3]"),
        (None, b'{"\xff": 1}'),
    ],
    ids=[
        "end-past-buffer",
        "start-after-end",
        "negative-start",
        "shape-smaller-than-bytes",
        "shape-larger-than-bytes",
        "negative-shape",
        "overlapping-tensors",
        "no-offsets",
        "entry-not-an-object",
        "header-not-an-object",
        "header-not-utf8",
    ],
)
def test_bad_safetensors_raise_naming_the_file(tmp_path, header, raw_header):
    path = _safetensors(tmp_path / "bad.safetensors", header, raw_header=raw_header)
    with pytest.raises(weight_files.WeightFileError, match=r"bad\.safetensors: "):
        weight_files.read_weights(path)


def test_safetensors_header_length_past_the_file(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 2**64 - 1) + b"{}")
    with pytest.raises(
        weight_files.WeightFileError, match=r"bad\.safetensors: header length"
    ):
        weight_files.read_weights(path)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_tensor_record_without_a_storage_names_the_file(tmp_path, legacy):
    # An int where the storage belongs.
    state = _pickle({"w": _TensorRef(7, 0, (1,), (1,))})
    path = tmp_path / "bad.bin"
    if legacy:
        path.write_bytes(_legacy_header() + state + _pickle([]))
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", state)
    with pytest.raises(weight_files.WeightFileError, match=r"bad\.bin: "):
        weight_files.read_weights(path, allow_pickle=True)

"""Weight files written by torch / safetensors read back identically without torch."""

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

"""The one checkpoint format: what it stores, that every stored file is verified, that damage is
named before anything is written, and that saving is atomic and follows the umask."""

import json
import os
import shutil
import stat

import numpy as np
import pytest
from toy_family import ToyCNN, ToyConfig, save_toy

from unires_jax.cli.main import main as cli_main
from unires_jax.convert import checkpoint
from unires_jax.restore.restorer import DEFAULT_MODEL_DIR


def _flip(path, count=8):
    data = bytearray(path.read_bytes())
    start = len(data) // 2
    for i in range(start, min(start + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_save_and_read_round_trip_with_a_hash_per_file(tmp_path):
    folder = save_toy(tmp_path / "toy", width=4, strength=0.5)
    ckpt = checkpoint.read(folder)
    assert (ckpt.family, ckpt.config, ckpt.settings) == (
        "toy",
        {"width": 4},
        {"strength": 0.5, "delay": 0.0},
    )
    assert ckpt.param_names() == ["cnn"]
    assert sorted(ckpt.files) == ["params/cnn.safetensors"]
    entry = ckpt.files["params/cnn.safetensors"]
    assert entry["bytes"] == (folder / "params" / "cnn.safetensors").stat().st_size
    assert len(entry["sha256"]) == 64
    params = ckpt.params("cnn")
    assert sorted(params) == [
        "conv1.bias",
        "conv1.kernel",
        "conv2.bias",
        "conv2.kernel",
        "conv3.bias",
        "conv3.kernel",
    ]
    assert (
        params["conv1.kernel"].shape == (3, 3, 3, 4)
        and params["conv1.kernel"].dtype == np.float32
    )


def test_every_stored_file_of_the_embedded_model_is_verified(tmp_path):
    ckpt = checkpoint.read(DEFAULT_MODEL_DIR)
    assert ckpt.family == "unires"
    # The weights, the tokenizer and the document itself are all covered.
    assert {
        "params/unet.safetensors",
        "params/text_encoder.safetensors",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
    } <= set(ckpt.files)
    listed = {
        p.relative_to(DEFAULT_MODEL_DIR).as_posix()
        for p in DEFAULT_MODEL_DIR.rglob("*")
        if p.is_file()
    }
    assert listed == set(ckpt.files) | {checkpoint.META}


def test_flipped_bytes_in_any_stored_file_are_named_and_nothing_is_written(tmp_path):
    """Acceptance: a clear error naming the damaged file, before any output is written."""
    photo = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photo)
    names = sorted(checkpoint.read(DEFAULT_MODEL_DIR).files) + [checkpoint.META]
    for name in names:
        copy = tmp_path / "model"
        shutil.copytree(DEFAULT_MODEL_DIR, copy)
        if name == checkpoint.META:  # a changed value that is still valid JSON
            text = (copy / name).read_text()
            (copy / name).write_text(
                text.replace('"lq_channels": 48', '"lq_channels": 40')
            )
        else:
            _flip(copy / name, count=64)
        with pytest.raises(
            checkpoint.CheckpointError, match=str(copy / name).replace("\\", "\\\\")
        ):
            checkpoint.read(copy)
        out = tmp_path / "out"
        assert (
            cli_main(
                [
                    "restore",
                    str(photo),
                    "--checkpoint",
                    str(copy),
                    "-o",
                    str(out),
                    "--no-progress",
                ]
            )
            == 2
        )
        assert not out.exists(), name
        shutil.rmtree(copy)


def test_truncated_missing_and_unlisted_format_errors_say_what_is_wrong(tmp_path):
    folder = save_toy(tmp_path / "toy")
    weights = folder / "params" / "cnn.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(
        checkpoint.CheckpointError,
        match=r"cnn\.safetensors: \d+ bytes, .*\(truncated\?\)",
    ):
        checkpoint.read(folder)
    weights.unlink()
    with pytest.raises(checkpoint.CheckpointError, match=r"cnn\.safetensors: missing"):
        checkpoint.read(folder)
    (folder / checkpoint.META).write_text("{not json")
    with pytest.raises(checkpoint.CheckpointError, match="not valid JSON"):
        checkpoint.read(folder)
    with pytest.raises(checkpoint.CheckpointError, match="no such folder"):
        checkpoint.read(tmp_path / "nothing")
    meta = json.loads((DEFAULT_MODEL_DIR / checkpoint.META).read_text())
    meta["version"] = 99
    (folder / checkpoint.META).write_text(json.dumps(meta))
    with pytest.raises(checkpoint.CheckpointError, match="newer unires-jax"):
        checkpoint.read(folder)


def test_parameters_that_do_not_fit_the_config_are_named(tmp_path):
    from flax import nnx

    folder = save_toy(tmp_path / "toy", width=4)
    arrays = checkpoint.read(folder).params("cnn")
    model = nnx.eval_shape(lambda: ToyCNN(ToyConfig(width=5), rngs=nnx.Rngs(0)))
    with pytest.raises(
        checkpoint.CheckpointError, match=r"5 of the wrong shape.*conv1\.bias"
    ):
        checkpoint.assign_params(model, arrays, dtype=np.float32, source="toy")
    del arrays["conv2.bias"]
    arrays["extra"] = np.zeros(1, np.float32)
    model = nnx.eval_shape(lambda: ToyCNN(ToyConfig(width=4), rngs=nnx.Rngs(0)))
    with pytest.raises(
        checkpoint.CheckpointError, match=r"1 missing.*conv2\.bias.*1 unexpected"
    ):
        checkpoint.assign_params(model, arrays, dtype=np.float32, source="toy")


def test_save_is_atomic_refuses_an_existing_folder_and_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        folder = save_toy(tmp_path / "toy")
    finally:
        os.umask(old)
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), path
    with pytest.raises(FileExistsError):
        save_toy(folder)
    with pytest.raises(TypeError):  # a failure half way leaves no folder behind
        checkpoint.save(
            tmp_path / "bad",
            family="toy",
            config={},
            params={},
            settings={"x": object()},
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]

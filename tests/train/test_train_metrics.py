"""metrics.jsonl, TensorBoard event files without TensorFlow, MFU, sample grids, curves."""

import io
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from unires_jax.train import metrics, tensorboard


def test_crc32c_known_vectors():
    assert tensorboard.crc32c(b"123456789") == 0xE3069283  # RFC 3720 check value
    assert tensorboard.crc32c(b"") == 0
    assert (
        tensorboard.crc32c(bytes(32)) == 0x8A9136AA
    )  # RFC 3720 B.4: 32 bytes of zeros


def _write(tmp_path):
    writer = metrics.MetricWriter(tmp_path)
    writer.scalars(1, {"loss": 0.5, "lr": 1e-4})
    writer.scalars(2, {"loss": 0.25, "lr": 2e-4})
    images = np.linspace(0, 1, 4 * 5 * 6 * 3, dtype=np.float32).reshape(4, 5, 6, 3)
    png = writer.images(2, "samples", images)
    writer.plot()
    writer.close()
    return png


def test_writer_outputs_jsonl_log_png_and_curves(tmp_path):
    png = _write(tmp_path)
    rows = [
        json.loads(line)
        for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ]
    assert rows == [
        {"step": 1, "loss": 0.5, "lr": 1e-4},
        {"step": 2, "loss": 0.25, "lr": 2e-4},
    ]
    assert "step 2 | loss 0.2500" in (tmp_path / "train.log").read_text()
    assert Image.open(png).size == (12, 10)  # 2x2 grid of 6x5 tiles
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_event_file_scalars_round_trip_with_checksums(tmp_path):
    _write(tmp_path)
    (event_file,) = os.listdir(tmp_path / "tensorboard")
    scalars = tensorboard.read_scalars(tmp_path / "tensorboard" / event_file)
    assert [(s, t) for s, t, _ in scalars] == [
        (1, "loss"),
        (1, "lr"),
        (2, "loss"),
        (2, "lr"),
    ]
    np.testing.assert_allclose(
        [v for *_, v in scalars], [0.5, 1e-4, 0.25, 2e-4], rtol=1e-6
    )


def test_event_file_is_readable_by_tensorboard(tmp_path):
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason="tensorboard (test extra) is the independent reader of the event format",
    )
    _write(tmp_path)
    acc = accumulator.EventAccumulator(
        str(tmp_path / "tensorboard"), size_guidance={accumulator.IMAGES: 0}
    ).Reload()
    assert sorted(acc.Tags()["scalars"]) == ["loss", "lr"]
    loss = acc.Scalars("loss")
    assert [e.step for e in loss] == [1, 2]
    np.testing.assert_allclose([e.value for e in loss], [0.5, 0.25])
    np.testing.assert_allclose(
        [e.value for e in acc.Scalars("lr")], [1e-4, 2e-4], rtol=1e-6
    )
    (image,) = acc.Images("samples")
    assert (image.step, image.width, image.height) == (2, 12, 10)
    assert Image.open(io.BytesIO(image.encoded_image_string)).size == (12, 10)


def test_disabled_writer_writes_nothing(tmp_path):
    writer = metrics.MetricWriter(tmp_path / "w", enabled=False)
    writer.scalars(1, {"loss": 1.0})
    writer.images(1, "samples", np.zeros((1, 2, 2, 3)))
    writer.plot()
    writer.close()
    assert not (tmp_path / "w").exists()


def test_compiled_flops_and_mfu():
    x = jnp.ones((64, 64), jnp.float32)
    compiled = jax.jit(lambda a: a @ a).lower(x).compile()
    assert metrics.compiled_flops(compiled) == pytest.approx(2 * 64**3, rel=0.01)
    assert metrics.mfu(1e12, 0.5, 4e12) == pytest.approx(0.5)
    assert metrics.mfu(None, 0.5, 4e12) is None and metrics.mfu(1e12, 0.5, None) is None


def test_compiled_memory_counts_the_buffers_and_the_report_says_what_to_change():
    x = jnp.ones((256, 256), jnp.float32)  # 256 KiB
    compiled = jax.jit(lambda a: a @ a, donate_argnums=0).lower(x).compile()
    memory = metrics.compiled_memory(compiled)
    assert memory.arguments == memory.outputs == 256 * 256 * 4
    assert memory.aliased == memory.arguments  # donated: the output reuses it
    assert memory.peak == memory.arguments + memory.temporaries
    gib = 2**30
    fits = metrics.StepMemory(
        arguments=gib, outputs=gib, aliased=gib, temporaries=2 * gib, peak=3 * gib
    )
    line, over = metrics.memory_report(fits, limit=4 * gib)
    assert not over and "3.00 GiB per device at peak" in line and "allows 4.00 GiB" in line
    line, over = metrics.memory_report(fits, limit=2 * gib)
    assert over and "does not fit" in line and "train.batch_size" in line
    assert metrics.memory_report(fits, limit=None) == (
        (
            "compiled train step: 3.00 GiB per device at peak (state and batch 1.00, "
            "temporaries 2.00)"
        ),
        False,
    )
    assert metrics.device_memory_limit(jax.devices("cpu")[0]) is None


def test_peak_flops_lookup():
    assert metrics.peak_flops_per_device("TPU v5 lite") == 197e12
    assert metrics.peak_flops_per_device("TPU v5p") == 459e12
    assert metrics.peak_flops_per_device("NVIDIA H100 80GB HBM3") == 989e12
    assert metrics.peak_flops_per_device("cpu") is None

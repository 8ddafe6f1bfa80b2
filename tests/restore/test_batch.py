"""Batch restoration of files and folders, with a stand-in restorer (the model is not the subject).

The stand-in is an `ImageRestorer` of no particular family that returns its input unchanged, so
lossless outputs must equal the inputs exactly: that checks the whole read -> restore -> write
path (grey, 16 bits, alpha, orientation). How UniRes fills the sidecar: test_unires_restorer.py.
"""

import io
import json
import os
import pathlib

import numpy as np
from PIL import Image

from unires_jax.restore import batch, image_io
from unires_jax.restore.inputs import InputFile, collect_inputs, plan_outputs
from unires_jax.restore.interface import ImageRestorer, Restored

RNG = np.random.default_rng(0)


class IdentityRestorer:
    """An `ImageRestorer` that returns the image as float (and fails on chosen widths)."""

    family = "identity"
    scale = 1

    def __init__(self, fail_widths=(), check_output=None):
        self.fail_widths = set(fail_widths)
        self.check_output = check_output
        self.calls = []

    def describe(self):
        return {"family": self.family, "settings": {"strength": 0}}

    def restore(self, image, *, seed=0, name=None):
        self.calls.append((image.shape, seed, name))
        if image.shape[1] in self.fail_widths:
            raise RuntimeError("out of memory (simulated)")
        peak = 65535.0 if image.dtype == np.uint16 else 255.0
        details = {"width": image.shape[1], "timings": {"model_seconds": 0.01}}
        return Restored(image.astype(np.float32) / peak, details, self.check_output)


def test_the_stand_in_is_an_image_restorer():
    assert isinstance(IdentityRestorer(), ImageRestorer)


def _png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)
    return path


def _rgb(h=6, w=8):
    return RNG.integers(0, 256, (h, w, 3)).astype(np.uint8)


def _restore(
    inputs, out, restorer=None, output_format="png", overwrite=False, **kwargs
):
    errors = io.StringIO()
    planned = batch.plan(
        collect_inputs(inputs, exclude=[out]),
        out,
        output_format=output_format,
        overwrite=overwrite,
    )
    report = batch.restore_files(
        restorer or IdentityRestorer(), planned, progress=False, errors=errors, **kwargs
    )
    return report, errors.getvalue()


def _log(out):
    return [
        json.loads(line) for line in (out / batch.LOG_NAME).read_text().splitlines()
    ]


def _bad_folder(tmp_path):
    folder = tmp_path / "in"
    good = {"a": _rgb(), "b": _rgb()}
    for name, array in good.items():
        _png(folder / f"{name}.png", array)
    png = bytearray(image_io.write_png(_rgb(16, 16)))
    png[60:70] = b"\xff" * 10
    (folder / "corrupt.png").write_bytes(bytes(png))
    jpeg = io.BytesIO()
    Image.fromarray(_rgb(32, 32)).save(jpeg, format="JPEG")
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[:300])
    (folder / "readme.txt").write_text("not an image")
    return folder, good


def test_bad_files_are_named_and_the_good_ones_are_still_written(tmp_path):
    folder, good = _bad_folder(tmp_path)
    out = tmp_path / "out"
    report, errors = _restore([folder], out)
    assert len(report.failed) == 3
    for name in ("corrupt.png", "truncated.jpg", "readme.txt"):
        assert str(folder / name) in errors
        assert any(str(folder / name) in r.error for r in report.failed)
    # Only complete outputs with their sidecars, no temporary or partial files.
    assert sorted(os.listdir(out)) == [
        "a.json",
        "a.png",
        "b.json",
        "b.png",
        batch.LOG_NAME,
    ]
    for name, array in good.items():
        np.testing.assert_array_equal(
            np.asarray(Image.open(out / f"{name}.png")), array
        )
    log = _log(out)
    assert [(line["input"], line["status"]) for line in log] == [
        (str(folder / "a.png"), "ok"),
        (str(folder / "b.png"), "ok"),
        (str(folder / "corrupt.png"), "error"),
        (str(folder / "readme.txt"), "error"),
        (str(folder / "truncated.jpg"), "error"),
    ]
    assert "3 failed" in report.summary() and "readme.txt" in report.summary()


def test_a_failure_while_restoring_or_writing_leaves_nothing_behind(
    tmp_path, monkeypatch
):
    _png(tmp_path / "in" / "ok.png", _rgb(6, 8))
    _png(tmp_path / "in" / "oom.png", _rgb(6, 13))
    _png(tmp_path / "in" / "nosidecar.png", _rgb(6, 9))
    real_write = image_io.write_atomic

    def write_failing_sidecar(path, data):
        if path.name == "nosidecar.json":
            raise OSError("disk full (simulated)")
        real_write(path, data)

    monkeypatch.setattr(image_io, "write_atomic", write_failing_sidecar)
    out = tmp_path / "out"
    report, errors = _restore(
        [tmp_path / "in"], out, IdentityRestorer(fail_widths={13})
    )
    assert "RuntimeError: out of memory" in errors and "disk full" in errors
    assert [r.status for r in report.results] == ["error", "ok", "error"]
    assert sorted(os.listdir(out)) == sorted([batch.LOG_NAME, "ok.json", "ok.png"])


def test_same_stems_never_overwrite_each_other(tmp_path):
    arrays = {
        "one/x.png": _rgb(),
        "two/x.png": _rgb(),
        "one/X.jpg": _rgb(),
        "one/x_2.png": _rgb(),
    }
    for rel, array in arrays.items():
        path = tmp_path / rel
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(array).save(path, quality=100)
    out = tmp_path / "out"
    inputs = [tmp_path / "one" / "x.png", tmp_path / "two" / "x.png", tmp_path / "one"]
    report, errors = _restore(inputs, out)
    assert not errors
    written = {r.input: r.output for r in report.results}
    # one/x.png is named and also inside one/: restored once.
    assert len(report.results) == len(set(written.values())) == 4
    assert [os.path.basename(r.output) for r in report.results] == [
        "x.png",
        "x_2.png",
        "X_3.png",
        "x_2_2.png",
    ]
    for rel in ("one/x.png", "two/x.png", "one/x_2.png"):
        output = written[str(tmp_path / rel)]
        np.testing.assert_array_equal(np.asarray(Image.open(output)), arrays[rel])
    for result in report.results:
        sidecar = json.loads((out / result.sidecar).read_text())
        assert sidecar["input"] == str((tmp_path / result.input).resolve())


def test_folders_are_searched_recursively_skipping_hidden_files_and_the_output(
    tmp_path,
):
    folder = tmp_path / "photos"
    _png(folder / "top.png", _rgb())
    _png(folder / "2020" / "summer" / "deep.png", _rgb())
    _png(folder / ".cache" / "hidden.png", _rgb())
    _png(folder / ".hidden.png", _rgb())
    out = folder / "restored"
    _png(out / "old.png", _rgb())  # a previous run's output inside the input folder
    inputs = collect_inputs([folder], exclude=[out])
    assert [str(i.relative) for i in inputs] == ["top", "2020/summer/deep"]
    report, _ = _restore([folder], out)
    assert (out / "2020" / "summer" / "deep.png").exists()
    assert (out / "2020" / "summer" / "deep.json").exists()
    assert not report.failed


def test_sidecar_records_the_restorer_the_details_the_input_and_timings(tmp_path):
    path = _png(tmp_path / "g16.png", RNG.integers(0, 65536, (5, 7)).astype(np.uint16))
    out = tmp_path / "out"
    restorer = IdentityRestorer()
    report, _ = _restore([path], out, restorer, seed=7)
    sidecar = json.loads((out / "g16.json").read_text())
    assert restorer.calls == [((5, 7, 3), 7, str(path))]
    assert sidecar["family"] == "identity" and sidecar["settings"] == {"strength": 0}
    assert sidecar["width"] == 7 and sidecar["seed"] == 7
    assert sidecar["input"] == str(path.resolve())
    info = sidecar["input_image"]
    assert (info["width"], info["height"], info["mode"], info["bit_depth"]) == (
        7,
        5,
        "I;16",
        16,
    )
    assert sidecar["output_image"] == {
        "format": "PNG",
        "mode": "L;16",
        "bit_depth": 16,
        "notes": [],
    }
    timings = sidecar["timings"]
    assert set(timings) == {
        "read_seconds",
        "restore_seconds",
        "model_seconds",
        "write_seconds",
        "total_seconds",
    }
    assert all(v >= 0 for v in timings.values())
    assert report.results[0].details == {"width": 7}
    assert _log(out)[0]["details"] == {"width": 7}


def test_check_output_sees_the_written_file_and_a_failing_check_writes_nothing(
    tmp_path,
):
    _png(tmp_path / "in" / "a.png", _rgb(6, 8))
    _png(tmp_path / "in" / "b.png", _rgb(6, 9))
    seen = {}

    def check(path):
        if path.name == "b.png":
            raise OSError("cannot check (simulated)")
        seen[path.name] = np.asarray(Image.open(path)).copy()  # the file exists by now
        return {"checked": True}

    out = tmp_path / "out"
    report, errors = _restore(
        [tmp_path / "in"], out, IdentityRestorer(check_output=check)
    )
    assert [r.status for r in report.results] == ["ok", "error"]
    np.testing.assert_array_equal(seen["a.png"], np.asarray(Image.open(out / "a.png")))
    assert json.loads((out / "a.json").read_text())["checked"] is True
    # No output without its sidecar.
    assert "cannot check" in errors and not (out / "b.png").exists()


def test_identity_restore_keeps_16_bit_grey_alpha_and_display_orientation(tmp_path):
    grey16 = RNG.integers(0, 65536, (5, 7)).astype(np.uint16)
    rgba = RNG.integers(0, 256, (6, 4, 4)).astype(np.uint8)
    _png(tmp_path / "in" / "grey16.png", grey16)
    _png(tmp_path / "in" / "rgba.png", rgba, "RGBA")
    stored = _rgb(4, 6)
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 8
    Image.fromarray(stored).save(tmp_path / "in" / "rotated.png", exif=exif.tobytes())
    out = tmp_path / "out"
    report, errors = _restore([tmp_path / "in"], out)
    assert not report.failed, errors
    back = Image.open(out / "grey16.png")
    assert back.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(back), grey16)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "rgba.png")), rgba)
    np.testing.assert_array_equal(
        np.asarray(Image.open(out / "rotated.png")), np.rot90(stored)
    )


def test_format_same_keeps_the_input_format(tmp_path):
    Image.fromarray(_rgb()).save(tmp_path / "x.jpg")
    Image.fromarray(_rgb()).save(tmp_path / "y.webp", lossless=True)
    out = tmp_path / "out"
    report, _ = _restore(
        [tmp_path / "x.jpg", tmp_path / "y.webp"], out, output_format="same"
    )
    assert [os.path.basename(r.output) for r in report.results] == ["x.jpg", "y.webp"]
    assert Image.open(out / "x.jpg").format == "JPEG"


def test_log_appends_one_line_per_input_per_run(tmp_path):
    _png(tmp_path / "a.png", _rgb())
    for _ in range(2):
        _restore([tmp_path / "a.png", tmp_path / "missing.png"], tmp_path / "out")
    log = _log(tmp_path / "out")
    assert len(log) == 4
    # The second run finds a.png's output complete and skips it; the missing file fails again.
    assert [line["status"] for line in log] == ["ok", "error", "skipped", "error"]
    assert "no such file" in log[1]["error"]


def test_output_names_compare_case_insensitively(tmp_path):
    inputs = [InputFile(tmp_path / n, pathlib.PurePath(n)) for n in ("A", "a", "a_2")]
    outs = plan_outputs(inputs, tmp_path, [".png"] * 3)
    assert [o.name for o in outs] == ["A.png", "a_2.png", "a_2_2.png"]

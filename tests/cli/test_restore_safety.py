"""`unires restore` never loses a photo (reliability issue, cases 1, 2, 5, 6 and 7): outputs never
replace inputs or files it did not write, reruns resume, interrupts and kills leave nothing
half-written, non-finite outputs are errors, files follow the umask, and every argument check
that needs no model runs before the model loads (exit 2).

The model is the test-only toy family (tests/toy_family.py), except where the UniRes loader's
own checks are the subject; damaged checkpoints are in tests/convert/test_checkpoint.py.
"""

import json
import os
import pathlib
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import toy_family
from PIL import Image

from unires_jax import restore
from unires_jax.cli.main import main as cli_main
from unires_jax.restore import unires

RNG = np.random.default_rng(0)


@pytest.fixture()
def toy(tmp_path_factory, monkeypatch):
    monkeypatch.setitem(restore.FAMILIES, toy_family.FAMILY, toy_family.load_toy)
    return toy_family.save_toy(tmp_path_factory.mktemp("toy") / "ckpt")


def _photos(folder, n=3, size=(12, 16)):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"p{i}.png"
        Image.fromarray(RNG.integers(0, 256, (*size, 3), np.uint8)).save(path)
        paths.append(path)
    return paths


def _snapshot(folder):
    return {
        p.relative_to(folder): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _cli(*argv):
    return cli_main(["restore", *map(str, argv), "--no-progress"])


# --- 1: outputs never replace inputs or other files ----------------------------------------------


def test_restoring_into_the_input_folder_is_refused_and_the_originals_stay(
    toy, tmp_path, capsys
):
    photos = _photos(tmp_path / "in")
    before = _snapshot(tmp_path / "in")
    assert _cli(tmp_path / "in", "--checkpoint", toy, "-o", tmp_path / "in") == 2
    assert "would replace the input" in capsys.readouterr().err
    assert _cli(photos[0], "--checkpoint", toy, "-o", tmp_path / "in") == 2
    assert _snapshot(tmp_path / "in") == before
    # With a suffix outputs go next to their inputs, and a rerun does not restore the outputs.
    assert (
        _cli(
            tmp_path / "in",
            "--checkpoint",
            toy,
            "-o",
            tmp_path / "in",
            "--suffix",
            "_r",
        )
        == 0
    )
    after = _snapshot(tmp_path / "in")
    assert {k: v for k, v in after.items() if k in before} == before
    assert {p.name for p in (tmp_path / "in").iterdir()} == {
        "p0.png", "p1.png", "p2.png", "p0_r.png", "p1_r.png", "p2_r.png",
        "p0_r.json", "p1_r.json", "p2_r.json", "restore_log.jsonl",
    }  # fmt: skip
    assert (
        _cli(
            tmp_path / "in",
            "--checkpoint",
            toy,
            "-o",
            tmp_path / "in",
            "--suffix",
            "_r",
        )
        == 0
    )
    assert "3 complete from an earlier run" in capsys.readouterr().out


def test_a_file_not_written_by_restore_is_never_replaced_without_overwrite(
    toy, tmp_path, capsys
):
    photos = _photos(tmp_path / "in", n=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "p0.png").write_bytes(b"the user's own file")
    assert _cli(photos[0], "--checkpoint", toy, "-o", out) == 2
    assert "is not an output of an earlier `unires restore`" in capsys.readouterr().err
    assert (out / "p0.png").read_bytes() == b"the user's own file"
    assert _cli(photos[0], "--checkpoint", toy, "-o", out, "--overwrite") == 0
    assert Image.open(out / "p0.png").size == (16, 12)


def test_a_rerun_skips_complete_outputs_and_refuses_other_settings(
    toy, tmp_path, capsys
):
    photos = _photos(tmp_path / "in")
    out = tmp_path / "out"
    assert _cli(tmp_path / "in", "--checkpoint", toy, "-o", out) == 0
    first = _snapshot(out)
    capsys.readouterr()
    assert _cli(tmp_path / "in", "--checkpoint", toy, "-o", out) == 0
    assert "3 complete from an earlier run" in capsys.readouterr().out
    assert {
        k: v for k, v in _snapshot(out).items() if k.name != "restore_log.jsonl"
    } == {k: v for k, v in first.items() if k.name != "restore_log.jsonl"}
    # A damaged output is redone; another seed into the same folder is refused before any work.
    (out / "p1.png").write_bytes(b"damaged")
    assert _cli(tmp_path / "in", "--checkpoint", toy, "-o", out) == 0
    assert (out / "p1.png").read_bytes() == first[pathlib.Path("p1.png")]
    assert _cli(tmp_path / "in", "--checkpoint", toy, "-o", out, "--seed", "5") == 2
    assert "other seed" in capsys.readouterr().err
    assert (
        _cli(photos[0], "--checkpoint", toy, "-o", out, "--seed", "5", "--overwrite")
        == 0
    )


# --- 2 (the model side): non-finite outputs are errors, never black images ------------------------


def test_a_model_that_outputs_nan_fails_that_image_and_writes_nothing(
    tmp_path, monkeypatch
):
    monkeypatch.setitem(restore.FAMILIES, toy_family.FAMILY, toy_family.load_toy)
    bad = toy_family.save_toy(tmp_path / "nan", strength=float("nan"))
    photos = _photos(tmp_path / "in", n=1)
    out = tmp_path / "out"
    assert _cli(photos[0], "--checkpoint", bad, "-o", out) == 1
    log = [
        json.loads(line)
        for line in (out / "restore_log.jsonl").read_text().splitlines()
    ]
    assert "NaN or infinite" in log[0]["error"]
    assert sorted(p.name for p in out.iterdir()) == ["restore_log.jsonl"]


# --- 5: files and folders follow the umask --------------------------------------------------------


@pytest.mark.parametrize(
    "umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]
)
def test_outputs_follow_the_umask(toy, tmp_path, umask, file_mode, dir_mode):
    _photos(tmp_path / "in" / "sub", n=1)
    old = os.umask(umask)
    try:
        assert (
            _cli(tmp_path / "in", "--checkpoint", toy, "-o", tmp_path / "out" / "deep")
            == 0
        )
    finally:
        os.umask(old)
    for path in (tmp_path / "out").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (dir_mode if path.is_dir() else file_mode), path


# --- 6: every check that needs no model runs before the model loads -------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps", "0"], "steps=0 (--steps): expected a whole number from 1 to 1000"),
        (["--steps", "-1"], "steps=-1"),
        (["--steps", "100000"], "from 1 to 1000"),
        (["--tile", "0"], "tile=0 (--tile): expected a whole number at least 8"),
        (["--tile", "-64"], "tile=-64"),
        (["--tile", "64", "--tile-overlap", "64"], "tile_overlap=64 (--tile-overlap)"),
        (["--search", "refine", "--quality", "bogus"], "unknown quality model 'bogus'"),
        (
            ["--search", "refine", "--quality", "musiq"],
            "MUSIQ needs an official checkpoint",
        ),
        (["--weights", "SR=1,SR=0"], "'SR' is given twice"),
        (
            ["--weights", "SR=0.5"],
            None,
        ),  # a sum != 1 needs the expert names: checked after
    ],
)
def test_bad_options_fail_before_the_model_loads_with_exit_2(
    argv, message, tmp_path, monkeypatch, capsys
):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    photo = _photos(tmp_path / "in", n=1)[0]
    if message is None:  # the one check that needs the model's expert list
        assert _cli(photo, "-o", tmp_path / "out", *argv) == 2
        assert "sum to 1" in capsys.readouterr().err
    else:
        monkeypatch.setattr(unires.Restorer, "load", no_model)
        assert _cli(photo, "-o", tmp_path / "out", *argv) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_impossible_outputs_and_seeds_are_usage_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        unires.Restorer, "load", lambda *a, **k: pytest.fail("model loaded")
    )
    photo = _photos(tmp_path / "in", n=1)[0]
    (tmp_path / "file").write_text("x")
    assert _cli(photo, "-o", tmp_path / "file" / "out") == 2
    assert "cannot be created" in capsys.readouterr().err
    assert _cli(photo, "-o", tmp_path / "file") == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    for seed in ("1e20", str(2**40), "-1"):
        with pytest.raises(SystemExit) as exit_info:
            _cli(photo, "-o", tmp_path / "out", "--seed", seed)
        assert exit_info.value.code == 2
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root may write into any folder, so none is unwritable"
)
def test_an_unwritable_output_folder_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        unires.Restorer, "load", lambda *a, **k: pytest.fail("model loaded")
    )
    photo = _photos(tmp_path / "in", n=1)[0]
    (tmp_path / "locked").mkdir(mode=0o500)
    assert _cli(photo, "-o", tmp_path / "locked" / "out") == 2
    assert "is not writable" in capsys.readouterr().err


# --- 7: interrupted batches -----------------------------------------------------------------------


# The CLI as an interactive shell starts it, with Ctrl-C at its default: a child inherits an
# ignored SIGINT (and Python then keeps ignoring it), and a pytest-xdist worker's children may
# get one, which let the batch run to the end untouched by the signal.
_WITH_CTRL_C = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def _start(argv, tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cmd = [
        sys.executable,
        "-c",
        _WITH_CTRL_C,
        toy_family.__file__,
        "restore",
        *map(str, argv),
        "--no-progress",
    ]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_sidecars(out, n, proc, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = (
            [p for p in out.glob("*.json") if '"complete"' in p.read_text()]
            if out.exists()
            else []
        )
        if len(done) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the batch did not get going")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_abandons_the_current_image_and_prints_the_summary(tmp_path, sig):
    slow = toy_family.save_toy(tmp_path / "slow", delay=0.4)
    n = 8
    _photos(tmp_path / "in", n=n)
    out = tmp_path / "out"
    proc = _start([tmp_path / "in", "--checkpoint", slow, "-o", out], tmp_path)
    _wait_for_sidecars(out, 2, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stdout and "rerun the same command to finish" in stdout
    # Only complete pairs are left; the rerun finishes the rest and skips what was done.
    images = {p.stem for p in out.glob("*.png")}
    sidecars = {p.stem for p in out.glob("*.json")}
    assert images == sidecars and 2 <= len(images) < n
    assert not list(out.glob(".unires-tmp.*"))
    proc = _start([tmp_path / "in", "--checkpoint", slow, "-o", out], tmp_path)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr
    assert f"{len(images)} complete from an earlier run" in stdout
    assert len(list(out.glob("*.png"))) == n


def test_a_kill_leaves_nothing_that_a_rerun_does_not_clean_up_or_finish(
    toy, tmp_path, capsys
):
    photos = _photos(tmp_path / "in", n=3)
    out = tmp_path / "out"
    assert _cli(tmp_path / "in", "--checkpoint", toy, "-o", out) == 0
    finished = _snapshot(out)
    # What a SIGKILL can leave: a temporary file; an image whose sidecar still says "writing";
    # a "writing" sidecar without its image (killed between the files).
    (out / ".unires-tmp.p0.png.abc123.tmp").write_bytes(b"half an image")
    for name in ("p1", "p2"):
        pending = {"status": "writing", "input": str(photos[int(name[1])].resolve()),
                   "output": f"{name}.png"}  # fmt: skip
        (out / f"{name}.json").write_text(json.dumps(pending))
    (out / "p2.png").unlink()
    assert _cli(tmp_path / "in", "--checkpoint", toy, "-o", out) == 0
    assert "1 complete from an earlier run" in capsys.readouterr().out
    assert not list(out.glob(".unires-tmp.*"))
    now = _snapshot(out)
    for name in ("p0.png", "p1.png", "p2.png"):
        assert now[pathlib.Path(name)] == finished[pathlib.Path(name)]
    for name in ("p1.json", "p2.json"):
        assert json.loads(now[pathlib.Path(name)])["status"] == "complete"

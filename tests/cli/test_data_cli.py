"""`unires data build` / `unires data list` through the sub-command module."""

from __future__ import annotations

import argparse
import os

import numpy as np
import PIL.Image
import pytest

from unires_jax.cli import data as data_cli


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="unires")
    data_cli.add_parser(parser.add_subparsers(dest="command"))
    return data_cli.run(parser.parse_args(argv))


def _lol_folder(root):
    rng = np.random.default_rng(0)
    for split, name in (("our485", "2.png"), ("eval15", "1.png")):
        for side in ("low", "high"):
            path = root / split / side / name
            path.parent.mkdir(parents=True, exist_ok=True)
            PIL.Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
                path
            )
    corrupt = root / "our485" / "low" / "3.png"
    corrupt.write_bytes(b"not an image")
    PIL.Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(
        root / "our485" / "high" / "3.png"
    )


def test_build_reports_splits_and_skipped_files(tmp_path, capsys):
    _lol_folder(tmp_path / "lol")
    rc = _run(
        [
            "data",
            "build",
            "lol",
            "--manual_dir",
            str(tmp_path / "lol"),
            "--data_dir",
            str(tmp_path / "data"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "test: 1, train: 1" in out
    assert "skipped 1 corrupt image file(s)" in out and "our485/low/3.png" in out


def test_build_with_a_wrong_folder_prints_the_expected_layout(tmp_path, capsys):
    (tmp_path / "wrong").mkdir()
    rc = _run(
        [
            "data",
            "build",
            "lol",
            "--manual_dir",
            str(tmp_path / "wrong"),
            "--data_dir",
            str(tmp_path / "data"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert (
        "missing folder" in err
        and "our485/low/<name>" in err
        and "eval15/high/<name>" in err
    )


def test_build_without_manual_dir_prints_the_instructions(tmp_path, capsys):
    assert _run(["data", "build", "gopro", "--data_dir", str(tmp_path)]) == 1
    assert "GOPRO_Large" in capsys.readouterr().err


def test_unknown_dataset_lists_the_known_ones(tmp_path, capsys):
    assert _run(["data", "build", "imagenet", "--data_dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "unknown dataset 'imagenet'" in err and "sample_photos" in err


def test_list_shows_every_dataset_and_what_is_built(tmp_path, capsys):
    assert _run(["data", "build", "sample_photos", "--data_dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert _run(["data", "list", "--data_dir", str(tmp_path), "--layouts"]) == 0
    out = capsys.readouterr().out
    from unires_jax.data import builders

    for name in builders.BUILDERS:
        assert name in out
    assert "built (heldout: 4, train: 13)" in out
    assert "not built" in out
    assert "Data/<scene>/GT_SRGB_<id>" in out  # --layouts prints the instructions.


def test_build_and_list_need_their_arguments():
    with pytest.raises(SystemExit):
        _run(["data", "build"])
    with pytest.raises(SystemExit):
        _run(["data"])


def test_build_into_an_impossible_data_dir_names_the_folder(tmp_path, capsys):
    (tmp_path / "a_file").write_text("a file where a folder should be")
    data_dir = tmp_path / "a_file" / "datasets"
    assert _run(["data", "build", "sample_photos", "--data_dir", str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(data_dir) in err and "--data_dir" in err
    assert "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_build_into_a_read_only_data_dir_names_the_folder(tmp_path, capsys):
    data_dir = tmp_path / "datasets"
    data_dir.mkdir()
    data_dir.chmod(0o555)
    try:
        assert (
            _run(["data", "build", "sample_photos", "--data_dir", str(data_dir)]) == 1
        )
    finally:
        data_dir.chmod(0o755)
    err = capsys.readouterr().err
    assert str(data_dir) in err and "read-only" in err
    assert list(data_dir.iterdir()) == []  # TFDS never started

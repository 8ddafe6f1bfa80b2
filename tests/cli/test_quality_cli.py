"""`unires quality`: scoring a folder with a corrupt file in it, JSON output, fit-niqe."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest
import skimage.data
from PIL import Image

from unires_jax.cli import quality as quality_cmd
from unires_jax.quality import niqe


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="unires")
    quality_cmd.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(skimage.data.astronaut()[:200, :300]).save(d / "a.png")
    Image.fromarray(skimage.data.camera()[:192, :256]).save(d / "b.jpg")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (d / "sub").mkdir()
    Image.fromarray(skimage.data.camera()[:192, :200]).save(d / "sub" / "c.png")
    (d / "notes.txt").write_text("not an image: reported, as `unires restore` reports it")
    (d / ".hidden.png").write_text("hidden files are not inputs")
    return d


def test_score_folder_survives_corrupt_file(folder, tmp_path, capsys):
    out = tmp_path / "scores.json"
    rc = quality_cmd.run(
        _parse(
            ["quality", "score", "--metric", "piqe", str(folder), "--json", str(out)]
        )
    )
    assert rc == 1  # a file was skipped
    printed = capsys.readouterr()
    assert "a.png" in printed.out and "b.jpg" in printed.out and "mean" in printed.out
    assert "broken.png" in printed.err and "notes.txt" in printed.err
    report = json.loads(out.read_text())
    assert report["metric"] == "piqe" and report["higher_is_better"] is False
    # The folder rules of `unires restore`: recursive, hidden files skipped, non-images named.
    assert sorted(p.rsplit("/", 1)[-1] for p in report["scores"]) == ["a.png", "b.jpg", "c.png"]
    assert sorted(report["errors"]) == [str(folder / "broken.png"), str(folder / "notes.txt")]
    assert report["mean"] == pytest.approx(np.mean(list(report["scores"].values())))


def test_score_clean_files_with_a_niqe_parameter_file(folder, tmp_path, capsys):
    params = tmp_path / "p.npz"
    niqe.save_niqe_model(niqe.default_model(), params)
    args = [
        "quality",
        "score",
        "--metric",
        "niqe",
        "--checkpoint",
        str(params),
        "--crop-border",
        "4",
        str(folder / "a.png"),
        str(folder / "b.jpg"),
    ]
    assert quality_cmd.run(_parse(args)) == 0
    assert "niqe (lower is better)" in capsys.readouterr().out


def test_unknown_metric_and_missing_checkpoint_exit_with_a_message(folder, capsys):
    assert (
        quality_cmd.run(_parse(["quality", "score", "--metric", "nope", str(folder)]))
        == 2
    )
    assert "registered" in capsys.readouterr().err
    assert (
        quality_cmd.run(
            _parse(
                [
                    "quality",
                    "score",
                    "--metric",
                    "niqe",
                    "--checkpoint",
                    "/absent.npz",
                    str(folder),
                ]
            )
        )
        == 2
    )
    assert "/absent.npz" in capsys.readouterr().err


def test_fit_niqe_writes_a_loadable_model(tmp_path, capsys):
    d = tmp_path / "pristine"
    d.mkdir()
    for name in (
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "brick",
        "grass",
        "gravel",
    ):
        Image.fromarray(getattr(skimage.data, name)()).save(d / f"{name}.png")
    out = tmp_path / "model.npz"
    assert quality_cmd.run(_parse(["quality", "fit-niqe", str(d), str(out)])) == 0
    model = niqe.load_niqe_model(out)
    assert model.mu.shape == (36,) and np.all(np.isfinite(model.cov))


def _score(argv: list[str]) -> int:
    return quality_cmd.run(_parse(["quality", "score", *argv]))


def test_no_inputs_is_a_one_line_error_naming_the_paths(tmp_path, capsys):
    empty, hidden_only = tmp_path / "empty", tmp_path / "hidden_only"
    empty.mkdir()
    hidden_only.mkdir()
    (hidden_only / ".DS_Store").write_bytes(b"")
    assert _score(["--metric", "piqe", str(empty), str(hidden_only)]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""  # no table header for nothing
    assert printed.err.count("\n") == 1 and "no input files" in printed.err
    assert str(empty) in printed.err and str(hidden_only) in printed.err


def test_every_skipped_file_is_named(tmp_path, capsys):
    small = tmp_path / "small.png"
    Image.fromarray(skimage.data.camera()[:64, :64]).save(
        small
    )  # NIQE needs 96x96 blocks
    out = tmp_path / "scores.json"
    assert _score(["--metric", "niqe", str(small), "--json", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"skipped {small}: " in err
    assert json.loads(out.read_text())["errors"][str(small)].startswith(f"{small}: ")


@pytest.mark.parametrize(
    "where",
    ["missing_folder/scores.json", "a_file/scores.json", "a_folder"],
)
def test_json_to_an_impossible_path_is_refused_before_scoring(
    folder, tmp_path, capsys, where
):
    (tmp_path / "a_file").write_text("a file, not a folder")
    (tmp_path / "a_folder").mkdir()
    target = tmp_path / where
    assert (
        _score(["--metric", "piqe", str(folder / "a.png"), "--json", str(target)]) == 2
    )
    printed = capsys.readouterr()
    assert printed.out == ""  # nothing was scored
    assert (
        printed.err.count("\n") == 1
        and str(target) in printed.err
        and "--json" in printed.err
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_json_into_a_read_only_folder_is_refused_before_scoring(
    folder, tmp_path, capsys
):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert (
            _score(
                [
                    "--metric",
                    "piqe",
                    str(folder / "a.png"),
                    "--json",
                    str(locked / "s.json"),
                ]
            )
            == 2
        )
    finally:
        locked.chmod(0o755)
    printed = capsys.readouterr()
    assert printed.out == "" and str(locked / "s.json") in printed.err


def test_musiq_checkpoint_claiming_more_data_than_it_holds_is_an_error(
    tmp_path, capsys
):
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
    )
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w") as archive:  # 4 TB claimed, 16 bytes held
        archive.writestr("opt/target/head/bias.npy", header.getvalue() + bytes(16))
    assert _score(["--metric", "musiq", "--checkpoint", str(bomb), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(bomb) in err and "opt/target/head/bias" in err

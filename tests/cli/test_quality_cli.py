"""`unires quality`: scoring a folder with a corrupt file in it, JSON output, fit-niqe."""

from __future__ import annotations

import argparse
import json

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

"""`unires search learn-presets` and `train-predictor` on a saved micro checkpoint."""

import argparse
import json

import numpy as np
import pytest
from PIL import Image
from search_helpers import PAIRS_PER_DEVICE, STEPS

from unires_jax.cli import search as search_cli
from unires_jax.convert.ldm import save_ldm
from unires_jax.search import Presets, WeightPredictor

GRID = [
    "--grid-min",
    "-0.5",
    "--grid-max",
    "1.5",
    "--grid-step",
    "0.5",
    "--experts",
    "SR,DN,DownLQ",
]


def _cli(argv, capsys):
    parser = argparse.ArgumentParser(prog="unires")
    search_cli.add_parser(parser.add_subparsers(dest="command"))
    code = search_cli.run(parser.parse_args(["search", *map(str, argv)]))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def checkpoint(ldm, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "micro"
    save_ldm(ldm, folder)
    return folder


def test_learn_presets_then_train_predictor(checkpoint, images, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, im in enumerate(images[:2]):
        Image.fromarray(im).save(photos / f"p{i}.png")
    (photos / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "presets.json"
    argv = [
        "learn-presets",
        photos,
        "--out",
        out,
        "--checkpoint",
        checkpoint,
        "--quality",
        "brisque",
        "--steps",
        STEPS,
        "--max-pairs",
        PAIRS_PER_DEVICE,
        "--n",
        8,
        "--plots",
        tmp_path / "plots",
        *GRID,
    ]
    code, stdout, stderr = _cli(argv, capsys)
    assert code == 1, stderr  # one unreadable file
    assert "broken.png: skipped" in stderr
    assert "[2/3]" in stdout and "wrote" in stdout
    presets = Presets.load(out)
    assert presets.images == 2 and presets.quality == "brisque"
    logs = tmp_path / "presets_logs"
    assert len(list(logs.glob("*.jsonl"))) == 2
    assert (tmp_path / "plots" / "p0_ranked.png").exists()

    # A rerun resumes from the logs: no candidate is scored again.
    before = {p: p.read_text() for p in logs.glob("*.jsonl")}
    code, stdout, _ = _cli(argv, capsys)
    assert code == 1 and {p: p.read_text() for p in logs.glob("*.jsonl")} == before

    model = tmp_path / "predictor.json"
    code, stdout, stderr = _cli(
        ["train-predictor", "--logs", logs, "--out", model, "--n-estimators", 5, *GRID],
        capsys,
    )
    assert code == 0, stderr
    predictor = WeightPredictor.load(model)
    assert len(predictor.features) == 2 and predictor.searched == ["SR", "DN", "DownLQ"]
    assert np.isclose(predictor.predict(images[0]).sum(), 1.0)
    assert json.loads(model.read_text())["format"] == "unires-search-predictor/1"


def test_train_predictor_without_logs_is_a_clear_error(tmp_path, capsys):
    code, _, stderr = _cli(
        ["train-predictor", "--logs", tmp_path, "--out", tmp_path / "p.json"], capsys
    )
    assert code == 2 and "no finished exhaustive search" in stderr


def test_learn_presets_with_cudnn_attention_off_gpu_is_a_clear_error(tmp_path, capsys):
    argv = ["learn-presets", tmp_path, "--out", tmp_path / "p.json"]
    code, _, err = _cli([*argv, "--attention", "cudnn", "--dtype", "bfloat16"], capsys)
    assert code == 2 and "needs an NVIDIA GPU" in err and "--attention chunked" in err
    assert not (tmp_path / "p.json").exists()

"""`unires eval` and the harness: PSNR/SSIM equal scikit-image's on what was written, GT/LQ folders
and datasets with synthetic degradations, resuming after a kill, tables and montages; and a
test-only model family going through `unires restore` and `unires eval` unchanged.

The model is the test-only toy family (tests/toy_family.py): the harness, not a model, is tested
here, and a three-layer CNN makes the runs take seconds.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import toy_family
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from unires_jax import restore
from unires_jax.cli.main import main as cli_main
from unires_jax.evaluate import datasets, harness

HELDOUT = [
    "--dataset",
    "sample_photos:heldout",
    "--degrade",
    "noise:15,jpeg:20,blur:1.5",
    "--crop",
    "96",
    "--no-progress",
    "--metrics",
    "psnr,ssim",
]


@pytest.fixture()
def toy(tmp_path_factory, monkeypatch):
    """A toy checkpoint, its family registered for this test."""
    monkeypatch.setitem(restore.FAMILIES, toy_family.FAMILY, toy_family.load_toy)
    return toy_family.save_toy(tmp_path_factory.mktemp("toy") / "ckpt", strength=0.7)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def _rows(out):
    return [
        json.loads(line) for line in (out / harness.RESULTS).read_text().splitlines()
    ]


def _read(path):
    return np.asarray(Image.open(path).convert("RGB"), np.float64) / 255.0


def _skimage(restored, gt, border=0):
    if border:
        restored, gt = (
            restored[border:-border, border:-border],
            gt[border:-border, border:-border],
        )
    # BasicSR's rgb2ycbcr(y_only=True), in float64.
    y = lambda x: x @ np.array([65.481, 128.553, 24.966]) / 255.0 + 16.0 / 255.0
    ssim = {
        "channel_axis": -1,
        "data_range": 1.0,
        "gaussian_weights": True,
        "sigma": 1.5,
        "use_sample_covariance": False,
    }
    return {
        "psnr": peak_signal_noise_ratio(gt, restored, data_range=1.0),
        "ssim": structural_similarity(gt, restored, **ssim),
        "psnr_y": peak_signal_noise_ratio(y(gt), y(restored), data_range=1.0),
        "ssim_y": structural_similarity(
            y(gt)[..., None], y(restored)[..., None], **ssim
        ),
    }


def test_eval_on_held_out_photos_with_synthetic_degradations_equals_scikit_image(
    toy, tmp_path, data_dir
):
    out = tmp_path / "ev"
    code = cli_main(
        [
            "eval",
            "--checkpoint",
            str(toy),
            *HELDOUT,
            "--output",
            str(out),
            "--data-dir",
            data_dir,
            "--crop-border",
            "4",
        ]
    )
    assert code == 0
    rows = _rows(out)
    samples = {
        s.id: s
        for s in datasets.built_dataset(
            "sample_photos",
            "heldout",
            data_dir=data_dir,
            crop=96,
            degradations=datasets.degradation_specs.parse_list(
                "noise:15,jpeg:20,blur:1.5"
            ),
        )
    }
    assert sorted(r["id"] for r in rows) == sorted(samples)  # 4 photos x 3 degradations
    assert len(rows) == 12
    for row in rows:
        lq, gt = samples[row["id"]].load()
        restored = _read(harness.image_path(out, row["id"]))
        expected = _skimage(restored, gt.astype(np.float64), border=4)
        for column, value in expected.items():
            assert row["metrics"]["restored"][column] == pytest.approx(
                value, abs=1e-6
            ), column
        baseline = _skimage(lq.astype(np.float64), gt.astype(np.float64), border=4)
        assert row["metrics"]["input"]["psnr"] == pytest.approx(
            baseline["psnr"], abs=1e-6
        )
    summary = (out / "summary.md").read_text()
    for degradation in ("noise:15", "jpeg:20", "blur:1.5", "all"):
        assert f"| {degradation} | restored | " in summary
    csv = (out / "summary.csv").read_text().splitlines()
    assert csv[0] == "degradation,output,images,psnr,psnr_y,ssim,ssim_y"
    assert len(csv) == 1 + 4 * 2
    montages = sorted(p.name for p in (out / "montages").iterdir())
    assert montages == ["blur_1.5.png", "jpeg_20.png", "noise_15.png"]
    assert Image.open(out / "montages" / "noise_15.png").size[0] > 300


def test_eval_on_a_gt_lq_folder_with_type_subfolders(toy, tmp_path):
    rng = np.random.default_rng(0)
    photos = {}
    for kind in ("01Noise", "02Blur"):
        for name in ("a", "b"):
            gt = rng.integers(0, 256, (40, 48, 3), np.uint8)
            lq = np.clip(gt + rng.normal(0, 20, gt.shape), 0, 255).astype(np.uint8)
            for sub, image in (("GT", gt), ("LQ", lq)):
                (tmp_path / "pairs" / kind / sub).mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(
                    tmp_path / "pairs" / kind / sub / f"{name}.png"
                )
            photos[f"{kind}/{name}"] = gt
    out = tmp_path / "ev"
    assert (
        cli_main(
            [
                "eval",
                "--checkpoint",
                str(toy),
                "--pairs",
                str(tmp_path / "pairs"),
                "--output",
                str(out),
                "--metrics",
                "psnr,ssim,brisque",
                "--no-progress",
            ]
        )
        == 0
    )
    rows = {r["id"]: r for r in _rows(out)}
    assert sorted(rows) == sorted(photos)
    assert {r["degradation"] for r in rows.values()} == {"01Noise", "02Blur"}
    for sample_id, gt in photos.items():
        restored = _read(harness.image_path(out, sample_id))
        expected = _skimage(restored, gt / 255.0)
        got = rows[sample_id]["metrics"]["restored"]
        assert got["psnr"] == pytest.approx(expected["psnr"], abs=1e-6)
        assert got["ssim"] == pytest.approx(expected["ssim"], abs=1e-6)
        assert np.isfinite(got["brisque"])
    # An unpaired file is named before anything runs.
    (tmp_path / "pairs" / "02Blur" / "LQ" / "c.png").write_bytes(b"")
    assert (
        cli_main(
            [
                "eval",
                "--checkpoint",
                str(toy),
                "--pairs",
                str(tmp_path / "pairs"),
                "--output",
                str(tmp_path / "ev2"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "ev2").exists()


def test_a_killed_evaluation_resumes_without_recomputing_or_losing_rows(
    tmp_path, data_dir
):
    slow = toy_family.save_toy(tmp_path / "slow", delay=0.5)
    out = tmp_path / "ev"
    argv = [
        sys.executable,
        toy_family.__file__,
        "eval",
        "--checkpoint",
        str(slow),
        *HELDOUT,
        "--output",
        str(out),
        "--data-dir",
        data_dir,
    ]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        results = out / harness.RESULTS
        if results.exists() and len(results.read_text().splitlines()) >= 3:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = (out / harness.RESULTS).read_bytes()
    first = [
        json.loads(line) for line in before.decode().splitlines() if line.endswith("}")
    ]
    assert 3 <= len(first) < 12
    # A line cut short by the kill is dropped, and its sample is redone.
    with open(out / harness.RESULTS, "ab") as f:
        f.write(b'{"id": "jpeg:20/chel')
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"({12 - len(first)} computed, {len(first)} from an earlier run)" in done.stdout
    )
    after = (out / harness.RESULTS).read_bytes()
    assert after.startswith(
        before.rsplit(b"\n", 1)[0] + b"\n"
    )  # every finished row kept
    rows = _rows(out)
    assert len(rows) == 12 and len({r["id"] for r in rows}) == 12
    # A third run computes nothing; another configuration into the same folder is refused.
    again = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert "(0 computed, 12 from an earlier run)" in again.stdout
    other = subprocess.run(
        [*argv, "--seed", "1"], env=env, capture_output=True, text=True, check=False
    )
    assert other.returncode == 2 and "other settings (differing: seed)" in other.stderr


def test_a_new_family_goes_through_restore_and_eval_unchanged(toy, tmp_path):
    """Acceptance: a test-only family registered here, with no change to batch.py or the CLI."""
    photo = tmp_path / "in" / "photo.png"
    photo.parent.mkdir()
    Image.fromarray(
        np.random.default_rng(1).integers(0, 256, (20, 24, 3), np.uint8)
    ).save(photo)
    out = tmp_path / "out"
    assert (
        cli_main(
            [
                "restore",
                str(photo),
                "--checkpoint",
                str(toy),
                "-o",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    sidecar = json.loads((out / "photo.json").read_text())
    assert sidecar["family"] == "toy" and sidecar["strength"] == 0.7
    restorer = toy_family.load_toy(toy)
    expected = restorer.restore(np.asarray(Image.open(photo))).pixels
    written = np.asarray(Image.open(out / "photo.png"), np.float64) / 255
    assert np.abs(written - expected).max() <= 0.5 / 255 + 1e-6
    # Options of another family are refused before anything is written.
    assert (
        cli_main(
            [
                "restore",
                str(photo),
                "--checkpoint",
                str(toy),
                "-o",
                str(tmp_path / "o2"),
                "--weights",
                "DN=1",
            ]
        )
        == 2
    )
    assert not (tmp_path / "o2").exists()
    ev = tmp_path / "ev"
    assert (
        cli_main(
            [
                "eval",
                "--checkpoint",
                str(toy),
                "--pairs",
                str(_pairs(tmp_path)),
                "--output",
                str(ev),
                "--no-progress",
                "--metrics",
                "psnr",
            ]
        )
        == 0
    )
    assert json.loads((ev / harness.RUN).read_text())["family"] == "toy"


def _pairs(tmp_path):
    root = tmp_path / "pairs"
    for sub in ("GT", "LQ"):
        (root / sub).mkdir(parents=True)
        Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(root / sub / "x.png")
    return root


def test_bad_eval_arguments_fail_before_any_work(toy, tmp_path, capsys):
    out = tmp_path / "ev"
    cases = [
        (
            ["--dataset", "sample_photos:heldout", "--degrade", "noise:x"],
            "not a number",
        ),
        (["--dataset", "sample_photos:heldout", "--degrade", "down:4"], "--upscale N"),
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (["--pairs", str(tmp_path / "missing")], "expected GT/ and LQ/"),
        (["--pairs", str(_pairs(tmp_path)), "--metrics", "psnr,fid"], "unknown metric"),
        (["--pairs", str(tmp_path / "pairs"), "--metrics", "lpips"], "--lpips-heads"),
    ]
    for argv, message in cases:
        assert (
            cli_main(["eval", "--checkpoint", str(toy), "--output", str(out), *argv])
            == 2
        )
        assert message in capsys.readouterr().err
        assert not out.exists()


def test_lpips_in_eval_is_the_lpips_metric_on_the_written_images(toy, tmp_path):
    """`--metrics lpips` with user-supplied weights: the lpips package's head file (found
    without importing lpips, which needs torchvision) and a random backbone in the torchvision
    layout (tests/quality/test_lpips.py checks the metric itself against the lpips package)."""
    import importlib.util

    import safetensors.numpy

    from unires_jax.convert.lpips import backbone_shapes
    from unires_jax.quality import lpips
    from unires_jax.quality.lpips_model import lpips_config

    spec = importlib.util.find_spec("lpips")
    assert spec is not None, (
        "the README's test command installs lpips==0.1.4 (--no-deps)"
    )
    heads = pathlib.Path(spec.origin).parent / "weights" / "v0.1" / "alex.pth"
    rng = np.random.default_rng(0)
    backbone = tmp_path / "alexnet.safetensors"
    safetensors.numpy.save_file(
        {
            k: (rng.standard_normal(s) * np.sqrt(2.0 / max(1, np.prod(s[1:])))).astype(
                np.float32
            )
            for k, s in backbone_shapes(lpips_config("alex")).items()
        },
        backbone,
    )
    root = tmp_path / "pairs"
    for sub in ("GT", "LQ"):
        (root / sub).mkdir(parents=True)
    gt = rng.integers(0, 256, (64, 72, 3), np.uint8)
    Image.fromarray(gt).save(root / "GT" / "x.png")
    noisy = np.clip(gt + rng.normal(0, 25, gt.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(root / "LQ" / "x.png")
    out = tmp_path / "ev"
    argv = [
        "eval",
        "--checkpoint",
        str(toy),
        "--pairs",
        str(root),
        "--output",
        str(out),
        "--metrics",
        "lpips,psnr",
        "--lpips-heads",
        str(heads),
        "--lpips-backbone",
        str(backbone),
        "--no-progress",
    ]
    assert cli_main(argv) == 0
    row = _rows(out)[0]
    metric = lpips.load("alex", heads=heads, backbone=backbone)
    restored = _read(harness.image_path(out, "x"))
    expected = metric.distance(restored[None], (gt / 255.0)[None])[0]
    assert row["metrics"]["restored"]["lpips"] == pytest.approx(expected, abs=1e-6)
    assert row["metrics"]["input"]["lpips"] > 0


def test_eval_on_the_foundir_layout_reports_pyiqa_metrics_per_type_beside_the_paper(
    toy, tmp_path
):
    """FoundIR's test layout (NN<Type>/GT|LQ): with no --metrics, the table has PSNR (RGB) and
    SSIM (luma) as pyiqa computes them per type and on average, and the paper's averages."""
    import jax

    from unires_jax.evaluate import published
    from unires_jax.quality import fidelity

    rng = np.random.default_rng(1)
    gts = {}
    for kind in ("01Blur", "05Noise"):
        for name in ("0001", "0002"):
            gt = rng.integers(0, 256, (36, 44, 3), np.uint8)
            lq = np.clip(gt + rng.normal(0, 25, gt.shape), 0, 255).astype(np.uint8)
            for sub, image in (("GT", gt), ("LQ", lq)):
                folder = tmp_path / "Testset" / kind / sub
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(folder / f"{name}.png")
            gts[f"{kind}/{name}"] = gt / 255.0
    out = tmp_path / "ev"
    argv = ["eval", "--checkpoint", str(toy), "--pairs", str(tmp_path / "Testset")]
    assert cli_main([*argv, "--output", str(out), "--no-progress"]) == 0

    rows = {r["id"]: r["metrics"]["restored"] for r in _rows(out)}
    assert set(rows) == set(gts)
    for sample_id, gt in gts.items():
        restored = _read(harness.image_path(out, sample_id))[None]
        with jax.enable_x64(True):
            psnr = float(fidelity.psnr_pyiqa(restored, gt[None])[0])
            ssim = float(fidelity.ssim_pyiqa(restored, gt[None])[0])
        assert rows[sample_id]["pyiqa_psnr"] == pytest.approx(psnr, abs=1e-6)
        assert rows[sample_id]["pyiqa_ssim"] == pytest.approx(ssim, abs=1e-6)
        assert "niqe" not in rows[sample_id]

    summary = json.loads((out / "summary.json").read_text())
    restored_rows = {e["degradation"]: e for e in summary if e["output"] == "restored"}
    assert set(restored_rows) == {"01Blur", "05Noise", "all"}
    for kind in ("01Blur", "05Noise"):
        mine = [rows[i]["pyiqa_psnr"] for i in rows if i.startswith(kind)]
        assert restored_rows[kind]["pyiqa_psnr"] == pytest.approx(np.mean(mine))
    assert restored_rows["all"]["pyiqa_ssim"] == pytest.approx(
        np.mean([r["pyiqa_ssim"] for r in rows.values()])
    )
    (paper,) = [e for e in summary if e["output"].startswith("published")]
    assert (paper["pyiqa_psnr"], paper["pyiqa_ssim"]) == (27.81, 0.8529)
    table = (out / "summary.md").read_text()
    assert "pyiqa_psnr" in table and "27.81" in table and "0.8529" in table

    # Other folder names are not FoundIR's: no published row.
    assert published.published_rows(["noise", "blur"]) == []
    assert published.published_rows(["all"]) == []
    assert published.published_rows(["test/12NightRain", "01Blur"])

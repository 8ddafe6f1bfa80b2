"""PSNR / SSIM as pyiqa computes them (FoundIR's cal_metrics.py) against pyiqa 0.1.16 (oracle).

pyiqa is a test-only dependency installed with `--no-deps`; its `psnr_arch` and `ssim_arch` are
loaded by path as in test_musiq_pyiqa.py. Images are 8-bit levels / 255, as pyiqa reads files.
"""

from __future__ import annotations

import importlib.util

import jax
import numpy as np
import pytest

from unires_jax.evaluate.metrics import Metrics
from unires_jax.quality import fidelity

torch = pytest.importorskip(
    "torch", reason="torch is the test-only runtime of the pyiqa oracle"
)
if importlib.util.find_spec("pyiqa") is None:
    pytest.skip(
        "pyiqa oracle missing: pip install --no-deps pyiqa==0.1.16",
        allow_module_level=True,
    )

# Imported after the skips above: that module needs torch and pyiqa too.
from test_musiq_pyiqa import load_pyiqa_module


def _pyiqa(gt: np.ndarray, restored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pyiqa's default "psnr" (RGB) and "ssim" (luma) of [N, H, W, 3] images in [0, 1]."""
    psnr_arch = load_pyiqa_module("pyiqa.archs.psnr_arch")
    ssim_arch = load_pyiqa_module("pyiqa.archs.ssim_arch")
    # pyiqa's metric options of "psnr" and "ssim" (pyiqa/default_model_configs.py).
    psnr = psnr_arch.PSNR(test_y_channel=False)
    ssim = ssim_arch.SSIM(downsample=False, test_y_channel=True)
    x, y = (
        torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2), np.float32))
        for a in (restored, gt)
    )
    with torch.no_grad():
        return psnr(x, y).numpy(), ssim(x, y).numpy()


def _pairs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth ground truths and, per image, a different damage: mild noise, heavy noise (the
    contrast-structure term goes negative in places, which pyiqa clips), a shift and contrast
    change, and an exact copy (PSNR 80 dB in pyiqa, not infinity)."""
    rng = np.random.default_rng(seed)
    h, w = 37, 52
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    gts, outs = [], []
    for i in range(4):
        phase = rng.uniform(0, 6, 3)
        gt = 0.5 + 0.4 * np.sin(6 * xx[..., None] + 4 * yy[..., None] + phase)
        gt = np.round(gt * 255) / 255
        if i == 0:
            out = gt + rng.normal(0, 0.03, gt.shape)
        elif i == 1:
            out = rng.uniform(0, 1, gt.shape)
        elif i == 2:
            out = np.roll(gt, 3, axis=1) * 0.8 + 0.05
        else:
            out = gt
        gts.append(gt)
        outs.append(np.round(np.clip(out, 0, 1) * 255) / 255)
    return np.stack(gts), np.stack(outs)


def test_psnr_and_ssim_equal_pyiqa_defaults():
    gt, restored = _pairs()
    want_psnr, want_ssim = _pyiqa(gt, restored)
    with jax.enable_x64(True):
        got_psnr = np.asarray(fidelity.psnr_pyiqa(restored, gt))
        got_ssim = np.asarray(fidelity.ssim_pyiqa(restored, gt))
    # pyiqa's PSNR runs in float32 on the image tensors.
    np.testing.assert_allclose(got_psnr, want_psnr, atol=1e-4)
    assert want_psnr[3] == pytest.approx(80.0)
    np.testing.assert_allclose(got_ssim, want_ssim, atol=1e-6)
    # The oracle's luma SSIM is not the BasicSR-style "ssim_y" (other luma, no rounding,
    # no clipping): the match above is not a coincidence of conventions.
    with jax.enable_x64(True):
        basicsr = np.asarray(fidelity.ssim(restored, gt, y_channel=True))
    assert np.max(np.abs(basicsr - want_ssim)) > 1e-3


def test_pyiqa_metric_of_the_evaluation_harness_equals_pyiqa():
    gt, restored = _pairs(seed=1)
    want_psnr, want_ssim = _pyiqa(gt, restored)
    metrics = Metrics.load("pyiqa,psnr")
    for i in range(len(gt)):
        (scores,), errors = metrics.compute(restored[i : i + 1], gt[i])
        assert not errors and set(scores) == {
            "pyiqa_psnr",
            "pyiqa_ssim",
            "psnr",
            "psnr_y",
        }
        assert scores["pyiqa_psnr"] == pytest.approx(want_psnr[i], abs=1e-4)
        assert scores["pyiqa_ssim"] == pytest.approx(want_ssim[i], abs=1e-6)


def test_pyiqa_ssim_with_crop_border_equals_pyiqa_on_the_cropped_images():
    gt, restored = _pairs(seed=2)
    _, want = _pyiqa(gt[:, 4:-4, 4:-4], restored[:, 4:-4, 4:-4])
    with jax.enable_x64(True):
        got = np.asarray(fidelity.ssim_pyiqa(restored, gt, crop_border=4))
    np.testing.assert_allclose(got, want, atol=1e-6)

"""PIQE against pypiqe (MIT; a port of MATLAB's piqe), a test-only oracle.

pypiqe imports cv2 for two calls; a stand-in gives it MATLAB's 7x7 Gaussian with replicate border
(`imgaussfilt(..., 7/6, 'FilterSize', 7, 'Padding', 'replicate')`). Install the oracle with
`pip install --no-deps pypiqe==1.2`.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest
import scipy.ndimage
import skimage.data

from unires_jax.quality import nss, piqe


@pytest.fixture(scope="module")
def pypiqe():
    spec = importlib.util.find_spec("pypiqe")
    if spec is None:
        pytest.fail("PIQE oracle missing: run `pip install --no-deps pypiqe==1.2`")
    cv2 = types.ModuleType("cv2")
    cv2.BORDER_REPLICATE = 1
    cv2.GaussianBlur = lambda img, ksize, sigmaX, borderType: scipy.ndimage.correlate(
        img, nss.gaussian_window(ksize[0], sigmaX), mode="nearest"
    )
    saved = sys.modules.get("cv2")
    sys.modules["cv2"] = cv2
    try:
        s = importlib.util.spec_from_file_location(
            "_pypiqe_oracle", spec.submodule_search_locations[0] + "/piqe.py"
        )
        module = importlib.util.module_from_spec(s)
        s.loader.exec_module(module)
    finally:
        if saved is None:
            sys.modules.pop("cv2")
        else:
            sys.modules["cv2"] = saved
    return module.piqe


@pytest.mark.parametrize(
    "name,crop",
    [
        ("camera", np.s_[:, :]),
        ("coins", np.s_[:200, :150]),
        ("moon", np.s_[3:250, 5:301]),
    ],
)
def test_piqe_matches_pypiqe(pypiqe, name, crop):
    img = getattr(skimage.data, name)()[crop].astype(np.float64)
    noisy = np.clip(
        img + np.random.default_rng(0).normal(0, 12, img.shape), 0, 255
    ).round()
    for x in (img, noisy):
        assert piqe.piqe_gray(x) == pytest.approx(pypiqe(x)[0], abs=1e-9)


def test_piqe_ranks_clean_photo_above_noisy_and_blurred():
    x = skimage.data.chelsea() / 255.0
    noisy = np.clip(x + np.random.default_rng(0).normal(0, 0.05, x.shape), 0, 1)
    blurred = scipy.ndimage.gaussian_filter(x, (2, 2, 0))
    clean, n, b = piqe.load().score([x, noisy, blurred])
    assert clean < n and clean < b

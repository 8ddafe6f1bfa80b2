"""PSNR and SSIM against scikit-image, image by image, in float64 and float32."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import skimage.color
import skimage.data
import skimage.metrics

from unires_jax.quality import fidelity


def _pairs() -> tuple[np.ndarray, np.ndarray]:
    """Two [3, 64, 80, 3] batches: a photo against noisy, darkened and identical copies."""
    rng = np.random.default_rng(0)
    a = skimage.data.astronaut()[100:164, 200:280] / 255.0
    c = skimage.data.coffee()[50:114, 300:380] / 255.0
    refs = np.stack([a, c, a])
    dist = np.stack([np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1), c * 0.8, a])
    return refs, dist


SSIM_SETTINGS = [
    # SR papers: Gaussian window, population covariance.
    {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
    # scikit-image's defaults: 7x7 uniform window, sample covariance.
    {"gaussian_weights": False, "use_sample_covariance": True},
]


@pytest.mark.parametrize("kwargs", SSIM_SETTINGS)
def test_ssim_matches_scikit_image_in_float64(kwargs):
    refs, dist = _pairs()
    want = [
        skimage.metrics.structural_similarity(
            r, d, data_range=1.0, channel_axis=-1, **kwargs
        )
        for r, d in zip(refs, dist)
    ]
    with jax.enable_x64(True):
        got = np.asarray(fidelity.ssim(refs, dist, **kwargs))
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert got[2] == pytest.approx(1.0)


def test_ssim_float32_is_close_to_float64():
    refs, dist = _pairs()
    want = [
        skimage.metrics.structural_similarity(
            r,
            d,
            data_range=1.0,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for r, d in zip(refs, dist)
    ]
    got = fidelity.ssim(refs.astype(np.float32), dist.astype(np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)


def test_psnr_matches_scikit_image():
    refs, dist = _pairs()
    want = [
        skimage.metrics.peak_signal_noise_ratio(r, d, data_range=1.0)
        for r, d in zip(refs[:2], dist[:2])
    ]
    with jax.enable_x64(True):
        got = np.asarray(fidelity.psnr(refs, dist))
    np.testing.assert_allclose(got[:2], want, atol=1e-6)
    assert np.isinf(got[2])
    got255 = np.asarray(
        fidelity.psnr(
            refs.astype(np.float32) * 255,
            dist.astype(np.float32) * 255,
            data_range=255.0,
        )
    )
    np.testing.assert_allclose(got255[:2], want, atol=1e-3)


def test_y_channel_and_crop_border_follow_basicsr_convention():
    refs, dist = _pairs()
    crop = 4

    def y(x):  # scikit-image's BT.601 conversion, the same luma as BasicSR's rgb2ycbcr
        return skimage.color.rgb2ycbcr(x)[crop:-crop, crop:-crop, 0] / 255.0

    want_psnr = [
        skimage.metrics.peak_signal_noise_ratio(y(r), y(d), data_range=1.0)
        for r, d in zip(refs[:2], dist[:2])
    ]
    want_ssim = [
        skimage.metrics.structural_similarity(
            y(r),
            y(d),
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for r, d in zip(refs[:2], dist[:2])
    ]
    with jax.enable_x64(True):
        got_psnr = np.asarray(
            fidelity.psnr(refs[:2], dist[:2], crop_border=crop, y_channel=True)
        )
        got_ssim = np.asarray(
            fidelity.ssim(refs[:2], dist[:2], crop_border=crop, y_channel=True)
        )
    np.testing.assert_allclose(got_psnr, want_psnr, atol=1e-6)
    np.testing.assert_allclose(got_ssim, want_ssim, atol=1e-6)


def test_batched_equals_one_by_one_and_rejects_mismatched_shapes():
    refs, dist = _pairs()
    refs, dist = refs.astype(np.float32), dist.astype(np.float32)
    batched = np.asarray(fidelity.ssim(refs, dist))
    single = [
        float(fidelity.ssim(refs[i : i + 1], dist[i : i + 1])[0]) for i in range(3)
    ]
    np.testing.assert_allclose(batched, single, rtol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        fidelity.psnr(refs, dist[:, :32])
    with pytest.raises(ValueError, match="window"):
        fidelity.ssim(refs[:, :8, :8], dist[:, :8, :8])

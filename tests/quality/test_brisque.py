"""BRISQUE: features against a literal transcription of LIVE's MATLAB code, and the SVR model."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import scipy.special
import skimage.data

from unires_jax.quality import brisque, nss


def _matlab_ggd(vec):  # estimateggdparam.m, line by line
    gam = np.arange(0.2, 10.001, 0.001)
    r_gam = (
        scipy.special.gamma(1 / gam) * scipy.special.gamma(3 / gam)
    ) / scipy.special.gamma(2 / gam) ** 2
    sigma_sq = np.mean(vec**2)
    rho = sigma_sq / np.mean(np.abs(vec)) ** 2
    return gam[np.argmin(np.abs(rho - r_gam))], np.sqrt(sigma_sq)


def _matlab_aggd(vec):  # estimateaggdparam.m, line by line
    gam = np.arange(0.2, 10.001, 0.001)
    r_gam = scipy.special.gamma(2 / gam) ** 2 / (
        scipy.special.gamma(1 / gam) * scipy.special.gamma(3 / gam)
    )
    left = np.sqrt(np.mean(vec[vec < 0] ** 2))
    right = np.sqrt(np.mean(vec[vec > 0] ** 2))
    g = left / right
    rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec**2)
    rhatnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    return gam[np.argmin((r_gam - rhatnorm) ** 2)], left, right


def _matlab_brisque_feature(imdist):  # brisque_feature.m, line by line
    window = nss.gaussian_window()
    feat = []
    for _ in range(2):
        mu = scipy.ndimage.correlate(
            imdist, window, mode="constant"
        )  # filter2(.., 'same')
        sigma = np.sqrt(
            np.abs(
                scipy.ndimage.correlate(imdist * imdist, window, mode="constant")
                - mu * mu
            )
        )
        structdis = (imdist - mu) / (sigma + 1)
        alpha, overallstd = _matlab_ggd(structdis.ravel())
        feat += [alpha, overallstd**2]
        for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):
            pair = structdis * np.roll(structdis, shift, axis=(0, 1))
            alpha, lstd, rstd = _matlab_aggd(pair.ravel())
            const = np.sqrt(scipy.special.gamma(1 / alpha)) / np.sqrt(
                scipy.special.gamma(3 / alpha)
            )
            mean = (
                (rstd - lstd)
                * (scipy.special.gamma(2 / alpha) / scipy.special.gamma(1 / alpha))
                * const
            )
            feat += [alpha, mean, lstd**2, rstd**2]
        imdist = nss.imresize(imdist, 0.5)
    return np.array(feat)


@pytest.mark.parametrize(
    "name,crop",
    [
        ("camera", np.s_[:200, :260]),
        ("coins", np.s_[:, :]),
        ("moon", np.s_[7:190, 3:171]),
    ],
)
def test_features_match_matlab_transcription(name, crop):
    img = getattr(skimage.data, name)()[crop].astype(np.float64)
    np.testing.assert_allclose(
        brisque.brisque_features(img),
        _matlab_brisque_feature(img),
        rtol=1e-9,
        atol=1e-12,
    )


def test_score_is_the_svr_on_range_scaled_features():
    m = brisque.default_model()
    assert (
        m.support_vectors.shape == (774, 36)
        and m.rho == pytest.approx(-153.591)
        and m.gamma == 0.05
    )
    img = skimage.data.camera()[:256, :256]
    f = _matlab_brisque_feature(img.astype(np.float64))
    scaled = -1 + 2 * (f - m.feature_min) / (m.feature_max - m.feature_min)
    want = (
        sum(
            c * np.exp(-0.05 * np.sum((sv - scaled) ** 2))
            for c, sv in zip(m.coefs, m.support_vectors)
        )
        + 153.591
    )
    got = brisque.score((img[..., None] / 255.0)[None], m)[0]
    assert got == pytest.approx(want, abs=1e-9)


def test_libsvm_text_model_and_range_file_load_like_the_npz(tmp_path):
    m = brisque.default_model()
    lines = [
        "svm_type epsilon_svr",
        "kernel_type rbf",
        f"gamma {m.gamma}",
        "nr_class 2",
        f"total_sv {len(m.coefs)}",
        f"rho {float(m.rho)!r}",
        "SV",
    ]
    for c, sv in zip(m.coefs, m.support_vectors):
        lines.append(
            f"{float(c)!r} "
            + " ".join(f"{j + 1}:{float(v)!r}" for j, v in enumerate(sv) if v != 0)
        )
    (tmp_path / "allmodel").write_text("\n".join(lines) + "\n")
    rng = ["x", "-1 1"] + [
        f"{j + 1} {float(a)!r} {float(b)!r}"
        for j, (a, b) in enumerate(zip(m.feature_min, m.feature_max))
    ]
    (tmp_path / "allrange").write_text("\n".join(rng) + "\n")
    again = brisque.load_brisque_model(tmp_path / "allmodel", tmp_path / "allrange")
    np.testing.assert_array_equal(again.support_vectors, m.support_vectors)
    np.testing.assert_array_equal(again.feature_max, m.feature_max)
    with pytest.raises(ValueError, match="range file"):
        brisque.load_brisque_model(tmp_path / "allmodel")


def test_brisque_ranks_clean_photo_above_noisy_and_blurred():
    x = skimage.data.chelsea() / 255.0
    noisy = np.clip(x + np.random.default_rng(0).normal(0, 0.05, x.shape), 0, 1)
    blurred = scipy.ndimage.gaussian_filter(x, (2, 2, 0))
    clean, n, b = brisque.load().score([x, noisy, blurred])
    assert clean < n and clean < b

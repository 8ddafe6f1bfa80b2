"""Clipped noise (restore/clipping.py) and the noise plan's handling of it: the clipped mean
against Monte Carlo, its inverse, BM3D mapped back on a photo with a black background, and SURE
restricted to the unclipped values. On the sample photos' training split."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from unires_jax.data.sample_photos import load_sample_photos
from unires_jax.restore import adaptive, clipping


@pytest.fixture(scope="module")
def texture():
    image = load_sample_photos("train")["astronaut"].astype(np.float32) / 255.0
    return image[100:164, 160:224]  # 64 x 64: the face


def psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2))


@pytest.mark.parametrize("sigma", [0.02, 0.1, 0.25])
def test_clipped_mean_is_the_mean_of_clipped_noise(sigma):
    y = np.array([0.0, 0.01, 0.05, 0.3, 0.5, 0.9, 0.99, 1.0])
    samples = np.random.default_rng(0).standard_normal((200_000, 1))
    monte_carlo = np.clip(y + sigma * samples, 0.0, 1.0).mean(axis=0)
    np.testing.assert_allclose(
        clipping.clipped_mean(y, sigma), monte_carlo, atol=4 * sigma / 447
    )
    # Far from the bounds nothing is clipped; at a bound the bias is about sigma phi(0).
    assert clipping.clipped_mean(0.5, sigma) == pytest.approx(0.5, abs=1e-9)
    assert clipping.clipped_mean(0.0, sigma) == pytest.approx(
        sigma / np.sqrt(2 * np.pi), rel=1e-4
    )


@pytest.mark.parametrize("sigma", [0.0, 0.02, 0.1, 0.25])
def test_unclip_inverts_the_clipped_mean(sigma):
    y = np.linspace(0.0, 1.0, 1001)
    mu = clipping.clipped_mean(y, sigma)
    assert np.all(np.diff(mu) > 0)
    np.testing.assert_allclose(clipping.unclip(mu, sigma), y, atol=2e-6)
    # Estimates beyond what any clean value in [0, 1] gives map to the bounds.
    assert clipping.unclip(np.array([-0.1, 1.2]), sigma).tolist() == [0.0, 1.0]
    assert clipping.unclip(mu, sigma).dtype == np.float32


def test_bm3d_mapped_back_restores_a_black_background(texture):
    # Half black (a night sky, a studio background), half the astronaut's face.
    clean = np.concatenate([np.zeros_like(texture), texture], axis=1)
    sigma = 25 / 255
    noisy = np.clip(
        clean + np.random.default_rng(0).normal(0, sigma, clean.shape), 0, 1
    ).astype(np.float32)
    plain = adaptive.bm3d_denoise(noisy, sigma, clipped=False)
    mapped = adaptive.bm3d_denoise(noisy, sigma)
    # BM3D of clipped noise leaves the black at about 0.4 sigma; mapped back it is black.
    assert plain[:, :64].mean() > 0.25 * sigma
    assert mapped[:, :64].mean() < 0.05 * sigma
    assert psnr(mapped, clean) > psnr(plain, clean) + 2.0
    # Away from the bounds the mapping is the identity.
    middle = (plain > 0.3) & (plain < 0.7)
    # (BM3D's threads add in varying order: two runs differ by ~3e-5.)
    np.testing.assert_allclose(mapped[middle], plain[middle], atol=2e-4)


def test_sure_on_the_unclipped_values_tracks_the_true_error(texture):
    clean = np.concatenate([np.zeros_like(texture), texture], axis=1).astype(np.float64)
    sigma = 25 / 255
    rng = np.random.default_rng(1)
    noisy = np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 1)
    step = adaptive.sure_probe(noisy, sigma, seed=2)

    def smooth(y):  # a smoother that knows the noise was clipped
        return clipping.unclip(gaussian_filter(y, (1.2, 1.2, 0)), sigma)

    restored = smooth(noisy)
    mask = adaptive.unclipped(restored, sigma)
    assert (
        0.2 < mask.mean() < 0.7
    )  # the black half and the face's darkest values are out
    true_error = np.sum((restored - clean)[mask] ** 2)
    terms = adaptive.sure_terms(
        noisy,
        [restored],
        [adaptive.mc_divergence(restored, smooth(noisy + step), step, mask)],
        sigma,
        mask,
    )
    assert terms.risk(np.array([1.0])) == pytest.approx(true_error, rel=0.3)
    # On all values SURE is far off: the clipped noise near black is not the white noise of
    # sigma that it assumes.
    whole = adaptive.sure_terms(
        noisy,
        [restored],
        [adaptive.mc_divergence(restored, smooth(noisy + step), step)],
        sigma,
    )
    whole_error = np.sum((restored - clean) ** 2)
    assert abs(whole.risk(np.array([1.0])) - whole_error) > 0.5 * whole_error


def test_the_blend_applies_only_on_unclipped_values():
    rng = np.random.default_rng(3)
    noisy = rng.uniform(0, 1, (16, 16, 3)).astype(np.float32)
    classical = rng.uniform(0, 1, noisy.shape).astype(np.float32)
    model = rng.uniform(0, 1, noisy.shape).astype(np.float32)
    sigma = 0.1
    alone = adaptive.blend_unclipped(
        noisy, None, classical, np.array([0.0, 1.0]), sigma
    )
    np.testing.assert_allclose(alone, classical, atol=1e-6)
    weights = np.array([0.3, 0.5])
    out = adaptive.blend_unclipped(noisy, model, classical, weights, sigma)
    inside = (classical >= 0.2) & (classical <= 0.8)
    blend = noisy + 0.3 * (model - noisy) + 0.5 * (classical - noisy)
    np.testing.assert_allclose(out[inside], blend[inside], atol=1e-6)
    np.testing.assert_array_equal(out[~inside], classical[~inside])

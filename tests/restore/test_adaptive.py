"""The default weight choice: measure, restore only what is wrong, blend by SURE, leave clean
photos alone. On the sample photos' training split (never on held-out photos)."""

import numpy as np
import pytest

from unires_jax import restore
from unires_jax.data.degradations import specs
from unires_jax.data.sample_photos import load_sample_photos
from unires_jax.restore import adaptive, analysis, jpeg_consistency


@pytest.fixture(scope="module")
def photo():
    image = load_sample_photos("train")["astronaut"].astype(np.float32) / 255.0
    return image[100:228, 160:288]  # 128 x 128: the face and helmet


def test_sure_weight_finds_the_best_shrinkage_of_a_linear_denoiser():
    rng = np.random.default_rng(0)
    clean = np.clip(0.5 + 0.2 * np.sin(np.linspace(0, 20, 96))[:, None, None], 0, 1)
    clean = np.broadcast_to(clean, (96, 96, 3)).astype(np.float64)
    sigma = 0.1
    noisy = clean + rng.normal(0, sigma, clean.shape)

    def denoise(y):  # a linear smoother: its divergence is its trace
        return 0.5 * (y + np.roll(y, 1, axis=0))

    eps = 0.01
    step = eps * rng.standard_normal(noisy.shape)
    divergence = adaptive.mc_divergence(denoise(noisy), denoise(noisy + step), step)
    # The smoother's divergence is its trace, 0.5 per pixel (the estimate is random).
    assert divergence == pytest.approx(0.5 * noisy.size, rel=0.02)
    (weight,) = adaptive.sure_weights(noisy, [denoise(noisy)], [divergence], sigma)
    weights = np.linspace(0, 1, 201)
    errors = [
        np.mean((noisy + a * (denoise(noisy) - noisy) - clean) ** 2) for a in weights
    ]
    assert weight == pytest.approx(weights[int(np.argmin(errors))], abs=0.06)
    # Two candidates: the blend is no worse than the better one alone, nor than the input.
    rough = lambda y: 0.7 * y + 0.3 * np.roll(y, 1, axis=1)
    pair = adaptive.sure_weights(
        noisy,
        [denoise(noisy), rough(noisy)],
        [
            divergence,
            adaptive.mc_divergence(rough(noisy), rough(noisy + step), step),
        ],
        sigma,
    )
    blended = (
        noisy + pair[0] * (denoise(noisy) - noisy) + pair[1] * (rough(noisy) - noisy)
    )
    best_alone = min(
        np.mean((f - clean) ** 2) for f in (denoise(noisy), rough(noisy), noisy)
    )
    assert np.mean((blended - clean) ** 2) <= best_alone * 1.02


def test_crop_sure_terms_choose_the_best_blend_of_a_stationary_image():
    """On an image whose statistics are the same everywhere, the weights SURE picks on the
    centred crop are the whole image's best blend (by the true error) of two linear smoothers."""
    from scipy.ndimage import uniform_filter

    rng = np.random.default_rng(0)
    sigma = 0.1
    clean = uniform_filter(rng.uniform(0.2, 0.8, (300, 260, 3)), size=(9, 9, 1))
    noisy = clean + rng.normal(0, sigma, clean.shape)
    step = 0.01 * rng.standard_normal(noisy.shape)

    def model(image):
        return uniform_filter(image, size=(3, 3, 1), mode="reflect")

    def classical(image, s):
        return uniform_filter(image, size=(7, 7, 1), mode="reflect")

    terms = adaptive.crop_sure_terms(noisy, step, sigma, model, classical)
    weights = adaptive.blend_weights(terms)
    # The plan's margin keeps the classical candidate unless the blend is clearly better.
    kept = adaptive.noise_plan_weights(terms)
    gain = 1 - terms.risk(weights) / terms.risk(np.array([0.0, 1.0]))
    assert np.array_equal(kept, weights if gain > adaptive.SURE_MARGIN else [0.0, 1.0])
    grid = [(a, b) for a in np.arange(0, 1.01, 0.05) for b in np.arange(0, 1.01, 0.05)]
    grid = [(a, b) for a, b in grid if a + b <= 1.0 + 1e-9]
    m, c = model(noisy) - noisy, classical(noisy, sigma) - noisy
    errors = [np.mean((noisy + a * m + b * c - clean) ** 2) for a, b in grid]
    best = np.array(grid[int(np.argmin(errors))])
    assert np.abs(weights - best).max() <= 0.1 + 1e-9, (weights, best)
    assert adaptive.sure_window(noisy.shape) == (slice(86, 214), slice(66, 194))


def test_sure_terms_estimate_the_blends_error_and_the_margin_keeps_the_preferred():
    """SureTerms.risk is SURE (unbiased for the squared error of each blend); blend_weights
    leaves the preferred blend only for an estimated gain larger than the margin."""
    rng = np.random.default_rng(1)
    sigma = 0.1
    clean = np.broadcast_to(
        np.clip(0.5 + 0.2 * np.sin(np.linspace(0, 30, 128)), 0, 1)[:, None, None],
        (128, 128, 3),
    )
    noisy = clean + rng.normal(0, sigma, clean.shape)
    smoothers = [
        lambda y: 0.5 * (y + np.roll(y, 1, axis=0)),
        lambda y: (y + np.roll(y, 1, axis=0) + np.roll(y, -1, axis=0)) / 3,
    ]
    step = 0.01 * rng.standard_normal(noisy.shape)
    restored = [f(noisy) for f in smoothers]
    terms = adaptive.sure_terms(
        noisy,
        restored,
        [adaptive.mc_divergence(f(noisy), f(noisy + step), step) for f in smoothers],
        sigma,
    )
    for weights in ([0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.3, 0.5]):
        blend = noisy + sum(a * (f - noisy) for a, f in zip(weights, restored))
        error = np.sum((blend - clean) ** 2)
        assert terms.risk(np.array(weights)) == pytest.approx(error, rel=0.03)
    best = adaptive.blend_weights(terms)
    prefer = np.array([1.0, 0.0])
    gain = 1 - terms.risk(best) / terms.risk(prefer)
    assert 0 < gain < 0.5 and not np.allclose(best, prefer)
    assert np.array_equal(
        adaptive.blend_weights(terms, prefer=prefer, margin=gain + 0.01), prefer
    )
    assert np.array_equal(
        adaptive.blend_weights(terms, prefer=prefer, margin=gain - 0.01), best
    )
    assert np.array_equal(
        adaptive.sure_weights(noisy, restored, [0.0, 0.0], sigma),
        adaptive.blend_weights(adaptive.sure_terms(noisy, restored, [0.0, 0.0], sigma)),
    )


def test_sure_probe_is_seeded_and_stays_in_range():
    y = np.random.default_rng(0).uniform(0, 1, (40, 50, 3)).astype(np.float32)
    y[:5] = 0.0
    step = adaptive.sure_probe(y, 0.1, seed=3)
    assert np.array_equal(step, adaptive.sure_probe(y, 0.1, seed=3))
    assert not np.array_equal(step, adaptive.sure_probe(y, 0.1, seed=4))
    assert (y + step).min() >= 0 and (y + step).max() <= 1
    assert np.std(step[10:]) == pytest.approx(adaptive.EPS_SCALE * 0.1, rel=0.1)


def test_bm3d_without_the_correlated_noise_correction_scores_as_with_it():
    """White noise: the block-matching correction (gamma) changes the output, not its quality
    (training photo, sigma 25)."""
    clean = load_sample_photos("train")["astronaut"].astype(np.float32)[:96, :96] / 255
    noisy = specs.parse("noise:25").apply(clean, np.random.default_rng(0))

    def psnr(x):
        return 10 * np.log10(1 / np.mean((x - clean) ** 2))

    plain = adaptive.bm3d_denoise(noisy, 25 / 255)
    corrected = adaptive.bm3d_denoise(noisy, 25 / 255, match_correction=3.0)
    assert adaptive.BM3D_MATCH_CORRECTION == 0.0
    assert np.abs(plain - corrected).max() > 1e-3
    assert psnr(plain) == pytest.approx(psnr(corrected), abs=0.1)


def test_bm3d_is_the_classical_candidate_and_beats_non_local_means():
    """On a training photo at sigma 25 (the true sigma given to both)."""
    assert adaptive.classical_denoiser()[0] == "bm3d"
    clean = (
        load_sample_photos("train")["astronaut"].astype(np.float32)[:128, :128] / 255
    )
    noisy = specs.parse("noise:25").apply(clean, np.random.default_rng(0))

    def psnr(x):
        return 10 * np.log10(1 / np.mean((x - clean) ** 2))

    bm3d = psnr(adaptive.bm3d_denoise(noisy, 25 / 255))
    assert bm3d > psnr(adaptive.nonlocal_means(noisy, 25 / 255)) + 0.5 > psnr(noisy) + 5


def test_plan_restores_only_what_it_measures(photo):
    rng = np.random.default_rng(0)
    assert adaptive.plan(photo).expert is None
    for spec in (
        "noise:5",
        "noise:25",
    ):  # light noise too: the SURE blend keeps it safe
        noisy = adaptive.plan(specs.parse(spec).apply(photo, rng))
        assert (noisy.expert, noisy.blend) == ("DN", "sure"), spec
    assert adaptive.plan(specs.parse("jpeg:95").apply(photo, rng)).expert is None
    blocky = adaptive.plan(specs.parse("jpeg:10").apply(photo, rng))
    assert (blocky.expert, blocky.blend) == ("DN", "blocking")
    assert adaptive.jpeg_weight(blocky.analysis.blockiness, blocky.coarse_noise) > 0.5
    assert adaptive.plan(photo, upscale=4).expert == "SR"


def test_the_jpeg_weight_ramps_from_nothing_to_the_whole_expert():
    act, ramp = adaptive.BLOCK_ACT, adaptive.BLOCK_RAMP
    quiet = 0.0  # no noise at half resolution: the blockiness ramp alone

    def weight(b, g=quiet):
        return adaptive.jpeg_weight(b, g)

    assert weight(0.0) == weight(act) == 0.0
    assert weight(act + ramp / 2) == pytest.approx(0.5)
    assert weight(act + ramp) == weight(10.0) == 1.0
    weights = [weight(b) for b in np.linspace(0, 3, 50)]
    assert weights == sorted(weights)
    # The noise ramp: the larger of the two decides.
    g_act, g_ramp = adaptive.COARSE_NOISE_ACT, adaptive.COARSE_NOISE_RAMP
    assert weight(0.0, g_act) == 0.0
    assert weight(0.0, g_act + g_ramp / 2) == pytest.approx(0.5)
    assert weight(act + ramp / 4, g_act + g_ramp) == 1.0
    assert weight(act + ramp / 2, g_act + g_ramp / 4) == pytest.approx(0.5)


def test_noise_compressed_away_at_full_resolution_is_measured_at_half(photo):
    # A noisy photo saved as JPEG: full-resolution noise_sigma sees little of the noise, the
    # half-resolution estimate sees it, and the JPEG plan gives it the whole expert; the same
    # photo compressed without noise keeps the blockiness ramp.
    rng = np.random.default_rng(5)
    noisy = specs.parse("noise:15+jpeg:40").apply(photo, rng)
    plain = specs.parse("jpeg:40").apply(photo, rng)
    assert analysis.analyse(noisy).noise < 5.0
    assert 255 * analysis.coarse_noise_sigma(noisy) > adaptive.COARSE_NOISE_ACT + 1.0
    assert 255 * analysis.coarse_noise_sigma(plain) < adaptive.COARSE_NOISE_ACT
    decided, compressed = adaptive.plan(noisy), adaptive.plan(plain)
    assert decided.blend == compressed.blend == "blocking"
    assert (
        adaptive.jpeg_weight(decided.analysis.blockiness, decided.coarse_noise) == 1.0
    )
    assert adaptive.jpeg_weight(
        compressed.analysis.blockiness, compressed.coarse_noise
    ) == adaptive.jpeg_weight(compressed.analysis.blockiness, 0.0)
    # Too small to measure at half resolution (24 px: 12 px of 2x2 means): not measured.
    ramp = np.linspace(0.2, 0.8, 24, dtype=np.float32)
    smooth = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 0.5), -1)
    tiny = adaptive.plan(specs.parse("jpeg:10").apply(smooth.astype(np.float32), rng))
    assert tiny.blend == "blocking" and tiny.coarse_noise == 0.0


def test_the_default_returns_a_clean_photo_unchanged_and_denoises_a_noisy_one(photo):
    restorer = restore.load()
    clean = restorer.restore(photo, seed=0)
    np.testing.assert_array_equal(clean.pixels, photo)
    assert clean.details["unet_evaluations"] == 0 and clean.details["weights"] == {}
    noisy = specs.parse("noise:25").apply(photo, np.random.default_rng(1))
    out = restorer.restore(noisy, seed=0)
    decided = out.details["weights_details"]["adaptive"]
    assert decided["expert"] == "DN"
    weights = decided["blend_weights"]
    assert set(weights) == {"DN", "bm3d"} and 0.0 < sum(weights.values()) <= 1.0
    # The crop and its SURE probe, then the whole photo where DN got weight, one step each:
    # the embedded model predicts the clean image.
    assert adaptive.SAMPLE_PREDICTION_STEPS == 1
    assert out.details["unet_evaluations"] == 2 + (weights["DN"] > 0)

    def psnr(x):
        return 10 * np.log10(1 / np.mean((x - photo) ** 2))

    assert psnr(out.pixels) > psnr(noisy) + 2.0


def test_a_compressed_photo_gets_the_dn_expert_blended_by_its_blocking(photo):
    blocky = specs.parse("jpeg:30").apply(photo, np.random.default_rng(3))
    restorer = restore.load()
    out = restorer.restore(blocky, seed=0)
    decided = out.details["weights_details"]["adaptive"]
    assert decided["expert"] == "DN" and decided["blend"] == "blocking"
    planned = adaptive.plan(blocky)
    weight = adaptive.jpeg_weight(planned.analysis.blockiness, planned.coarse_noise)
    assert 0.0 < weight and decided["blend_weight"] == pytest.approx(weight, abs=1e-4)
    expert = restore.load(
        deblur=False, weights="DN=1", ensemble=adaptive.JPEG_ENSEMBLE
    ).restore(blocky, seed=0)
    assert out.details["unet_evaluations"] == adaptive.JPEG_ENSEMBLE * 4
    # The blend, moved into the input's quantisation constraint set (quality estimated ~30).
    assert abs(decided["jpeg_quality"] - 30) <= 2
    blended = blocky + weight * (expert.pixels - blocky)
    expected = jpeg_consistency.project(
        blended, blocky, jpeg_consistency.estimate(blocky)
    )
    np.testing.assert_allclose(out.pixels, expected, atol=2e-6)


def test_a_high_quality_jpeg_is_left_alone_even_where_it_looks_blocky(
    photo, monkeypatch
):
    # Blockiness is a proxy that smooth content inflates; with the blocking threshold at 0 every
    # photo looks blocky, and the estimated quality decides: quality 90 is left alone,
    # quality 30 gets the DN expert.
    monkeypatch.setattr(adaptive, "BLOCK_ACT", 0.0)
    rng = np.random.default_rng(4)
    light = adaptive.plan(specs.parse("jpeg:90").apply(photo, rng))
    assert light.expert is None and light.jpeg.quality >= adaptive.JPEG_SKIP_QUALITY
    assert "jpeg_quality" in light.to_json()
    heavy = adaptive.plan(specs.parse("jpeg:30").apply(photo, rng))
    assert heavy.expert == "DN" and abs(heavy.jpeg.quality - 30) <= 2


def test_the_default_upscales_a_small_photo_to_n_times_its_size(photo):
    # `unires restore small.png --upscale 4` with no weights: the SR plan's output is the
    # upscaled restoration, not a blend with the (smaller) input.
    small = specs.parse("down:4").apply(photo, np.random.default_rng(2))
    assert small.shape == (32, 32, 3)
    out = restore.load(upscale=4).restore(small, seed=0)
    assert out.pixels.shape == photo.shape
    assert out.details["weights_details"]["adaptive"]["expert"] == "SR"
    assert {k: v for k, v in out.details["weights"].items() if v} == {"SR": 1.0}
    assert np.all(np.isfinite(out.pixels))


def test_a_noisy_jpeg_takes_the_jpeg_plan_not_sure(photo, monkeypatch):
    # SURE assumes white noise, which JPEG quantisation removes and correlates: with the noise
    # threshold at 0 every photo "is noisy", and the JPEG fit decides.
    monkeypatch.setattr(adaptive, "NOISE_ACT", 0.0)
    rng = np.random.default_rng(5)
    compressed = adaptive.plan(specs.parse("noise:15+jpeg:40").apply(photo, rng))
    assert (compressed.expert, compressed.blend) == ("DN", "blocking")
    assert compressed.jpeg is not None and compressed.jpeg.quality < 85
    noisy = adaptive.plan(specs.parse("noise:15").apply(photo, rng))
    assert (noisy.expert, noisy.blend) == ("DN", "sure")

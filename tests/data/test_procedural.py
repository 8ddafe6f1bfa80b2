"""Procedural dead-leaves training images: repeatable by (seed, index), varied, photo-like."""

import time

import numpy as np
import pytest

from unires_jax.data import procedural


def _spectral_slope(image: np.ndarray) -> float:
    """Slope of the radially averaged log power spectrum of the grey image (photos: ~-2)."""
    g = image.astype(np.float64).mean(-1)
    power = np.abs(np.fft.fft2(g - g.mean())) ** 2
    n = g.shape[0]
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n))).ravel()
    edges = np.logspace(np.log10(2 / n), np.log10(0.4), 12)
    which = np.digitize(f, edges)
    centres = np.sqrt(edges[:-1] * edges[1:])
    means = [power.ravel()[which == i].mean() for i in range(1, 12)]
    return float(np.polyfit(np.log(centres), np.log(means), 1)[0])


def test_an_image_is_a_pure_function_of_seed_and_index():
    a = procedural.dead_leaves_image(0, 7, 64)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, procedural.dead_leaves_image(0, 7, 64))
    assert not np.array_equal(a, procedural.dead_leaves_image(0, 8, 64))
    assert not np.array_equal(a, procedural.dead_leaves_image(1, 7, 64))


def test_images_use_the_value_range_and_vary_in_colour_brightness_and_contrast():
    images = [procedural.dead_leaves_image(0, i, 96) for i in range(60)]
    means = [im.mean() for im in images]
    stds = [im.std() for im in images]
    grey = [np.ptp(im.astype(int), axis=-1).max() == 0 for im in images]
    assert min(im.min() for im in images) <= 5 and max(im.max() for im in images) >= 250
    assert np.ptp(means) > 50 and min(stds) > 15  # no flat images, varied brightness
    assert 0 < sum(grey) < len(images) // 3  # some grey images, mostly colour
    # Many distinct values per image (textures and blurred edges, not a few flat levels).
    assert min(len(np.unique(im[..., 1])) for im in images) > 100
    colour_images = [im for im, g in zip(images, grey) if not g]
    assert min(len(np.unique(im.reshape(-1, 3), axis=0)) for im in colour_images) > 1000


def test_images_have_edges_at_every_scale_like_photos():
    slopes = [
        _spectral_slope(procedural.dead_leaves_image(3, i, 128)) for i in range(12)
    ]
    assert -3.2 < np.median(slopes) < -1.7, slopes


def test_textured_leaves_vary_inside_flat_leaves_do_not():
    config = procedural.DeadLeavesConfig(texture_probs=(0.0, 0.0, 1.0, 0.0))
    grating = procedural.render_dead_leaves(64, np.random.default_rng(0), config)
    flat = procedural.render_dead_leaves(
        64,
        np.random.default_rng(0),
        procedural.DeadLeavesConfig(
            texture_probs=(1.0, 0.0, 0.0, 0.0), blur_sigma=(0.3, 0.3)
        ),
    )

    # Flat leaves leave large runs of equal neighbours; gratings do not.
    def equal_neighbours(x):
        return float(np.mean(np.abs(np.diff(x, axis=1)) < 1e-3))

    assert equal_neighbours(flat) > equal_neighbours(grating) + 0.2
    assert grating.dtype == np.float32 and 0.0 <= grating.min() and grating.max() <= 1.0


def test_a_128px_image_takes_a_few_milliseconds():
    procedural.dead_leaves_image(0, 0, 128)
    times = []
    for i in range(20):
        start = time.perf_counter()
        procedural.dead_leaves_image(0, i, 128)
        times.append(time.perf_counter() - start)
    # ~5 ms on an idle 2-core CPU; the bound leaves room for a busy machine.
    assert np.median(times) < 0.03, times


def test_too_small_images_are_refused():
    with pytest.raises(ValueError, match="size >= 8"):
        procedural.dead_leaves_image(0, 0, 4)

"""Camera-shake trajectories and PSFs (Boracchi & Foi 2012)."""

import math

import numpy as np
import pytest

from unires_jax.data.degradations import camera_shake


def _params(**overrides) -> camera_shake.CameraShakeParams:
    base = {
        "anxiety": 0.05,
        "centripetal": 0.35,
        "gaussian_term": 5.0,
        "freq_big_shakes": 0.1,
        "init_angle": 0.3,
        "exposure": 1.0,
        "walk_seed": 3,
    }
    return camera_shake.CameraShakeParams(**{**base, **overrides})


@pytest.mark.parametrize("seed", range(20))
def test_psf_is_nonnegative_normalised_odd_and_centred(seed):
    params = camera_shake.sample_camera_shake_params(np.random.default_rng(seed))
    psf = camera_shake.camera_shake_kernel(params)
    assert psf.ndim == 2 and psf.shape[0] == psf.shape[1] and psf.shape[0] % 2 == 1
    assert psf.dtype == np.float32
    assert psf.min() >= 0.0
    np.testing.assert_allclose(psf.sum(), 1.0, atol=1e-5)
    # Centred on its centroid, so blurring does not shift the image.
    c = psf.shape[0] // 2
    ys, xs = np.mgrid[0 : psf.shape[0], 0 : psf.shape[1]]
    assert abs((psf * xs).sum() - c) < 1e-3 and abs((psf * ys).sum() - c) < 1e-3


def test_trajectory_moves_at_constant_speed_of_max_length_over_steps():
    params = _params()
    x = camera_shake.trajectory(params)
    assert x.shape == (params.num_steps,) and x[0] == 0
    steps = np.abs(np.diff(x))
    np.testing.assert_allclose(
        steps, params.max_length / (params.num_steps - 1), rtol=1e-9
    )


def test_calm_hand_gives_straight_line_whose_length_follows_exposure():
    # anxiety 0: no jitter, no pull, no jerks -> a straight 60 px path along init_angle.
    full = camera_shake.camera_shake_kernel(
        _params(anxiety=0.0, init_angle=0.0, exposure=1.0)
    )
    half = camera_shake.camera_shake_kernel(
        _params(anxiety=0.0, init_angle=0.0, exposure=0.5)
    )
    for psf, length in ((full, 60.0), (half, 30.0)):
        rows = np.nonzero(psf.sum(axis=1) > 1e-6)[0]
        cols = np.nonzero(psf.sum(axis=0) > 1e-6)[0]
        assert len(rows) <= 2  # horizontal
        assert abs((cols[-1] - cols[0]) - length) <= 2


def test_jerks_happen_only_with_anxiety():
    calm = camera_shake.trajectory(_params(anxiety=0.0))
    assert np.allclose(np.angle(np.diff(calm)), np.angle(calm[1]))
    shaky = camera_shake.trajectory(_params(anxiety=0.1, freq_big_shakes=0.2))
    assert np.std(np.angle(np.diff(shaky))) > 0.1


def test_sampler_ranges_match_boracchi_foi_defaults():
    draws = [
        camera_shake.sample_camera_shake_params(np.random.default_rng(s))
        for s in range(300)
    ]
    r = camera_shake.CameraShakeParams.RANGES
    assert r["anxiety"] == (0.0, 0.1) and r["centripetal"] == (0.0, 0.7)
    assert r["gaussian_term"] == (0.0, 10.0) and r["freq_big_shakes"] == (0.0, 0.2)
    assert r["init_angle"] == (0.0, 2 * math.pi)
    assert all(d.max_length == 60.0 and d.num_steps == 2000 for d in draws)


def test_blur_keeps_shape_and_range_and_uses_no_rng():
    image = np.random.default_rng(0).uniform(size=(40, 50, 3)).astype(np.float32)
    params = _params()
    a = camera_shake.apply_camera_shake(image, params, np.random.default_rng(0))
    b = camera_shake.apply_camera_shake(image, params, np.random.default_rng(1))
    assert a.shape == image.shape and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)

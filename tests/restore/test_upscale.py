"""Upscaling restoration: the bicubic start, the projection onto the input, and the plumbing."""

import numpy as np
import pytest

from unires_jax.data.degradations.resize import resize_image
from unires_jax.restore.restorer import Restorer, RestoreSettings
from unires_jax.restore.upscale import InputConsistency, check_upscale, upscale_input

STEPS = 2


@pytest.fixture(scope="module")
def small():
    # Mid-range values, so the projected images stay inside [0, 1] and clipping is not tested.
    rng = np.random.default_rng(3)
    return rng.uniform(0.4, 0.6, size=(12, 10, 3)).astype(np.float32)


def test_upscale_input_is_the_pipelines_bicubic():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(5, 7, 3)).astype(np.float32)
    out = upscale_input(image, 3)
    assert out.shape == (15, 21, 3)
    np.testing.assert_array_equal(
        out, np.clip(resize_image(image, (15, 21), "bicubic"), 0, 1)
    )
    np.testing.assert_array_equal(upscale_input(image, 1), image)


@pytest.mark.parametrize("factor", [0, 9, 2.5, True, -1])
def test_invalid_upscale_factors_are_refused(factor):
    with pytest.raises(ValueError, match="upscale=.*whole number from 1"):
        check_upscale(factor)
    with pytest.raises(ValueError, match="upscale="):
        RestoreSettings(upscale=factor)


def test_downscale_is_the_benchmark_bicubic(small):
    op = InputConsistency.of(small, 4)
    x = np.random.default_rng(1).uniform(size=(2, 48, 40, 3))
    ours = op.downscale(x)
    ref = np.stack([resize_image(img, (12, 10), "bicubic_aa") for img in x])
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_projection_is_the_least_squares_solution_of_the_dense_problem():
    # Oracle: the Kronecker (dense) operator and numpy's pseudo-inverse, channel by channel.
    rng = np.random.default_rng(2)
    source = rng.uniform(0.3, 0.7, size=(3, 2, 3))
    op = InputConsistency.of(source, 4)
    x = rng.uniform(0.3, 0.7, size=(12, 8, 3))
    dense = np.kron(op.rows, op.cols)  # [(h w), (H W)] on row-major flattened images
    pinv = np.linalg.pinv(dense)
    ref = np.stack(
        [
            (
                x[..., c].ravel()
                + pinv @ (source[..., c].ravel() - dense @ x[..., c].ravel())
            ).reshape(12, 8)
            for c in range(3)
        ],
        axis=-1,
    )
    np.testing.assert_allclose(op.project(x), ref, atol=1e-5)


def test_projection_meets_the_constraint_is_idempotent_and_moves_least(small):
    op = InputConsistency.of(small, 4)
    rng = np.random.default_rng(4)
    x = rng.uniform(0.4, 0.6, size=(48, 40, 3))
    p = op.project(x)
    np.testing.assert_allclose(op.downscale(p), small, atol=1e-5)
    np.testing.assert_allclose(op.project(p), p, atol=1e-5)
    # Every other image with the same downscale is at least as far from x.
    for _ in range(5):
        other = op.project(rng.uniform(0.4, 0.6, size=x.shape))
        assert np.linalg.norm(other - x) >= np.linalg.norm(p - x) - 1e-6
    # Batched = one by one.
    both = op.project(np.stack([x, 1 - x]))
    np.testing.assert_allclose(both[1], op.project(1 - x), atol=1e-6)


def test_projection_refuses_images_of_the_wrong_size(small):
    op = InputConsistency.of(small, 2)
    with pytest.raises(ValueError, match=r"expected \(24, 20\).*x2"):
        op.project(np.zeros((24, 22, 3)))


def test_restorer_upscales_then_projects(ldm, small):
    weights = {"SR": 1.0}
    up = Restorer(ldm, settings=RestoreSettings(steps=STEPS, upscale=2))
    plain = Restorer(ldm, settings=RestoreSettings(steps=STEPS))
    raw = Restorer(
        ldm, settings=RestoreSettings(steps=STEPS, upscale=2, consistency=False)
    )
    ours = up.restore(small, weights)
    assert ours.shape == (24, 20, 3)
    reference = plain.restore(upscale_input(small, 2), weights)
    np.testing.assert_allclose(raw.restore(small, weights), reference, atol=1e-6)
    op = InputConsistency.of(small, 2)
    np.testing.assert_allclose(ours, op.project(reference), atol=1e-5)
    assert np.abs(ours - reference).max() > 1e-3  # the projection did something


def test_upscaled_ensemble_copies_are_each_consistent(ldm, small):
    r = Restorer(ldm, settings=RestoreSettings(steps=STEPS, upscale=2, ensemble=8))
    out = r.restore(small, {"SR": 0.5, "DN": 0.5})
    assert out.shape == (24, 20, 3)
    # The projection is affine, so the mean of consistent copies is consistent (where unclipped).
    op = InputConsistency.of(small, 2)
    np.testing.assert_allclose(op.project(out), out, atol=1e-4)

"""UniRes training-task degradations, prompts and the fixed evaluation degradations."""

import pickle

import numpy as np
import pytest
from skimage import data

from unires_jax.data import degradations as deg
from unires_jax.data.degradations import tasks


@pytest.fixture(scope="module")
def hq() -> np.ndarray:
    return (data.astronaut()[::8, ::8] / 255.0).astype(np.float32)  # [64, 64, 3]


def test_prompts_are_the_exact_unires_strings():
    assert deg.TASK_PROMPTS == {
        "sr": "Super-resolution",
        "motion": "Motion-deblur",
        "defocus": "Defocus-deblur",
        "denoise": "Denoise",
    }
    assert set(deg.TASK_DEGRADATIONS) == set(deg.TASK_PROMPTS)


@pytest.mark.parametrize("task", ["sr", "motion", "defocus", "denoise"])
def test_task_degradation_keeps_shape_and_range(task, hq):
    for seed in range(3):
        lq = deg.degrade_for_task(task, hq, np.random.default_rng(seed))
        assert lq.shape == hq.shape and lq.dtype == np.float32
        assert lq.min() >= 0.0 and lq.max() <= 1.0
        assert not np.array_equal(lq, hq)
    odd = hq[:50, :38]
    assert deg.degrade_for_task(task, odd, np.random.default_rng(0)).shape == odd.shape


@pytest.mark.parametrize("task", ["sr", "motion", "defocus", "denoise"])
def test_task_degradation_is_seeded(task, hq):
    a = deg.degrade_for_task(task, hq, np.random.default_rng(4))
    b = deg.degrade_for_task(task, hq, np.random.default_rng(4))
    c = deg.degrade_for_task(task, hq, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_denoise_reaches_strong_gaussian_noise(hq):
    flat = np.full((64, 64, 3), 0.5, np.float32)
    stds = [
        (deg.degrade_for_task("denoise", flat, np.random.default_rng(s)) - 0.5).std()
        for s in range(60)
    ]
    assert max(stds) > 40 / 255


def test_task_functions_pickle_for_grain_workers(hq):
    for fn in deg.TASK_DEGRADATIONS.values():
        restored = pickle.loads(pickle.dumps(fn))
        np.testing.assert_array_equal(
            restored(hq, np.random.default_rng(0)), fn(hq, np.random.default_rng(0))
        )


def test_unknown_task_lists_the_valid_ones(hq):
    with pytest.raises(KeyError, match="denoise"):
        deg.degrade_for_task("deblur", hq, np.random.default_rng(0))


def test_fixed_noise25_has_sigma_25():
    flat = np.full((128, 128, 3), 0.5, np.float32)
    out = deg.fixed_degradation("noise25", flat, np.random.default_rng(0))
    assert abs((out - 0.5).std() - 25 / 255) < 0.03 * 25 / 255


def test_fixed_degradations_keep_shape_and_are_repeatable(hq):
    assert set(deg.FIXED_DEGRADATIONS) == {
        "noise25",
        "sr_x4_bicubic",
        "motion",
        "defocus",
    }
    for name in deg.FIXED_DEGRADATIONS:
        out = deg.fixed_degradation(name, hq, np.random.default_rng(0))
        assert out.shape == hq.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
        again = deg.fixed_degradation(name, hq, np.random.default_rng(0))
        np.testing.assert_array_equal(out, again)
    for name in (
        "sr_x4_bicubic",
        "motion",
        "defocus",
    ):  # fixed: no dependence on the rng
        np.testing.assert_array_equal(
            deg.fixed_degradation(name, hq, np.random.default_rng(0)),
            deg.fixed_degradation(name, hq, np.random.default_rng(1)),
        )


def test_fixed_motion_is_a_straight_15px_streak():
    point = np.zeros((41, 41, 3), np.float32)
    point[20, 20] = 1.0
    out = deg.fixed_degradation("motion", point, None)[..., 0]
    ys, xs = np.nonzero(out > 1e-4)
    assert abs((xs.max() - xs.min()) - tasks.FIXED_MOTION_LENGTH / np.sqrt(2)) <= 2
    np.testing.assert_allclose(
        xs - 20, -(ys - 20), atol=1.5
    )  # 45 degrees, up and to the right


def test_fixed_defocus_is_a_disk_of_radius_4():
    point = np.zeros((33, 33, 3), np.float32)
    point[16, 16] = 1.0
    out = deg.fixed_degradation("defocus", point, None)[..., 0]
    ys, xs = np.nonzero(out > 1e-4)
    assert xs.max() - 16 == 4 and 16 - ys.min() == 4


@pytest.mark.parametrize("recipe", sorted(deg.DEGRADATION_RECIPES))
def test_every_recipe_covers_the_four_tasks_and_pickles(recipe, hq):
    functions = deg.DEGRADATION_RECIPES[recipe]
    assert set(functions) == set(deg.TASK_PROMPTS)
    for fn in functions.values():
        lq = fn(hq, np.random.default_rng(3))
        np.testing.assert_array_equal(
            pickle.loads(pickle.dumps(fn))(hq, np.random.default_rng(3)), lq
        )
        assert lq.shape == hq.shape and lq.dtype == np.float32
        assert 0.0 <= lq.min() and lq.max() <= 1.0 and not np.array_equal(lq, hq)
        np.testing.assert_array_equal(lq, fn(hq, np.random.default_rng(3)))


def test_canonical_sr_is_plain_bicubic_when_no_noise_is_drawn(hq):
    # Find a seed that draws no noise; the result must then be exactly the resize operator.
    for seed in range(20):
        rng = np.random.default_rng(seed)
        scale = rng.uniform(*tasks.CANONICAL_SR_SCALE)
        if rng.uniform() >= tasks.CANONICAL_NOISE_PROB:
            break
    expected = deg.apply_resize(
        hq, deg.ResizeParams(scale=scale), np.random.default_rng(0)
    )
    got = tasks.canonical_sr(hq, np.random.default_rng(seed))
    np.testing.assert_allclose(got, np.clip(expected, 0, 1), atol=1e-6)


def test_mixed_recipe_draws_both_canonical_and_paper_inputs(hq):
    # The paper's motion recipe always JPEG-compresses and adds camera noise; the canonical one
    # is a noiseless straight blur most of the time. Both must occur.
    kinds = set()
    for seed in range(16):
        rng = np.random.default_rng(seed)
        canonical = rng.uniform() < tasks.MIXED_CANONICAL_PROB
        got = deg.DEGRADATION_RECIPES["mixed"]["motion"](
            hq, np.random.default_rng(seed)
        )
        rng2 = np.random.default_rng(seed)
        rng2.uniform()
        fn = tasks.canonical_motion if canonical else tasks.degrade_motion
        np.testing.assert_array_equal(got, fn(hq, rng2))
        kinds.add(canonical)
    assert kinds == {True, False}

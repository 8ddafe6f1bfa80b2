"""Every registered operator: seeded determinism, variety, output contract, parameter coverage."""

import dataclasses
import math
import pickle

import numpy as np
import pytest
from skimage import data

from unires_jax.data import degradations as deg

# Fields sampled log-uniformly: coverage is checked on the log scale.
LOG_FIELDS = {
    "CameraNoiseParams": {"shot", "read"},
    "LowLightParams": {"gain", "shot", "read"},
}
# GIR fixes its resize operator to x4 bicubic for the random tasks too, so it has no randomness.
SEEDED_OPERATORS = sorted(set(deg.OPERATORS) - {"resize"})


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return (data.astronaut()[::8, ::8] / 255.0).astype(np.float32)  # [64, 64, 3]


def _run(op: deg.Operator, image: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return op.apply(image, op.sample(rng), rng)


@pytest.mark.parametrize("name", sorted(deg.OPERATORS))
def test_output_is_float32_unit_range_same_shape(name, image):
    op = deg.OPERATORS[name]
    for seed in range(3):
        out = _run(op, image, seed)
        assert out.shape == image.shape and out.dtype == np.float32
        assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    rep = op.apply(image, op.representative, np.random.default_rng(0))
    assert rep.shape == image.shape and rep.dtype == np.float32
    assert not np.array_equal(rep, image), (
        f"{name} representative task left the image unchanged"
    )


@pytest.mark.parametrize("name", sorted(deg.OPERATORS))
def test_same_seed_gives_same_output(name, image):
    op = deg.OPERATORS[name]
    np.testing.assert_array_equal(_run(op, image, 7), _run(op, image, 7))


@pytest.mark.parametrize("name", SEEDED_OPERATORS)
def test_different_seeds_give_different_outputs(name, image):
    op = deg.OPERATORS[name]
    assert op.sample(np.random.default_rng(0)) != op.sample(np.random.default_rng(1))
    assert not np.array_equal(_run(op, image, 0), _run(op, image, 1))


def test_resize_is_the_same_x4_bicubic_for_every_seed(image):
    op = deg.OPERATORS["resize"]
    assert {op.sample(np.random.default_rng(s)) for s in range(5)} == {
        deg.ResizeParams()
    }
    out = _run(op, image, 0)
    np.testing.assert_array_equal(out, _run(op, image, 1))
    assert not np.array_equal(out, image)


@pytest.mark.parametrize("name", sorted(deg.OPERATORS))
def test_sampled_parameters_cover_documented_ranges(name):
    op = deg.OPERATORS[name]
    draws = [op.sample(np.random.default_rng(s)) for s in range(200)]
    cls = type(draws[0])
    for field, (lo, hi) in cls.RANGES.items():
        values = np.array([getattr(d, field) for d in draws], np.float64)
        assert values.min() >= lo - 1e-9 and values.max() <= hi + 1e-9, (field, lo, hi)
        if field in LOG_FIELDS.get(cls.__name__, ()):
            values, lo, hi = np.log(values), math.log(lo), math.log(hi)
        slack = 0.1 * (hi - lo)
        assert values.min() <= lo + slack and values.max() >= hi - slack, (
            f"{name}.{field}: drew [{values.min()}, {values.max()}], documented [{lo}, {hi}]"
        )


@pytest.mark.parametrize("name", sorted(deg.OPERATORS))
def test_params_are_frozen_dataclasses_and_operators_pickle(name):
    op = deg.OPERATORS[name]
    params = op.sample(np.random.default_rng(0))
    assert dataclasses.is_dataclass(params)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(params, dataclasses.fields(params)[0].name, 0)
    restored = pickle.loads(pickle.dumps(op))
    assert restored == op


def test_gir_registry_has_the_ten_operators_and_weather_is_capture_time():
    assert set(deg.GIR_OPERATORS) == {
        "resize",
        "blur",
        "noise",
        "compression",
        "ringing",
        "alg_artifact",
        "damage",
        "rain",
        "snow",
        "haze",
    }
    capture = {n for n, op in deg.OPERATORS.items() if op.capture_time}
    assert capture == {"rain", "snow", "haze"}


def test_gir_representative_settings_follow_the_paper():
    rep = {n: op.representative for n, op in deg.GIR_OPERATORS.items()}
    assert rep["blur"] == deg.BlurParams(kernel_size=15, sigma=2.0)
    assert rep["noise"] == deg.NoiseParams(sigma=20.0)
    assert rep["compression"] == deg.JpegParams(quality=50)
    assert rep["ringing"] == deg.RingingParams(kernel_size=15, omega_c=1.2)
    assert rep["damage"] == deg.DamageParams(num_lines=10, thickness=7)
    assert rep["rain"].strength == 75.0
    assert (rep["haze"].airlight, rep["haze"].beta) == (0.9, 1.8)
    assert (rep["snow"].airlight, rep["snow"].beta) == (0.9, 0.75)


def test_integer_images_are_rejected_with_a_fix(image):
    codes = (image * 255).astype(np.uint8)
    op = deg.OPERATORS["blur"]
    with pytest.raises(ValueError, match="255"):
        op.apply(codes, op.representative, np.random.default_rng(0))


def test_haze_uses_a_supplied_depth_map(image):
    params = deg.HazeParams(airlight=1.0, beta=2.0)
    near = deg.apply_haze(image, params, None, depth=np.zeros(image.shape[:2]))
    np.testing.assert_allclose(near, image, atol=1e-6)  # t = 1 at zero depth
    far = deg.apply_haze(image, params, None, depth=np.ones(image.shape[:2]))
    t = math.exp(-2.0)
    np.testing.assert_allclose(far, image * t + (1 - t), atol=1e-6)


def test_damage_lines_are_pure_white_or_black(image):
    alphas, colours = deg.damage_masks(
        (64, 64), deg.DamageParams(6, 7), np.random.default_rng(3)
    )
    assert alphas.shape == (6, 64, 64) and set(colours.tolist()) <= {0.0, 1.0}
    out = deg.apply_damage(image, deg.DamageParams(6, 7), np.random.default_rng(3))
    # Pixels fully inside exactly one line carry that line's colour.
    solid = (alphas.max(axis=0) == 1.0) & ((alphas > 0).sum(axis=0) == 1)
    assert solid.sum() > 0
    assert np.all(np.isin(out[solid], [0.0, 1.0]))

"""The "broad" degradation recipe of the default model: every task from nearly clean to heavy."""

import numpy as np
import pytest
from skimage import data

from unires_jax.data import degradations as deg
from unires_jax.data.degradations import tasks

BROAD = deg.DEGRADATION_RECIPES["broad"]
N = 120  # draws per task


@pytest.fixture(scope="module")
def hq() -> np.ndarray:
    return (data.astronaut()[100:196, 150:246] / 255.0).astype(
        np.float32
    )  # [96, 96, 3]


def _8bit(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, 0, 1) * 255).astype(np.float32) / 255


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(max(np.mean((a - b) ** 2), 1e-12)))


@pytest.fixture(scope="module")
def draws(hq) -> dict[str, np.ndarray]:
    """Per task, the PSNR of N inputs drawn with seeds 0..N-1."""
    return {
        task: np.array([_psnr(fn(hq, np.random.default_rng(s)), hq) for s in range(N)])
        for task, fn in BROAD.items()
    }


def test_broad_covers_the_four_unires_tasks():
    assert set(BROAD) == set(deg.TASK_PROMPTS)


@pytest.mark.parametrize("task", sorted(deg.TASK_PROMPTS))
def test_broad_inputs_keep_shape_and_lie_on_8bit_levels(task, hq):
    odd = hq[:50, :37]
    for seed in range(8):
        for image in (hq, odd):
            lq = BROAD[task](image, np.random.default_rng(seed))
            assert lq.shape == image.shape and lq.dtype == np.float32
            assert 0.0 <= lq.min() and lq.max() <= 1.0
            np.testing.assert_allclose(lq * 255, np.rint(lq * 255), atol=1e-3)


@pytest.mark.parametrize("task", sorted(deg.TASK_PROMPTS))
def test_broad_inputs_are_repeatable_from_the_generator(task, hq):
    a = BROAD[task](hq, np.random.default_rng(11))
    np.testing.assert_array_equal(a, BROAD[task](hq, np.random.default_rng(11)))
    assert not np.array_equal(a, BROAD[task](hq, np.random.default_rng(12)))


def test_every_task_ranges_from_mild_to_heavy(draws):
    for task, psnr in draws.items():
        low, high = np.percentile(psnr, [5, 95])
        assert low < 24 and high > 29, (task, low, high)
        assert high - low > 8, (task, low, high)


def test_denoise_includes_nearly_clean_inputs_and_strong_noise(draws):
    psnr = draws["denoise"]
    assert (psnr > 38).mean() > 0.05  # near-clean: sigma <= 5, or light JPEG
    assert (psnr < 18).mean() > 0.05  # sigma up to 50


def test_denoise_noise_reaches_sigma_50_and_jpeg_appears_alone():
    flat = np.full((64, 64, 3), 0.5, np.float32)
    stds = [
        (BROAD["denoise"](flat, np.random.default_rng(s)) - 0.5).std() * 255
        for s in range(N)
    ]
    assert max(stds) > 40 and min(stds) < 1.5
    # A JPEG-only input: no noise, blocks. Find a seed of the "jpeg" branch.
    branches = list(tasks.BROAD_DENOISE_BRANCHES)
    probs = np.asarray(list(tasks.BROAD_DENOISE_BRANCHES.values()))
    seed = next(
        s
        for s in range(100)
        if branches[np.random.default_rng(s).choice(len(branches), p=probs)] == "jpeg"
    )
    image = (data.astronaut()[:64, :64] / 255.0).astype(np.float32)
    lq = BROAD["denoise"](image, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    rng.choice(len(branches), p=probs)
    quality = int(rng.integers(10, 96))
    np.testing.assert_array_equal(lq, deg.jpeg_roundtrip(image, quality))


def test_sr_is_a_plain_x2_to_x4_resize_when_no_extra_is_drawn(hq, monkeypatch):
    monkeypatch.setattr(tasks, "BROAD_SR_REALESRGAN_PROB", 0.0)
    monkeypatch.setattr(tasks, "BROAD_MILD_NOISE", (0.0, (1.0, 10.0)))
    monkeypatch.setattr(tasks, "BROAD_MILD_JPEG", (0.0, (60, 95)))
    monkeypatch.setattr(tasks, "BROAD_SR_DOWN", {"bicubic_aa": 1.0})
    scales = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        rng.uniform()  # the Real-ESRGAN draw
        scales.append(rng.uniform(*tasks.BROAD_SR_SCALE))
        small = (round(96 / scales[-1]),) * 2
        expected = _8bit(deg.resize_image(hq, small, "bicubic_aa"))
        expected = _8bit(deg.resize_image(expected, (96, 96), "bicubic"))
        got = BROAD["sr"](hq, np.random.default_rng(seed))
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert 2.0 <= min(scales) and max(scales) <= 4.0 and np.ptp(scales) > 0.5


def test_sr_draws_every_downscale_kernel_and_the_realesrgan_pipeline(monkeypatch):
    seen = []
    pick = tasks._pick

    def recording_pick(table, rng):
        seen.append(pick(table, rng))
        return seen[-1]

    monkeypatch.setattr(tasks, "_pick", recording_pick)
    flat = np.full((32, 32, 3), 0.5, np.float32)
    realesrgan = 0
    for seed in range(100):
        before = len(seen)
        BROAD["sr"](flat, np.random.default_rng(seed))
        realesrgan += len(seen) == before
    assert set(seen) == set(tasks.BROAD_SR_DOWN)
    assert 5 <= realesrgan <= 30  # 15%

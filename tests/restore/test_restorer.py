"""UniRes combined sampling: one-hot = single prompt, batching = separate runs, costs, tiling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unires_jax.diffusion.ddim import ddim_sample
from unires_jax.diffusion.experts import WeightError
from unires_jax.restore.restorer import Restorer, RestoreSettings

STEPS = 3


@pytest.fixture(scope="module")
def image():
    # 32x36 pads to 64x64 pixels, an 8x8 latent: small, and not a multiple of the UNet's 32.
    rng = np.random.default_rng(0)
    return (rng.uniform(size=(32, 36, 3)) * 255).astype(np.uint8)


def _restorer(ldm, **settings):
    return Restorer(ldm, settings=RestoreSettings(steps=STEPS, **settings))


def test_one_hot_weights_reproduce_single_prompt_sampling(ldm, image):
    r = _restorer(ldm)
    prepared = r.prepare(image)
    k = r.experts.index("DN")
    ours = r.sample_latents(prepared, np.eye(6, dtype=np.float32)[k : k + 1])

    context = ldm.encode_prompts(["Denoise"])
    lq = prepared.conditions[0][None]

    def model_fn(x, t):
        return ldm.unet(jnp.concatenate([x, lq], -1), t, context)

    ts, prev = r.timesteps(STEPS)
    ref = jax.jit(
        lambda x: ddim_sample(
            model_fn, x, r._schedule, ts, prev_timesteps=prev, set_alpha_to_one=False
        )
    )(r.initial_noise(prepared, 0))
    # Same math; only XLA's fusion of two different programs differs (float32 rounding).
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert np.max(np.abs(ours - ref)) <= 1e-6 * np.max(np.abs(ref))


def test_downlq_expert_uses_the_downscaled_condition(ldm, image):
    r = _restorer(ldm)
    prepared = r.prepare(image)
    assert prepared.conditions.shape[0] == 2
    assert not np.allclose(prepared.conditions[0], prepared.conditions[1])
    down = r.sample_latents(prepared, np.eye(6, dtype=np.float32)[5:6])
    sr = r.sample_latents(prepared, np.eye(6, dtype=np.float32)[1:2])
    assert not np.allclose(down, sr)


def test_batched_weights_equal_separate_runs(ldm, image):
    r = _restorer(ldm)
    weights = np.array(
        [
            [0.2, 0.2, 0.2, 0.2, -0.2, 0.4],
            [0, 0, 0, 0, -0.2, 1.2],
            [1, 0, 0, 0, 0, 0],
        ],
        np.float32,
    )
    batched = r.restore(image, weights, seed=3)
    assert batched.shape == (3, 32, 36, 3) and batched.dtype == np.float32
    for i, w in enumerate(weights):
        single = r.restore(image, w, seed=3)
        assert single.shape == image.shape
        np.testing.assert_allclose(batched[i], single, atol=1e-5)


def test_batched_weights_equal_separate_runs_with_eta(ldm, image):
    r = _restorer(ldm, eta=1.0)
    weights = np.array([[0.5, 0.5, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]], np.float32)
    prepared = r.prepare(image)
    batched = r.sample_latents(prepared, weights, seed=1)
    for i in range(2):
        np.testing.assert_allclose(
            batched[i],
            r.sample_latents(prepared, weights[i : i + 1], seed=1)[0],
            atol=1e-5,
        )


def test_zero_weight_experts_cost_no_unet_evaluations(ldm, image):
    r = _restorer(ldm)
    r.restore(image, {"DN": 1.0})
    assert r.unet_evaluations == STEPS
    r.restore(image, {"DN": -0.2, "DownLQ": 1.2})
    assert r.unet_evaluations == STEPS + 2 * STEPS
    # Two vectors share the first step: 3 active experts once, then 4 pairs per step.
    before = r.unet_evaluations
    r.restore(
        image, np.array([[0, 0.5, 0, 0, 0, 0.5], [0.5, 0, 0, 0, 0, 0.5]], np.float32)
    )
    assert r.unet_evaluations - before == 3 + 4 * (STEPS - 1)


def test_chunked_weight_batches_equal_one_batch(ldm, image):
    weights = np.tile(np.array([[0.5, 0, 0, 0, 0, 0.5]], np.float32), (5, 1))
    weights[:, 0] = np.linspace(0, 1, 5)
    weights[:, 5] = 1 - weights[:, 0]
    whole = _restorer(ldm).restore(image, weights)
    chunked = _restorer(ldm, max_pairs_per_call=4).restore(image, weights)
    np.testing.assert_allclose(whole, chunked, atol=1e-5)


@pytest.mark.parametrize(
    "weights, message",
    [
        ({"DN": 0.5}, "sum to 1"),
        ({"DN": -0.2, "SR": -0.2, "DownLQ": 1.4}, "at most 1 negative"),
        ({"XX": 1.0}, "unknown expert"),
        (np.ones((2, 5)) / 5, "do not match the 6 experts"),
    ],
)
def test_invalid_weights_are_rejected_clearly(ldm, image, weights, message):
    r = _restorer(ldm, max_negative=1)
    with pytest.raises(WeightError, match=message):
        r.restore(image, weights)


def test_output_range_shape_and_color_fix(ldm, image):
    r = _restorer(ldm)
    out = r.restore(image, {"BR": 1.0})
    assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
    lq = image.astype(np.float32) / 255
    np.testing.assert_allclose(out.mean(axis=(0, 1)), lq.mean(axis=(0, 1)), atol=0.02)
    raw = r.restore(image, {"BR": 1.0}, color_fix=False)
    assert not np.allclose(raw, out)


def test_wavelet_color_fix_setting_corrects_the_raw_output_toward_the_input(ldm, image):
    from unires_jax.restore.color import wavelet_color_fix

    r = _restorer(ldm, color_fix="wavelet")
    assert r.settings.color_fix == "wavelet"
    out = r.restore(image, {"SR": 0.7, "DownLQ": 0.3})
    raw = r.restore(image, {"SR": 0.7, "DownLQ": 0.3}, color_fix="none")
    lq = image.astype(np.float32) / 255
    want = np.clip(np.asarray(wavelet_color_fix(raw, lq)), 0, 1)
    np.testing.assert_allclose(out, want, atol=1e-5)
    assert not np.allclose(out, raw, atol=1e-3)
    # Per call, the other methods too; True / False are the paper's AdaIN and none.
    np.testing.assert_array_equal(
        r.restore(image, {"SR": 1.0}, color_fix=False),
        r.restore(image, {"SR": 1.0}, color_fix="none"),
    )
    adain = _restorer(ldm, color_fix=True)
    assert adain.settings.color_fix == "adain"


def test_unknown_color_fix_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="adain, wavelet, none"):
        RestoreSettings(color_fix="sharpen")


def _constant_eps_ldm(ldm):
    """The same model with a UNet whose output is a constant (all weights zero but the
    output bias), so every tile predicts the same eps."""
    import copy

    from flax import nnx

    const = copy.deepcopy(ldm)
    params = nnx.state(const.unet, nnx.Param)
    zeroed = jax.tree.map(jnp.zeros_like, params)
    nnx.update(const.unet, zeroed)
    const.unet.conv_out.bias.value = jnp.array([0.3, -0.2, 0.1, 0.05])
    return const


def test_tiled_sampling_equals_untiled_for_constant_eps(ldm):
    const = _constant_eps_ldm(ldm)
    image = (np.random.default_rng(1).uniform(size=(64, 160, 3)) * 255).astype(np.uint8)
    untiled = _restorer(const, tile=512)
    tiled = _restorer(const, tile=64, tile_overlap=16)
    w = np.array([[0, 0, 0, 0, 0.5, 0.5]], np.float32)
    a = untiled.sample_latents(untiled.prepare(image), w)
    b = tiled.sample_latents(tiled.prepare(image), w)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_odd_sizes_and_tiny_images_restore(ldm):
    r = _restorer(ldm)
    for shape in [(1, 1, 3), (37, 9, 3)]:
        image = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
        out = r.restore(image, {"SR": 1.0})
        assert out.shape == shape and np.isfinite(out).all()


def test_ensemble_transforms_are_the_eight_symmetries_and_invert():
    from unires_jax.restore import ensemble

    x = np.arange(3 * 5 * 2).reshape(3, 5, 2)
    # The dihedral group built independently: four quarter turns, each with and without a flip.
    expected = {
        np.rot90(f, k).tobytes() + bytes(np.rot90(f, k).shape)
        for f in (x, x[:, ::-1])
        for k in range(4)
    }
    got = [ensemble.transform(x, i) for i in range(8)]
    assert {g.tobytes() + bytes(g.shape) for g in got} == expected
    np.testing.assert_array_equal(got[0], x)
    # Ensembles of 2 and 4 keep the image's shape (no transposes).
    assert all(g.shape == x.shape for g in got[:4])
    for i, g in enumerate(got):
        np.testing.assert_array_equal(ensemble.inverse_transform(g, i), x)


@pytest.mark.parametrize("size", [0, 3, 16, 2.0, True])
def test_invalid_ensemble_sizes_are_refused(size):
    with pytest.raises(ValueError, match=r"use one of \(1, 2, 4, 8\)"):
        RestoreSettings(ensemble=size)


def test_ensemble_is_the_mean_of_the_mapped_back_restorations(ldm, image):
    from unires_jax.restore import ensemble

    plain = _restorer(ldm, color_fix="wavelet")
    w = {"DD": 0.7, "DN": 0.5, "DownLQ": -0.2}
    one = plain.restore(image, w, seed=5)
    # Ensemble 1 is the plain restoration.
    np.testing.assert_array_equal(
        one, _restorer(ldm, color_fix="wavelet").restore(image, w, seed=5)
    )
    copies = [
        ensemble.inverse_transform(
            plain.restore(
                np.ascontiguousarray(ensemble.transform(image, i)), w, seed=5 + i
            ),
            i,
        )
        for i in range(8)
    ]
    for size in (2, 8):
        r = _restorer(ldm, color_fix="wavelet", ensemble=size)
        before = r.unet_evaluations
        out = r.restore(image, w, seed=5)
        assert out.shape == image.shape and out.dtype == np.float32
        np.testing.assert_allclose(out, np.mean(copies[:size], axis=0), atol=1e-6)
        assert r.unet_evaluations - before == size * 3 * STEPS
    # The copies differ (own seeds, own orientation), so the mean is not any one of them.
    assert np.abs(copies[1] - copies[0]).max() > 1e-3


def test_ensemble_with_batched_weights(ldm, image):
    r = _restorer(ldm, ensemble=4)
    w = np.array([[0, 0, 1, 0, 0, 0], [0, 0, 0, 0.5, 0.5, 0]], np.float32)
    both = r.restore(image, w)
    assert both.shape == (2, *image.shape)
    for row, out in zip(w, both):
        np.testing.assert_allclose(out, r.restore(image, row), atol=1e-6)

"""AdaIN and wavelet colour correction (StableSR's formulas re-typed in torch as the oracle)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unires_jax.restore import color

# One compiled program per shape rather than dozens of eager ops (also checks jit-ability).
adain_color_fix = jax.jit(color.adain_color_fix, static_argnames="eps")
wavelet_color_fix = jax.jit(color.wavelet_color_fix, static_argnames="levels")


def _images(shape_a, shape_b, seed=0):
    k0, k1 = jax.random.split(jax.random.key(seed))
    image = (
        jax.random.uniform(k0, shape_a) * 0.5 + 0.3
    )  # a colour-shifted, low-contrast output
    reference = jax.random.uniform(k1, shape_b) ** 2
    return image, reference


@pytest.mark.parametrize(
    "shape_a, shape_b", [((9, 7, 3), (9, 7, 3)), ((2, 8, 6, 3), (2, 5, 11, 3))]
)
def test_adain_moves_channel_mean_and_std_to_reference(shape_a, shape_b):
    image, reference = _images(shape_a, shape_b)
    out = adain_color_fix(image, reference, eps=0.0)
    axes = (-3, -2)
    np.testing.assert_allclose(out.mean(axes), reference.mean(axes), atol=1e-5)
    np.testing.assert_allclose(
        out.std(axes, ddof=1), reference.std(axes, ddof=1), atol=1e-5
    )
    # The default eps=1e-5 moves the std only by ~eps / (2 var) relative.
    out = adain_color_fix(image, reference)
    np.testing.assert_allclose(out.mean(axes), reference.mean(axes), atol=1e-5)
    np.testing.assert_allclose(
        out.std(axes, ddof=1), reference.std(axes, ddof=1), rtol=1e-3
    )


def test_adain_matches_stablesr_formula():
    image, reference = _images((2, 6, 10, 3), (2, 6, 10, 3), seed=1)

    def calc_mean_std(
        feat, eps=1e-5
    ):  # StableSR ldm/modules/.../colorfix calc_mean_std
        b, c = feat.shape[:2]
        var = feat.reshape(b, c, -1).var(dim=2) + eps
        return feat.reshape(b, c, -1).mean(dim=2).view(b, c, 1, 1), var.sqrt().view(
            b, c, 1, 1
        )

    to_t = lambda a: torch.from_numpy(np.array(a)).permute(0, 3, 1, 2)
    ci, si = to_t(image), to_t(reference)
    sm, ss = calc_mean_std(si)
    cm, cs = calc_mean_std(ci)
    want = ((ci - cm) / cs * ss + sm).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(adain_color_fix(image, reference), want, atol=1e-5)


def test_adain_on_flat_channel_is_finite_and_batch_equals_single():
    image, reference = _images((2, 5, 5, 3), (2, 5, 5, 3), seed=2)
    image = image.at[..., 1].set(0.4)
    out = adain_color_fix(image, reference)
    assert bool(jnp.isfinite(out).all())
    # A flat channel takes the reference mean (up to float32 rounding of its own mean / eps).
    want = jnp.broadcast_to(reference[..., 1].mean((-2, -1))[:, None, None], (2, 5, 5))
    np.testing.assert_allclose(out[..., 1], want, atol=1e-4)
    np.testing.assert_allclose(
        out[1], adain_color_fix(image[1], reference[1]), atol=1e-6
    )


def test_adain_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="channels"):
        adain_color_fix(jnp.zeros((4, 4, 3)), jnp.zeros((4, 4, 1)))
    with pytest.raises(ValueError, match="H, W, C"):
        adain_color_fix(jnp.zeros((4, 4, 3)), jnp.zeros((1, 4, 4, 3)))


# The last shape is wider than wavelet.DENSE_MAX_SIDE: the cascade path, the others the dense one.
@pytest.mark.parametrize(
    "shape, levels",
    [
        ((1, 13, 21, 3), 5),
        ((2, 64, 40, 3), 3),
        ((1, 96, 80, 3), 5),
        ((1, 9, 1030, 3), 5),
    ],
)
def test_wavelet_matches_stablesr_formula(shape, levels):
    image, reference = _images(shape, shape, seed=3)
    kernel = torch.tensor(
        [[0.0625, 0.125, 0.0625], [0.125, 0.25, 0.125], [0.0625, 0.125, 0.0625]]
    )
    kernel = kernel[None, None].repeat(3, 1, 1, 1)

    def blur(x, radius):
        x = F.pad(x, (radius,) * 4, mode="replicate")
        return F.conv2d(x, kernel, groups=3, dilation=radius)

    def decompose(x, levels=5):
        high = torch.zeros_like(x)
        for i in range(levels):
            low = blur(x, 2**i)
            high += x - low
            x = low
        return high, x

    to_t = lambda a: torch.from_numpy(np.array(a)).permute(0, 3, 1, 2)
    want = decompose(to_t(image), levels)[0] + decompose(to_t(reference), levels)[1]
    got = wavelet_color_fix(image, reference, levels=levels)
    np.testing.assert_allclose(got, want.permute(0, 2, 3, 1).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        wavelet_color_fix(image, reference[:, :5])


def test_color_fix_methods_dispatch_and_clip():
    image, reference = _images((2, 9, 11, 3), (2, 9, 11, 3), seed=5)
    image = image * 1.4 - 0.2  # outside [0, 1], so clipping shows
    np.testing.assert_array_equal(
        color.apply_color_fix(image, reference, "none"), image
    )
    np.testing.assert_allclose(
        color.apply_color_fix(image, reference, "wavelet"),
        np.clip(wavelet_color_fix(image, reference), 0, 1),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        color.apply_color_fix(image, reference, "adain"),
        np.clip(color.adain_color_fix(image, reference), 0, 1),
        atol=1e-6,
    )
    # A single pixel has no standard deviation: AdaIN leaves it alone.
    pixel = jnp.full((1, 1, 3), 0.3)
    np.testing.assert_array_equal(
        color.apply_color_fix(pixel, pixel * 2, "adain"), pixel
    )


@pytest.mark.parametrize(
    "value, want",
    [
        (True, "adain"),
        (False, "none"),
        (None, "none"),
        ("Wavelet", "wavelet"),
        ("adain", "adain"),
    ],
)
def test_color_fix_setting_is_normalised(value, want):
    assert color.color_fix_method(value) == want


def test_unknown_color_fix_names_the_choices():
    with pytest.raises(ValueError, match="color_fix='blur'.*adain, wavelet, none"):
        color.color_fix_method("blur")


def test_cli_choices_are_the_library_methods():
    from unires_jax.cli.restore_options import COLOR_FIX_CHOICES

    assert COLOR_FIX_CHOICES == color.COLOR_FIXES


@pytest.mark.parametrize("levels", [1, 3, 5, 7])
def test_dense_lowpass_equals_the_cascade(levels):
    from unires_jax.models import wavelet

    x = jnp.asarray(np.random.default_rng(levels).random((2, 40, 33, 3)), jnp.float32)
    dense = wavelet.wavelet_lowpass(x, levels)
    cascade = wavelet.lowpass_cascade(x, levels)
    np.testing.assert_allclose(dense, cascade, atol=2e-6)
    matrix = wavelet.lowpass_matrix(33, levels)
    np.testing.assert_allclose(
        matrix.sum(axis=1), 1.0, atol=1e-6
    )  # constants pass unchanged
    assert not matrix.flags.writeable
    half = x.astype(jnp.bfloat16)
    assert (
        wavelet.lowpass_dense(half, levels).dtype
        == wavelet.lowpass_cascade(half, levels).dtype
    )


def test_lowpass_keeps_the_cascade_above_the_dense_size(monkeypatch):
    from unires_jax.models import wavelet

    calls = []
    monkeypatch.setattr(
        wavelet, "lowpass_matrix", lambda *a: calls.append(a) or np.eye(a[0])
    )
    wavelet.wavelet_lowpass(jnp.zeros((wavelet.DENSE_MAX_SIDE + 1, 4, 3)), 2)
    assert calls == []
    wavelet.wavelet_lowpass(jnp.zeros((wavelet.DENSE_MAX_SIDE, 4, 3)), 2)
    assert calls == [(wavelet.DENSE_MAX_SIDE, 2), (4, 2)]

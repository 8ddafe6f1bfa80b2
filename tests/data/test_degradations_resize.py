"""Resizing matches PyTorch's interpolate (Real-ESRGAN's resizes) and Pillow's antialiased bicubic."""

import numpy as np
import pytest
from PIL import Image

from unires_jax.data.degradations import resize


def _torch_resize(image: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    torch = pytest.importorskip(
        "torch", reason="torch is the test oracle (extras 'test')"
    )
    x = torch.from_numpy(image.transpose(2, 0, 1)[None].copy())
    kwargs = {} if mode == "area" else {"align_corners": False}
    y = torch.nn.functional.interpolate(x, size=size, mode=mode, **kwargs)
    return y[0].numpy().transpose(1, 2, 0)


@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(16, 23), (64, 48), (9, 40), (37, 37)])
def test_torch_style_methods_match_torch_interpolate(mode, size):
    image = np.random.default_rng(0).uniform(size=(37, 37, 3)).astype(np.float32)
    ours = resize.resize_image(image, size, mode)
    assert ours.shape == (*size, 3) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, _torch_resize(image, size, mode), atol=2e-5)


@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic"])
def test_many_size_pairs_match_torch_and_stay_in_bounds(mode):
    rng = np.random.default_rng(3)
    pairs = [(255, 85), (256, 255), (100, 3), (3, 100), (1, 5), (5, 1)]
    pairs += [tuple(int(v) for v in rng.integers(1, 300, 2)) for _ in range(20)]
    for n_in, n_out in pairs:
        image = rng.uniform(size=(n_in, 2, 3)).astype(np.float32)
        ours = resize.resize_image(image, (n_out, 2), mode)
        np.testing.assert_allclose(
            ours, _torch_resize(image, (n_out, 2), mode), atol=2e-5
        )


@pytest.mark.parametrize(("n_in", "n_out"), [(64, 16), (60, 17), (16, 64)])
def test_antialiased_bicubic_matches_pillow_away_from_borders(n_in, n_out):
    image = np.random.default_rng(1).uniform(size=(n_in, n_in)).astype(np.float32)
    ours = resize.resize_image(image[..., None], (n_out, n_out), "bicubic_aa")[..., 0]
    pil = np.asarray(Image.fromarray(image).resize((n_out, n_out), Image.BICUBIC))
    # Pillow renormalises truncated weights at the borders, MATLAB-style imresize mirrors the
    # image; the two agree wherever the kernel support stays inside the image.
    # The support spans 2 input pixels each side: 2 output pixels when shrinking, 2 * zoom
    # when enlarging.
    margin = int(np.ceil(2 * max(n_out / n_in, 1))) + 2
    inner = slice(margin, n_out - margin)
    np.testing.assert_allclose(ours[inner, inner], pil[inner, inner], atol=1e-5)


def test_resize_weights_preserve_constants():
    for method in resize.METHODS:
        for n_in, n_out in [
            (64, 16),
            (16, 64),
            (23, 7),
            (7, 23),
            (255, 85),
            (1, 3),
            (3, 1),
        ]:
            m = resize.resize_matrix(n_in, n_out, method)
            np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-9)


def test_gir_resize_is_x4_bicubic_down_and_up():
    image = np.random.default_rng(2).uniform(size=(64, 48, 3)).astype(np.float32)
    params = resize.sample_resize_params(np.random.default_rng(0))
    assert params == resize.ResizeParams(scale=4.0, down="bicubic_aa", up="bicubic")
    out = resize.apply_resize(image, params, np.random.default_rng(0))
    small = resize.resize_image(image, (16, 12), "bicubic_aa")
    expected = np.clip(resize.resize_image(small, (64, 48), "bicubic"), 0, 1)
    np.testing.assert_array_equal(out, expected)


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="unknown method"):
        resize.resize_matrix(8, 4, "lanczos")

"""Tiled application with blending: exact for per-pixel functions, bounded tiles, any size."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unires_jax.restore.tiling import blend_window, tile_starts, tiled_apply


def _pointwise(x):
    """A per-pixel function that changes the channel count: [.., C] -> [.., 2]."""
    return jnp.stack([jnp.sin(x).sum(-1), (x**2).mean(-1)], axis=-1)


@pytest.mark.parametrize(
    "size, tile, overlap, align",
    [
        (1, 4, 1, 1),
        (4, 4, 1, 1),
        (5, 4, 1, 1),
        (37, 8, 3, 1),
        (100, 16, 4, 1),
        (64, 16, 8, 8),
    ],
)
def test_tile_starts_cover_with_overlap(size, tile, overlap, align):
    starts = tile_starts(size, tile, overlap, align)
    t = min(tile, size)
    assert starts[0] == 0 and starts[-1] == size - t
    assert all(s % align == 0 for s in starts)
    assert all(
        b - a <= t - overlap for a, b in itertools.pairwise(starts)
    )  # overlap kept
    assert all(b > a for a, b in itertools.pairwise(starts))  # no duplicate tiles


def test_tile_starts_reject_bad_arguments():
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(10, 4, 4)
    with pytest.raises(ValueError, match="multiple"):
        tile_starts(21, 8, 2, align=8)


def test_blend_window_is_positive_and_smooth():
    w = blend_window(9, 12, 3)
    assert w.shape == (9, 12) and w.dtype == np.float32
    assert (w > 0).all() and w.max() == 1.0
    np.testing.assert_array_equal(w, w[::-1, ::-1])  # symmetric ramps
    assert (np.diff(w[4, :6]) >= 0).all()  # rises toward the middle
    assert (blend_window(3, 3, 0) == 1).all()
    assert blend_window(1, 1, 5).shape == (1, 1) and blend_window(1, 1, 5)[0, 0] > 0


@pytest.mark.parametrize(
    "shape, tile, overlap, per_call",
    [
        ((2, 1, 1, 3), 8, 2, 1),  # 1x1 input
        ((1, 5, 7, 3), 8, 2, 1),  # smaller than a tile
        ((2, 19, 8, 3), 8, 3, 1),  # tall, non-multiple, exactly one tile wide
        (
            (1, 23, 30, 2),
            8,
            3,
            2,
        ),  # non-multiples, tiles batched in pairs (with a pad tile)
        ((1, 40, 6, 1), 16, 5, 3),  # panorama strip
    ],
)
def test_pointwise_tiled_equals_untiled(shape, tile, overlap, per_call):
    x = jax.random.normal(jax.random.key(0), shape)
    got = jax.jit(
        lambda x: tiled_apply(_pointwise, x, tile, overlap, tiles_per_call=per_call)
    )(x)
    np.testing.assert_allclose(got, _pointwise(x), atol=1e-6)


def test_blending_normalises_weights():
    # A constant function's output must stay that constant wherever any number of tiles meet.
    x = jnp.zeros((1, 29, 21, 1))
    got = tiled_apply(lambda t: jnp.full(t.shape[:3] + (3,), 0.7, jnp.float32), x, 8, 3)
    np.testing.assert_allclose(got, 0.7, rtol=1e-6)


def test_tile_dependent_outputs_cross_fade():
    # fn returns a different constant per tile (its mean input); blended values stay within the
    # range of the tile values and vary smoothly rather than jumping at tile borders.
    x = jnp.broadcast_to(jnp.arange(40.0)[None, :, None, None], (1, 40, 4, 1))
    got = tiled_apply(lambda t: jnp.broadcast_to(t.mean(), t.shape), x, 10, 4)[
        0, :, 0, 0
    ]
    assert float(got.min()) >= 4.5 - 1e-5 and float(got.max()) <= 34.5 + 1e-5
    assert float(jnp.abs(jnp.diff(got)).max()) < 4.0  # a hard seam would jump by ~6


@pytest.mark.parametrize("scale", [4, 1 / 4])
def test_scaled_tiles(scale):
    # A resolution-changing per-pixel map: nearest-neighbour upsampling or box downsampling.
    def fn(t):
        if scale > 1:
            return jnp.repeat(jnp.repeat(t, 4, axis=1), 4, axis=2) * 2.0
        b, h, w, c = t.shape
        return t.reshape(b, h // 4, 4, w // 4, 4, c).mean((2, 4))

    x = jax.random.normal(jax.random.key(1), (1, 36, 20, 2))
    got = tiled_apply(fn, x, 16, 8, scale=scale)
    np.testing.assert_allclose(got, fn(x), atol=1e-6)
    with pytest.raises(ValueError, match="multiple of 4"):
        tiled_apply(fn, x[:, :34], 16, 8, scale=1 / 4)


def test_fn_traced_once_on_tile_shape():
    shapes = []

    def fn(t):
        shapes.append(t.shape)
        return t * 2

    x = jnp.ones((1, 50, 50, 4))
    jax.jit(lambda x: tiled_apply(fn, x, 16, 4))(x)
    assert set(shapes) == {
        (1, 16, 16, 4)
    }  # eval_shape + one scan-body trace, never full size


def test_tiled_apply_rejects_wrong_fn_output():
    with pytest.raises(ValueError, match="expected"):
        tiled_apply(lambda t: t[:, :-1], jnp.ones((1, 20, 20, 1)), 8, 2)


def test_peak_memory_is_bounded_by_the_tile():
    def fn(
        t,
    ):  # a per-pixel function with a 128-channel intermediate, like a wide network
        return jnp.cumsum(jnp.tanh(t * jnp.arange(1.0, 129.0)), -1)[..., -1:]

    x = jnp.ones((1, 256, 256, 1))
    whole = jax.jit(fn).lower(x).compile().memory_analysis().temp_size_in_bytes
    tiled = (
        jax.jit(lambda x: tiled_apply(fn, x, 32, 8))
        .lower(x)
        .compile()
        .memory_analysis()
    )
    # Untiled: the [256, 256, 128] float32 intermediate (32 MiB). Tiled: a few [32, 32, 128]
    # tiles plus the full-size accumulators (2 x 256 KiB).
    assert whole >= 256 * 256 * 128 * 4
    assert tiled.temp_size_in_bytes < whole / 10


def test_tiled_model_inside_the_ddim_sampler():
    from unires_jax.diffusion import ddim_sample, ddim_timesteps, make_schedule

    s = make_schedule()
    ts = ddim_timesteps(1000, 4, "leading", 1)

    def eps(x, t):  # per-pixel, timestep-dependent stand-in for the UNet
        return 0.9 * x + 0.1 * jnp.sin(t.astype(jnp.float32) / 100)[:, None, None, None]

    def tiled_eps(x, t):
        return tiled_apply(lambda tile: eps(tile, t), x, 8, 2)

    x_T = jax.random.normal(jax.random.key(2), (2, 13, 10, 4))
    run = jax.jit(lambda x, f: ddim_sample(f, x, s, ts), static_argnums=1)
    np.testing.assert_allclose(run(x_T, tiled_eps), run(x_T, eps), atol=1e-5)

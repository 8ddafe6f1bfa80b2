"""Tiled inference: apply a function to overlapping tiles and blend the outputs smoothly.

`tiled_apply` runs `fn` on one (or a few) fixed-size tiles at a time inside a `lax.scan`, so
`fn` is traced once and peak memory is set by the tile size, not the image size; only the
blended output (and its weight sum) is held at full size. Tile positions depend only on the
static input shape, so it can run inside a jitted sampler step, e.g. the per-step UNet call on
latent tiles, or the VAE encoder/decoder with `scale=1/8` / `scale=8`.

Shapes: inputs `[B, H, W, C]`, outputs `[B, H * scale, W * scale, C_out]`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np


def tile_starts(size: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles covering `[0, size)`, evenly spread, last one flush with the end.

    Neighbouring tiles overlap by at least `overlap` (more when the tiles do not divide the
    size evenly). A size <= tile gives the single start 0 (the caller then uses a tile of
    `size`).

    Args:
        size: length of the axis.
        tile: tile length (>= 1).
        overlap: minimum overlap of neighbours, 0 <= overlap < tile.
        align: every start is a multiple of this (e.g. 8 for tiles fed to an 8x-downsampling
            encoder); `size - tile` must then be a multiple of it.

    Returns:
        The ascending start offsets.

    Raises:
        ValueError: invalid tile/overlap/align, or a size that cannot be tiled aligned.
    """
    if tile < 1 or not 0 <= overlap < tile or align < 1:
        raise ValueError(
            f"unires_jax/restore/tiling.py: need tile >= 1, 0 <= overlap < tile and "
            f"align >= 1, got tile={tile}, overlap={overlap}, align={align}."
        )
    if size <= tile:
        return [0]
    if (size - tile) % align:
        raise ValueError(
            f"unires_jax/restore/tiling.py: size {size} minus tile {tile} is not a multiple "
            f"of align={align}; pad the input to a multiple of {align} and use a tile that "
            "is one."
        )
    stride_units = (tile - overlap) // align  # largest aligned step keeping the overlap
    if stride_units < 1:
        raise ValueError(
            f"unires_jax/restore/tiling.py: tile - overlap = {tile - overlap} is smaller "
            f"than align={align}; use a smaller overlap."
        )
    units = (size - tile) // align
    gaps = math.ceil(units / stride_units)
    # Integer spreading keeps every gap <= ceil(units / gaps) <= stride_units.
    return [align * (i * units // gaps) for i in range(gaps + 1)]


def _ramp(n: int, overlap: int) -> np.ndarray:
    """1-D raised-cosine window: rises over `overlap` samples at each end, 1 in between."""
    dist = np.minimum(np.arange(n), np.arange(n)[::-1]).astype(np.float64)
    ramp = np.sin(0.5 * np.pi * (dist + 1) / (overlap + 1)) ** 2
    return np.where(dist < overlap, ramp, 1.0)


def blend_window(tile_h: int, tile_w: int, overlap: int) -> np.ndarray:
    """Separable raised-cosine blending weights for one tile, strictly positive.

    The weight rises as sin^2 over the `overlap` pixels next to each edge and is 1 inside, so
    overlapping tiles cross-fade; it never reaches 0, so a pixel covered by a single tile (at
    the image border) keeps a well-defined normalised weight.

    Args:
        tile_h: tile height.
        tile_w: tile width.
        overlap: width of the ramp in pixels (0: flat window).

    Returns:
        `[tile_h, tile_w]` float32 weights in (0, 1].
    """
    return np.outer(_ramp(tile_h, overlap), _ramp(tile_w, overlap)).astype(np.float32)


def _as_scale(scale: float | Fraction) -> Fraction:
    frac = Fraction(scale).limit_denominator(1024)
    if frac <= 0 or abs(float(frac) - float(scale)) > 1e-9:
        raise ValueError(
            f"unires_jax/restore/tiling.py: scale={scale} must be a positive ratio such as "
            "8 or 1/8."
        )
    return frac


def tiled_apply(
    fn: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    tile: int,
    overlap: int,
    *,
    scale: float | Fraction = 1,
    tiles_per_call: int = 1,
    flat: bool = False,
) -> jax.Array:
    """Applies `fn` to overlapping tiles of `x` and blends the outputs with normalised weights.

    Every tile has the same shape (`min(tile, H) x min(tile, W)`), so `fn` is traced once.
    Extra inputs that must be tiled along with `x` (e.g. the LQ latent of a UNet call) are
    concatenated to `x` on the channel axis and split inside `fn`. An input that fits one
    tile is passed to `fn` whole.

    Args:
        fn: `[b, th, tw, C] -> [b, th * scale, tw * scale, C_out]`, jit-traceable; `b` is `B`
            (or `tiles_per_call * B`, tiles stacked tile-major: per-example arrays captured
            by `fn` must then be repeated to match).
        x: `[B, H, W, C]`.
        tile: tile side in input pixels.
        overlap: minimum overlap of neighbouring tiles in input pixels (< tile).
        scale: output/input resolution ratio of `fn` (8 for a VAE decoder on latents, 1/8
            for the encoder on pixels: tile starts are then multiples of 8).
        tiles_per_call: tiles stacked into one `fn` call (more speed, more memory).
        flat: average overlapping tiles with equal weights (FoundIR's official blend) instead
            of cross-fading them.

    Returns:
        `[B, H * scale, W * scale, C_out]` in the dtype of `fn`'s output.

    Raises:
        ValueError: bad tiling arguments, a size incompatible with `scale`, or an `fn` whose
            output shape is not the tile shape times `scale`.
    """
    if x.ndim != 4:
        raise ValueError(
            f"unires_jax/restore/tiling.py: tiled_apply expects x as [B, H, W, C], got shape "
            f"{x.shape}."
        )
    if tiles_per_call < 1:
        raise ValueError(
            f"unires_jax/restore/tiling.py: tiles_per_call must be >= 1, got {tiles_per_call}."
        )
    frac = _as_scale(scale)
    b, h, w, c = x.shape
    th, tw = min(tile, h), min(tile, w)
    for name, n in (
        ("height", h),
        ("width", w),
        ("tile height", th),
        ("tile width", tw),
    ):
        if (n * frac).denominator != 1:
            raise ValueError(
                f"unires_jax/restore/tiling.py: input {name} {n} times scale {frac} is not "
                f"an integer; pad the input to a multiple of {frac.denominator}."
            )
    ys = tile_starts(h, tile, overlap, frac.denominator)
    xs = tile_starts(w, tile, overlap, frac.denominator)
    if len(ys) == 1 and len(xs) == 1:
        return fn(x)

    k = tiles_per_call
    out_struct = jax.eval_shape(fn, jax.ShapeDtypeStruct((k * b, th, tw, c), x.dtype))
    oth, otw = int(th * frac), int(tw * frac)
    if out_struct.shape[:3] != (k * b, oth, otw):
        raise ValueError(
            f"unires_jax/restore/tiling.py: fn maps a tile {(k * b, th, tw, c)} to "
            f"{out_struct.shape}, expected {(k * b, oth, otw)} + (C_out,) for scale={frac}."
        )
    c_out = out_struct.shape[3]
    window = jnp.asarray(blend_window(oth, otw, 0 if flat else int(overlap * frac)))

    positions = [(y, x0) for y in ys for x0 in xs]
    valid = [1.0] * len(positions)
    pad = (
        -len(positions) % k
    )  # repeat the last tile with weight 0 to fill the last call
    positions += [positions[-1]] * pad
    valid += [0.0] * pad
    pos = np.asarray(positions, np.int64).reshape(-1, k, 2)
    steps = (
        jnp.asarray(pos, jnp.int32),
        jnp.asarray(pos * frac.numerator // frac.denominator, jnp.int32),
        jnp.asarray(np.asarray(valid, np.float32).reshape(-1, k)),
    )

    def body(carry, step):
        acc, weight = carry
        in_pos, out_pos, ok = step
        tiles = [
            jax.lax.dynamic_slice(x, (0, in_pos[j, 0], in_pos[j, 1], 0), (b, th, tw, c))
            for j in range(k)
        ]
        outs = fn(jnp.concatenate(tiles, axis=0) if k > 1 else tiles[0])
        outs = outs.astype(jnp.float32).reshape(k, b, oth, otw, c_out)
        for j in range(k):
            wj = window * ok[j]
            at = (0, out_pos[j, 0], out_pos[j, 1], 0)
            cur = jax.lax.dynamic_slice(acc, at, (b, oth, otw, c_out))
            acc = jax.lax.dynamic_update_slice(
                acc, cur + outs[j] * wj[None, :, :, None], at
            )
            at2 = (out_pos[j, 0], out_pos[j, 1])
            cur_w = jax.lax.dynamic_slice(weight, at2, (oth, otw))
            weight = jax.lax.dynamic_update_slice(weight, cur_w + wj, at2)
        return (acc, weight), None

    oh, ow = int(h * frac), int(w * frac)
    init = (
        jnp.zeros((b, oh, ow, c_out), jnp.float32),
        jnp.zeros((oh, ow), jnp.float32),
    )
    (acc, weight), _ = jax.lax.scan(body, init, steps)
    return (acc / weight[None, :, :, None]).astype(out_struct.dtype)

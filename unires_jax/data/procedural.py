"""Procedural training images in unlimited supply: textured dead-leaves images (pure numpy).

The dead-leaves model stacks random opaque shapes ("leaves") whose sizes follow a power law
p(r) ~ r^-alpha; with alpha = 3 the image is scale invariant and its power spectrum falls
like natural photos' (~1/f^2). Denoisers trained on such images come close to ones trained on
natural photos (Achddou, Gousseau & Ladjal, "Synthetic images as a regularity prior for image
restoration neural networks", SSVM 2021), so they add unlimited variety of edges, occlusions and
colours to the default model's few real photos. As in that work, the leaves are textured: a
flat colour, a linear gradient, a sinusoidal grating or a 1/f^beta noise texture, each a blend
between the leaf's colour and a second colour; shapes are discs, rotated ellipses and rotated
rectangles; a final Gaussian blur of sigma 0.3-0.8 px softens the edges as camera optics do.

Rendering is one vectorised pass (~2-3 ms for 128 x 128 on one core): every leaf's pixels are
listed at once (leaves grouped by bounding-box size), a z-buffer keeps the topmost leaf of each
pixel (`np.maximum.at`), and textures are evaluated per pixel from the winning leaf's
parameters. Leaf 0 is a background that covers the whole image, so no pixel is left empty.

`dead_leaves_image(seed, index, size)` is a pure function of its arguments (random access by
index, as the input pipeline's checkpointable sources need).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.fft
import scipy.ndimage

SHAPES = ("disc", "ellipse", "rectangle")
TEXTURES = ("flat", "gradient", "grating", "noise")


@dataclasses.dataclass(frozen=True)
class DeadLeavesConfig:
    """How dead-leaves images are drawn.

    Attributes:
      alpha: range of the exponent of the radius density p(r) ~ r^-alpha, drawn per image (3:
        scale invariant; lower: more large flat regions, higher: busier).
      r_min, r_max: radius range as fractions of the image side (at 128 px: 2 px to 64 px).
      coverage: expected total leaf area over the image area (the number of leaves follows);
        at 2.5 about 8% of the background leaf stays visible.
      aspect: range of the minor / major semi-axis ratio of ellipses and rectangles.
      shape_probs: probabilities of `SHAPES`.
      texture_probs: probabilities of `TEXTURES`.
      texture_amplitude: range of the texture's blend weight towards the second colour.
      grating_period: range of a grating's period in pixels.
      noise_beta: ranges of the spectral exponent of the fine and of the coarse noise texture.
      gray_prob: probability that the whole image is grey (several training photos are grey).
      palette_size: range of the number of base colours of one image.
      blur_sigma: range of the final Gaussian blur in pixels.
    """

    alpha: tuple[float, float] = (2.5, 3.1)
    r_min: float = 1 / 64
    r_max: float = 1 / 2
    coverage: float = 2.5
    aspect: tuple[float, float] = (0.3, 1.0)
    shape_probs: tuple[float, float, float] = (0.45, 0.3, 0.25)
    texture_probs: tuple[float, float, float, float] = (0.25, 0.2, 0.2, 0.35)
    texture_amplitude: tuple[float, float] = (0.1, 0.8)
    grating_period: tuple[float, float] = (2.5, 24.0)
    noise_beta: tuple[tuple[float, float], tuple[float, float]] = (
        (0.5, 1.5),
        (1.5, 3.0),
    )
    gray_prob: float = 0.1
    palette_size: tuple[int, int] = (2, 6)
    blur_sigma: tuple[float, float] = (0.3, 0.8)


DEFAULT_CONFIG = DeadLeavesConfig()


def dead_leaves_image(
    seed: int, index: int, size: int = 128, config: DeadLeavesConfig = DEFAULT_CONFIG
) -> np.ndarray:
    """The `index`-th dead-leaves image of the stream `seed`: uint8 [size, size, 3].

    The same (seed, index, size, config) always gives the same pixels, on any machine.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    image = render_dead_leaves(size, rng, config)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def leaf_count(
    size: int, alpha: float, config: DeadLeavesConfig = DEFAULT_CONFIG
) -> int:
    """Leaves drawn per image: coverage * size^2 / E[area] (E over the truncated power law)."""
    a, b = config.r_min * size, config.r_max * size
    e = 1.0 - alpha  # p(r) = r^-alpha / Z on [a, b]; E[r^2] = int r^(2-alpha) dr / Z
    z = math.log(b / a) if abs(e) < 1e-9 else (b**e - a**e) / e
    e2 = 3.0 - alpha
    r2 = (math.log(b / a) if abs(e2) < 1e-9 else (b**e2 - a**e2) / e2) / z
    mean_area = (
        math.pi * r2 * float(np.mean(config.aspect))
    )  # ellipses, rectangles: ~pi a b
    return max(1, math.ceil(config.coverage * size * size / mean_area))


def render_dead_leaves(
    size: int, rng: np.random.Generator, config: DeadLeavesConfig = DEFAULT_CONFIG
) -> np.ndarray:
    """Draws one dead-leaves image: float32 [size, size, 3] in [0, 1].

    Args:
      size: image side in pixels (>= 8).
      rng: the only source of randomness.
      config: the drawing distribution.
    """
    if size < 8:
        raise ValueError(
            f"procedural.py: dead-leaves images need size >= 8, got {size}"
        )
    c = config
    alpha = float(rng.uniform(*c.alpha))
    n = leaf_count(size, alpha, c) + 1  # + the background leaf 0
    # Leaf geometry. Radii by inverse-CDF sampling of the truncated power law.
    lo, hi, e = c.r_min * size, c.r_max * size, 1.0 - alpha
    u = rng.uniform(size=n)
    radius = (lo**e + u * (hi**e - lo**e)) ** (1.0 / e)
    radius[0] = hi  # the background leaf: its gradient spans the image
    shape = rng.choice(len(SHAPES), size=n, p=np.asarray(c.shape_probs))
    ratio = np.where(shape == 0, 1.0, rng.uniform(*c.aspect, size=n))
    theta = rng.uniform(0.0, math.pi, size=n)
    # Centres within reach of the image, so every leaf can show.
    cx = rng.uniform(size=n) * (size + 2 * radius) - radius
    cy = rng.uniform(size=n) * (size + 2 * radius) - radius
    # Colours: a scene has a palette. Each leaf takes one of 2-6 HSV palette colours (mostly
    # low saturation, as in photos) at its own brightness; the texture blends towards colour +
    # delta (a luminance shift plus a little chroma).
    gray = rng.uniform() < c.gray_prob
    k = int(rng.integers(c.palette_size[0], c.palette_size[1] + 1))
    palette = _hsv_to_rgb(
        rng.uniform(size=k), 0.0 if gray else rng.uniform(size=k) ** 1.5, np.ones(k)
    )
    colour = palette[rng.integers(0, k, size=n)] * rng.uniform(0.03, 1.0, size=(n, 1))
    if not gray:
        colour = np.clip(colour + rng.normal(0.0, 0.04, size=(n, 3)), 0.0, 1.0)
    delta = rng.normal(0.0, 0.3, size=(n, 1)) + (
        0.0 if gray else rng.normal(0.0, 0.1, (n, 3))
    )
    texture = rng.choice(len(TEXTURES), size=n, p=np.asarray(c.texture_probs))
    direction = rng.uniform(0.0, 2 * math.pi, size=n)
    # Per-leaf texture parameters, packed so that one gather serves every pixel.
    leaf = np.empty((n, 15), np.float32)
    leaf[:, 0], leaf[:, 1] = cx, cy
    leaf[:, 2], leaf[:, 3] = np.cos(direction), np.sin(direction)
    leaf[:, 4] = texture
    leaf[:, 5] = 1.0 / np.maximum(radius, 1.0)  # gradient: -1..1 across the leaf
    leaf[:, 6] = 2 * math.pi / np.exp(rng.uniform(*np.log(c.grating_period), size=n))
    leaf[:, 7] = rng.uniform(0.0, 2 * math.pi, size=n)  # grating phase
    leaf[:, 8] = (
        rng.integers(0, 2, size=n) * size * size
    )  # which noise texture, as an offset
    leaf[:, 9:11] = rng.integers(
        0, size, size=(n, 2)
    )  # where the leaf cuts the texture
    leaf[:, 11] = rng.uniform(*c.texture_amplitude, size=n)
    leaf[:, 12:15] = delta
    noise = _noise_fields(size, rng, c.noise_beta)
    blur = float(rng.uniform(*c.blur_sigma))

    top = _zbuffer(
        size, cx, cy, radius, radius * ratio, theta, shape
    )  # [size^2] leaf ids

    # Per-pixel texture value m in about [-1, 1] from the winning leaf's parameters.
    p = leaf[top]
    ys, xs = np.divmod(np.arange(size * size, dtype=np.int32), size)
    centre_x = xs.astype(np.float32) + np.float32(0.5)  # float32 math keeps it fast
    centre_y = ys.astype(np.float32) + np.float32(0.5)
    along = (centre_x - p[:, 0]) * p[:, 2] + (centre_y - p[:, 1]) * p[:, 3]
    kind = p[:, 4]
    m = np.where(kind == 1, np.clip(along * p[:, 5], -1.0, 1.0), 0.0)
    m = np.where(kind == 2, np.sin(along * p[:, 6] + p[:, 7]), m)
    sy, sx = (
        (ys + p[:, 9].astype(np.int32)) % size,
        (xs + p[:, 10].astype(np.int32)) % size,
    )
    at = p[:, 8].astype(np.int32) + sy * size + sx
    m = np.where(kind == 3, noise.reshape(-1)[at], m) * p[:, 11]
    pixels = colour.astype(np.float32)[top] + m[:, None] * p[:, 12:15]
    image = pixels.reshape(size, size, 3).astype(np.float32, copy=False)
    return np.clip(_gaussian_blur(image, blur), 0.0, 1.0)


# Half-widths of the windows that leaves are grouped into (pixels): few sizes, little waste.
_WINDOWS = (
    2,
    3,
    4,
    6,
    8,
    12,
    16,
    24,
    32,
    48,
    64,
    96,
    128,
    192,
    256,
    384,
    512,
    768,
    1024,
)


def _zbuffer(size, cx, cy, semi_a, semi_b, theta, shape) -> np.ndarray:
    """For each pixel (row-major), the largest index of the leaves that cover its centre."""
    top = np.zeros(size * size, np.int32)  # leaf 0 covers everything
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    # Half extent of each shape's bounding box (rectangles reach out to their corners).
    reach = np.where(shape == 2, np.hypot(semi_a, semi_b), semi_a)
    bucket = np.searchsorted(_WINDOWS, np.ceil(reach) + 1)
    if bucket.max() >= len(_WINDOWS):
        raise ValueError(
            f"procedural.py: a leaf of reach {reach.max():.0f} px is too large"
        )
    bucket[0] = -1  # leaf 0 is already everywhere
    for b in np.unique(bucket[1:]):
        leaves = np.nonzero(bucket == b)[0]
        h = _WINDOWS[b]
        # Each leaf's window: its bounding box, moved inside the image (and cut to its size);
        # the part of the leaf inside the image always stays inside the window.
        w = min(2 * h + 1, size)
        offsets = np.arange(w, dtype=np.int32)
        x = (
            np.clip(np.floor(cx[leaves]).astype(np.int32) - h, 0, size - w)[:, None]
            + offsets
        )
        y = (
            np.clip(np.floor(cy[leaves]).astype(np.int32) - h, 0, size - w)[:, None]
            + offsets
        )
        dx = (x + 0.5 - cx[leaves, None]).astype(np.float32)[:, None, :]  # [k, 1, w]
        dy = (y + 0.5 - cy[leaves, None]).astype(np.float32)[:, :, None]  # [k, w, 1]
        ct = cos_t[leaves, None, None].astype(np.float32)
        st = sin_t[leaves, None, None].astype(np.float32)
        u = (ct * dx + st * dy) * (1.0 / semi_a[leaves, None, None]).astype(np.float32)
        v = (ct * dy - st * dx) * (1.0 / semi_b[leaves, None, None]).astype(np.float32)
        u *= u
        v *= v
        rect = (shape[leaves] == 2)[:, None, None]
        inside = np.where(rect, np.maximum(u, v), u + v) <= 1.0
        k, row, col = np.nonzero(inside)
        np.maximum.at(top, y[k, row] * size + x[k, col], leaves[k].astype(np.int32))
    return top


def _noise_fields(size, rng, betas) -> np.ndarray:
    """Two periodic 1/f^beta noise textures (fine, coarse): [2, size, size] in [-1, 1]."""
    white = rng.standard_normal((2, size, size), dtype=np.float32)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.maximum(np.hypot(fy, fx), 1.0 / size)
    beta = np.array([rng.uniform(*b) for b in betas])[:, None, None]
    gain = (f[None] ** (-beta / 2)).astype(np.float32)
    fields = scipy.fft.irfft2(scipy.fft.rfft2(white) * gain, s=(size, size))
    fields /= fields.std(axis=(1, 2), keepdims=True) * 2.0
    return np.clip(fields, -1.0, 1.0).astype(np.float32)


def _hsv_to_rgb(h, s, v) -> np.ndarray:
    """Vectorised HSV -> RGB: [n] each -> [n, 3]."""
    h, s, v = np.broadcast_arrays(h, s, v)
    k = (np.array([5.0, 3.0, 1.0]) + h[:, None] * 6.0) % 6.0
    return v[:, None] - (v * s)[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable 5-tap Gaussian blur, edges repeated: [H, W, 3] -> same (sigma < 1.5 px)."""
    taps = np.arange(-2, 3)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    image = scipy.ndimage.correlate1d(image, kernel, axis=0, mode="nearest")
    return scipy.ndimage.correlate1d(image, kernel, axis=1, mode="nearest")

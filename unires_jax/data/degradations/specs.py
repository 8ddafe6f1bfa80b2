"""Named, parametrised evaluation degradations: "noise:25", "jpeg:10", "blur:2+noise:15+jpeg:40".

A spec is one or more steps joined by "+", applied in order to a clean `[H, W, 3]` float image;
the result is rounded to 8 bits, as a saved photo is. Steps:

    noise:S       Gaussian noise, sigma S on the 0..255 scale (per channel)
    jpeg:Q        JPEG compression at quality Q (1..100)
    blur:S        Gaussian blur, sigma S px
    motion:L[@A]  straight motion blur of L px at A degrees (default 45)
    shake:L[@S]   camera shake along a curved random path of at most L px (Boracchi & Foi),
                  the path drawn from seed S (default 0), the same for every image
    defocus:R     defocus disk of radius R px
    down:F        x F antialiased bicubic downscale (super-resolution input: the restorer
                  must upscale by the product of the spec's factors)

and the demo's fixed names: noise25, motion, defocus, sr_x4_bicubic. `unires eval --degrade`
takes a comma-separated list of specs; each becomes a degradation type in the summary.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from unires_jax.data.degradations.blur import convolve, disk_kernel, line_kernel
from unires_jax.data.degradations.camera_shake import (
    camera_shake_kernel,
    sample_camera_shake_params,
)
from unires_jax.data.degradations.image import clip_unit, quantize_8bit
from unires_jax.data.degradations.jpeg import jpeg_roundtrip
from unires_jax.data.degradations.kernels import gaussian_kernel
from unires_jax.data.degradations.noise import add_gaussian_noise
from unires_jax.data.degradations.resize import resize_image
from unires_jax.data.degradations.tasks import FIXED_DEGRADATIONS

# The super-resolution downscale (the one `unires restore --upscale` projects onto).
DOWNSCALE_METHOD = "bicubic_aa"
_USAGE = (
    "noise:SIGMA, jpeg:QUALITY, blur:SIGMA, motion:LENGTH[@ANGLE], shake:LENGTH[@SEED], "
    "defocus:RADIUS, down:FACTOR, "
    f"or one of {sorted(FIXED_DEGRADATIONS)}; join steps with '+', e.g. 'blur:1+noise:15+jpeg:40'"
)


class SpecError(ValueError):
    """A degradation spec that cannot be read (the message says what is allowed)."""


Step = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Degradation:
    """A parsed spec: `apply(hq, rng)` and the total downscale factor."""

    spec: str
    steps: tuple[Step, ...]
    scale: int
    # The PSF of the spec's blur step (blur, motion or defocus), for baselines that are given it.
    kernel: np.ndarray | None = dataclasses.field(
        default=None, compare=False, repr=False
    )

    def apply(self, hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """`[H, W, 3]` float in [0, 1] -> the degraded image, 8-bit rounded, `scale` times smaller."""
        x = np.asarray(hq, np.float32)
        for step in self.steps:
            x = step(x, rng)
        return quantize_8bit(clip_unit(x))


def _number(text: str, spec: str, lo: float, hi: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SpecError(
            f"degradation {spec!r}: {text!r} is not a number; use {_USAGE}"
        ) from None
    if not (lo <= value <= hi) or not math.isfinite(value):
        raise SpecError(f"degradation {spec!r}: {value:g} is outside [{lo:g}, {hi:g}]")
    return value


def _convolving(kernel: np.ndarray) -> Step:
    def step(x, rng):
        return convolve(x, kernel)

    step.kernel = kernel
    return step


def _downscale(factor: int) -> Step:
    def step(x, rng):
        h, w = x.shape[:2]
        if h % factor or w % factor:
            raise SpecError(
                f"down:{factor} needs image sides divisible by {factor}; got {h}x{w} (crop first)"
            )
        return resize_image(x, (h // factor, w // factor), DOWNSCALE_METHOD)

    return step


def _step(text: str, spec: str) -> tuple[Step, int]:
    if text in FIXED_DEGRADATIONS:
        return FIXED_DEGRADATIONS[text], 1
    kind, sep, arg = text.partition(":")
    if not sep:
        raise SpecError(f"unknown degradation {text!r} in {spec!r}; use {_USAGE}")
    if kind == "noise":
        sigma = _number(arg, spec, 0, 255)
        return (lambda x, rng: add_gaussian_noise(x, sigma, False, rng)), 1
    if kind == "jpeg":
        quality = int(_number(arg, spec, 1, 100))
        return (lambda x, rng: jpeg_roundtrip(x, quality)), 1
    if kind == "blur":
        sigma = _number(arg, spec, 0.1, 20)
        size = 2 * math.ceil(3 * sigma) + 1
        return _convolving(gaussian_kernel(size, sigma, sigma)), 1
    if kind == "motion":
        length, _, angle = arg.partition("@")
        angle_deg = _number(angle or "45", spec, -360, 360)
        return _convolving(line_kernel(_number(length, spec, 1, 64), angle_deg)), 1
    if kind == "defocus":
        return _convolving(disk_kernel(_number(arg, spec, 0.5, 20))), 1
    if kind == "shake":
        length, _, seed = arg.partition("@")
        params = dataclasses.replace(
            sample_camera_shake_params(
                np.random.default_rng(int(_number(seed or "0", spec, 0, 2**31)))
            ),
            max_length=_number(length, spec, 4, 120),
            exposure=1.0,
        )
        return _convolving(camera_shake_kernel(params)), 1
    if kind == "down":
        factor = _number(arg, spec, 2, 8)
        if factor != int(factor):
            raise SpecError(
                f"degradation {spec!r}: down takes a whole factor from 2 to 8"
            )
        return _downscale(int(factor)), int(factor)
    raise SpecError(f"unknown degradation {kind!r} in {spec!r}; use {_USAGE}")


def parse(spec: str) -> Degradation:
    """Parses one spec ("blur:1+noise:15+jpeg:40"). Raises SpecError."""
    spec = spec.strip()
    if not spec:
        raise SpecError(f"empty degradation; use {_USAGE}")
    steps, scale = [], 1
    for part in spec.split("+"):
        step, factor = _step(part.strip(), spec)
        steps.append(step)
        scale *= factor
    kernel = next((s.kernel for s in steps if hasattr(s, "kernel")), None)
    return Degradation(spec, tuple(steps), scale, kernel)


def parse_list(text: str) -> list[Degradation]:
    """Parses a comma-separated list of specs (duplicates refused)."""
    specs = [s.strip() for s in text.split(",") if s.strip()]
    if len(set(specs)) != len(specs):
        raise SpecError(f"{text!r} names a degradation twice")
    return [parse(s) for s in specs]

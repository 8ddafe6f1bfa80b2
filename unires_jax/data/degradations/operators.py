"""The uniform operator interface and the explicit registries of operators by name.

An `Operator` bundles a sampler `sample(rng) -> params`, a pure `apply(image, params, rng)`, the
GIR representative parameters, and the `capture_time` flag (weather happens in front of the lens,
so in a composition it may only come first). Operators hold module-level functions only, so they
pickle into data-loader worker processes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from unires_jax.data.degradations import (
    artifacts,
    blur,
    camera_shake,
    jpeg,
    light,
    noise,
    resize,
    weather,
)


@dataclasses.dataclass(frozen=True)
class Operator:
    """One degradation operator.

    Attributes:
        name: registry key.
        sample: draws parameters, `sample(rng) -> params` (a frozen dataclass with `RANGES`).
        apply: `apply(image [H, W, 3] float32 in [0, 1], params, rng) -> [H, W, 3]` float32 in
            [0, 1]; deterministic given the params and the rng state.
        representative: the GIR "representative task" parameters (moderate strength).
        capture_time: True for rain / snow / haze, which may only lead a composition.
    """

    name: str
    sample: Callable[[np.random.Generator], Any]
    apply: Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]
    representative: Any
    capture_time: bool = False

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Samples parameters and applies them: [H, W, 3] -> [H, W, 3]."""
        return self.apply(image, self.sample(rng), rng)


# The ten GIR basic operators (GIR appendix A.1), with its representative-task settings.
GIR_OPERATORS: dict[str, Operator] = {
    "resize": Operator(
        "resize",
        resize.sample_resize_params,
        resize.apply_resize,
        resize.ResizeParams(),
    ),
    "blur": Operator(
        "blur", blur.sample_blur_params, blur.apply_blur, blur.BlurParams(15, 2.0)
    ),
    "noise": Operator(
        "noise", noise.sample_noise_params, noise.apply_noise, noise.NoiseParams(20.0)
    ),
    "compression": Operator(
        "compression", jpeg.sample_jpeg_params, jpeg.apply_jpeg, jpeg.JpegParams(50)
    ),
    "ringing": Operator(
        "ringing",
        artifacts.sample_ringing_params,
        artifacts.apply_ringing,
        artifacts.RingingParams(15, 1.2),
    ),
    "alg_artifact": Operator(
        "alg_artifact",
        artifacts.sample_alg_artifact_params,
        artifacts.apply_alg_artifact,
        artifacts.AlgArtifactParams(1.2, 5),
    ),
    "damage": Operator(
        "damage",
        artifacts.sample_damage_params,
        artifacts.apply_damage,
        artifacts.DamageParams(10, 7),
    ),
    "rain": Operator(
        "rain",
        weather.sample_rain_params,
        weather.apply_rain,
        weather.RainParams(75.0),
        capture_time=True,
    ),
    "snow": Operator(
        "snow",
        weather.sample_snow_params,
        weather.apply_snow,
        weather.SnowParams(0.9, 0.75),
        capture_time=True,
    ),
    "haze": Operator(
        "haze",
        weather.sample_haze_params,
        weather.apply_haze,
        weather.HazeParams(0.9, 1.8),
        capture_time=True,
    ),
}

# Further operators of this library (not part of the GIR protocol); "representative" values
# are moderate settings chosen here.
EXTRA_OPERATORS: dict[str, Operator] = {
    "motion_blur": Operator(
        "motion_blur",
        camera_shake.sample_camera_shake_params,
        camera_shake.apply_camera_shake,
        camera_shake.CameraShakeParams(
            0.05, 0.35, 5.0, 0.1, math.pi / 4, 0.5, walk_seed=0
        ),
    ),
    "defocus_blur": Operator(
        "defocus_blur",
        blur.sample_defocus_params,
        blur.apply_defocus,
        blur.DefocusParams(4.0, 0.5),
    ),
    "camera_noise": Operator(
        "camera_noise",
        noise.sample_camera_noise_params,
        noise.apply_camera_noise,
        noise.CameraNoiseParams(shot=3e-3, read=2e-5),
    ),
    "oversharpen": Operator(
        "oversharpen",
        artifacts.sample_sharpen_params,
        artifacts.apply_sharpen,
        artifacts.SharpenParams(1.5, 1.5),
    ),
    "low_light": Operator(
        "low_light",
        light.sample_low_light_params,
        light.apply_low_light,
        light.LowLightParams(gain=0.1, gamma=1.2, shot=5e-4, read=1e-6),
    ),
}

OPERATORS: dict[str, Operator] = {**GIR_OPERATORS, **EXTRA_OPERATORS}


def get_operator(name: str) -> Operator:
    """Looks an operator up by name in `OPERATORS`, with an error listing the valid names."""
    try:
        return OPERATORS[name]
    except KeyError:
        raise KeyError(
            f"unires_jax/data/degradations/operators.py: unknown degradation operator {name!r}; "
            f"known operators: {sorted(OPERATORS)}."
        ) from None

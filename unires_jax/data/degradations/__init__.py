"""Seeded degradation operators on float32 [H, W, 3] images in [0, 1] (numpy/scipy/Pillow).

Every operator is a pure `apply_<op>(image, params, rng)` with a separate
`sample_<op>_params(rng)` whose frozen-dataclass result documents its ranges in `RANGES`.

- kernels.py       Real-ESRGAN blur kernels (Gaussian, generalized, plateau, sinc)
- realesrgan.py    Real-ESRGAN second-order pipeline
- camera_shake.py  Boracchi & Foi camera-shake trajectories and PSFs
- blur.py          convolution, GIR Gaussian blur, defocus (disk / lens) blur
- resize.py        torch- and MATLAB-style resizing, GIR resize
- noise.py         Gaussian, Poisson, ISP-like shot + read noise
- jpeg.py          Pillow JPEG
- artifacts.py     ringing, over-sharpening, Richardson-Lucy artifacts, damage
- weather.py       rain, snow, haze
- light.py         low light
- operators.py     the Operator interface and registries; composition.py GIR-rule composition
- tasks.py         the four UniRes training tasks (recipes "paper", "canonical", "mixed",
                   "broad"), prompts and fixed evaluation degradations
"""

from unires_jax.data.degradations.artifacts import (
    AlgArtifactParams,
    DamageParams,
    RingingParams,
    SharpenParams,
    apply_alg_artifact,
    apply_damage,
    apply_ringing,
    apply_sharpen,
    damage_masks,
    richardson_lucy,
    sample_alg_artifact_params,
    sample_damage_params,
    sample_ringing_params,
    sample_sharpen_params,
    usm_sharpen,
)
from unires_jax.data.degradations.blur import (
    BlurParams,
    DefocusParams,
    apply_blur,
    apply_defocus,
    convolve,
    defocus_kernel,
    disk_kernel,
    line_kernel,
    sample_blur_params,
    sample_defocus_params,
)
from unires_jax.data.degradations.camera_shake import (
    CameraShakeParams,
    apply_camera_shake,
    camera_shake_kernel,
    sample_camera_shake_params,
    trajectory,
)
from unires_jax.data.degradations.composition import (
    Composition,
    compose,
    sample_mixture,
)
from unires_jax.data.degradations.jpeg import (
    JpegParams,
    apply_jpeg,
    decode_jpeg,
    encode_jpeg,
    jpeg_roundtrip,
    sample_jpeg_params,
)
from unires_jax.data.degradations.kernels import (
    KernelParams,
    KernelRanges,
    make_kernel,
    sample_kernel_params,
    sinc_kernel,
)
from unires_jax.data.degradations.light import (
    LowLightParams,
    apply_low_light,
    sample_low_light_params,
)
from unires_jax.data.degradations.noise import (
    CameraNoiseParams,
    NoiseParams,
    add_gaussian_noise,
    add_poisson_noise,
    apply_camera_noise,
    apply_noise,
    linear_to_srgb,
    sample_camera_noise_params,
    sample_noise_params,
    srgb_to_linear,
)
from unires_jax.data.degradations.operators import (
    EXTRA_OPERATORS,
    GIR_OPERATORS,
    OPERATORS,
    Operator,
    get_operator,
)
from unires_jax.data.degradations.realesrgan import (
    RealESRGANConfig,
    RealESRGANParams,
    apply_realesrgan,
    sample_realesrgan_params,
)
from unires_jax.data.degradations.resize import (
    ResizeParams,
    apply_resize,
    resize_image,
    sample_resize_params,
)
from unires_jax.data.degradations.tasks import (
    BROAD_DEGRADATIONS,
    DEGRADATION_RECIPES,
    FIXED_DEGRADATIONS,
    TASK_DEGRADATIONS,
    TASK_PROMPTS,
    degrade_for_task,
    fixed_degradation,
)
from unires_jax.data.degradations.weather import (
    HazeParams,
    RainParams,
    SnowParams,
    apply_haze,
    apply_rain,
    apply_snow,
    estimate_depth,
    sample_haze_params,
    sample_rain_params,
    sample_snow_params,
)

__all__ = [
    "BROAD_DEGRADATIONS",
    "DEGRADATION_RECIPES",
    "EXTRA_OPERATORS",
    "FIXED_DEGRADATIONS",
    "GIR_OPERATORS",
    "OPERATORS",
    "TASK_DEGRADATIONS",
    "TASK_PROMPTS",
    "AlgArtifactParams",
    "BlurParams",
    "CameraNoiseParams",
    "CameraShakeParams",
    "Composition",
    "DamageParams",
    "DefocusParams",
    "HazeParams",
    "JpegParams",
    "KernelParams",
    "KernelRanges",
    "LowLightParams",
    "NoiseParams",
    "Operator",
    "RainParams",
    "RealESRGANConfig",
    "RealESRGANParams",
    "ResizeParams",
    "RingingParams",
    "SharpenParams",
    "SnowParams",
    "add_gaussian_noise",
    "add_poisson_noise",
    "apply_alg_artifact",
    "apply_blur",
    "apply_camera_noise",
    "apply_camera_shake",
    "apply_damage",
    "apply_defocus",
    "apply_haze",
    "apply_jpeg",
    "apply_low_light",
    "apply_noise",
    "apply_rain",
    "apply_realesrgan",
    "apply_resize",
    "apply_ringing",
    "apply_sharpen",
    "apply_snow",
    "camera_shake_kernel",
    "compose",
    "convolve",
    "damage_masks",
    "decode_jpeg",
    "defocus_kernel",
    "degrade_for_task",
    "disk_kernel",
    "encode_jpeg",
    "estimate_depth",
    "fixed_degradation",
    "get_operator",
    "jpeg_roundtrip",
    "line_kernel",
    "linear_to_srgb",
    "make_kernel",
    "resize_image",
    "richardson_lucy",
    "sample_alg_artifact_params",
    "sample_blur_params",
    "sample_camera_noise_params",
    "sample_camera_shake_params",
    "sample_damage_params",
    "sample_defocus_params",
    "sample_haze_params",
    "sample_jpeg_params",
    "sample_kernel_params",
    "sample_low_light_params",
    "sample_mixture",
    "sample_noise_params",
    "sample_rain_params",
    "sample_realesrgan_params",
    "sample_resize_params",
    "sample_ringing_params",
    "sample_sharpen_params",
    "sample_snow_params",
    "sinc_kernel",
    "srgb_to_linear",
    "trajectory",
    "usm_sharpen",
]

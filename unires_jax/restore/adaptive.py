"""The default weight choice of `unires restore`: measure what is wrong, restore only that, and
never return more change than the measurement supports.

Per image (`restore/analysis.py` and the blind PSF fit of `restore/deblur.py`):

- upscaling (`upscale` > 1): the SR expert (its output is made consistent with the input);
- a confident straight-motion or defocus PSF (a stricter fit than the deblurring gate's own)
  and little noise: the MD or DD expert, with the restorer's deblurring projection; every other
  plan runs without it;
- noise (sigma >= NOISE_ACT on the 8-bit scale): the DN expert, blended with the input by the
  weight that minimises Stein's unbiased risk estimate of the squared error (SURE) for white
  Gaussian noise of the measured sigma: out = y + a (f(y) - y) with
  a = sigma^2 (N - div f(y)) / |f(y) - y|^2 clipped to [0, 1], the divergence estimated by one
  more restoration of y + eps b (Monte-Carlo SURE, Ramani et al. 2008). Two single-expert
  restorations cost what the paper's two-expert preset costs;
- JPEG blocking (blockiness >= BLOCK_ACT): the DN expert, blended with weight JPEG_BLEND;
- otherwise nothing measurable is wrong and the input comes back unchanged.

The thresholds and the JPEG blend were chosen on training photos only (BENCHMARKS.md, #29).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from unires_jax.restore import analysis as analysis_lib
from unires_jax.restore import deblur as deblur_lib

# Chosen on the training photos (real_photos.TRAIN and the sample photos' train split), never on
# held-out ones: see BENCHMARKS.md, #29.
NOISE_ACT = 7.5  # sigma on the 8-bit scale
# JPEG blocking above which DN runs. Off: the embedded model of session 5 was not trained on
# JPEG, and its DN expert made JPEG photos worse (blinds, quality 10: 29.77 -> 27.71 dB).
BLOCK_ACT = float("inf")
JPEG_BLEND = 1.0
# Above this noise sigma the PSF fit is not trusted (the deblurring gate's own limit).
DEBLUR_MAX_NOISE = 2.0
# Stricter than the deblurring gate's own: on the training photos clean ones fitted lines up to
# 0.72 and disks up to 0.44 (5 of 35 crossed the gate), blurred ones mostly above.
LINE_FIT_MIN = 0.75
DISK_FIT_MIN = 0.5
# The Monte-Carlo SURE probe: eps = EPS_SCALE * sigma.
EPS_SCALE = 0.1
SOURCE = "adaptive"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the adaptive choice decided for one image."""

    expert: str | None  # None: return the input unchanged
    reason: str
    analysis: analysis_lib.Analysis
    blend: str = "none"  # "sure" (noise), "fixed" (JPEG) or "none"

    def to_json(self) -> dict[str, Any]:
        return {
            "expert": self.expert,
            "reason": self.reason,
            "blend": self.blend,
            **self.analysis.to_json(),
        }


def plan(pixels: np.ndarray, *, upscale: int = 1) -> Plan:
    """Decides which expert restores an image `[H, W, 3]` in [0, 1] (see the module docstring)."""
    measured = analysis_lib.analyse(pixels)
    if upscale > 1:
        return Plan("SR", f"x{upscale} upscaling", measured)
    if measured.noise < DEBLUR_MAX_NOISE and min(pixels.shape[:2]) >= 64:
        psf = deblur_lib.fit_psf(pixels.mean(axis=-1))
        needed = LINE_FIT_MIN if psf.family == "line" else DISK_FIT_MIN
        if psf.confident and psf.fit >= needed:
            expert = "MD" if psf.family == "line" else "DD"
            return Plan(expert, f"blur: {psf.describe()}", measured)
    if measured.noise >= NOISE_ACT:
        return Plan("DN", f"noise sigma {measured.noise:.1f}", measured, "sure")
    if measured.blockiness >= BLOCK_ACT:
        return Plan("DN", f"JPEG blocking {measured.blockiness:.2f}", measured, "fixed")
    return Plan(None, "nothing to restore was measured", measured)


def sure_weight(
    noisy: np.ndarray,
    restored: np.ndarray,
    probed: np.ndarray,
    step: np.ndarray,
    sigma: float,
) -> float:
    """The blend weight a of y + a (f(y) - y) that minimises SURE (see the module docstring).

    Args:
      noisy: y `[H, W, 3]` in [0, 1].
      restored: f(y).
      probed: f(y + step).
      step: the probe's perturbation (eps times standard normal, clipped with y into [0, 1]).
      sigma: the noise standard deviation (in [0, 1] units).
    """
    y = np.asarray(noisy, np.float64)
    f = np.asarray(restored, np.float64)
    step = np.asarray(step, np.float64)
    # Monte-Carlo divergence: b . (f(y + eps b) - f(y)) / eps = step . df / eps^2.
    eps_squared = float(np.mean(step**2))
    if eps_squared <= 0.0:
        return 1.0
    divergence = (
        float(np.sum(step * (np.asarray(probed, np.float64) - f))) / eps_squared
    )
    change = float(np.sum((f - y) ** 2))
    if change <= 0.0:
        return 1.0
    return float(np.clip(sigma**2 * (y.size - divergence) / change, 0.0, 1.0))

"""The default weight choice of `unires restore`: measure what is wrong, restore only that, and
never return more change than the measurement supports.

Per image (`restore/analysis.py` and the blind PSF fit of `restore/deblur.py`):

- upscaling (`upscale` > 1): the SR expert (its output is made consistent with the input);
- a confident straight-motion, defocus or Gaussian PSF (for lines and disks a stricter fit than
  the deblurring gate's own) and little noise: the MD expert (motion) or the DD expert (defocus,
  Gaussian), with the restorer's deblurring projection; every other plan runs without it;
- noise (sigma >= NOISE_ACT on the 8-bit scale): the DN expert and a classical denoiser (BM3D,
  from the `bm3d` package, with a sparser grid of reference blocks than its reference profile
  and no correction of block matching for correlated noise;
  scikit-image's non-local means where the package's library does not load; either's estimate
  of the clipped mean E[clip(y + n, 0, 1)] mapped back to y, `restore/clipping.py`), blended with
  the input by the weights that minimise Stein's unbiased risk estimate of the squared error
  (SURE) for white Gaussian noise of the measured sigma:
  out = y + a1 (DN(y) - y) + a2 (C(y) - y), a >= 0, a1 + a2 <= 1, the divergences estimated
  by restoring y + eps b once more (Monte-Carlo SURE, Ramani et al. 2008). SURE is measured
  on a centred crop, where both candidates restore y and y + eps b, so the output is, in
  expectation on that crop, no worse than the input nor than either candidate, and the model
  contributes where it beats the textbook denoiser (its whole-image restoration runs only
  where SURE gives it weight). Being an estimate from one probe on a crop, a blend replaces
  the classical denoiser alone only where its SURE is SURE_MARGIN below that of the latter.
  A model that predicts the clean image (the embedded default) runs its DN restorations in
  SAMPLE_PREDICTION_STEPS DDIM steps;
- JPEG blocking (blockiness b > BLOCK_ACT): the DN expert, blended with the input by the weight
  `jpeg_weight(b, g)` = max(clip((b - BLOCK_ACT) / BLOCK_RAMP, 0, 1),
  clip((g - COARSE_NOISE_ACT) / COARSE_NOISE_RAMP, 0, 1)): light compression gets a little of
  the expert, heavy compression all of it, and so does a photo that was noisy before it was
  compressed (g: the noise sigma measured at half resolution, `analysis.coarse_noise_sigma`,
  where compression leaves the noise that it removes at full resolution). Blockiness is a
  proxy that smooth content (a clear sky) inflates, so the JPEG quality is also estimated
  from the pixels (`restore/jpeg_consistency.py`): a photo measured at quality >=
  JPEG_SKIP_QUALITY is left alone, and the blend (of a JPEG_ENSEMBLE-copy self-ensemble of the
  expert) is moved back into the quantisation constraint set of the input (the model's own
  consistency check: a restoration must compress back to the photo it came from);
- otherwise nothing measurable is wrong and the input comes back unchanged.

The thresholds and ramps were chosen on training photos only, by `benchmarks/adaptive_choose.py`
from the rows of `benchmarks/adaptive_tuning.py`, by `benchmarks/jpeg_plan.py` (the noise ramp),
`benchmarks/bm3d_profile.py` (BM3D's profile) and `benchmarks/sure_margin.py` (SURE_MARGIN)
(BENCHMARKS.md, #29).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from unires_jax.restore import analysis as analysis_lib
from unires_jax.restore import clipping, jpeg_consistency
from unires_jax.restore import deblur as deblur_lib

# Chosen on the training photos (real_photos.TRAIN and the sample photos' train split), never on
# held-out ones: see BENCHMARKS.md, #29.
# Noise sigma (8-bit scale) from which the noise plan runs: between the largest sigma measured on
# training photos without added noise (0.69) and the smallest on ones with it (2.84, sigma 3),
# their geometric mean (`benchmarks/adaptive_choose.py --remeasure-noise`).
NOISE_ACT = 1.40
# The JPEG ramp of the blockiness b: clip((b - BLOCK_ACT) / BLOCK_RAMP, 0, 1).
# Chosen on training photos (67 rows the rule reaches: mean +0.30 dB, none below its input, also
# with BLOCK_ACT moved by +-0.05); clean photos measured 0.02-0.09, JPEG quality 90 0.13-0.20.
BLOCK_ACT = 0.30
BLOCK_RAMP = 1.0
# The JPEG plan's second ramp, of the half-resolution noise sigma g (8-bit scale) of a compressed
# photo: photos that were noisy before compression (sigma 10-25, quality 30-70) want all of the
# expert (the blockiness ramp gave them 0.1-0.6), photos compressed without noise less.
# Chosen on training photos by `benchmarks/jpeg_plan.py` (93 rows of 12 JPEG cases: mean gain
# +0.97 dB against +0.67 for the blockiness ramp alone, none below its input, also with act
# moved by +-0.1; raw output in benchmarks/results/jpeg_plan_session21/).
COARSE_NOISE_ACT = 0.1
COARSE_NOISE_RAMP = 2.0
# At or above this estimated JPEG quality the JPEG plan does nothing: on the training photos the
# DN expert's best gain at quality 90-95 was +0.34 dB (w = 0.25) and it lost up to 5 dB at w = 1
# (at 70: at most +0.55 dB; benchmarks/adaptive_tuning.py rows in BENCHMARKS.md #29).
JPEG_SKIP_QUALITY = 85
# The JPEG plan restores this many flipped copies and averages them (`restore/ensemble.py`): the
# cost of the noise plan's two restorations; on the training photos' JPEG rows (quality 10 and
# 30, noise + JPEG) +0.04 dB over one copy on the mean, no row lower (4 copies: +0.06).
JPEG_ENSEMBLE = 2
# Above this noise sigma the PSF fit is not trusted (the deblurring gate's own limit).
DEBLUR_MAX_NOISE = 2.0
# Stricter than the deblurring gate's own: on the training photos clean ones fitted lines up to
# 0.72 and disks up to 0.44 (5 of 35 crossed the gate), blurred ones mostly above.
LINE_FIT_MIN = 0.75
DISK_FIT_MIN = 0.5
# Gaussian PSFs: the deblurring gate's own (sharp training photos fit a Gaussian at <= 0.12).
GAUSS_FIT_MIN = deblur_lib.MIN_FIT_GAUSS
# The Monte-Carlo SURE probe: eps = EPS_SCALE * sigma.
EPS_SCALE = 0.1
# SURE chooses the blend on a centred crop of this size (where each candidate restores the
# crop and its probe).
SURE_CROP = 128
# A blend other than the classical candidate alone is taken only where its SURE on the crop is
# lower than the classical candidate's by this fraction (`blend_weights`). Chosen on training
# photos by `benchmarks/sure_margin.py` (64 rows, sigma 5-50, session 23: BM3D mapped back
# through `clipping.unclip`, SURE on the `unclipped` values): below 0.15 the crop's one-probe
# estimate picked blends that lost up to 0.74 dB against BM3D alone (margin 0.05: 13 rows
# below it, mostly at sigma 50, where SURE systematically favoured keeping 10-35% of the
# input; 0.1: one row, -0.41 dB); from 0.15 up no row falls below it, and with the embedded
# model none gains either (the best blend of each row, known from the clean photo: +0.008 dB
# on the mean). A model whose DN beats BM3D by more still gets its weight.
SURE_MARGIN = 0.15
# SURE is measured, and a blend applied, only on the values of the classical estimate at least
# this many sigma from 0 and 1 (`unclipped`): noise added to a value 2 sigma from a bound is
# clipped with probability 2.3%; elsewhere the classical estimate (mapped back through
# `clipping.unclip`) is kept.
UNCLIPPED_SIGMAS = 2.0
# BM3D's profile: the reference's 39 x 39 search window, a reference block every 4 pixels instead
# of 3, and no block-matching correction for correlated noise (gamma = 0). That correction
# subtracts from each block distance the noise's expected share at that offset, which the
# package computes from the noise PSD for every offset of the search window, per channel and
# call: 0.26 s per channel at 39 x 39 whatever the image's size (a 32 px image: 0.35 s with it,
# 0.01 s without), i.e. 0.8 s of each colour call, most of a SURE crop's. White noise has no
# correlation to correct for: on 12 training photos at sigma 25 gamma = 0 scored the same as
# the reference's 3.0 (-0.078 against -0.080 dB from the reference profile at step 5).
# The 0.8 s saved per call pays for every 4th pixel instead of every 5th (`benchmarks/
# bm3d_profile.py`; BENCHMARKS.md, #29).
BM3D_SEARCH_WINDOW = 39
BM3D_STEP = 4
BM3D_MATCH_CORRECTION = 0.0
# DDIM steps of the noise plan's DN restorations for a model that predicts the clean image
# ("sample" prediction, as the embedded default): on training photos at sigma 25, 1 step
# scored within 0.04 dB of 4 (the model's estimate barely moves after the first) at a quarter
# of the cost. Models that predict the noise keep their own steps.
SAMPLE_PREDICTION_STEPS = 1
SOURCE = "adaptive"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the adaptive choice decided for one image."""

    expert: str | None  # None: return the input unchanged
    reason: str
    analysis: analysis_lib.Analysis
    blend: str = "none"  # "sure" (noise), "blocking" (JPEG: jpeg_weight) or "none"
    jpeg: jpeg_consistency.Quantisation | None = (
        None  # estimated where blocking was measured
    )
    coarse_noise: float | None = (
        None  # the JPEG plan's (`analysis.coarse_noise_sigma`, 8-bit)
    )

    def to_json(self) -> dict[str, Any]:
        return {
            "expert": self.expert,
            "reason": self.reason,
            "blend": self.blend,
            **self.analysis.to_json(),
            **(self.jpeg.to_json() if self.jpeg is not None else {}),
            **(
                {"coarse_noise_sigma_255": round(self.coarse_noise, 3)}
                if self.coarse_noise is not None
                else {}
            ),
        }


def plan(pixels: np.ndarray, *, upscale: int = 1) -> Plan:
    """Decides which expert restores an image `[H, W, 3]` in [0, 1] (see the module docstring)."""
    measured = analysis_lib.analyse(pixels)
    if upscale > 1:
        return Plan("SR", f"x{upscale} upscaling", measured)
    if measured.noise < DEBLUR_MAX_NOISE and min(pixels.shape[:2]) >= 64:
        psf = deblur_lib.fit_psf(pixels.mean(axis=-1))
        needed = {"line": LINE_FIT_MIN, "disk": DISK_FIT_MIN, "gauss": GAUSS_FIT_MIN}
        if psf.confident and psf.fit >= needed[psf.family]:
            expert = "MD" if psf.family == "line" else "DD"
            return Plan(expert, f"blur: {psf.describe()}", measured)
    jpeg = None
    if measured.noise >= NOISE_ACT:
        # SURE's white-noise model fails on a compressed photo (quantisation removes most of
        # the noise's high frequencies and correlates the rest, so sigma is underestimated):
        # a photo that fits a JPEG quality below JPEG_SKIP_QUALITY takes the JPEG plan.
        jpeg = jpeg_consistency.estimate(pixels)
        if jpeg.quality is None or jpeg.quality >= JPEG_SKIP_QUALITY:
            return Plan("DN", f"noise sigma {measured.noise:.1f}", measured, "sure")
        return Plan(
            "DN",
            f"JPEG quality {jpeg.quality} with noise sigma {measured.noise:.1f}",
            measured,
            "blocking",
            jpeg,
            _coarse_noise(pixels),
        )
    if measured.blockiness > BLOCK_ACT:
        jpeg = jpeg or jpeg_consistency.estimate(pixels)
        if jpeg.quality is not None and jpeg.quality >= JPEG_SKIP_QUALITY:
            return Plan(
                None,
                f"JPEG quality {jpeg.quality}: little to restore",
                measured,
                jpeg=jpeg,
            )
        return Plan(
            "DN",
            f"JPEG blocking {measured.blockiness:.2f}",
            measured,
            "blocking",
            jpeg,
            _coarse_noise(pixels),
        )
    return Plan(None, "nothing to restore was measured", measured)


def _coarse_noise(pixels: np.ndarray) -> float:
    """`analysis.coarse_noise_sigma` on the 8-bit scale; 0 (not measured) for an image too
    small to measure it at half resolution."""
    if min(pixels.shape[:2]) < 4 * analysis_lib.PATCH:
        return 0.0
    return 255.0 * analysis_lib.coarse_noise_sigma(pixels)


def jpeg_weight(
    blockiness: float,
    coarse_noise: float,
    *,
    act: float = COARSE_NOISE_ACT,
    ramp: float = COARSE_NOISE_RAMP,
) -> float:
    """The JPEG plan's weight of the DN expert's output (the rest is the input), from the
    blockiness and the half-resolution noise sigma (8-bit scale): the larger of the two ramps
    clip((b - BLOCK_ACT) / BLOCK_RAMP, 0, 1) and clip((g - act) / ramp, 0, 1)."""
    blocking = (blockiness - BLOCK_ACT) / BLOCK_RAMP
    noise = (coarse_noise - act) / ramp
    return float(np.clip(max(blocking, noise), 0.0, 1.0))


def nonlocal_means(
    image: np.ndarray, sigma: float, *, clipped: bool = True
) -> np.ndarray:
    """scikit-image's non-local means with the recipe of its documentation (h = 0.8 sigma, the
    noise variance subtracted from patch distances, 5x5 patches within 13x13): the classical
    candidate of the noise plan where BM3D is unavailable. `image` `[H, W, 3]` in [0, 1], sigma
    in the same units; `clipped`: the noise was clipped to [0, 1] (as in any stored photo), so
    the estimate is mapped back through `clipping.unclip`."""
    from skimage.restoration import denoise_nl_means

    out = denoise_nl_means(
        image,
        h=0.8 * sigma,
        sigma=sigma,
        fast_mode=True,
        patch_size=5,
        patch_distance=6,
        channel_axis=-1,
    )
    return _finish(out, sigma, clipped)


def _finish(estimate: np.ndarray, sigma: float, clipped: bool) -> np.ndarray:
    """A classical denoiser's estimate as float32 in [0, 1]: mapped back through
    `clipping.unclip` where the noise was clipped, else clipped."""
    if clipped:
        return clipping.unclip(estimate, sigma)
    return np.clip(estimate, 0.0, 1.0).astype(np.float32)


def bm3d_available() -> bool:
    """Whether the `bm3d` package (a dependency; its compiled library ships for x86-64 Linux,
    macOS and Windows) imports and loads here."""
    try:
        import bm3d  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def bm3d_denoise(
    image: np.ndarray,
    sigma: float,
    *,
    window: int = BM3D_SEARCH_WINDOW,
    step: int = BM3D_STEP,
    match_correction: float = BM3D_MATCH_CORRECTION,
    clipped: bool = True,
) -> np.ndarray:
    """BM3D (Dabov et al. 2007; the `bm3d` package's colour version, in its opponent colour
    space) with a sparser grid of reference blocks than its reference profile (the search
    `window` and the reference-block `step` of both stages, and the block-matching correction
    `match_correction`, the package's gamma; the reference: 39, 3 and 3.0):
    `image` `[H, W, 3]` in [0, 1], sigma in the same units. `clipped`: the noise was clipped to
    [0, 1] (as in any stored photo), so BM3D's estimate of the clipped mean is mapped back
    through `clipping.unclip` (Foi 2009)."""
    import bm3d

    profile = bm3d.BM3DProfile()
    profile.search_window_ht = profile.search_window_wiener = window
    profile.step_ht = profile.step_wiener = step
    profile.gamma = match_correction
    out = bm3d.bm3d_rgb(np.asarray(image, np.float32), max(sigma, 1e-4), profile)
    return _finish(out, sigma, clipped)


def classical_denoiser() -> tuple[str, Any]:
    """The noise plan's classical candidate: ("bm3d", bm3d_denoise) where the package loads,
    else ("nonlocal_means", nonlocal_means). Each is called as f(image, sigma)."""
    if bm3d_available():
        return "bm3d", bm3d_denoise
    return "nonlocal_means", nonlocal_means


def mc_divergence(
    restored: np.ndarray,
    probed: np.ndarray,
    step: np.ndarray,
    mask: np.ndarray | None = None,
) -> float:
    """The Monte-Carlo estimate of div f(y) = sum_i d f_i / d y_i (Ramani et al. 2008):
    <b, f(y + b) - f(y)> / mean(b^2), from f(y), f(y + b) and the small perturbation b; with a
    boolean `mask` (the shape of y), the sum over its values only."""
    keep = slice(None) if mask is None else np.asarray(mask).ravel()
    step = np.asarray(step, np.float64).ravel()[keep]
    change = (
        np.asarray(probed, np.float64).ravel()
        - np.asarray(restored, np.float64).ravel()
    )[keep]
    return float(np.dot(step, change)) / float(np.mean(step**2))


def unclipped(estimate: np.ndarray, sigma: float) -> np.ndarray:
    """Boolean mask of the values of a denoised photo at least UNCLIPPED_SIGMAS sigma from 0
    and 1: where the noise of the photo was (nearly) never clipped, so that it is the white
    Gaussian noise SURE is derived for. Near black and white the clipped noise has a smaller
    variance and a mean other than 0 (`restore/clipping.py`), and SURE there says nothing of
    the error: on a training photo with a black background it chose a blend 1.2 dB below the
    classical denoiser alone."""
    margin = UNCLIPPED_SIGMAS * sigma
    estimate = np.asarray(estimate)
    return (estimate >= margin) & (estimate <= 1.0 - margin)


def sure_window(shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The centred SURE_CROP x SURE_CROP window of an image of this shape (all of a smaller
    one): where the noise plan measures SURE."""
    h, w = shape[:2]
    ch, cw = min(h, SURE_CROP), min(w, SURE_CROP)
    top, left = (h - ch) // 2, (w - cw) // 2
    return slice(top, top + ch), slice(left, left + cw)


def sure_probe(noisy: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """The Monte-Carlo SURE probe step b = clip(y + eps n, 0, 1) - y, eps = EPS_SCALE * sigma,
    n ~ N(0, 1) drawn from `seed` (a few pixels at the extremes move less than eps n)."""
    eps = EPS_SCALE * sigma
    probe = np.random.default_rng(seed).standard_normal(noisy.shape).astype(np.float32)
    return np.clip(noisy + eps * probe, 0.0, 1.0) - noisy


def crop_sure_terms(
    noisy: np.ndarray,
    step: np.ndarray,
    sigma: float,
    model: Callable[[np.ndarray], np.ndarray],
    classical: Callable[[np.ndarray, float], np.ndarray],
) -> SureTerms:
    """The SURE terms of the noise plan's candidates (model, classical), measured on
    `sure_window`.

    Both candidates, `model(image)` and `classical(image, sigma)`, restore the crop of y and of
    the probe y + step (a fraction of a second whole-image run each), so both risks are
    estimated on the same pixels by the same operators: a divergence measured on a crop and
    scaled to the whole image overestimated BM3D's risk 1.3-1.9x on training photos (a crop's
    content is not the photo's). SURE is measured on the crop's `unclipped` values (of the
    classical estimate) only, where the noise is the white Gaussian noise it is derived for
    (all of the crop where none is). The weights chosen from them are then applied to the
    whole-image restorations, on the same kind of values (`blend_unclipped`).
    """
    window = sure_window(noisy.shape)
    crop, crop_step = noisy[window], step[window]
    outputs = [
        (np.asarray(model(crop)), np.asarray(model(crop + crop_step))),
        (classical(crop, sigma), classical(crop + crop_step, sigma)),
    ]
    mask = unclipped(outputs[1][0], sigma)
    if not mask.any():
        mask = None  # nothing unclipped to measure on: the whole crop, as it is
    return sure_terms(
        crop,
        [restored for restored, _ in outputs],
        [
            mc_divergence(restored, probed, crop_step, mask)
            for restored, probed in outputs
        ],
        sigma,
        mask,
    )


def blend_unclipped(
    noisy: np.ndarray,
    model_out: np.ndarray | None,
    classical_out: np.ndarray,
    weights: np.ndarray,
    sigma: float,
) -> np.ndarray:
    """The noise plan's output: the blend y + a1 (model - y) + a2 (classical - y) with the
    weights a = `weights` on the `unclipped` values of the classical estimate, that estimate
    itself elsewhere (where SURE measured nothing); `model_out` may be None where a1 = 0."""
    y = np.asarray(noisy, np.float32)
    classical_out = np.asarray(classical_out, np.float32)
    blend = y + weights[1] * (classical_out - y)
    if weights[0] > 0:
        blend = blend + weights[0] * (np.asarray(model_out, np.float32) - y)
    mask = unclipped(classical_out, sigma)
    return np.where(mask, blend, classical_out).astype(np.float32)


def noise_plan_weights(terms: SureTerms) -> np.ndarray:
    """The noise plan's weights (model, classical) from `crop_sure_terms`: SURE minimised over
    the simplex, where a blend other than the classical candidate alone must lower its SURE by
    SURE_MARGIN (`blend_weights`)."""
    return blend_weights(terms, prefer=np.array([0.0, 1.0]), margin=SURE_MARGIN)


@dataclasses.dataclass(frozen=True)
class SureTerms:
    """SURE of the blends y + sum_k a_k (f_k(y) - y) of K candidates on n values:
    a'Ga + linear'a + n sigma^2 (`sure_terms`)."""

    gram: np.ndarray  # [K, K]: <f_j - y, f_k - y>
    linear: np.ndarray  # [K]: 2 sigma^2 (div f_k - n)
    n: int
    sigma: float

    def risk(self, weights: np.ndarray) -> np.ndarray:
        """SURE of each blend `[..., K]` (an unbiased estimate of its squared error)."""
        weights = np.asarray(weights, np.float64)
        return (
            np.einsum("...k,kl,...l->...", weights, self.gram, weights)
            + weights @ self.linear
            + self.n * self.sigma**2
        )


def sure_terms(
    noisy: np.ndarray,
    restored: list[np.ndarray],
    divergences: list[float],
    sigma: float,
    mask: np.ndarray | None = None,
) -> SureTerms:
    """SURE of the blends y + sum_k a_k (f_k(y) - y): with G_jk = <f_j - y, f_k - y> and
    div of the blend = (1 - sum a) n + sum_k a_k div f_k, it is the quadratic
    a'Ga + 2 sigma^2 sum_k a_k (div f_k - n) + n sigma^2.

    Args:
      noisy: y `[H, W, 3]` in [0, 1].
      restored: f_k(y), one per candidate.
      divergences: div f_k at y, one per candidate (`mc_divergence`).
      sigma: the noise standard deviation (in [0, 1] units).
      mask: boolean, the shape of y: SURE of the values it selects only (the divergences
        then over the same values), e.g. `unclipped`.
    """
    keep = slice(None) if mask is None else np.asarray(mask).ravel()
    y = np.asarray(noisy, np.float64).ravel()[keep]
    diffs = np.stack([np.asarray(f, np.float64).ravel()[keep] - y for f in restored])
    return SureTerms(
        gram=diffs @ diffs.T,
        linear=2.0 * sigma**2 * (np.asarray(divergences, np.float64) - y.size),
        n=y.size,
        sigma=float(sigma),
    )


def blend_weights(
    terms: SureTerms,
    *,
    grid: int = 20,
    prefer: np.ndarray | None = None,
    margin: float = 0.0,
) -> np.ndarray:
    """The weights a_k >= 0, sum <= 1, that minimise SURE over a grid of step 1/grid on the
    simplex; where `prefer` is given, the minimiser replaces it only if its SURE is lower than
    the preferred blend's by more than `margin` times the latter's magnitude (an estimate from
    one probe on a crop has its own error, and can even fall below 0 for a near-perfect
    restoration: a small estimated gain is not worth leaving the preferred candidate)."""
    k = terms.gram.shape[0]
    axes = np.meshgrid(*[np.arange(grid + 1) / grid] * k, indexing="ij")
    candidates = np.stack([a.ravel() for a in axes], -1)
    candidates = candidates[candidates.sum(-1) <= 1.0 + 1e-9]
    risk = terms.risk(candidates)
    best = candidates[int(np.argmin(risk))]
    if prefer is not None:
        kept = terms.risk(prefer)
        if terms.risk(best) >= kept - margin * abs(kept):
            return np.asarray(prefer, np.float64)
    return best


def sure_weights(
    noisy: np.ndarray,
    restored: list[np.ndarray],
    divergences: list[float],
    sigma: float,
    grid: int = 20,
) -> np.ndarray:
    """The weights a_k >= 0, sum <= 1, of y + sum_k a_k (f_k(y) - y) that minimise SURE
    (`sure_terms`, `blend_weights`) over a grid of step 1/grid on the simplex.

    Args:
      noisy: y `[H, W, 3]` in [0, 1].
      restored: f_k(y), one per candidate.
      divergences: div f_k at y, one per candidate (`mc_divergence`).
      sigma: the noise standard deviation (in [0, 1] units).
      grid: steps per unit weight.

    Returns:
      [K] weights.
    """
    return blend_weights(sure_terms(noisy, restored, divergences, sigma), grid=grid)

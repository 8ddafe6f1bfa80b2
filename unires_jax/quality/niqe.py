"""NIQE, the "completely blind" Natural Image Quality Evaluator (Mittal et al. 2013).

Reproduces the MATLAB reference (`computequality.m` / `estimatemodelparam.m` of LIVE's release)
as ported by BasicSR (`basicsr/metrics/niqe.py`): MSCN coefficients with a 7x7 Gaussian window
(sigma 7/6), 96-pixel blocks without overlap, two scales (MATLAB bicubic `imresize` by 1/2 with
antialiasing), an AGGD fit per block and per pairwise product (18 features per scale), and the
distance sqrt((mu_p - mu)^T pinv((S_p + S) / 2) (mu_p - mu)) to a pristine Gaussian model.
Lower is better.

The pristine model ("standard parameters") is user-supplied data: BasicSR's
`niqe_pris_params.npz` or MATLAB's `modelparameters.mat` (see `load_niqe_model`). Without one,
`default_model()` returns a model fitted with `fit_niqe_model` on the photos bundled with
scikit-image (`scripts/fit_default_niqe.py`); its scores are NOT comparable with published NIQE
tables, only with each other.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.io

from unires_jax.quality import base, nss

DEFAULT_MODEL_PATH = (
    pathlib.Path(__file__).parent / "assets" / "niqe_skimage_pristine.npz"
)
NUM_FEATURES = 36  # 18 per scale


@dataclasses.dataclass(frozen=True)
class NiqeModel:
    """A pristine multivariate Gaussian model of NIQE features.

    Attributes:
        mu: [36] feature mean over pristine patches.
        cov: [36, 36] feature covariance.
        window: [7, 7] normalised Gaussian weighting window used for MSCN.
        block_size: patch side in pixels at the first scale.
        source: where the parameters came from (a path or a description), for messages.
    """

    mu: np.ndarray
    cov: np.ndarray
    window: np.ndarray
    block_size: int = 96
    source: str = ""


def load_niqe_model(path: str | pathlib.Path) -> NiqeModel:
    """Loads pristine parameters from BasicSR's `.npz` (or one saved by `save_niqe_model`) or MATLAB's `.mat`.

    Args:
        path: `.npz` with `mu_pris_param`, `cov_pris_param` and optionally `gaussian_window`,
            `block_size`; or `.mat` with `mu_prisparam`, `cov_prisparam` (LIVE's
            `modelparameters.mat`).

    Returns:
        The model.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: NIQE parameter file not found. Pass BasicSR's niqe_pris_params.npz, LIVE's "
            "modelparameters.mat, or a model written by `unires quality fit-niqe`."
        )
    if path.suffix == ".mat":
        data = scipy.io.loadmat(path)
        keys = ("mu_prisparam", "cov_prisparam")
    else:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        keys = ("mu_pris_param", "cov_pris_param")
    missing = [k for k in keys if k not in data]
    if missing:
        found = sorted(k for k in data if not k.startswith("__"))
        raise KeyError(
            f"{path}: missing NIQE parameter arrays {missing} (found {found}). Expected BasicSR's "
            "niqe_pris_params.npz keys (mu_pris_param, cov_pris_param) or MATLAB "
            "modelparameters.mat keys (mu_prisparam, cov_prisparam)."
        )
    mu = np.asarray(data[keys[0]], np.float64).reshape(-1)
    cov = np.asarray(data[keys[1]], np.float64)
    if mu.shape != (NUM_FEATURES,) or cov.shape != (NUM_FEATURES, NUM_FEATURES):
        raise ValueError(
            f"{path}: NIQE parameters have shapes mu {mu.shape}, cov {cov.shape}; expected "
            f"({NUM_FEATURES},) and ({NUM_FEATURES}, {NUM_FEATURES})"
        )
    window = np.asarray(data.get("gaussian_window", nss.gaussian_window()), np.float64)
    block = int(np.asarray(data.get("block_size", 96)))
    return NiqeModel(mu=mu, cov=cov, window=window, block_size=block, source=str(path))


def save_niqe_model(model: NiqeModel, path: str | pathlib.Path) -> None:
    """Writes a model as `.npz` with BasicSR's key names (readable by BasicSR as well)."""
    np.savez(
        path,
        mu_pris_param=model.mu[None, :],
        cov_pris_param=model.cov,
        gaussian_window=model.window,
        block_size=np.int64(model.block_size),
    )


def default_model() -> NiqeModel:
    """The bundled model fitted on scikit-image's sample photos (not the standard parameters)."""
    if not DEFAULT_MODEL_PATH.is_file():
        raise FileNotFoundError(
            f"{DEFAULT_MODEL_PATH}: the bundled NIQE model is missing from this installation; "
            "regenerate it with `python scripts/fit_default_niqe.py` or pass params=<file>."
        )
    return load_niqe_model(DEFAULT_MODEL_PATH)


def _block_features(norm: np.ndarray, block: int) -> np.ndarray:
    """18 NIQE features for each [block, block] tile of an MSCN map.

    Args:
        norm: [nh * block, nw * block] MSCN coefficients.
        block: tile side.

    Returns:
        [nh * nw, 18] features, tiles in row-major order.
    """
    nh, nw = norm.shape[0] // block, norm.shape[1] // block
    tiles = (
        norm.reshape(nh, block, nw, block)
        .transpose(0, 2, 1, 3)
        .reshape(nh * nw, block, block)
    )
    flat = tiles.reshape(nh * nw, -1)
    alpha, lstd, rstd = nss.fit_aggd(flat)
    feats = [alpha, (nss.std_to_scale(alpha, lstd) + nss.std_to_scale(alpha, rstd)) / 2]
    for shift in nss.NIQE_SHIFTS:
        # The reference rolls each tile on its own (np.roll / circshift inside the tile).
        pair = (tiles * np.roll(tiles, shift, axis=(1, 2))).reshape(nh * nw, -1)
        alpha, lstd, rstd = nss.fit_aggd(pair)
        beta_l, beta_r = nss.std_to_scale(alpha, lstd), nss.std_to_scale(alpha, rstd)
        feats += [alpha, nss.aggd_mean(alpha, beta_l, beta_r), beta_l, beta_r]
    return np.stack(feats, axis=-1)


def niqe_features(
    img: np.ndarray, window: np.ndarray, block_size: int = 96
) -> tuple[np.ndarray, np.ndarray]:
    """Per-block NIQE features of one intensity image.

    Args:
        img: [H, W] intensities in [0, 255] (already rounded, as the reference does).
        window: [7, 7] MSCN window.
        block_size: block side at the first scale (96 in the reference).

    Returns:
        (features [blocks, 36], sharpness [blocks]): the sharpness is the mean local deviation
        of each block at the first scale, used to select pristine patches when fitting.
    """
    h, w = img.shape
    nh, nw = h // block_size, w // block_size
    if nh * nw < 2:
        # One block has no feature covariance: the score would silently be NaN.
        raise ValueError(
            f"NIQE needs at least two {block_size}x{block_size} blocks (e.g. an image of "
            f"{2 * block_size}x{block_size} pixels or more) after cropping, got {h}x{w}; "
            f"score larger images or use another quality model (brisque, piqe)"
        )
    # BasicSR runs this part in float32 (cv2/torch conventions); matching it keeps the local
    # deviation of flat regions, which suffers cancellation in float32, identical.
    img = np.asarray(img, np.float32)[: nh * block_size, : nw * block_size]
    feats = []
    for scale in (1, 2):
        norm, sigma = nss.mscn(img, window, mode="nearest")
        feats.append(_block_features(norm, block_size // scale))
        if scale == 1:
            sharp = (
                sigma.reshape(nh, block_size, nw, block_size)
                .mean(axis=(1, 3))
                .reshape(-1)
            )
            half = nss.imresize(img / np.float32(255.0), 0.5, dtype=np.float32)
            img = half * np.float32(255.0)
    return np.concatenate(feats, axis=1), sharp


def niqe_distance(feats: np.ndarray, model: NiqeModel) -> float:
    """NIQE score from per-block features [blocks, 36] and a pristine model (Eq. 10)."""
    mu = np.nanmean(feats, axis=0)
    complete = feats[~np.isnan(feats).any(axis=1)]
    if len(complete) < 2:
        return math.nan  # undefined for flat images, as in the reference
    cov = np.cov(complete, rowvar=False)
    d = model.mu - mu
    q = d @ np.linalg.pinv((model.cov + cov) / 2) @ d
    return float(np.sqrt(q))


def prepare(
    images: np.ndarray | Sequence[np.ndarray],
    crop_border: int = 0,
    convert_to: str = "y",
) -> list[np.ndarray]:
    """NHWC floats in [0, 1] -> rounded [H, W] intensities in [0, 255], as BasicSR's `calculate_niqe`."""
    out = []
    for im in base.as_image_list(images):
        lum = nss.to_luma(im[None], convert_to)[0]
        if crop_border:
            lum = lum[crop_border:-crop_border, crop_border:-crop_border]
        out.append(np.round(lum))
    return out


def score(
    images: np.ndarray | Sequence[np.ndarray],
    model: NiqeModel,
    crop_border: int = 0,
    convert_to: str = "y",
) -> np.ndarray:
    """NIQE of each image (lower is better).

    Args:
        images: [N, H, W, C] or a list of [H, W, C], C = 1 (grey) or 3 (RGB), floats in [0, 1].
        model: pristine parameters.
        crop_border: pixels dropped from each edge before scoring.
        convert_to: "y" (BasicSR default: BT.601 luma) or "gray" (MATLAB rgb2gray) for RGB.

    Returns:
        [N] float64 scores.
    """
    return np.array(
        [
            niqe_distance(niqe_features(img, model.window, model.block_size)[0], model)
            for img in prepare(images, crop_border, convert_to)
        ]
    )


def fit_niqe_model(
    images: Iterable[np.ndarray],
    sharpness_threshold: float = 0.75,
    block_size: int = 96,
    convert_to: str = "y",
    window: np.ndarray | None = None,
    source: str = "fit_niqe_model",
) -> NiqeModel:
    """Fits a pristine model as LIVE's `estimatemodelparam.m` does.

    Each image is cut into blocks; blocks whose mean local deviation exceeds
    `sharpness_threshold` times the image's sharpest block are kept, their 36 features are
    pooled over all images, and the model is their mean (ignoring NaNs) and covariance (over
    complete rows).

    Args:
        images: [H, W, C] (C = 1 or 3) floats in [0, 1], pristine photos.
        sharpness_threshold: fraction of the sharpest block's deviation a block needs (0.75).
        block_size: block side (96).
        convert_to: colour to intensity conversion, as in `score`.
        window: MSCN window; defaults to the 7x7 Gaussian with sigma 7/6.
        source: description stored in the model.

    Returns:
        The fitted model.
    """
    window = nss.gaussian_window() if window is None else window
    pooled = []
    for img in images:
        (lum,) = prepare([img], 0, convert_to)
        feats, sharp = niqe_features(lum, window, block_size)
        pooled.append(feats[sharp > sharpness_threshold * sharp.max()])
    if not pooled:
        raise ValueError("fit_niqe_model: no images given")
    feats = np.concatenate(pooled)
    complete = feats[~np.isnan(feats).any(axis=1)]
    if len(complete) <= NUM_FEATURES:
        raise ValueError(
            f"fit_niqe_model: only {len(complete)} usable patches from {len(pooled)} images; need "
            f"more than {NUM_FEATURES} for a covariance. Add images (each gives roughly a "
            f"quarter of its {block_size}-pixel blocks) or lower sharpness_threshold."
        )
    return NiqeModel(
        mu=np.nanmean(feats, axis=0),
        cov=np.cov(complete, rowvar=False),
        window=window,
        block_size=block_size,
        source=source,
    )


@dataclasses.dataclass(frozen=True)
class Niqe:
    """NIQE as a `QualityModel` (lower is better)."""

    model: NiqeModel
    crop_border: int = 0
    convert_to: str = "y"
    name: str = "niqe"
    higher_is_better: bool = False

    def score(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        return score(images, self.model, self.crop_border, self.convert_to)


def load(
    checkpoint: str | pathlib.Path | None = None,
    crop_border: int = 0,
    convert_to: str = "y",
) -> Niqe:
    """NIQE with the given parameter file (see `load_niqe_model`), or the bundled scikit-image model.

    Args:
        checkpoint: BasicSR's `niqe_pris_params.npz`, LIVE's `modelparameters.mat`, or a model
            written by `unires quality fit-niqe`; None for the bundled (non-standard) model.
        crop_border: pixels dropped at each edge before scoring.
        convert_to: "y" or "gray" for RGB input.
    """
    model = default_model() if checkpoint is None else load_niqe_model(checkpoint)
    return Niqe(model=model, crop_border=crop_border, convert_to=convert_to)

"""BRISQUE, the Blind/Referenceless Image Spatial Quality Evaluator (Mittal et al. 2012).

Features as LIVE's MATLAB release (`brisque_feature.m`): MSCN coefficients (7x7 Gaussian window,
sigma 7/6, zero padding as `filter2(..., 'same')`), a GGD fit of the coefficients (shape,
variance) and AGGD fits of their products with four neighbours (shape, mean, left and right
variances), at two scales (MATLAB bicubic `imresize` by 1/2): 36 features. They are scaled to
[-1, 1] with the release's `allrange` and scored by its epsilon-SVR `allmodel` (RBF kernel),
which lives in `assets/brisque_live.npz` (converted by `scripts/convert_brisque_model.py`; see
`assets/BRISQUE_LICENSE.txt`). Lower is better; typical scores are 0-100.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence

import numpy as np

from unires_jax.quality import base, nss

DEFAULT_MODEL_PATH = pathlib.Path(__file__).parent / "assets" / "brisque_live.npz"
NUM_FEATURES = 36


@dataclasses.dataclass(frozen=True)
class BrisqueModel:
    """An RBF epsilon-SVR on range-scaled BRISQUE features.

    Attributes:
        support_vectors: [S, 36] in the scaled feature space.
        coefs: [S] dual coefficients.
        rho: decision-function offset (the prediction is sum - rho).
        gamma: RBF kernel width, K(u, v) = exp(-gamma |u - v|^2).
        feature_min, feature_max: [36] ranges mapped to [-1, 1].
        source: file the model came from, for messages.
    """

    support_vectors: np.ndarray
    coefs: np.ndarray
    rho: float
    gamma: float
    feature_min: np.ndarray
    feature_max: np.ndarray
    source: str = ""


def parse_libsvm_model(text: str, num_features: int = NUM_FEATURES) -> dict:
    """Parses a LIBSVM text model (epsilon-SVR, RBF kernel) into dense arrays.

    Returns:
        dict with support_vectors [S, num_features], coefs [S], rho, gamma.
    """
    header, _, body = text.partition("\nSV\n")
    fields = dict(line.split(" ", 1) for line in header.splitlines() if " " in line)
    if fields.get("svm_type") != "epsilon_svr" or fields.get("kernel_type") != "rbf":
        raise ValueError(
            f"expected an epsilon_svr model with an rbf kernel, got svm_type="
            f"{fields.get('svm_type')!r}, kernel_type={fields.get('kernel_type')!r}"
        )
    rows = [line.split() for line in body.splitlines() if line.strip()]
    sv = np.zeros((len(rows), num_features))
    coefs = np.empty(len(rows))
    for i, row in enumerate(rows):
        coefs[i] = float(row[0])
        for item in row[1:]:
            j, v = item.split(":")
            sv[i, int(j) - 1] = float(v)
    if len(rows) != int(fields.get("total_sv", len(rows))):
        raise ValueError(
            f"model lists total_sv={fields['total_sv']} but has {len(rows)} vectors"
        )
    return {
        "support_vectors": sv,
        "coefs": coefs,
        "rho": float(fields["rho"]),
        "gamma": float(fields["gamma"]),
    }


def parse_svm_scale_range(
    text: str, num_features: int = NUM_FEATURES
) -> tuple[np.ndarray, np.ndarray]:
    """Parses an `svm-scale -s` range file (`x`, `lower upper`, then `index min max` lines).

    Returns:
        (feature_min [num_features], feature_max [num_features]); the target range must be [-1, 1].
    """
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != ["x"] or [float(v) for v in lines[1]] != [-1.0, 1.0]:
        raise ValueError(
            "expected an svm-scale range file starting with 'x' and '-1 1'"
        )
    lo, hi = np.zeros(num_features), np.zeros(num_features)
    for j, a, b in lines[2:]:
        lo[int(j) - 1], hi[int(j) - 1] = float(a), float(b)
    return lo, hi


def load_brisque_model(
    path: str | pathlib.Path, range_path: str | pathlib.Path | None = None
) -> BrisqueModel:
    """Loads a BRISQUE model: our `.npz`, or a LIBSVM model file plus its `svm-scale` range file.

    Args:
        path: `.npz` written by `save_brisque_model`, or a LIBSVM text model (LIVE's `allmodel`).
        range_path: the `svm-scale` range file (LIVE's `allrange`), needed with a LIBSVM model.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: BRISQUE model not found")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            missing = {
                "support_vectors",
                "coefs",
                "rho",
                "gamma",
                "feature_min",
                "feature_max",
            } - set(f.files)
            if missing:
                raise KeyError(
                    f"{path}: missing BRISQUE arrays {sorted(missing)}; found {f.files}"
                )
            d = {k: f[k] for k in f.files}
        return BrisqueModel(
            support_vectors=d["support_vectors"],
            coefs=d["coefs"],
            rho=float(d["rho"]),
            gamma=float(d["gamma"]),
            feature_min=d["feature_min"],
            feature_max=d["feature_max"],
            source=str(path),
        )
    if range_path is None:
        raise ValueError(
            f"{path}: a LIBSVM model needs its svm-scale range file (LIVE's allrange)"
        )
    svm = parse_libsvm_model(path.read_text())
    lo, hi = parse_svm_scale_range(pathlib.Path(range_path).read_text())
    return BrisqueModel(feature_min=lo, feature_max=hi, source=str(path), **svm)


def save_brisque_model(model: BrisqueModel, path: str | pathlib.Path) -> None:
    """Writes the model as a compressed `.npz`."""
    np.savez_compressed(
        path,
        support_vectors=model.support_vectors,
        coefs=model.coefs,
        rho=model.rho,
        gamma=model.gamma,
        feature_min=model.feature_min,
        feature_max=model.feature_max,
    )


def default_model() -> BrisqueModel:
    """LIVE's released BRISQUE model (trained on the whole LIVE IQA database)."""
    return load_brisque_model(DEFAULT_MODEL_PATH)


def brisque_features(img: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of one intensity image.

    Args:
        img: [H, W] intensities in [0, 255].

    Returns:
        [36] float64: per scale, GGD (shape, variance) then for each of the four neighbour
        products AGGD (shape, mean, left variance, right variance).
    """
    window = nss.gaussian_window()
    img = np.asarray(img, np.float64)
    feats = []
    for scale in (1, 2):
        norm, _ = nss.mscn(img, window, mode="constant")
        alpha, sigma = nss.fit_ggd(norm.reshape(1, -1))
        feats += [alpha[0], sigma[0] ** 2]
        for shift in nss.BRISQUE_SHIFTS:
            pair = (norm * np.roll(norm, shift, axis=(0, 1))).reshape(1, -1)
            a, lstd, rstd = nss.fit_aggd(pair)
            mean = nss.aggd_mean(
                a, nss.std_to_scale(a, lstd), nss.std_to_scale(a, rstd)
            )
            feats += [a[0], mean[0], lstd[0] ** 2, rstd[0] ** 2]
        if scale == 1:
            img = nss.imresize(img, 0.5)
    return np.asarray(feats, np.float64)


def predict(features: np.ndarray, model: BrisqueModel) -> np.ndarray:
    """SVR prediction for features [N, 36] (unscaled). Returns [N] scores."""
    f = np.atleast_2d(features)
    scaled = -1.0 + 2.0 * (f - model.feature_min) / (
        model.feature_max - model.feature_min
    )
    d2 = np.sum((scaled[:, None, :] - model.support_vectors[None]) ** 2, axis=-1)
    return np.exp(-model.gamma * d2) @ model.coefs - model.rho


def score(
    images: np.ndarray | Sequence[np.ndarray],
    model: BrisqueModel,
    convert_to: str = "gray",
) -> np.ndarray:
    """BRISQUE of each image (lower is better).

    Args:
        images: [N, H, W, C] or a list of [H, W, C], C = 1 or 3, floats in [0, 1].
        model: the SVR model.
        convert_to: "gray" (MATLAB `rgb2gray`, as LIVE's release) or "y" (BT.601 luma).

    Returns:
        [N] float64 scores.
    """
    feats = []
    for im in base.as_image_list(images):
        lum = nss.to_luma(im[None], convert_to)[0].astype(np.float64)
        if im.shape[-1] == 1:
            lum = np.round(lum)  # the release reads uint8 images
        feats.append(brisque_features(lum))
    return predict(np.stack(feats), model)


@dataclasses.dataclass(frozen=True)
class Brisque:
    """BRISQUE as a `QualityModel` (lower is better)."""

    model: BrisqueModel
    convert_to: str = "gray"
    name: str = "brisque"
    higher_is_better: bool = False

    def score(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        return score(images, self.model, self.convert_to)


def load(
    checkpoint: str | pathlib.Path | None = None,
    range_path: str | pathlib.Path | None = None,
    convert_to: str = "gray",
) -> Brisque:
    """BRISQUE with LIVE's model, or `checkpoint` (an `.npz`, or a LIBSVM model plus `range_path`)."""
    model = (
        default_model()
        if checkpoint is None
        else load_brisque_model(checkpoint, range_path)
    )
    return Brisque(model=model, convert_to=convert_to)

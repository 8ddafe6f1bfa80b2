"""Scoring image files: read, score one by one, and keep going past unreadable files."""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Iterable

import numpy as np
from PIL import Image, UnidentifiedImageError

from unires_jax.quality import niqe
from unires_jax.quality.base import QualityModel

IMAGE_SUFFIXES = {
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
}


def read_image(path: str | pathlib.Path) -> np.ndarray:
    """Reads an image file as [H, W, 1] (grey) or [H, W, 3] (colour) float64 in [0, 1].

    Alpha is dropped, palettes are expanded, 16-bit greys are scaled by 1/65535.

    Raises:
        ValueError: the file is not a readable image (message names the file).
    """
    path = pathlib.Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(im, np.float64)[..., None] / 65535.0
            if im.mode in ("1", "L", "LA"):
                return np.asarray(im.convert("L"), np.float64)[..., None] / 255.0
            return np.asarray(im.convert("RGB"), np.float64) / 255.0
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from e


def expand_paths(paths: Iterable[str | pathlib.Path]) -> list[pathlib.Path]:
    """Files as given, folders replaced by their image files (by suffix, sorted, not recursive)."""
    out = []
    for p in map(pathlib.Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


@dataclasses.dataclass
class ScoreReport:
    """Scores of files, and the files that could not be scored.

    Attributes:
        metric: model name.
        higher_is_better: the model's direction.
        scores: path -> score, in input order.
        errors: path -> message for files that were skipped.
    """

    metric: str
    higher_is_better: bool
    scores: dict[str, float]
    errors: dict[str, str]

    @property
    def mean(self) -> float:
        vals = [v for v in self.scores.values() if not math.isnan(v)]
        return float(np.mean(vals)) if vals else math.nan

    def to_json(self) -> dict:
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "mean": None if math.isnan(self.mean) else self.mean,
            "scores": {k: None if math.isnan(v) else v for k, v in self.scores.items()},
            "errors": self.errors,
        }


def score_files(
    model: QualityModel, paths: Iterable[str | pathlib.Path]
) -> ScoreReport:
    """Scores image files one at a time (sizes may differ); unreadable or unscorable files are
    recorded in `errors` and skipped.

    Args:
        model: a quality model.
        paths: image files and/or folders of images.
    """
    scores, errors = {}, {}
    for path in expand_paths(paths):
        try:
            img = read_image(path)
            scores[str(path)] = float(model.score([img])[0])
        except (ValueError, FileNotFoundError) as e:
            errors[str(path)] = str(e)
    return ScoreReport(model.name, model.higher_is_better, scores, errors)


def fit_niqe_from_folder(
    folder: str | pathlib.Path, sharpness_threshold: float = 0.75
) -> tuple[niqe.NiqeModel, dict[str, str]]:
    """Fits a NIQE pristine model on the images of a folder.

    Returns:
        (model, errors): errors maps skipped files (unreadable, too small) to messages.
    """
    images, errors = [], {}
    for path in expand_paths([folder]):
        try:
            img = read_image(path)
        except ValueError as e:
            errors[str(path)] = str(e)
            continue
        if min(img.shape[:2]) < 96:
            errors[str(path)] = (
                f"{path}: {img.shape[0]}x{img.shape[1]} is smaller than one 96-px block"
            )
            continue
        images.append(img)
    if not images:
        raise ValueError(f"{folder}: no readable images of at least 96x96 pixels")
    model = niqe.fit_niqe_model(
        images,
        sharpness_threshold=sharpness_threshold,
        source=f"fit_niqe_model({folder})",
    )
    return model, errors

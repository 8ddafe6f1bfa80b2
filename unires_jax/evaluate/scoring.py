"""Scoring image files with a no-reference quality model: read, score one by one, and keep going
past unreadable files (`unires quality score`); fitting NIQE on a folder (`unires quality fit-niqe`)."""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Iterable

import numpy as np

from unires_jax.quality import niqe
from unires_jax.quality.base import QualityModel
from unires_jax.restore import image_io
from unires_jax.restore.inputs import collect_inputs


def read_image(path: str | pathlib.Path) -> np.ndarray:
    """An image file as quality models take it: `[H, W, 1]` (grey files) or `[H, W, 3]` float64 in
    [0, 1], read by the one reader (`restore.image_io`: display orientation, 16 bits kept, alpha
    dropped, palettes expanded).

    Raises:
        ImageReadError (a ValueError): the message names the file and says why.
    """
    return image_io.read_image(path).to_float()


def expand_paths(paths: Iterable[str | pathlib.Path]) -> list[pathlib.Path]:
    """Files as given, folders replaced by every non-hidden file in them, recursively (the same
    rule as `unires restore`: a stray non-image is reported, never silently skipped)."""
    return [item.path for item in collect_inputs(paths)]


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
            errors[str(path)] = _naming(path, e)
    return ScoreReport(model.name, model.higher_is_better, scores, errors)


def _naming(path: pathlib.Path, error: Exception) -> str:
    """The error's message, starting with the file's name if it does not name it (quality models
    report sizes and limits, not the file they were given)."""
    message = str(error)
    return message if str(path) in message else f"{path}: {message}"


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
            errors[str(path)] = _naming(path, e)
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

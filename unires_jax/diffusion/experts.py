"""The UniRes experts (prompt + image condition) and the validation of their mixing weights.

An expert is one noise prediction eps(z_t, condition, prompt). UniRes mixes K of them per
sampler step, eps~ = sum_k w_k eps_k with sum_k w_k = 1 (weights may be negative).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from unires_jax.prompts import TASK_PROMPTS

# Appendix A.7 quality words; the negative set is paired with an LQ/HQ swap during training.
POSITIVE_WORDS = (
    "photorealistic, clean, high-resolution, ultra-high definition, 4k detail, 8k resolution, "
    "masterpiece, cinematic, highly detailed."
)
NEGATIVE_WORDS = (
    "oil painting, cartoon, blur, dirty, messy, low quality, deformation, low resolution, "
    "over-smooth."
)

CONDITION_LQ = "lq"
CONDITION_DOWNLQ = "downlq"


@dataclasses.dataclass(frozen=True)
class Expert:
    """One noise predictor: a prompt applied to an image condition ("lq" or "downlq")."""

    name: str
    prompt: str
    condition: str = CONDITION_LQ


DEFAULT_EXPERTS = (
    Expert("BR", ""),
    Expert("SR", TASK_PROMPTS["sr"]),
    Expert("MD", TASK_PROMPTS["motion"]),
    Expert("DD", TASK_PROMPTS["defocus"]),
    Expert("DN", TASK_PROMPTS["denoise"]),
    Expert("DownLQ", TASK_PROMPTS["sr"], CONDITION_DOWNLQ),
)
QUALITY_WORD_EXPERTS = (
    Expert("POS", POSITIVE_WORDS),
    Expert("NEG", NEGATIVE_WORDS),
)
# Added on top of the found weights when quality words are on (A.7): +1 POS, -1 NEG.
QUALITY_WORD_WEIGHTS = {"POS": 1.0, "NEG": -1.0}

# Weight sets reported in the paper (Sec. 4.4).
PRESETS = {
    "most-popular": {"DN": -0.2, "DownLQ": 1.2},
    "average": {
        "BR": 0.07,
        "SR": 0.12,
        "MD": 0.07,
        "DD": 0.06,
        "DN": -0.15,
        "DownLQ": 0.83,
    },
}

SUM_TOLERANCE = 1e-5


class WeightError(ValueError):
    """Mixing weights that are not a valid UniRes combination."""


def weights_matrix(
    weights: Mapping[str, float] | Sequence[float] | np.ndarray,
    expert_names: Sequence[str],
    *,
    max_negative: int | None = None,
    tolerance: float = SUM_TOLERANCE,
) -> np.ndarray:
    """Validates mixing weights and returns them as float32 `[N, K]` in `expert_names` order.

    Args:
      weights: a dict by expert name (missing experts get 0), a `[K]` vector or an `[N, K]` batch.
      expert_names: the experts' names in order.
      max_negative: at most this many negative weights per vector (None: no limit).
      tolerance: allowed deviation of each vector's sum from 1.

    Raises:
      WeightError: unknown expert names, wrong shape, sum not 1 or too many negatives, each with
        the offending vector in the message.
    """
    names = list(expert_names)
    if isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise WeightError(f"unknown expert(s) {unknown}; the experts are {names}")
        matrix = np.array([[float(weights.get(n, 0.0)) for n in names]], np.float64)
    else:
        matrix = np.asarray(weights, np.float64)
        if matrix.ndim == 1:
            matrix = matrix[None]
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            raise WeightError(
                f"weights of shape {np.shape(weights)} do not match the {len(names)} experts "
                f"{names}; give a [K] vector, an [N, K] batch or a dict by name"
            )
    if not np.all(np.isfinite(matrix)):
        raise WeightError("weights contain NaN or infinity")
    sums = matrix.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > tolerance)
    if bad.size:
        i = int(bad[0])
        raise WeightError(
            f"weights must sum to 1 (within {tolerance}); vector {i} "
            f"{_describe(matrix[i], names)} sums to {sums[i]:.6g}"
        )
    if max_negative is not None:
        negatives = (matrix < 0).sum(axis=1)
        bad = np.flatnonzero(negatives > max_negative)
        if bad.size:
            i = int(bad[0])
            raise WeightError(
                f"at most {max_negative} negative weight(s) allowed; vector {i} "
                f"{_describe(matrix[i], names)} has {int(negatives[i])}"
            )
    return matrix.astype(np.float32)


def parse_weights(text: str) -> dict[str, float]:
    """Parses the CLI form "BR=0.1,SR=0.2,DownLQ=0.7" into a dict."""
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise WeightError(
                f"cannot read weight {item!r}: expected NAME=VALUE, e.g. DN=-0.2"
            )
        name = name.strip()
        if name in out:
            raise WeightError(
                f"weight {name!r} is given twice in {text!r}; give each expert once"
            )
        try:
            out[name] = float(value)
        except ValueError:
            raise WeightError(
                f"cannot read weight {item!r}: {value!r} is not a number"
            ) from None
    return out


def _describe(vector: np.ndarray, names: Sequence[str]) -> str:
    return "{" + ", ".join(f"{n}: {v:g}" for n, v in zip(names, vector) if v != 0) + "}"

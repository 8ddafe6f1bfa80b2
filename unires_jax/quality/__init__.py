"""Image-quality functions Q: a registry of no-reference models plus PSNR/SSIM.

    q = quality.get("niqe")                      # bundled pristine model (non-standard)
    q = quality.get("niqe", checkpoint="niqe_pris_params.npz")   # standard parameters
    q = quality.get("musiq", checkpoint="koniq_ckpt.npz")
    scores = q.score(images)                     # images [N, H, W, C] floats in [0, 1] -> [N]
    value = quality.objective(q, scores)         # higher is better (e.g. -NIQE), for the search

Every model is built by an explicit loader below; nothing is downloaded at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unires_jax.quality import brisque, niqe, piqe
from unires_jax.quality.base import QualityModel, objective
from unires_jax.quality.fidelity import psnr, ssim


def _load_musiq(**kwargs: Any) -> QualityModel:
    # Imported on demand: MUSIQ builds a Flax model, which the classical metrics do not need.
    try:
        from unires_jax.quality import musiq
    except ModuleNotFoundError as e:
        if e.name != "unires_jax.quality.musiq":
            raise
        raise ModuleNotFoundError(
            "quality.get('musiq'): unires_jax/quality/musiq.py is not part of this installation; "
            "use 'niqe', 'brisque' or 'piqe', or update unires-jax."
        ) from e
    return musiq.load(**kwargs)


# name -> loader(**kwargs) -> QualityModel. Loaders take `checkpoint=` where the model has one.
LOADERS: dict[str, Callable[..., QualityModel]] = {
    "niqe": niqe.load,
    "brisque": brisque.load,
    "piqe": piqe.load,
    "musiq": _load_musiq,
}


def names() -> list[str]:
    """Registered model names."""
    return list(LOADERS)


def get(name: str, **kwargs: Any) -> QualityModel:
    """Builds a registered quality model.

    Args:
        name: one of `names()`: "niqe", "brisque", "piqe", "musiq".
        **kwargs: passed to the model's loader, e.g. `checkpoint=` (NIQE parameter file, BRISQUE
            model, MUSIQ checkpoint), `crop_border=` (NIQE), `head=` (MUSIQ).

    Returns:
        An object with `.name`, `.higher_is_better` and `.score(images) -> [N]`.
    """
    if name not in LOADERS:
        raise KeyError(
            f"unknown quality model {name!r}; registered: {', '.join(LOADERS)}"
        )
    return LOADERS[name](**kwargs)


__all__ = ["LOADERS", "QualityModel", "get", "names", "objective", "psnr", "ssim"]

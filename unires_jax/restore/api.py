"""The restore interface every model family implements, and `load(checkpoint)` by family.

    from unires_jax import restore
    restorer = restore.load()                        # the embedded default model
    restorer = restore.load("my_checkpoint/", steps=8)
    out = restorer.restore(pixels, seed=0)           # pixels [H, W, 3] uint8/uint16/float [0, 1]
    out.pixels                                       # [H * scale, W * scale, 3] float32 in [0, 1]
    out.details                                      # JSON-ready facts for the sidecar

Files in and files out (`restore/batch.py`), `unires restore`, `unires eval` and the demo use
only this interface, so a new family plugs in with one entry in `FAMILIES`: a loader
`(checkpoint folder or None, *, workdir=None, **options) -> ImageRestorer`. A checkpoint's family is the tag in
its `checkpoint.json` (`unires_jax/convert/checkpoint.py`); diffusers folders and checkpoints of
the earlier format are UniRes models.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from unires_jax.convert import checkpoint as checkpoint_lib
from unires_jax.restore import anyir, residual, routing, unires
from unires_jax.restore.interface import ImageRestorer

# family tag -> loader(checkpoint folder or None (the embedded default), *, workdir, **options).
# A loader checks its options before it reads any weights, and raises OptionError for ones it does
# not take; `workdir` is a folder it may keep per-image logs in (or None), which it may ignore.
FAMILIES: dict[str, Callable[..., ImageRestorer]] = {
    unires.FAMILY: unires.load,
    residual.FAMILY: residual.load,
    anyir.FAMILY: anyir.load,
}


def family_of(checkpoint: str | os.PathLike | None) -> str:
    """The family of a checkpoint folder (None: the embedded default model's)."""
    if checkpoint is None or not checkpoint_lib.is_checkpoint(checkpoint):
        # The embedded default, a diffusers Stable Diffusion folder or an earlier-format
        # checkpoint: all UniRes (the loader says what is wrong with anything else).
        return unires.FAMILY
    return checkpoint_lib.read_family(checkpoint)


def load(
    checkpoint: str | os.PathLike | None = None,
    *,
    workdir: str | os.PathLike | None = None,
    route: str | os.PathLike | None = None,
    **options: Any,
) -> ImageRestorer:
    """Loads a checkpoint with the restorer of its family.

    Args:
      checkpoint: a checkpoint folder; None: the embedded default model.
      workdir: a folder where the restorer may keep per-image logs (e.g. UniRes's weight-search
        logs and plots, which make an interrupted run resume); None: none are kept.
      route: a route table (`restore/routing.py`): degradation types restored by other
        checkpoints (with their own stored settings); `checkpoint` and `options` make the
        restorer of every other image.
      **options: family options, e.g. UniRes's `steps=4, weights="DN=1", search="refine"`
        (see each family's loader); those left out keep the checkpoint's stored settings.

    Raises:
      OptionError: an option the family does not take, or an invalid value.
      CheckpointError: a damaged checkpoint (names the file).
      FileNotFoundError / ValueError: not a model folder, or an unknown family.
    """
    table = routing.parse_table(route) if route is not None else {}
    default = _load_one(checkpoint, workdir=workdir, **options)
    if not table:
        return default
    routes = {kind: _load_one(path) for kind, path in table.items()}
    return routing.RoutedRestorer(default, routes)


def _load_one(checkpoint, **options) -> ImageRestorer:
    family = family_of(checkpoint)
    if family not in FAMILIES:
        raise ValueError(
            f"{checkpoint}: family {family!r} has no restorer in this unires-jax; known families: "
            f"{sorted(FAMILIES)}"
        )
    return FAMILIES[family](checkpoint, **options)

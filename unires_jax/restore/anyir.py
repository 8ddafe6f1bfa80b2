"""AnyIR as an `ImageRestorer`: one forward pass of the all-in-one network, no prompts.

The photo (in [0, 1]) goes through the network in inference mode (BatchNorm with its running
statistics); the output is input + the predicted residual, clipped to [0, 1] (the official test
does not clip; its metrics do). Images of any size are padded to a multiple of 8 inside the
network and cropped back. Images with a side longer than `tile` (default 1280: every benchmark
image of the paper, GoPro's 1280 x 720 frames included, runs whole as in the official test) run
as overlapping tiles cross-faded over `tile_overlap`; the channel attention sees a tile's pixels
then, not the whole image's.

`load(checkpoint, **options)` is this family's entry in `unires_jax.restore.FAMILIES`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.models.anyir import AnyIR
from unires_jax.restore.interface import (
    OptionError,
    Restored,
    check_options,
    checkpoint_label,
)
from unires_jax.restore.restorer import to_float_image
from unires_jax.restore.tiling import tile_starts, tiled_apply

FAMILY = "anyir"


@dataclasses.dataclass(frozen=True)
class AnyIRSettings:
    """Inference options.

    Attributes:
      tile: images with a side longer than this many pixels run as tiles of this size.
      tile_overlap: minimum overlap of neighbouring tiles (cross-faded).
    """

    tile: int = 1280
    tile_overlap: int = 128

    def __post_init__(self):
        if (
            isinstance(self.tile, bool)
            or not isinstance(self.tile, int)
            or self.tile < 16
        ):
            raise ValueError(
                f"tile={self.tile!r}: expected a whole number of at least 16"
            )
        if not (
            isinstance(self.tile_overlap, int)
            and not isinstance(self.tile_overlap, bool)
            and 0 <= self.tile_overlap < self.tile
        ):
            raise ValueError(
                f"tile_overlap={self.tile_overlap!r} (--tile-overlap): expected 0 to tile - 1 "
                f"({self.tile - 1})"
            )


class AnyIRRestorer:
    """An AnyIR network (inference mode) and its settings, as the family-blind `ImageRestorer`."""

    family = FAMILY
    scale = 1

    def __init__(
        self,
        model: AnyIR,
        settings: AnyIRSettings = AnyIRSettings(),
        *,
        checkpoint: str | os.PathLike | None = None,
    ):
        model.eval()
        self.model = model
        self.settings = settings
        self.checkpoint = checkpoint
        self._graph, self._state = nnx.split(model)

    def describe(self) -> dict[str, Any]:
        cfg = self.model.cfg
        return {
            "family": FAMILY,
            "checkpoint": checkpoint_label(self.checkpoint),
            "settings": dataclasses.asdict(self.settings),
            "anyir": {
                "version": cfg.version,
                "width": cfg.width,
                "levels": list(cfg.levels),
                "dtype": jnp.dtype(cfg.dtype).name,
            },
        }

    def restore(
        self, image: np.ndarray, *, seed: int = 0, name: str | None = None
    ) -> Restored:
        """Restores `[H, W, 3]` pixels; `seed` and `name` are unused (deterministic network)."""
        del seed, name
        t0 = time.perf_counter()
        lq = to_float_image(image)
        h, w = lq.shape[:2]
        s = self.settings
        out = _restore(
            self._graph, self._state, jnp.asarray(lq)[None], s.tile, s.tile_overlap
        )
        tiles = len(tile_starts(h, s.tile, s.tile_overlap)) * len(
            tile_starts(w, s.tile, s.tile_overlap)
        )
        details = {
            "network_evaluations": tiles,
            "tiles": tiles,
            "timings": {"restore_seconds": time.perf_counter() - t0},
        }
        return Restored(np.asarray(out[0], np.float32), details)


@functools.partial(jax.jit, static_argnames=("graph", "tile", "overlap"))
def _restore(graph, state, image, tile, overlap):
    """[1, H, W, 3] in [0, 1] -> [1, H, W, 3] restored, clipped to [0, 1] (float32)."""
    model = nnx.merge(graph, state)

    def one_tile(x):
        return model(x.astype(model.cfg.dtype)).astype(jnp.float32)

    return jnp.clip(tiled_apply(one_tile, image, tile, overlap), 0.0, 1.0)


# --- the family's loader ---------------------------------------------------------------------------

SETTINGS_OPTIONS = {f.name for f in dataclasses.fields(AnyIRSettings)}
OPTIONS = SETTINGS_OPTIONS | {"dtype"}


def load(
    checkpoint: str | os.PathLike | None = None,
    *,
    workdir: str | os.PathLike | None = None,
    **options: Any,
) -> AnyIRRestorer:
    """Loads an "anyir" checkpoint (`unires convert anyir`, or `unires train --export`).

    Options: tile and tile_overlap override the checkpoint's settings (a tile size alone gets
    an overlap of tile // 8, at most 128); dtype ("float32" or "bfloat16") sets how the network
    runs.

    Raises:
      OptionError: options this family does not take, or invalid values (before any weights
        are read).
      FileNotFoundError: no checkpoint given (this family has no embedded model).
    """
    from unires_jax.convert import anyir as anyir_convert

    del workdir  # nothing is logged per image
    check_options(FAMILY, options, OPTIONS)
    given = {k: v for k, v in options.items() if v is not None}
    settings = {k: v for k, v in given.items() if k in SETTINGS_OPTIONS}
    if (
        "tile" in settings
        and "tile_overlap" not in settings
        and isinstance(settings["tile"], int)
    ):
        settings["tile_overlap"] = max(0, min(128, settings["tile"] // 8))
    dtype = given.get("dtype", "float32")
    if dtype not in ("float32", "bfloat16"):
        raise OptionError(f"dtype={dtype!r}: expected float32 or bfloat16")
    try:
        AnyIRSettings(**settings)
    except (TypeError, ValueError) as e:
        raise OptionError(str(e)) from None
    if checkpoint is None:
        raise FileNotFoundError(
            "the AnyIR family has no embedded model: convert the official weights with "
            "`unires convert anyir epoch=E-step=S.ckpt DIR --allow-pickle` (or train one with "
            "`unires train --config=configs/anyir_released.py --export DIR`) and pass "
            "--checkpoint DIR"
        )
    model, stored = anyir_convert.load_anyir_checkpoint(
        checkpoint, dtype=jnp.dtype(dtype)
    )
    defaults = {k: v for k, v in stored.items() if k in SETTINGS_OPTIONS}
    return AnyIRRestorer(
        model, AnyIRSettings(**{**defaults, **settings}), checkpoint=checkpoint
    )

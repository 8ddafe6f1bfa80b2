"""Residual diffusion (FoundIR) as an `ImageRestorer`: the photo in, the deterministic sampler of
`diffusion/residual.py` on the DiffUIR UNet, the restored photo out.

As the official test: the image is mapped to [-1, 1], sampled in 4 steps (t = 999, 749, 499,
249) from 0.2995 LQ + 0.1 noise, and returned as clip(LQ - R_hat). Images with a side longer
than `tile` run as tiles of `tile` overlapping by `tile_overlap` (official: 1024 at stride
512; the last ones flush with the edges, so every pixel is covered whatever the shape), each
tile drawing its part of one noise field of the whole image, and overlaps are averaged
("average", the official blend) or cross-faded ("smooth"). Memory is set by the tile size:
`--tile 512 --tile-overlap 128` for small machines.

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

from unires_jax.diffusion import residual as residual_lib
from unires_jax.models.diffuir import DiffUIRUNet
from unires_jax.restore.interface import Restored, check_options, checkpoint_label
from unires_jax.restore.restorer import to_float_image
from unires_jax.restore.tiling import tile_starts, tiled_apply

FAMILY = "residual"
BLENDS = ("average", "smooth")


@dataclasses.dataclass(frozen=True)
class ResidualSettings:
    """Inference options (defaults: the official test).

    Attributes:
      steps: sampler steps (network calls).
      start_scale: std of the starting noise (official 0.1).
      tile: images with a side longer than this many pixels run as tiles of this size.
      tile_overlap: minimum overlap of neighbouring tiles (official: half a tile).
      blend: "average" (the official equal-weight average of overlaps) or "smooth"
        (raised-cosine cross-fade across the overlaps).
    """

    steps: int = residual_lib.SAMPLING_STEPS
    start_scale: float = residual_lib.START_SCALE
    tile: int = 1024
    tile_overlap: int = 512
    blend: str = "average"

    def __post_init__(self):
        for name, value, lo in (("steps", self.steps, 1), ("tile", self.tile, 16)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(
                    f"{name}={value!r}: expected a whole number of at least {lo}"
                )
        if self.steps > 1000:
            raise ValueError(f"steps={self.steps}: at most the 1000 training timesteps")
        if not (
            isinstance(self.tile_overlap, int) and 0 <= self.tile_overlap < self.tile
        ):
            raise ValueError(
                f"tile_overlap={self.tile_overlap!r} (--tile-overlap): expected 0 to tile - 1 "
                f"({self.tile - 1})"
            )
        if self.blend not in BLENDS:
            raise ValueError(f"blend={self.blend!r}: expected one of {BLENDS}")
        if not 0.0 <= float(self.start_scale) <= 1.0:
            raise ValueError(f"start_scale={self.start_scale!r}: expected 0 to 1")


class ResidualRestorer:
    """A residual-diffusion model and its settings, as the family-blind `ImageRestorer`."""

    family = FAMILY
    scale = 1

    def __init__(
        self,
        unet: DiffUIRUNet,
        schedule: residual_lib.ResidualSchedule,
        settings: ResidualSettings = ResidualSettings(),
        *,
        checkpoint: str | os.PathLike | None = None,
    ):
        self.unet = unet
        self.schedule = schedule
        self.settings = settings
        self.checkpoint = checkpoint
        self._graph, self._state = nnx.split(unet)

    def describe(self) -> dict[str, Any]:
        cfg = self.unet.cfg
        return {
            "family": FAMILY,
            "checkpoint": checkpoint_label(self.checkpoint),
            "settings": dataclasses.asdict(self.settings),
            "unet": {
                "dim": cfg.dim,
                "dim_mults": list(cfg.dim_mults),
                "dtype": jnp.dtype(cfg.dtype).name,
            },
        }

    def restore(
        self, image: np.ndarray, *, seed: int = 0, name: str | None = None
    ) -> Restored:
        t0 = time.perf_counter()
        lq = to_float_image(image)
        h, w = lq.shape[:2]
        noise = jax.random.normal(jax.random.key(seed), (1, h, w, 3), jnp.float32)
        s = self.settings
        out = _restore(
            self._graph,
            self._state,
            self.schedule,
            jnp.concatenate([jnp.asarray(lq)[None] * 2.0 - 1.0, noise], axis=-1),
            steps=s.steps,
            start_scale=float(s.start_scale),
            tile=s.tile,
            overlap=s.tile_overlap,
            flat=s.blend == "average",
        )
        pixels = np.asarray((out[0] + 1.0) / 2.0, np.float32)
        tiles = len(tile_starts(h, s.tile, s.tile_overlap)) * len(
            tile_starts(w, s.tile, s.tile_overlap)
        )
        details = {
            "network_evaluations": s.steps * tiles,
            "tiles": tiles,
            "timings": {"sample_seconds": time.perf_counter() - t0},
        }
        return Restored(np.clip(pixels, 0.0, 1.0), details)


@functools.partial(
    jax.jit,
    static_argnames=("graph", "steps", "start_scale", "tile", "overlap", "flat"),
)
def _restore(
    graph, state, schedule, lq_and_noise, *, steps, start_scale, tile, overlap, flat
):
    """[1, H, W, 6] (LQ in [-1, 1], then the noise) -> [1, H, W, 3] restored in [-1, 1]."""
    unet = nnx.merge(graph, state)

    def one_tile(x):
        lq, noise = x[..., :3], x[..., 3:]
        return residual_lib.sample(
            unet, lq, schedule, noise=noise, steps=steps, start_scale=start_scale
        )

    return tiled_apply(one_tile, lq_and_noise, tile, overlap, flat=flat)


# --- the family's loader ---------------------------------------------------------------------------

SETTINGS_OPTIONS = {f.name for f in dataclasses.fields(ResidualSettings)}
OPTIONS = SETTINGS_OPTIONS | {"dtype", "attention"}


def load(
    checkpoint: str | os.PathLike | None = None,
    *,
    workdir: str | os.PathLike | None = None,
    **options: Any,
) -> ResidualRestorer:
    """Loads a "residual" checkpoint (`unires convert foundir`) as an `ImageRestorer`.

    Options: `ResidualSettings` fields (steps, start_scale, tile, tile_overlap, blend)
    override the checkpoint's settings (a tile size alone gets half a tile of overlap, as the
    official 1024 / 512); dtype and attention set how the UNet runs.

    Raises:
      OptionError: options this family does not take, or invalid values (before any weights
        are read).
    """
    from unires_jax.convert import foundir
    from unires_jax.restore.interface import OptionError

    del workdir  # nothing is logged per image
    check_options(FAMILY, options, OPTIONS)
    given = {k: v for k, v in options.items() if v is not None}
    settings = {k: v for k, v in given.items() if k in SETTINGS_OPTIONS}
    if (
        "tile" in settings
        and "tile_overlap" not in settings
        and isinstance(settings["tile"], int)
    ):
        settings["tile_overlap"] = (
            settings["tile"] // 2
        )  # the official half-tile overlap
    try:
        ResidualSettings(**settings)
    except (TypeError, ValueError) as e:
        raise OptionError(str(e)) from None
    if checkpoint is None:
        raise FileNotFoundError(
            "the residual-diffusion family has no embedded model: convert FoundIR's weights "
            "with `unires convert foundir model-2000.pt DIR --allow-pickle` and pass "
            "--checkpoint DIR"
        )
    unet, stored = foundir.load_foundir_checkpoint(
        checkpoint,
        dtype=jnp.dtype(given.get("dtype", "float32")),
        attention=given.get("attention"),
    )
    schedule = residual_lib.residual_schedule(**stored.pop("schedule"))
    defaults = {k: v for k, v in stored.items() if k in SETTINGS_OPTIONS}
    return ResidualRestorer(
        unet,
        schedule,
        ResidualSettings(**{**defaults, **settings}),
        checkpoint=checkpoint,
    )

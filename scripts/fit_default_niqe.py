"""Fits the bundled NIQE pristine model on the photos that ship with scikit-image.

Run from the repository root (a few seconds on CPU):
    python scripts/fit_default_niqe.py [OUT]
OUT defaults to unires_jax/quality/assets/niqe_skimage_pristine.npz.

The standard NIQE parameters (LIVE's modelparameters.mat, BasicSR's niqe_pris_params.npz) were
fitted on 125 pristine photos that are not redistributable here; this model uses the eleven
natural photographs bundled inside the scikit-image wheel (no download), with the standard
procedure (96-px blocks, sharpness threshold 0.75). Scores computed with it are comparable with
each other but NOT with published NIQE numbers.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import skimage.data

from unires_jax.quality import niqe

# Natural photographs shipped in the scikit-image wheel (skimage/data/*.png|jpg); no fetcher.
PHOTOS = {
    "astronaut": skimage.data.astronaut,
    "camera": skimage.data.camera,
    "chelsea": skimage.data.chelsea,
    "coffee": skimage.data.coffee,
    "coins": skimage.data.coins,
    "rocket": skimage.data.rocket,
    "motorcycle_left": lambda: skimage.data.stereo_motorcycle()[0],
    "motorcycle_right": lambda: skimage.data.stereo_motorcycle()[1],
    "brick": skimage.data.brick,
    "grass": skimage.data.grass,
    "gravel": skimage.data.gravel,
}


def load_photos() -> list[np.ndarray]:
    """The bundled photos as [H, W, C] floats in [0, 1] (grey ones get C = 1)."""
    out = []
    for fn in PHOTOS.values():
        im = np.asarray(fn())
        im = im[..., None] if im.ndim == 2 else im[..., :3]
        out.append(im.astype(np.float64) / 255.0)
    return out


def main(argv: list[str]) -> int:
    out = pathlib.Path(argv[1]) if len(argv) > 1 else niqe.DEFAULT_MODEL_PATH
    model = niqe.fit_niqe_model(
        load_photos(), source="scikit-image sample photos: " + ", ".join(PHOTOS)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    niqe.save_niqe_model(model, out)
    print(f"wrote {out}: NIQE model from {len(PHOTOS)} photos")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Geometric self-ensemble: restore flipped / rotated copies of the input and average them.

The eight symmetries of the square (EDSR's "x8 self-ensemble", Lim et al. 2017). Each copy is
restored with its own sampling seed and mapped back, so the mean also averages the texture a
diffusion sampler invents differently each time: it moves the output toward the posterior mean,
which raises PSNR and smooths texture. Restoration operators (blur, noise, downscaling) are as
likely in any orientation, so every copy is a valid input.

Ensembles of 2 and 4 use only the transforms that keep the image's height and width (flips and
the half turn); 8 adds the four that transpose it.
"""

from __future__ import annotations

import numpy as np

ENSEMBLE_SIZES = (1, 2, 4, 8)

# (transpose first, flip rows, flip columns): identity, horizontal flip, vertical flip, half
# turn, then the transposing four (transpose, quarter turns both ways, anti-transpose).
_TRANSFORMS = (
    (False, False, False),
    (False, False, True),
    (False, True, False),
    (False, True, True),
    (True, False, False),
    (True, False, True),
    (True, True, False),
    (True, True, True),
)


def check_ensemble_size(size: int) -> int:
    """`size` if it is 1, 2, 4 or 8; else a ValueError that says what to use."""
    if (
        isinstance(size, bool)
        or not isinstance(size, int | np.integer)
        or size not in ENSEMBLE_SIZES
    ):
        raise ValueError(
            f"ensemble={size!r}: use one of {ENSEMBLE_SIZES} (1 = no self-ensemble; 2 and 4 "
            "flip the image, 8 also transposes it)"
        )
    return int(size)


def transform(image: np.ndarray, index: int) -> np.ndarray:
    """The `index`-th symmetry (0 = identity) of `[H, W, ...]` (a view; copy before writing)."""
    transpose, flip_rows, flip_cols = _TRANSFORMS[index]
    if transpose:
        image = np.swapaxes(image, 0, 1)
    if flip_rows:
        image = image[::-1]
    if flip_cols:
        image = image[:, ::-1]
    return image


def inverse_transform(image: np.ndarray, index: int) -> np.ndarray:
    """Undoes `transform(., index)` on `[H, W, ...]`."""
    transpose, flip_rows, flip_cols = _TRANSFORMS[index]
    if flip_cols:
        image = image[:, ::-1]
    if flip_rows:
        image = image[::-1]
    if transpose:
        image = np.swapaxes(image, 0, 1)
    return image

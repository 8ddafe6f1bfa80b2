"""Restoring a small image at `factor` times its size, consistent with the image given.

UniRes restores at the size of its input (the paper upsamples a low-resolution image before
encoding it), so x`factor` super-resolution starts from the input upscaled by bicubic
interpolation, the same operator the training pipeline uses to bring a downscaled photo back
to size. The network then invents the detail the input lacks, and may also shift what the input
does show. `InputConsistency.project` removes the latter: the restored image x is replaced by
the image nearest to it (least squares) whose x`factor` antialiased bicubic downscale
(MATLAB `imresize`, the usual SR benchmark operator) is exactly the input y:

    x + D^+ (y - D x),    D^+ = D^T (D D^T)^-1

the range-null-space split of DDNM (Wang et al. 2023) and the classic back-projection of
Irani & Peleg (1991) in closed form. D is separable, so D^+ is too: one `[H, h]` matrix per axis.
The projection is affine with coefficients summing to 1, so it commutes with averaging
(self-ensembles, expert mixtures of finished images).

It assumes the input was made by that downscale; for a noisy or compressed small image the
projection puts the input's noise back at its own scale (`RestoreSettings.consistency=False`).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from unires_jax.data.degradations.resize import resize_image, resize_matrix

MAX_UPSCALE = 8
# The training pipeline's upscale (torch-style bicubic, a = -0.75) and the benchmark downscale.
UPSCALE_METHOD = "bicubic"
DOWNSCALE_METHOD = "bicubic_aa"


def check_upscale(factor: int) -> int:
    """`factor` as an int in 1..MAX_UPSCALE, or a ValueError that says what is allowed."""
    if (
        isinstance(factor, bool)
        or int(factor) != factor
        or not 1 <= factor <= MAX_UPSCALE
    ):
        raise ValueError(
            f"upscale={factor!r}: expected a whole number from 1 (restore at the input's size) "
            f"to {MAX_UPSCALE}"
        )
    return int(factor)


def upscale_input(image: np.ndarray, factor: int) -> np.ndarray:
    """`[h, w, C]` float in [0, 1] -> `[factor h, factor w, C]` bicubic, clipped to [0, 1]."""
    factor = check_upscale(factor)
    h, w = image.shape[:2]
    if factor == 1:
        return np.asarray(image, np.float32)
    return np.clip(
        resize_image(image, (h * factor, w * factor), UPSCALE_METHOD), 0.0, 1.0
    )


def _pseudo_inverse(down: np.ndarray) -> np.ndarray:
    """D^T (D D^T)^-1 of a full-row-rank `[h, H]` downscale matrix -> `[H, h]`."""
    gram = down @ down.T
    return np.linalg.solve(gram, down).T


@dataclasses.dataclass(frozen=True)
class InputConsistency:
    """The small input `source` `[h, w, 3]` and the x`factor` downscale that should give it back.

    `project(images)` maps restorations `[..., h * factor, w * factor, 3]` onto that constraint.
    """

    source: np.ndarray
    factor: int
    rows: np.ndarray  # [h, H] downscale along the height
    rows_pinv: np.ndarray  # [H, h]
    cols: np.ndarray  # [w, W] downscale along the width
    cols_pinv: np.ndarray  # [W, w]

    @classmethod
    def of(cls, source: np.ndarray, factor: int) -> InputConsistency:
        factor = check_upscale(factor)
        h, w = np.shape(source)[:2]
        rows = resize_matrix(h * factor, h, DOWNSCALE_METHOD)
        cols = resize_matrix(w * factor, w, DOWNSCALE_METHOD)
        # Solved in float64, applied in float32: half the memory for big images, and the
        # matrices are well conditioned (D D^T has condition number ~2).
        f32 = functools.partial(np.asarray, dtype=np.float32)
        return cls(
            f32(source),
            factor,
            f32(rows),
            f32(_pseudo_inverse(rows)),
            f32(cols),
            f32(_pseudo_inverse(cols)),
        )

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the images this projects."""
        return self.rows.shape[1], self.cols.shape[1]

    def downscale(self, images: np.ndarray) -> np.ndarray:
        """D x: `[..., H, W, C]` -> `[..., h, w, C]` float32."""
        return np.einsum(
            "ij,...jkc,lk->...ilc",
            self.rows,
            np.asarray(images, np.float32),
            self.cols,
            optimize=True,
        )

    def project(self, images: np.ndarray) -> np.ndarray:
        """The nearest images to `images` `[..., H, W, 3]` whose downscale is `source`, clipped
        to [0, 1] (clipping moves them off the constraint only where it is out of range)."""
        images = np.asarray(images)
        if images.shape[-3:-1] != self.shape:
            raise ValueError(
                f"input consistency: images of {images.shape[-3:-1]} px, expected "
                f"{self.shape} (the {self.source.shape[:2]} input x{self.factor})"
            )
        residual = self.source - self.downscale(images)
        correction = np.einsum(
            "ij,...jkc,lk->...ilc",
            self.rows_pinv,
            residual,
            self.cols_pinv,
            optimize=True,
        )
        return np.clip(images + correction, 0.0, 1.0).astype(np.float32)

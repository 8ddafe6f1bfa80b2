"""The plain default (`unires restore photo.png`, no options) on a held-out real photo never returns
a worse photo than it was given, whatever the damage (the issue's "never worse" rule; the figures
on every held-out photo are benchmarks/real_photos.py's, BENCHMARKS.md #29)."""

import numpy as np
import pytest

from unires_jax import restore
from unires_jax.data import real_photos
from unires_jax.data.degradations import specs

CASES = (
    "noise:5",
    "noise:25",
    "jpeg:90",
    "jpeg:10",
    "blur:2",
    "motion:9@30",
    "defocus:3",
    "blur:1+noise:15+jpeg:40",
    "down:4",
)


def _psnr(image, reference):
    error = np.mean((np.round(np.clip(image, 0, 1) * 255) / 255 - reference) ** 2)
    return np.inf if error == 0 else 10 * np.log10(1 / error)


@pytest.mark.slow
def test_the_default_never_makes_a_held_out_photo_worse():
    photo = real_photos.load("grace_hopper", 256)  # held out; matplotlib ships it
    assert "grace_hopper" in real_photos.HELDOUT
    plain = restore.load()
    upscaling = restore.load(upscale=4)
    clean = plain.restore(photo, seed=0).pixels
    assert _psnr(clean, photo) >= 35.0
    from unires_jax.restore.upscale import upscale_input

    for index, case in enumerate(CASES):
        degradation = specs.parse(case)
        lq = degradation.apply(photo, np.random.default_rng(index))
        restorer = upscaling if degradation.scale > 1 else plain
        out = restorer.restore(lq, seed=0).pixels
        baseline = upscale_input(lq, degradation.scale)
        assert _psnr(out, photo) >= _psnr(baseline, photo) - 1e-6, case

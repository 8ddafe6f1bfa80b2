"""TIFF inputs Pillow does not read right: 16-bit multi-channel TIFFs (Pillow decodes them at 8
bits) and float TIFFs (values in [0, 1] become 16-bit integers; others are refused, naming the
range), read with tifffile (a scikit-image dependency).
"""

from __future__ import annotations

import pathlib
import struct

import numpy as np

from unires_jax.restore.image_io import (
    ImageReadError,
    LoadedImage,
    apply_orientation,
    from_array,
)

_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


def is_deep_colour(path: pathlib.Path) -> bool:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        return page.bitspersample > 8 and page.samplesperpixel > 1


def read_deep(path: pathlib.Path) -> np.ndarray:
    """A 16-bit multi-channel TIFF -> [H, W, C] uint16 (C = 2, 3 or 4)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        array, axes, photometric = page.asarray(), page.axes, page.photometric
    if "S" in axes and axes.index("S") != len(axes) - 1:
        array = np.moveaxis(array, axes.index("S"), -1)
    colour_model = (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB)
    if (
        array.ndim != 3
        or array.dtype != np.uint16
        or array.shape[-1] not in (2, 3, 4)
        or photometric not in colour_model  # e.g. 16-bit CMYK, not RGBA
    ):
        raise ImageReadError(
            f"{path}: TIFF with {array.dtype} samples, axes {axes} and photometric "
            f"{_name(photometric)} is not supported; save it as 8- or 16-bit RGB(A) or grey"
        )
    return array


def _name(tag_value) -> str:
    """A tifffile enum value's name (unknown values are plain ints)."""
    return getattr(tag_value, "name", str(tag_value))


def is_float(path: pathlib.Path) -> bool:
    with open(path, "rb") as f:
        if f.read(4) not in _TIFF_MAGIC:
            return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return tif.pages[0].sampleformat == tifffile.SAMPLEFORMAT.IEEEFP
    except (OSError, ValueError, IndexError, EOFError, struct.error):
        return False  # a damaged TIFF: Pillow's attempt names the problem


def read_float(path: pathlib.Path) -> LoadedImage:
    """A float TIFF (grey or RGB, with or without alpha) with values in [0, 1] -> 16 bits."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        array, axes, photometric = page.asarray(), page.axes, page.photometric
        n_pages = len(tif.pages)
        orientation = int(page.tags.valueof("Orientation", 1))
        icc = page.tags.valueof("InterColorProfile") or None
    notes = []
    if n_pages > 1:
        notes.append(f"the file holds {n_pages} frames; only the first is restored")
    if "S" in axes and axes.index("S") != len(axes) - 1:
        array = np.moveaxis(array, axes.index("S"), -1)
    channels = 1 if array.ndim == 2 else array.shape[-1]
    grey = photometric == tifffile.PHOTOMETRIC.MINISBLACK and channels in (1, 2)
    rgb = photometric == tifffile.PHOTOMETRIC.RGB and channels in (3, 4)
    if array.ndim not in (2, 3) or not (grey or rgb):
        raise ImageReadError(
            f"{path}: TIFF with {array.dtype} samples, axes {axes} and photometric "
            f"{_name(photometric)} is not supported; save it as RGB(A) or grey"
        )
    if orientation not in range(1, 9):
        notes.append(f"invalid EXIF orientation {orientation} ignored")
        orientation = 1
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels] + f";{array.dtype}"
    pixels = float_to_uint16(path, array, notes)
    return from_array(
        path,
        apply_orientation(pixels, orientation),
        array.dtype.itemsize * 8,
        notes,
        fmt="TIFF",
        mode=mode,
        orientation=orientation,
        icc=icc,
    )


def float_to_uint16(
    path: pathlib.Path, array: np.ndarray, notes: list[str]
) -> np.ndarray:
    """Float samples in [0, 1] -> uint16 (rounded); other values are refused, naming the range."""
    if not np.isfinite(array).all():
        raise ImageReadError(
            f"{path}: {array.dtype} samples include NaN or infinite values; save an image with "
            "values in [0, 1] (or as 8- or 16-bit integers)"
        )
    lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if lo < 0.0 or hi > 1.0:
        raise ImageReadError(
            f"{path}: {array.dtype} samples range from {lo:g} to {hi:g}, outside [0, 1] "
            "(linear HDR data?). Scale them into [0, 1] (e.g. divide by the maximum, or "
            "tone-map HDR images) or save the image as 8- or 16-bit integers"
        )
    notes.append(f"{array.dtype} samples in [0, 1] read as 16-bit integers (rounded)")
    return np.round(array.astype(np.float64) * 65535.0).astype(np.uint16)

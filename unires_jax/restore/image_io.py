"""Image files in and out of the restorer: PNG, JPEG, WebP and TIFF, 8 and 16 bits per sample.

Reading returns the pixels in display orientation (EXIF orientation applied) as `[H, W, 3]`
uint8 or uint16 (grey replicated to RGB, palettes expanded) with any alpha channel kept aside,
plus an `ImageInfo` saying what the file held. Writing takes the restorer's float RGB output and
puts it back in the input's layout: grey inputs are written as grey (luma), alpha is re-attached
unchanged, and 16-bit inputs are written with 16 bits where the format holds them.

Pillow decodes 16-bit RGB(A) PNG and TIFF to 8 bits and cannot write them, so those go through
a small vectorised PNG codec (`restore/png.py`) and tifffile (`restore/tiff.py`).
Float TIFFs (read by tifffile) must hold values in [0, 1]; they become 16-bit integers.

Colour profiles: an embedded ICC profile for the colour space of the pixels handed out (RGB, or
grey for grey images) is copied to the output unchanged, since the pixels stay in that space.
CMYK (and Lab, YCbCr) pixels with a profile for their colour space are converted to sRGB with it
(littlecms, through Pillow's ImageCms) and the output carries an sRGB profile; without one,
Pillow's naive conversion is used. A profile that fits neither is not copied. Every such step
is recorded in `ImageInfo.notes` (`restore/icc.py`).

Files are written atomically: a temporary file in the destination folder, fsync, `os.replace`.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
import tempfile
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from unires_jax.restore import icc as icc_lib
from unires_jax.restore.png import PNGError, read_png, write_png  # noqa: F401 - re-exported

# Pillow format name -> the suffix `--format same` writes.
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif"}
# Suffixes of files that are expected to be images (used to word errors, not to filter).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}
OUTPUT_FORMATS = ("png", "same")

_EXIF_ORIENTATION = 0x0112
_GREY_16 = ("I;16", "I;16L", "I;16B", "I;16N")
# Pillow modes converted to RGB on reading (no alpha, 8 bits).
_TO_RGB = ("RGBX", "CMYK", "YCbCr", "LAB", "HSV")
# ITU-R BT.601 luma, as Pillow's convert("L").
_LUMA = np.array([0.299, 0.587, 0.114], np.float64)


class ImageReadError(ValueError):
    """A file that cannot be read as an image; the message names the file and the reason."""


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What an input file held (recorded in the sidecar).

    Attributes:
      path: the file.
      format: Pillow format name: "PNG", "JPEG", "WEBP" or "TIFF".
      mode: the file's Pillow mode before conversion ("RGB", "L", "I;16", "P", "RGBA", ...).
      grey: the image has one colour channel (written back as grey).
      has_alpha: an alpha channel was kept aside (written back unchanged).
      bit_depth: bits per sample of the pixels handed to the restorer (8 or 16).
      file_bit_depth: bits per sample in the file.
      width, height: size in display orientation.
      orientation: the EXIF orientation that was applied (1: none).
      notes: conversions worth knowing about (palette expanded, precision lost, ...).
      icc_profile: the colour profile written to the output: the embedded one when it
        describes the pixels handed out (RGB, or grey), an sRGB profile after a CMYK -> sRGB
        conversion, else None (see the notes).
    """

    path: str
    format: str
    mode: str
    grey: bool
    has_alpha: bool
    bit_depth: int
    file_bit_depth: int
    width: int
    height: int
    orientation: int = 1
    notes: tuple[str, ...] = ()
    icc_profile: bytes | None = dataclasses.field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["icc_profile"] = self.icc_profile is not None
        out["notes"] = list(self.notes)
        return out


@dataclasses.dataclass
class LoadedImage:
    """An input image ready for `Restorer.restore`.

    Attributes:
      pixels: `[H, W, 3]` uint8 or uint16, display orientation (grey replicated to RGB).
      alpha: `[H, W]` with the dtype of `pixels`, or None.
      info: what the file held.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    info: ImageInfo

    def to_float(self) -> np.ndarray:
        """The colour as float64 in [0, 1]: `[H, W, 1]` for grey files (so quality models score
        their luma as it is), else `[H, W, 3]`; alpha is left out."""
        peak = 65535.0 if self.pixels.dtype == np.uint16 else 255.0
        values = self.pixels.astype(np.float64) / peak
        return values[..., :1] if self.info.grey else values


# --- reading ---------------------------------------------------------------------------------


def read_image(path: str | os.PathLike) -> LoadedImage:
    """Reads an image file for restoration.

    Raises:
      ImageReadError: missing, unreadable, truncated, non-image or unsupported file; the
        message names the file and says why.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if not path.is_file():
        raise ImageReadError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ImageReadError(
            f"{path}: empty file (0 bytes); the copy or download may not have finished"
        )
    try:
        from unires_jax.restore import (
            tiff,  # imports this module: TIFF reading builds on it
        )

        if tiff.is_float(path):  # Pillow cannot open float RGB TIFFs
            return tiff.read_float(path)
        with Image.open(path) as im:
            if im.format not in FORMATS:
                raise ImageReadError(
                    f"{path}: {im.format} images are not supported; convert it to PNG, JPEG, "
                    "WebP or TIFF"
                )
            return _read_opened(path, im)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        damaged = path.suffix.lower() in IMAGE_SUFFIXES
        raise ImageReadError(
            f"{path}: not a readable image (unknown file format"
            + ("; the file may be damaged)" if damaged else ")")
        ) from None
    except (
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        Image.DecompressionBombError,
    ) as e:
        raise ImageReadError(f"{path}: cannot decode the image: {e}") from e


def _read_opened(path: pathlib.Path, im: Image.Image) -> LoadedImage:
    fmt, mode = im.format, im.mode
    rawmode = _rawmode(
        im
    )  # before getexif(), which may decode the image and clear the tiles
    notes = []
    n_frames = getattr(im, "n_frames", 1)
    if n_frames > 1:
        notes.append(f"the file holds {n_frames} frames; only the first is restored")
    orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    if orientation not in range(1, 9):
        notes.append(f"invalid EXIF orientation {orientation} ignored")
        orientation = 1
    icc = im.info.get("icc_profile") or None
    meta = {"fmt": fmt, "mode": mode, "orientation": orientation, "icc": icc}

    if fmt == "PNG" and mode in ("RGB", "RGBA", "LA") and rawmode.endswith(";16B"):
        if not im.info.get("interlace"):
            pixels, has_key = read_png(path.read_bytes())
            if has_key:
                notes.append("tRNS colour key of a 16-bit PNG ignored (no alpha added)")
            meta["mode"] = (
                rawmode  # e.g. "LA;16B": Pillow calls 16-bit grey+alpha "RGBA"
            )
            return from_array(
                path, apply_orientation(pixels, orientation), 16, notes, **meta
            )
        notes.append(
            "interlaced 16-bit colour PNG: Pillow decodes it at 8 bits per sample"
        )
    from unires_jax.restore import tiff

    if fmt == "TIFF" and tiff.is_deep_colour(path):
        pixels = tiff.read_deep(path)
        meta["mode"] = rawmode
        return from_array(
            path, apply_orientation(pixels, orientation), 16, notes, **meta
        )

    im.load()  # decodes now, so truncated data fails here, naming this file
    if orientation != 1:
        im = ImageOps.exif_transpose(im)
    if mode in ("I", *_GREY_16, "F"):
        array = np.asarray(im)
        if mode == "F":  # only when tifffile could not read the file
            return from_array(
                path, tiff.float_to_uint16(path, array, notes), 32, notes, **meta
            )
        if mode == "I" and array.size and (array.min() < 0 or array.max() > 65535):
            raise ImageReadError(
                f"{path}: 32-bit integer samples range from {array.min()} to {array.max()}, "
                "outside 16 bits (0 to 65535); save it as 8- or 16-bit"
            )
        return from_array(path, array.astype(np.uint16), 16, notes, **meta)
    if mode == "1":
        notes.append("1-bit image read as 8-bit grey")
        im = im.convert("L")
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        notes.append(f"palette expanded to {'RGBA' if has_alpha else 'RGB'}")
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("L", "RGB") and "transparency" in im.info:
        notes.append("transparent colour key turned into an alpha channel")
        im = im.convert("LA" if mode == "L" else "RGBA")
    elif mode in ("La", "RGBa"):
        im = im.convert(mode.upper())
    elif mode in _TO_RGB:
        im, meta["icc"] = icc_lib.convert_to_rgb(im, icc, notes)
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        raise ImageReadError(
            f"{path}: unsupported image mode {mode}; save it as RGB or grey"
        )
    file_depth = 16 if ";16" in rawmode else 8
    return from_array(path, np.asarray(im), file_depth, notes, **meta)


def _rawmode(im: Image.Image) -> str:
    """The decoder's raw mode, e.g. "RGB;16B" for a 16-bit RGB PNG that Pillow reads as RGB."""
    if not im.tile:
        return ""
    args = im.tile[0].args
    return args if isinstance(args, str) else str(args[0])


def from_array(
    path, array, file_depth, notes, *, fmt, mode, orientation, icc
) -> LoadedImage:
    """[H, W], [H, W, 2] (grey+alpha), [H, W, 3] or [H, W, 4] -> LoadedImage."""
    if array.ndim == 2:
        array = array[..., None]
    grey = array.shape[-1] in (1, 2)
    has_alpha = array.shape[-1] in (2, 4)
    colour = array[..., :1] if grey else array[..., :3]
    pixels = np.ascontiguousarray(np.repeat(colour, 3, axis=-1) if grey else colour)
    alpha = np.ascontiguousarray(array[..., -1]) if has_alpha else None
    notes = list(notes)
    icc = icc_lib.output_profile(icc, grey, notes)
    info = ImageInfo(
        path=str(path),
        format=fmt,
        mode=mode,
        grey=grey,
        has_alpha=has_alpha,
        bit_depth=16 if pixels.dtype == np.uint16 else 8,
        file_bit_depth=file_depth,
        width=pixels.shape[1],
        height=pixels.shape[0],
        orientation=orientation,
        notes=tuple(notes),
        icc_profile=icc,
    )
    return LoadedImage(pixels, alpha, info)


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turns `[H, W, ...]` stored pixels into display orientation, as `ImageOps.exif_transpose`."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation](array))


# --- writing ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EncodedImage:
    """An output file's bytes and what they hold (recorded in the sidecar)."""

    data: bytes
    format: str
    mode: str
    bit_depth: int
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "mode": self.mode,
            "bit_depth": self.bit_depth,
            "notes": list(self.notes),
        }


def output_suffix(input_format: str | None, output_format: str) -> str:
    """The output file's suffix: ".png", or the input's format with `output_format="same"`.

    `input_format` is a Pillow format name (None: unknown, e.g. an unreadable file).
    """
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(
            f"output format {output_format!r}: choose one of {OUTPUT_FORMATS}"
        )
    if output_format == "png" or input_format not in FORMATS:
        return ".png"
    return FORMATS[input_format]


def sniff_format(path: str | os.PathLike) -> str | None:
    """The Pillow format name from the file's header (no decoding), or None if unreadable."""
    try:
        with Image.open(path) as im:
            return im.format
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError):
        return None


def encode_output(
    restored: np.ndarray,
    source: LoadedImage,
    output_format: str = "png",
    upscale: int = 1,
) -> EncodedImage:
    """Encodes the restorer's output in the input's layout (grey/RGB, alpha, bit depth).

    Args:
      restored: `[H, W, 3]` float in [0, 1], `upscale` times the input's display size.
      source: the input as read (its alpha, grey flag and bit depth are reproduced; the alpha
        channel is upscaled like the image).
      output_format: "png" or "same" (the input's format).
      upscale: the restorer's `RestoreSettings.upscale`.
    """
    info = source.info
    restored = np.asarray(restored, np.float64)
    expected = (info.height * upscale, info.width * upscale, 3)
    if restored.shape != expected:
        raise ValueError(
            f"{info.path}: restored image has shape {restored.shape}, expected {expected}"
        )
    output_suffix(info.format, output_format)  # validates output_format
    fmt = "PNG" if output_format == "png" else info.format
    depth_ok = fmt in ("PNG", "TIFF")
    deep = info.file_bit_depth >= 16
    depth = 16 if deep and depth_ok else 8
    notes = []
    if deep and depth == 8:
        notes.append(
            f"{info.file_bit_depth}-bit input written as 8-bit: {fmt} holds 8 bits per sample"
        )
    if info.file_bit_depth > 16 and depth == 16:
        notes.append(f"{info.file_bit_depth}-bit input written as 16-bit")
    if info.bit_depth == 8 and info.file_bit_depth == 16:
        notes.append(
            "the input was read at 8 bits (Pillow limit); the output keeps 16 bits"
        )
    channels = restored @ _LUMA if info.grey else restored
    dtype, peak = (np.uint16, 65535) if depth == 16 else (np.uint8, 255)
    samples = np.round(np.clip(channels, 0.0, 1.0) * peak).astype(dtype)
    if samples.ndim == 2:
        samples = samples[..., None]
    if info.has_alpha:
        alpha = _alpha_as(source.alpha, dtype)
        if upscale > 1:
            # Imported here: it loads the degradation library (and SciPy), which reading and
            # writing images otherwise never need.
            from unires_jax.restore.upscale import upscale_input

            scaled = upscale_input(alpha[..., None].astype(np.float32) / peak, upscale)
            alpha = np.round(scaled[..., 0] * peak).astype(dtype)
        samples = np.concatenate([samples, alpha[..., None]], axis=-1)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[samples.shape[-1]]
    if fmt == "JPEG" and info.has_alpha:
        raise ValueError(
            f"{info.path}: JPEG cannot hold the alpha channel; use --format png"
        )
    data = _encode(samples, fmt, info.icc_profile)
    return EncodedImage(
        data, fmt, mode if depth == 8 else f"{mode};16", depth, tuple(notes)
    )


def _alpha_as(alpha: np.ndarray, dtype) -> np.ndarray:
    if alpha.dtype == dtype:
        return alpha
    if (
        dtype == np.uint16
    ):  # 8-bit alpha in a 16-bit file: exact (x * 257 maps 255 to 65535)
        return alpha.astype(np.uint16) * 257
    return np.round(alpha.astype(np.float64) / 257.0).astype(np.uint8)


def _encode(samples: np.ndarray, fmt: str, icc: bytes | None) -> bytes:
    """[H, W, C] uint8/uint16 -> file bytes."""
    if fmt == "PNG" and samples.dtype == np.uint16:
        return write_png(samples, icc_profile=icc)
    if fmt == "TIFF":
        import tifffile

        buffer = io.BytesIO()
        channels = samples.shape[-1]
        tifffile.imwrite(
            buffer,
            samples[..., 0] if channels == 1 else samples,
            photometric="minisblack" if channels <= 2 else "rgb",
            extrasamples=("unassalpha",) if channels in (2, 4) else None,
            compression="zlib",
            extratags=[(34675, "B", len(icc), icc, True)] if icc else None,
        )
        return buffer.getvalue()
    channels = samples.shape[-1]
    image = Image.fromarray(samples[..., 0] if channels == 1 else samples)
    options: dict[str, Any] = {"icc_profile": icc} if icc else {}
    if fmt == "JPEG":
        options.update(quality=95, subsampling=0)
    elif fmt == "WEBP":
        # Lossless, and `exact` keeps colours under transparent pixels: alpha stays unchanged.
        options.update(lossless=True, exact=True)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


# Temporary files of `write_atomic` are named TEMP_PREFIX + the target's name + random + ".tmp",
# so a later run can recognise (and remove) the ones a killed run left behind.
TEMP_PREFIX = ".unires-tmp."


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` so that readers see the old file or the whole new one.

    A temporary file is written in the same folder (hidden, removed on any failure), flushed
    to disk, given the modes the process umask gives new files (as `open` would; mkstemp makes
    it 0600), then renamed over `path`.
    """
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f"{TEMP_PREFIX}{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask: read from /proc where there is one (setting it to read it back, the
    only portable way, briefly changes it for every thread)."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temporaries(folder: str | os.PathLike) -> list[pathlib.Path]:
    """Removes the temporary files `write_atomic` calls in `folder` (and below) left behind
    when a run was killed; returns them."""
    stale = sorted(pathlib.Path(folder).rglob(f"{TEMP_PREFIX}*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale

"""Image files in and out of the restorer: PNG, JPEG, WebP and TIFF, 8 and 16 bits per sample.

Reading returns the pixels in display orientation (EXIF orientation applied) as `[H, W, 3]`
uint8 or uint16 (grey replicated to RGB, palettes expanded) with any alpha channel kept aside,
plus an `ImageInfo` saying what the file held. Writing takes the restorer's float RGB output and
puts it back in the input's layout: grey inputs are written as grey (luma), alpha is re-attached
unchanged, and 16-bit inputs are written with 16 bits where the format holds them.

Pillow decodes 16-bit RGB(A) PNG and TIFF to 8 bits and cannot write them, so those go through
a small vectorised PNG codec at the end of this file and tifffile (a scikit-image dependency).
Float TIFFs (read by tifffile) must hold values in [0, 1]; they become 16-bit integers.

Colour profiles: an embedded ICC profile for the colour space of the pixels handed out (RGB, or
grey for grey images) is copied to the output unchanged, since the pixels stay in that space.
CMYK (and Lab, YCbCr) pixels with a profile for their colour space are converted to sRGB with it
(littlecms, through Pillow's ImageCms) and the output carries an sRGB profile; without one,
Pillow's naive conversion is used. A profile that fits neither is not copied. Every such step
is recorded in `ImageInfo.notes`.

Files are written atomically: a temporary file in the destination folder, fsync, `os.replace`.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import pathlib
import struct
import tempfile
import zlib
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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
# Pillow mode -> the ICC colour space signature of a profile that describes those pixels.
_ICC_SPACES = {"CMYK": "CMYK", "LAB": "Lab", "YCbCr": "YCbr"}
_ICC_INTENTS = (
    "perceptual",
    "relative colorimetric",
    "saturation",
    "absolute colorimetric",
)
_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


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
        if _is_float_tiff(path):  # Pillow cannot open float RGB TIFFs
            return _read_float_tiff(path)
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
            return _from_array(
                path, apply_orientation(pixels, orientation), 16, notes, **meta
            )
        notes.append(
            "interlaced 16-bit colour PNG: Pillow decodes it at 8 bits per sample"
        )
    if fmt == "TIFF" and _is_deep_colour_tiff(path):
        pixels = _read_deep_tiff(path)
        meta["mode"] = rawmode
        return _from_array(
            path, apply_orientation(pixels, orientation), 16, notes, **meta
        )

    im.load()  # decodes now, so truncated data fails here, naming this file
    if orientation != 1:
        im = ImageOps.exif_transpose(im)
    if mode in ("I", *_GREY_16, "F"):
        array = np.asarray(im)
        if mode == "F":  # only when tifffile could not read the file
            return _from_array(
                path, _float_to_uint16(path, array, notes), 32, notes, **meta
            )
        if mode == "I" and array.size and (array.min() < 0 or array.max() > 65535):
            raise ImageReadError(
                f"{path}: 32-bit integer samples range from {array.min()} to {array.max()}, "
                "outside 16 bits (0 to 65535); save it as 8- or 16-bit"
            )
        return _from_array(path, array.astype(np.uint16), 16, notes, **meta)
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
        im, meta["icc"] = _convert_to_rgb(im, icc, notes)
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        raise ImageReadError(
            f"{path}: unsupported image mode {mode}; save it as RGB or grey"
        )
    file_depth = 16 if ";16" in rawmode else 8
    return _from_array(path, np.asarray(im), file_depth, notes, **meta)


def _rawmode(im: Image.Image) -> str:
    """The decoder's raw mode, e.g. "RGB;16B" for a 16-bit RGB PNG that Pillow reads as RGB."""
    if not im.tile:
        return ""
    args = im.tile[0].args
    return args if isinstance(args, str) else str(args[0])


def _is_deep_colour_tiff(path: pathlib.Path) -> bool:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        return page.bitspersample > 8 and page.samplesperpixel > 1


def _read_deep_tiff(path: pathlib.Path) -> np.ndarray:
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


def _is_float_tiff(path: pathlib.Path) -> bool:
    with open(path, "rb") as f:
        if f.read(4) not in _TIFF_MAGIC:
            return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return tif.pages[0].sampleformat == tifffile.SAMPLEFORMAT.IEEEFP
    except (OSError, ValueError, IndexError, EOFError, struct.error):
        return False  # a damaged TIFF: Pillow's attempt names the problem


def _read_float_tiff(path: pathlib.Path) -> LoadedImage:
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
    pixels = _float_to_uint16(path, array, notes)
    return _from_array(
        path,
        apply_orientation(pixels, orientation),
        array.dtype.itemsize * 8,
        notes,
        fmt="TIFF",
        mode=mode,
        orientation=orientation,
        icc=icc,
    )


def _float_to_uint16(
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


def _icc_colour_space(icc: bytes) -> str | None:
    """An ICC profile's colour space signature, stripped ("RGB", "GRAY", "CMYK", "Lab", ...);
    None if the bytes are not an ICC profile."""
    if len(icc) < 128 or icc[36:40] != b"acsp":
        return None
    return icc[16:20].decode("latin-1").strip()


@functools.cache
def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _convert_to_rgb(
    im: Image.Image, icc: bytes | None, notes: list[str]
) -> tuple[Image.Image, bytes | None]:
    """RGBX, CMYK, YCbCr, LAB or HSV -> RGB, with the embedded profile where it describes the
    pixels (then the result is sRGB). Returns the image and the profile the output gets."""
    mode = im.mode
    if mode == "RGBX":
        return im.convert("RGB"), icc
    space = _ICC_SPACES.get(mode)
    if icc is not None and space is not None and _icc_colour_space(icc) == space:
        intent = int.from_bytes(icc[64:68], "big")
        intent = intent if intent < len(_ICC_INTENTS) else 0
        try:
            from PIL import ImageCms
        except ImportError as e:  # Pillow built without littlecms
            notes.append(
                f"{mode} converted to RGB without the embedded ICC profile ({e}): Pillow's "
                "naive conversion, so colours may differ from a colour-managed viewer's"
            )
            return im.convert("RGB"), None
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            name = ImageCms.getProfileDescription(source).strip()
            rgb = ImageCms.profileToProfile(
                im,
                source,
                ImageCms.createProfile("sRGB"),
                renderingIntent=intent,
                outputMode="RGB",
            )
            srgb = _srgb_profile()
        except (OSError, ValueError, ImageCms.PyCMSError) as e:
            notes.append(
                f"{mode} converted to RGB without the embedded ICC profile, which littlecms "
                f"cannot use ({e}): Pillow's naive conversion, so colours may differ from a "
                "colour-managed viewer's"
            )
            return im.convert("RGB"), None
        notes.append(
            f"{mode} converted to sRGB with the embedded ICC profile ({name!r}, "
            f"{_ICC_INTENTS[intent]} intent); the output carries an sRGB profile"
        )
        return rgb, srgb
    if mode == "CMYK":
        why = (
            "none embedded" if icc is None else "the embedded one is not a CMYK profile"
        )
        notes.append(
            f"CMYK converted to RGB without a colour profile ({why}): Pillow's naive "
            "conversion, so colours may differ from a colour-managed viewer's"
        )
    else:
        notes.append(f"{mode} converted to RGB")
    return im.convert("RGB"), icc


def _output_profile(icc: bytes | None, grey: bool, notes: list[str]) -> bytes | None:
    """The embedded profile if it describes the pixels handed out (grey or RGB), else None."""
    if icc is None:
        return None
    space, wanted = _icc_colour_space(icc), "GRAY" if grey else "RGB"
    if space == wanted:
        return icc
    if space is None:
        notes.append(
            "the embedded colour profile is not an ICC profile; not copied to the output"
        )
    else:
        notes.append(
            f"the embedded ICC profile is for {space} but the image is read as "
            f"{'grey' if grey else 'RGB'}; not copied to the output"
        )
    return None


def _from_array(
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
    icc = _output_profile(icc, grey, notes)
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
    restored: np.ndarray, source: LoadedImage, output_format: str = "png", upscale: int = 1
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
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=".tmp", dir=path.parent)
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


# --- PNG at 16 bits (Pillow reads 16-bit colour PNG at 8 bits and cannot write it) ------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type


class PNGError(ValueError):
    """A PNG stream that cannot be decoded (corrupt, truncated or an unsupported variant)."""


def read_png(data: bytes) -> tuple[np.ndarray, bool]:
    """Decodes a non-interlaced 8- or 16-bit grey/RGB, with or without alpha, PNG.

    Returns:
      pixels `[H, W, C]` uint8 or uint16 (C = 1, 2, 3 or 4), and whether a tRNS colour key
      was present (not applied).
    """
    if not data.startswith(_PNG_SIGNATURE):
        raise PNGError("not a PNG file")
    pos, header, idat, has_key = len(_PNG_SIGNATURE), None, [], False
    while True:
        if pos + 12 > len(data):
            raise PNGError("the file is truncated (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body, crc = (
            data[pos + 8 : pos + 8 + length],
            data[pos + 8 + length : pos + 12 + length],
        )
        if len(crc) < 4:
            raise PNGError(f"the file is truncated inside a {kind!r} chunk")
        if zlib.crc32(kind + body) != int.from_bytes(crc, "big"):
            raise PNGError(f"the {kind!r} chunk is corrupt (CRC mismatch)")
        pos += 12 + length
        if kind == b"IHDR":
            if len(body) != 13:
                raise PNGError(f"the IHDR chunk holds {len(body)} bytes, not 13")
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"tRNS":
            has_key = True
        elif kind == b"IEND":
            break
    if header is None:
        raise PNGError("no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if not (1 <= width < 2**31 and 1 <= height < 2**31):
        raise PNGError(f"invalid image size {width}x{height} in the IHDR chunk")
    channels = {v: k for k, v in _PNG_COLOUR_TYPES.items()}.get(colour)
    if channels is None or depth not in (8, 16) or interlace:
        raise PNGError(
            f"PNG colour type {colour}, depth {depth}, interlace {interlace} is not handled here"
        )
    bpp = channels * depth // 8
    stride = 1 + width * bpp
    compressed = b"".join(idat)
    # Deflate expands at most 1032:1, so a header claiming more than that is checked before
    # inflating, and no more than the header's size is inflated (a small file cannot claim
    # gigabytes of memory).
    if height * stride > 1032 * len(compressed) + 1024:
        raise PNGError(
            f"the image data is truncated: {len(compressed)} compressed bytes cannot hold "
            f"{width}x{height} pixels"
        )
    try:
        raw = zlib.decompressobj().decompress(compressed, height * stride)
    except zlib.error as e:
        raise PNGError(f"the image data is corrupt ({e})") from None
    if len(raw) < height * stride:
        raise PNGError(
            f"the image data is truncated ({len(raw)} of {height * stride} bytes)"
        )
    rows = np.frombuffer(raw, np.uint8, height * stride).reshape(height, stride)
    pixels = _unfilter(rows[:, 1:].reshape(height, width, bpp), rows[:, 0])
    if depth == 16:
        pixels = np.ascontiguousarray(pixels).view(">u2").astype(np.uint16)
    return pixels.reshape(height, width, channels), has_key


def write_png(samples: np.ndarray, *, icc_profile: bytes | None = None) -> bytes:
    """Encodes `[H, W, C]` uint8 or uint16 samples (C = 1, 2, 3, 4) as PNG (Paeth filter)."""
    h, w, c = samples.shape
    depth = 16 if samples.dtype == np.uint16 else 8
    raw = np.ascontiguousarray(samples.astype(">u2" if depth == 16 else np.uint8))
    x = raw.view(np.uint8).reshape(h, w, -1).astype(np.int16)
    a, b, ul = (np.zeros_like(x) for _ in range(3))
    a[:, 1:], b[1:], ul[1:, 1:] = x[:, :-1], x[:-1], x[:-1, :-1]
    filtered = ((x - _paeth(a, b, ul)) & 0xFF).astype(np.uint8).reshape(h, -1)
    rows = np.concatenate([np.full((h, 1), 4, np.uint8), filtered], axis=1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body))
        )

    out = [
        _PNG_SIGNATURE,
        chunk(
            b"IHDR", struct.pack(">IIBBBBB", w, h, depth, _PNG_COLOUR_TYPES[c], 0, 0, 0)
        ),
    ]
    if icc_profile:
        out.append(chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile)))
    out += [chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)), chunk(b"IEND", b"")]
    return b"".join(out)


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The PNG Paeth predictor of left `a`, up `b` and upper-left `c` (int16 arrays)."""
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _unfilter(filtered: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Undoes the PNG row filters. filtered: `[H, W, B]` uint8 (B bytes per pixel); kinds: `[H]`.

    Each pixel depends on its left, upper and upper-left neighbours, so the pixels of one
    anti-diagonal (r + c = d) are independent: the loop runs over the H + W - 1 diagonals,
    each a strided slice of a zero-padded flat output, vectorised over rows and bytes.
    """
    if kinds.size and kinds.max() > 4:
        raise PNGError(f"unknown PNG row filter type {kinds.max()}")
    h, w, nb = filtered.shape
    if not kinds.any():
        return np.ascontiguousarray(filtered)
    src = filtered.reshape(h * w, nb).astype(np.int16)
    out = np.zeros(((h + 1) * (w + 1), nb), np.int16)  # zero top row and left column
    for d in range(h + w - 1):
        r0, r1 = max(0, d - w + 1), min(h - 1, d)
        # Flat index of pixel (r0, d - r0) in `src` (w - 1 apart per row) and `out` (w apart).
        q, p, n = r0 * (w - 1) + d, r0 * w + w + d + 2, r1 - r0 + 1
        x = src[q : q + (n - 1) * (w - 1) + 1 : max(w - 1, 1)]
        a, b, c = (out[p - o : p - o + (n - 1) * w + 1 : w] for o in (1, w + 1, w + 2))
        k = kinds[r0 : r1 + 1, None]
        pred = np.choose(k, (0, a, b, (a + b) >> 1, _paeth(a, b, c)))
        out[p : p + (n - 1) * w + 1 : w] = (x + pred) & 0xFF
    return out.reshape(h + 1, w + 1, nb)[1:, 1:].astype(np.uint8)

"""Colour profiles of input images: which embedded ICC profile describes the pixels handed to
the restorer, and the conversion of CMYK, Lab and YCbCr pixels to sRGB with their own profile
(littlecms, through Pillow's ImageCms). Every step is recorded in the image's notes.
"""

from __future__ import annotations

import functools
import io

from PIL import Image

# Pillow mode -> the ICC colour space signature of a profile that describes those pixels.
_ICC_SPACES = {"CMYK": "CMYK", "LAB": "Lab", "YCbCr": "YCbr"}
_ICC_INTENTS = (
    "perceptual",
    "relative colorimetric",
    "saturation",
    "absolute colorimetric",
)


def colour_space(icc: bytes) -> str | None:
    """An ICC profile's colour space signature, stripped ("RGB", "GRAY", "CMYK", "Lab", ...);
    None if the bytes are not an ICC profile."""
    if len(icc) < 128 or icc[36:40] != b"acsp":
        return None
    return icc[16:20].decode("latin-1").strip()


@functools.cache
def srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def convert_to_rgb(
    im: Image.Image, icc: bytes | None, notes: list[str]
) -> tuple[Image.Image, bytes | None]:
    """RGBX, CMYK, YCbCr, LAB or HSV -> RGB, with the embedded profile where it describes the
    pixels (then the result is sRGB). Returns the image and the profile the output gets."""
    mode = im.mode
    if mode == "RGBX":
        return im.convert("RGB"), icc
    space = _ICC_SPACES.get(mode)
    if icc is not None and space is not None and colour_space(icc) == space:
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
            srgb = srgb_profile()
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


def output_profile(icc: bytes | None, grey: bool, notes: list[str]) -> bytes | None:
    """The embedded profile if it describes the pixels handed out (grey or RGB), else None."""
    if icc is None:
        return None
    space, wanted = colour_space(icc), "GRAY" if grey else "RGB"
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

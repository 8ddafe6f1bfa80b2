"""Image files in and out of the restorer: formats, bit depths, grey, alpha, palette, EXIF, errors."""

import io
import os
import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from unires_jax.restore import image_io

RNG = np.random.default_rng(0)


def _u8(*shape):
    return RNG.integers(0, 256, shape).astype(np.uint8)


def _u16(*shape):
    return RNG.integers(0, 65536, shape).astype(np.uint16)


def _save(path, array, **kw):
    Image.fromarray(array).save(path, **kw)
    return path


# --- an independent PNG encoder, byte by byte from the PNG spec, with chosen row filters ------


def _paeth_spec(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _png_with_filters(samples, kinds, *, extra_chunks=()):
    """PNG bytes of [H, W, C] uint8/uint16 samples, row r filtered with kinds[r] (0..4)."""
    h, w, c = samples.shape
    depth = 16 if samples.dtype == np.uint16 else 8
    raw = samples.astype(">u2" if depth == 16 else np.uint8).tobytes()
    bpp, stride = c * depth // 8, w * c * depth // 8
    rows = [raw[r * stride : (r + 1) * stride] for r in range(h)]
    out = bytearray()
    for r, kind in enumerate(kinds):
        prev = rows[r - 1] if r else bytes(stride)
        out.append(kind)
        for i, x in enumerate(rows[r]):
            a = rows[r][i - bpp] if i >= bpp else 0
            b = prev[i]
            cc = prev[i - bpp] if i >= bpp else 0
            preds = [0, a, b, (a + b) // 2, _paeth_spec(a, b, cc)]
            pred = preds[kind] if kind < 5 else 0  # kind 5 does not exist: a bad stream
            out.append((x - pred) % 256)

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body))
        )

    colour = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    header = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    body = b"".join(chunk(k, v) for k, v in extra_chunks)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + body
        + chunk(b"IDAT", zlib.compress(bytes(out)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "shape", [(7, 5, 3), (1, 9, 4), (6, 1, 2), (1, 1, 1), (12, 11, 3)]
)
def test_png_reader_undoes_every_row_filter(shape):
    kinds = RNG.integers(0, 5, shape[0])
    kinds[: min(5, shape[0])] = np.arange(min(5, shape[0]))  # every kind appears
    for samples in (_u8(*shape), _u16(*shape)):
        data = _png_with_filters(samples, kinds)
        decoded, has_key = image_io.read_png(data)
        np.testing.assert_array_equal(decoded, samples)
        assert decoded.dtype == samples.dtype and not has_key
        if (
            samples.dtype == np.uint8
        ):  # the reference encoder is valid PNG: Pillow agrees
            pillow = np.asarray(Image.open(io.BytesIO(data)))
            np.testing.assert_array_equal(pillow.reshape(shape), samples)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_writer_round_trips_16_bit_and_pillow_reads_it(channels):
    samples = _u16(9, 13, channels)
    data = image_io.write_png(samples, icc_profile=b"fake profile")
    np.testing.assert_array_equal(image_io.read_png(data)[0], samples)
    im = Image.open(io.BytesIO(data))
    assert im.info["icc_profile"] == b"fake profile"
    if (
        channels == 1
    ):  # Pillow holds 16-bit grey exactly, and 16-bit colour as the high bytes
        np.testing.assert_array_equal(np.asarray(im), samples[..., 0])
    elif channels >= 3:
        np.testing.assert_array_equal(np.asarray(im), (samples >> 8).astype(np.uint8))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"GIF89a", "not a PNG"),
        (_png_with_filters(_u8(4, 4, 3), [0] * 4)[:-20], "truncated"),
        (_png_with_filters(_u8(4, 4, 3), [5] * 4), "filter type 5"),
    ],
)
def test_png_reader_rejects_bad_streams(data, message):
    with pytest.raises(image_io.PNGError, match=message):
        image_io.read_png(data)


# --- read_image ------------------------------------------------------------------------------


def test_16_bit_rgb_png_and_tiff_are_read_at_full_precision(tmp_path):
    rgb = _u16(6, 10, 3)
    png = tmp_path / "deep.png"
    png.write_bytes(_png_with_filters(rgb, [4, 1, 2, 3, 0, 4]))
    tif = tmp_path / "deep.tif"
    tifffile.imwrite(tif, rgb, photometric="rgb")
    planar = tmp_path / "planar.tif"
    tifffile.imwrite(
        planar, np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate"
    )
    for path in (png, tif, planar):
        image = image_io.read_image(path)
        np.testing.assert_array_equal(image.pixels, rgb)
        assert image.alpha is None and not image.info.grey
        assert image.info.bit_depth == image.info.file_bit_depth == 16


def test_16_bit_rgba_png_keeps_alpha_at_16_bits(tmp_path):
    rgba = _u16(5, 7, 4)
    path = tmp_path / "deep.png"
    path.write_bytes(image_io.write_png(rgba))
    image = image_io.read_image(path)
    np.testing.assert_array_equal(image.pixels, rgba[..., :3])
    np.testing.assert_array_equal(image.alpha, rgba[..., 3])


def test_16_bit_grey_png_is_replicated_and_written_back_as_16_bit_grey(tmp_path):
    grey = _u16(5, 8)
    image = image_io.read_image(_save(tmp_path / "g.png", grey))
    assert (
        image.info.grey
        and image.info.mode == "I;16"
        and image.pixels.dtype == np.uint16
    )
    np.testing.assert_array_equal(image.pixels, np.repeat(grey[..., None], 3, -1))
    restored = image.pixels.astype(np.float64) / 65535  # an identity "restorer"
    encoded = image_io.encode_output(restored, image)
    out = Image.open(io.BytesIO(encoded.data))
    assert out.mode == "I;16" and encoded.bit_depth == 16
    np.testing.assert_array_equal(np.asarray(out), grey)


def test_grey_output_is_the_luma_of_the_restored_rgb(tmp_path):
    image = image_io.read_image(_save(tmp_path / "g.png", _u8(4, 6)))
    restored = RNG.uniform(size=(4, 6, 3))
    out = np.asarray(
        Image.open(io.BytesIO(image_io.encode_output(restored, image).data))
    )
    luma = restored @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_array_equal(out, np.round(luma * 255).astype(np.uint8))


@pytest.mark.parametrize(
    "fmt, mode", [("png", "RGBA"), ("png", "LA"), ("same", "RGBA")]
)
def test_alpha_is_reattached_unchanged(tmp_path, fmt, mode):
    array = _u8(5, 9, 4 if mode == "RGBA" else 2)
    path = tmp_path / ("a.webp" if fmt == "same" else "a.png")
    Image.fromarray(array, mode).save(
        path, **({"lossless": True} if fmt == "same" else {})
    )
    image = image_io.read_image(path)
    np.testing.assert_array_equal(image.alpha, array[..., -1])
    restored = RNG.uniform(size=(5, 9, 3))
    encoded = image_io.encode_output(restored, image, fmt)
    out = np.asarray(Image.open(io.BytesIO(encoded.data)))
    assert encoded.format == ("WEBP" if fmt == "same" else "PNG")
    np.testing.assert_array_equal(out[..., -1], array[..., -1])


def test_palette_images_are_expanded_and_transparency_becomes_alpha(tmp_path):
    indices = RNG.integers(0, 4, (6, 5)).astype(np.uint8)
    im = Image.fromarray(indices, "P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    im.save(tmp_path / "p.png")
    im.save(tmp_path / "pt.png", transparency=2)
    plain = image_io.read_image(tmp_path / "p.png")
    assert plain.info.mode == "P" and plain.alpha is None
    np.testing.assert_array_equal(
        plain.pixels[indices == 0], [[255, 0, 0]] * (indices == 0).sum()
    )
    keyed = image_io.read_image(tmp_path / "pt.png")
    np.testing.assert_array_equal(keyed.alpha, np.where(indices == 2, 0, 255))
    assert any("palette" in n for n in keyed.info.notes)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(orientation):
    stored = _u8(3, 5, 3)
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(
        image_io.apply_orientation(stored, orientation), expected
    )


def test_exif_rotated_jpeg_and_16_bit_png_come_out_in_display_orientation(tmp_path):
    stored = np.zeros((16, 24, 3), np.uint8)
    stored[:, :8] = 255  # a white left third
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    _save(tmp_path / "r.jpg", stored, exif=exif.tobytes(), quality=95)
    image = image_io.read_image(tmp_path / "r.jpg")
    assert image.pixels.shape == (24, 16, 3) and image.info.orientation == 6
    assert (
        image.pixels[:8].mean() > 200 and image.pixels[10:].mean() < 50
    )  # white on top
    deep = tmp_path / "r16.png"
    tiff_header = exif.tobytes().removeprefix(
        b"Exif\x00\x00"
    )  # the eXIf chunk's content
    rgb = _u16(16, 24, 3)
    deep.write_bytes(
        _png_with_filters(rgb, [0] * 16, extra_chunks=[(b"eXIf", tiff_header)])
    )
    image = image_io.read_image(deep)
    np.testing.assert_array_equal(image.pixels, np.rot90(rgb, -1))


def test_16_bit_tiff_round_trips_with_format_same(tmp_path):
    rgba = _u16(4, 6, 4)
    tifffile.imwrite(
        tmp_path / "t.tif", rgba, photometric="rgb", extrasamples=["unassalpha"]
    )
    image = image_io.read_image(tmp_path / "t.tif")
    encoded = image_io.encode_output(image.pixels / 65535.0, image, "same")
    assert encoded.format == "TIFF" and encoded.bit_depth == 16
    np.testing.assert_array_equal(tifffile.imread(io.BytesIO(encoded.data)), rgba)


def test_jpeg_output_with_format_same_is_8_bit_rgb(tmp_path):
    image = image_io.read_image(_save(tmp_path / "x.jpg", _u8(8, 8, 3)))
    encoded = image_io.encode_output(np.full((8, 8, 3), 0.5), image, "same")
    assert encoded.format == "JPEG" and encoded.mode == "RGB" and encoded.bit_depth == 8
    assert image_io.output_suffix("JPEG", "same") == ".jpg"
    assert image_io.output_suffix("JPEG", "png") == ".png"


def _corrupt_png(path):
    data = bytearray(image_io.write_png(_u8(16, 16, 3)))
    data[60:70] = b"\xff" * 10  # inside IDAT: the CRC no longer matches
    path.write_bytes(bytes(data))
    return path


def _truncated_jpeg(path):
    buffer = io.BytesIO()
    Image.fromarray(_u8(32, 32, 3)).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (
            lambda p: (p / "notes.txt").write_text("hello") and p / "notes.txt",
            "not a readable image",
        ),
        (lambda p: _truncated_jpeg(p / "t.jpg"), "(?i)truncated"),
        (lambda p: _corrupt_png(p / "c.png"), "cannot decode"),
        (lambda p: p / "missing.png", "no such file"),
        (lambda p: (p / "empty.png").write_bytes(b"") == 0 and p / "empty.png", "empty file"),
        (lambda p: _save(p / "x.gif", _u8(4, 4, 3)), "GIF images are not supported"),
        (
            lambda p: _save(p / "f.tif", RNG.uniform(size=(4, 4)).astype(np.float32)),
            "F images",
        ),
    ],
)
def test_bad_files_raise_an_error_naming_the_file_and_why(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(image_io.ImageReadError, match=reason) as info:
        image_io.read_image(path)
    assert str(path) in str(info.value)


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "out.png"
    image_io.write_atomic(target, b"first")
    image_io.write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    with pytest.raises(TypeError):
        image_io.write_atomic(tmp_path / "bad.png", "not bytes")
    assert sorted(os.listdir(tmp_path)) == ["out.png"]

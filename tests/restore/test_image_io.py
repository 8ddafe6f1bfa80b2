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
        (
            lambda p: (p / "empty.png").write_bytes(b"") == 0 and p / "empty.png",
            "empty file",
        ),
        (lambda p: _save(p / "x.gif", _u8(4, 4, 3)), "GIF images are not supported"),
        (
            lambda p: _save(
                p / "f.tif", np.linspace(-0.5, 2.5, 16, dtype=np.float32).reshape(4, 4)
            ),
            r"float32 samples range from -0\.5 to 2\.5, outside \[0, 1\]",
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


# --- colour profiles -------------------------------------------------------------------------
#
# No ICC files ship with the OS or the installed packages, and Pillow's ImageCms only creates
# sRGB, Lab and XYZ profiles, so the CMYK, grey and RGB profiles are built here, byte by byte
# from the ICC v2 specification (header, tag table, tags).


def _s15(x):
    return struct.pack(">i", round(x * 65536))


def _icc(space, pcs, device_class, tags):
    """ICC v2 profile bytes: colour space and PCS signatures, device class, [(sig, body)]."""
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in [(b"desc", _icc_desc(f"test {space.decode().strip()}")), *tags]:
        body += bytes(-len(body) % 4)
        table += sig + struct.pack(">II", offset + 12 + len(data), len(body))
        data += body
    header = (
        struct.pack(">I", offset + 12 + len(data))
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + device_class
        + space
        + pcs
        + bytes(12)
        + b"acsp"
        + bytes(24)
        + struct.pack(">I", 0)  # perceptual rendering intent
        + _s15(0.9642)  # D50
        + _s15(1.0)
        + _s15(0.8249)
        + bytes(48)
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags) + 1) + table + data


def _icc_desc(text):
    ascii_ = text.encode() + b"\0"
    return (
        b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + bytes(8 + 3 + 67)
    )


def _icc_xyz(x, y, z):
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def _icc_gamma(gamma):
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256))


def _cmyk_profile():
    """A printer profile whose A2B0 table (2 grid points per ink) maps CMYK to unusual Lab
    colours, so that a profile conversion and Pillow's naive one clearly differ."""
    clut = []
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    lab = (
                        max(0, 100 - 30 * c - 25 * m - 10 * y - 90 * k),
                        60 * m - 40 * c,
                        70 * y - 30 * c,
                    )
                    clut += [
                        round(lab[0] * 652.8),
                        round((lab[1] + 128) * 256),
                        round((lab[2] + 128) * 256),
                    ]
    lut = (
        b"mft2"
        + bytes(4)
        + bytes([4, 3, 2, 0])
        + b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
        + struct.pack(">HH", 2, 2)
        + struct.pack(">HH", 0, 65535) * 4
        + np.asarray(clut, ">u2").tobytes()
        + struct.pack(">HH", 0, 65535) * 3
    )
    return _icc(
        b"CMYK",
        b"Lab ",
        b"prtr",
        [(b"wtpt", _icc_xyz(0.9642, 1.0, 0.8249)), (b"A2B0", lut)],
    )


def _grey_profile():
    return _icc(
        b"GRAY",
        b"XYZ ",
        b"mntr",
        [(b"wtpt", _icc_xyz(0.9642, 1.0, 0.8249)), (b"kTRC", _icc_gamma(1.8))],
    )


def _rgb_profile():
    """A gamma-1.0 RGB profile with made-up primaries: an RGB space that is not sRGB."""
    tags = [(b"wtpt", _icc_xyz(0.9642, 1.0, 0.8249))]
    for sig, xyz in (
        (b"rXYZ", (0.6, 0.3, 0.02)),
        (b"gXYZ", (0.25, 0.65, 0.1)),
        (b"bXYZ", (0.11, 0.05, 0.71)),
    ):
        tags.append((sig, _icc_xyz(*xyz)))
    tags += [(sig, _icc_gamma(1.0)) for sig in (b"rTRC", b"gTRC", b"bTRC")]
    return _icc(b"RGB ", b"XYZ ", b"mntr", tags)


def _output_profile(encoded):
    return Image.open(io.BytesIO(encoded.data)).info.get("icc_profile")


def test_cmyk_jpeg_with_a_cmyk_profile_is_converted_to_srgb(tmp_path):
    from PIL import ImageCms

    cmyk, profile = _u8(8, 8, 4), _cmyk_profile()
    path = tmp_path / "print.jpg"
    Image.fromarray(cmyk, "CMYK").save(path, icc_profile=profile, quality=95)
    with Image.open(path) as im:
        decoded = im.copy()  # the CMYK samples as stored (JPEG-compressed)
    expected = ImageCms.profileToProfile(
        decoded,
        ImageCms.ImageCmsProfile(io.BytesIO(profile)),
        ImageCms.createProfile("sRGB"),
        outputMode="RGB",
    )
    image = image_io.read_image(path)
    np.testing.assert_array_equal(image.pixels, np.asarray(expected))
    naive = np.asarray(decoded.convert("RGB"))
    assert (
        np.abs(image.pixels.astype(int) - naive).mean() > 20
    )  # not Pillow's naive conversion
    assert any(
        "CMYK converted to sRGB with the embedded ICC profile" in n
        for n in image.info.notes
    )
    for fmt in ("png", "same"):
        encoded = image_io.encode_output(image.pixels / 255.0, image, fmt)
        written = _output_profile(encoded)
        assert written is None or written[16:20] == b"RGB "  # never the CMYK profile
        if written is not None:
            assert ImageCms.getProfileDescription(
                ImageCms.ImageCmsProfile(io.BytesIO(written))
            ).startswith("sRGB")


def test_cmyk_jpeg_without_a_profile_is_converted_naively_with_a_note(tmp_path):
    cmyk = _u8(6, 6, 4)
    path = tmp_path / "plain.jpg"
    Image.fromarray(cmyk, "CMYK").save(path, quality=95)
    with Image.open(path) as im:
        naive = np.asarray(im.convert("RGB"))
    image = image_io.read_image(path)
    np.testing.assert_array_equal(image.pixels, naive)
    assert any(
        "without a colour profile (none embedded)" in n for n in image.info.notes
    )
    assert _output_profile(image_io.encode_output(image.pixels / 255.0, image)) is None


@pytest.mark.parametrize("grey", [True, False])
def test_grey_and_rgb_profiles_are_copied_and_the_pixels_left_alone(tmp_path, grey):
    array, profile = (
        (_u8(5, 7), _grey_profile()) if grey else (_u8(5, 7, 3), _rgb_profile())
    )
    path = _save(tmp_path / "p.png", array, icc_profile=profile)
    image = image_io.read_image(path)
    assert image.info.grey == grey and image.info.icc_profile == profile
    np.testing.assert_array_equal(image.pixels[..., 0] if grey else image.pixels, array)
    for fmt in ("png", "same"):
        assert (
            _output_profile(image_io.encode_output(image.pixels / 255.0, image, fmt))
            == profile
        )


def test_a_profile_of_another_colour_space_is_not_copied(tmp_path):
    path = _save(tmp_path / "rgb.png", _u8(4, 4, 3), icc_profile=_cmyk_profile())
    image = image_io.read_image(path)
    assert image.info.icc_profile is None
    assert any("ICC profile is for CMYK" in n for n in image.info.notes)
    assert _output_profile(image_io.encode_output(image.pixels / 255.0, image)) is None


# --- float TIFF ------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_float_tiffs_in_0_1_are_read_as_16_bit(tmp_path, channels):
    values = RNG.uniform(size=(5, 6, channels)).astype(np.float32)
    values[0, 0], values[0, 1] = 0.0, 1.0
    path = tmp_path / "f.tif"
    if channels == 1:
        tifffile.imwrite(path, values[..., 0])
    else:
        tifffile.imwrite(
            path,
            values,
            photometric="rgb",
            extrasamples=("unassalpha",) if channels == 4 else None,
        )
    image = image_io.read_image(path)
    expected = np.round(values.astype(np.float64) * 65535).astype(np.uint16)
    np.testing.assert_array_equal(
        image.pixels, np.repeat(expected, 3, -1) if channels == 1 else expected[..., :3]
    )
    if channels == 4:
        np.testing.assert_array_equal(image.alpha, expected[..., 3])
    assert image.info.grey == (channels == 1) and image.info.bit_depth == 16
    assert image.info.file_bit_depth == 32 and any(
        "float32" in n for n in image.info.notes
    )
    encoded = image_io.encode_output(image.pixels / 65535.0, image, "same")
    assert encoded.format == "TIFF" and encoded.bit_depth == 16
    written = tifffile.imread(io.BytesIO(encoded.data))
    np.testing.assert_array_equal(
        written, expected[..., 0] if channels == 1 else expected
    )


def test_float_rgb_tiff_outside_0_1_names_the_file_the_range_and_the_fix(tmp_path):
    path = tmp_path / "hdr.tif"
    tifffile.imwrite(
        path,
        np.linspace(0, 7.25, 30, dtype=np.float32).reshape(2, 5, 3),
        photometric="rgb",
    )
    with pytest.raises(image_io.ImageReadError) as info:
        image_io.read_image(path)
    message = str(info.value)
    assert str(path) in message and "from 0 to 7.25" in message and "[0, 1]" in message
    assert "not a readable image" not in message


# --- bounds of the PNG codec -----------------------------------------------------------------


def _chunk(kind, body):
    return (
        struct.pack(">I", len(body))
        + kind
        + body
        + struct.pack(">I", zlib.crc32(kind + body))
    )


def _png(header, idat):
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "data, message",
    [
        (
            _png(struct.pack(">IIBBBB", 4, 4, 8, 2, 0, 0), zlib.compress(bytes(52))),
            "IHDR",
        ),
        (
            _png(struct.pack(">IIBBBBB", 0, 4, 8, 2, 0, 0, 0), zlib.compress(bytes(4))),
            "0x4",
        ),
        (
            _png(
                struct.pack(">IIBBBBB", 2**31 - 1, 2**31 - 1, 16, 6, 0, 0, 0),
                zlib.compress(bytes(64)),
            ),
            "truncated",
        ),
        (
            _png(
                struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0),
                zlib.compress(bytes(52))[:-6],
            ),
            "truncated",
        ),
        (
            _png(
                struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0), zlib.compress(bytes(30))
            ),
            "truncated",
        ),
        (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))[:-4],
            "truncated",
        ),
        (
            b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 2**32 - 1) + b"IDAT" + bytes(8),
            "truncated",
        ),
    ],
    ids=[
        "short-IHDR",
        "zero-width",
        "huge-size",
        "cut-zlib-stream",
        "too-few-rows",
        "cut-chunk",
        "huge-chunk",
    ],
)
def test_png_reader_checks_its_bounds(data, message):
    with pytest.raises(image_io.PNGError, match=message):
        image_io.read_png(data)


def test_png_reader_inflates_only_what_the_header_needs():
    import tracemalloc

    rows = np.zeros((4, 1 + 4 * 3), np.uint8)  # 4x4 RGB, filter 0
    bomb = zlib.compress(
        rows.tobytes() + bytes(64 * 2**20), 9
    )  # 64 MiB of trailing zeros
    data = _png(struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0), bomb)
    tracemalloc.start()
    try:
        pixels, _ = image_io.read_png(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(pixels, np.zeros((4, 4, 3), np.uint8))
    assert peak < 8 * 2**20


def test_16_bit_cmyk_tiff_is_refused_not_read_as_rgba(tmp_path):
    path = tmp_path / "cmyk16.tif"
    tifffile.imwrite(path, _u16(4, 5, 4), photometric="separated")
    with pytest.raises(image_io.ImageReadError, match="photometric SEPARATED") as info:
        image_io.read_image(path)
    assert str(path) in str(info.value)

"""A small vectorised PNG codec for what Pillow cannot do: 16-bit colour PNG (Pillow reads it at
8 bits and cannot write it). Reading checks every size against the header before it allocates.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

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

"""TensorBoard event files without TensorFlow: TFRecord framing of hand-encoded Event protos.

An event file is a sequence of records `len (uint64 LE) | masked_crc32c(len) | data |
masked_crc32c(data)`, each `data` a serialized `tensorflow.Event`. Only the fields we write are
encoded (field numbers from tensorflow/core/util/event.proto and summary.proto):

    Event:   wall_time=1 (double), step=2 (int64), file_version=3 (string), summary=5
    Summary: value=1 (repeated Value)
    Value:   tag=1 (string), simple_value=2 (float), image=4 (Image)
    Image:   height=1, width=2, colorspace=3 (int32), encoded_image_string=4 (bytes, PNG)
"""

from __future__ import annotations

import io
import os
import socket
import struct
import time
from collections.abc import Iterator

import numpy as np


def _crc32c_table() -> tuple[int, ...]:
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`; crc32c(b"123456789") == 0xE3069283."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum: CRC-32C rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 -> two's complement, as protobuf does
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint((field << 3) | wire_type)


def _len_field(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def _event(
    step: int, wall_time: float, *, summary: bytes = b"", file_version: str = ""
) -> bytes:
    out = _key(1, 1) + struct.pack("<d", wall_time) + _key(2, 0) + _varint(int(step))
    if file_version:
        out += _len_field(3, file_version.encode())
    if summary:
        out += _len_field(5, summary)
    return out


def _scalar_value(tag: str, value: float) -> bytes:
    return _len_field(
        1, _len_field(1, tag.encode()) + _key(2, 5) + struct.pack("<f", value)
    )


def _image_value(tag: str, png: bytes, height: int, width: int, channels: int) -> bytes:
    image = (
        _key(1, 0)
        + _varint(height)
        + _key(2, 0)
        + _varint(width)
        + _key(3, 0)
        + _varint(channels)
        + _len_field(4, png)
    )
    return _len_field(1, _len_field(1, tag.encode()) + _len_field(4, image))


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a [H, W, C] uint8 image (C = 1, 3 or 4)."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"encode_png expects [H, W, 1|3|4] uint8, got {arr.shape} {arr.dtype}"
        )
    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


class EventFileWriter:
    """Appends scalar and image summaries to one `events.out.tfevents.*` file in `logdir`."""

    def __init__(self, logdir: str | os.PathLike):
        os.makedirs(logdir, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = os.path.join(logdir, name)
        self._file = open(self.path, "ab")  # noqa: SIM115 (open until close())
        self._write(_event(0, time.time(), file_version="brain.Event:2"))

    def _write(self, data: bytes) -> None:
        header = struct.pack("<Q", len(data))
        self._file.write(
            header
            + struct.pack("<I", masked_crc32c(header))
            + data
            + struct.pack("<I", masked_crc32c(data))
        )

    def scalars(self, step: int, values: dict[str, float]) -> None:
        summary = b"".join(_scalar_value(k, float(v)) for k, v in values.items())
        self._write(_event(step, time.time(), summary=summary))

    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        """Writes one [H, W, C] uint8 image."""
        h, w, c = np.asarray(image).shape
        summary = _image_value(tag, encode_png(image), h, w, c)
        self._write(_event(step, time.time(), summary=summary))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        elif wire == 2:
            n, pos = _read_varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def read_scalars(path: str | os.PathLike) -> list[tuple[int, str, float]]:
    """(step, tag, value) of every scalar in an event file, checking both CRCs of each record."""
    with open(path, "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos < len(data):
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        record = data[pos + 12 : pos + 12 + length]
        (dcrc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
        if hcrc != masked_crc32c(header) or dcrc != masked_crc32c(record):
            raise ValueError(f"{path}: corrupt record at byte {pos} (CRC mismatch)")
        pos += 16 + length
        step = 0
        for field, _, value in _fields(record):
            if field == 2:
                step = value
            elif field == 5:
                for _, _, v in _fields(value):
                    tag, simple = None, None
                    for f, _, x in _fields(v):
                        tag = x.decode() if f == 1 else tag
                        simple = struct.unpack("<f", x)[0] if f == 2 else simple
                    if simple is not None:
                        out.append((step, tag, simple))
    return out

"""Image decoding and random-access image sources for the input pipeline.

Every image that enters a dataset or the pipeline goes through `decode_image`, which returns
uint8 [H, W, 3] whatever the file holds (grayscale, palette, RGBA, 16-bit) and raises
`CorruptImageError` for a file that cannot be decoded. Callers that read many files collect those
errors in a `SkipReport` instead of stopping: a corrupt file is skipped, counted and reported.

Sources are random-access (`__len__`, `__getitem__`) so that grain can shuffle, shard and
checkpoint them. A record is a dict: "hq" uint8 [H, W, 3], optionally "lq" uint8 [h, w, 3] for
paired data, and "name" (str or bytes). A source spec string picks one:

- `"sample_photos"` or `"sample_photos:<split>"`: the photos shipped inside installed packages
  (no build step; see `unires_jax.data.sample_photos`).
- `"folder:<path>"`: every image file below a folder (clean images only).
- `"<dataset>:<split>"`: a dataset built with `unires data build <dataset>` into `data_dir`.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import PIL.Image

# File endings read as images (compared case-insensitively: SIDD ships `.PNG`).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class CorruptImageError(ValueError):
    """An image file that cannot be decoded (truncated, wrong format, empty).

    Attributes:
      path: the file (or label) that failed.
      reason: why, without the path.
    """

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether a path ends in one of `IMAGE_EXTENSIONS` (any case)."""
    return os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


def decode_image(
    data: bytes | str | os.PathLike, *, name: str | None = None
) -> np.ndarray:
    """Decodes an encoded image (bytes or a file path) to uint8 RGB.

    Grayscale and palette images are expanded to three channels, alpha is dropped and 16/32-bit
    images are scaled to 8 bits. EXIF orientation is not applied: pixels stay in file order, so
    LQ/HQ pairs stay aligned whatever their metadata says.

    Args:
      data: encoded bytes, or the path of an image file.
      name: what to call the image in error messages (defaults to the path).

    Returns:
      uint8 [H, W, 3].

    Raises:
      CorruptImageError: the data cannot be decoded.
    """
    label = name or (os.fspath(data) if not isinstance(data, bytes) else "<bytes>")
    try:
        source = io.BytesIO(data) if isinstance(data, bytes) else data
        with PIL.Image.open(source) as image:
            image.load()  # Decodes everything now, so truncated files fail here.
            return _to_rgb8(image)
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as e:
        raise CorruptImageError(
            label, f"cannot decode image ({type(e).__name__}: {e})"
        ) from e


def _to_rgb8(image: PIL.Image.Image) -> np.ndarray:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit grayscale: keep the top 8 bits of the 16-bit range.
        gray = np.asarray(image, dtype=np.float64) / 257.0
        gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if image.mode == "F":
        raise ValueError("floating-point image (mode F) is not a photo")
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"empty image of shape {rgb.shape}")
    return rgb


def encode_png(image: np.ndarray) -> bytes:
    """Encodes uint8 [H, W, 3] as PNG bytes (lossless)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"encode_png expects uint8 [H, W, 3], got {image.dtype} {image.shape}"
        )
    buffer = io.BytesIO()
    PIL.Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def read_png_bytes(path: str | os.PathLike) -> tuple[bytes, np.ndarray]:
    """Reads an image file and returns (PNG bytes, uint8 [H, W, 3]) after a full decode.

    An 8-bit RGB PNG keeps its original bytes (no re-encoding); any other file is decoded and
    re-encoded as PNG, so every stored image decodes to exactly the pixels checked here.

    Raises:
      CorruptImageError: the file cannot be read or decoded.
    """
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as e:
        raise CorruptImageError(os.fspath(path), f"cannot read file ({e})") from e
    pixels = decode_image(data, name=os.fspath(path))
    # IHDR sits at a fixed offset: byte 24 is the bit depth, byte 25 the colour type (2 = RGB).
    if (
        data.startswith(_PNG_SIGNATURE)
        and len(data) > 25
        and data[24] == 8
        and data[25] == 2
    ):
        return data, pixels
    return encode_png(pixels), pixels


@dataclasses.dataclass
class SkipReport:
    """Files skipped because they could not be decoded: `(path, reason)` pairs."""

    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def add(self, path: str | os.PathLike, error: Exception) -> None:
        self.skipped.append((os.fspath(path), getattr(error, "reason", str(error))))

    def __len__(self) -> int:
        return len(self.skipped)

    def summary(self, limit: int = 10) -> str:
        """One line per skipped file (at most `limit`), or a line saying none were skipped."""
        if not self.skipped:
            return "no corrupt image files"
        lines = [f"skipped {len(self.skipped)} corrupt image file(s):"]
        lines += [f"  {path}: {reason}" for path, reason in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more")
        return "\n".join(lines)


def list_images(root: str | os.PathLike) -> list[pathlib.Path]:
    """All image files below `root` (recursive), sorted by path for a stable order."""
    return sorted(
        p for p in pathlib.Path(root).rglob("*") if p.is_file() and is_image_file(p)
    )


class InMemorySource:
    """A random-access source over records held in memory (small sets, tests, sample photos)."""

    def __init__(self, records: Sequence[dict[str, Any]]):
        if not records:
            raise ValueError("InMemorySource needs at least one record")
        self._records = list(records)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._records[index]

    def __repr__(self) -> str:
        return f"InMemorySource({len(self._records)} records)"


class FolderSource:
    """Clean images below a folder, decoded on read.

    Every file is decoded once when the source is made: corrupt files are left out and listed in
    `self.skipped`, so reads during training never meet them.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = pathlib.Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"{self.root}: folder source does not exist. Pass `folder:<path>` with a folder "
                f"that holds image files ({', '.join(IMAGE_EXTENSIONS)})."
            )
        self.skipped = SkipReport()
        self._paths: list[pathlib.Path] = []
        for path in list_images(self.root):
            try:
                decode_image(path)
            except CorruptImageError as e:
                self.skipped.add(path, e)
                continue
            self._paths.append(path)
        if not self._paths:
            raise FileNotFoundError(
                f"{self.root}: no readable image files below this folder "
                f"({self.skipped.summary()}). Expected files ending in {', '.join(IMAGE_EXTENSIONS)}."
            )

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self._paths[index]
        return {
            "hq": decode_image(path),
            "name": os.fspath(path.relative_to(self.root)),
        }

    def __repr__(self) -> str:
        return f"FolderSource({self.root}, {len(self._paths)} images, {len(self.skipped)} skipped)"


class ConcatSource:
    """Several random-access sources read as one (index runs through them in order)."""

    def __init__(self, sources: Sequence[Any]):
        if not sources:
            raise ValueError("ConcatSource needs at least one source")
        self._sources = list(sources)
        self._ends = np.cumsum([len(s) for s in self._sources])

    @property
    def parts(self) -> list[Any]:
        """The sources read, in order."""
        return list(self._sources)

    def __len__(self) -> int:
        return int(self._ends[-1])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} records")
        which = int(np.searchsorted(self._ends, index, side="right"))
        start = 0 if which == 0 else int(self._ends[which - 1])
        return self._sources[which][index - start]

    def __repr__(self) -> str:
        return f"ConcatSource({self._sources})"


def open_source(spec: str, *, data_dir: str | os.PathLike | None = None) -> Any:
    """Opens one source from its spec string (see the module docstring).

    Args:
      spec: `"sample_photos[:split]"`, `"folder:<path>"` or `"<dataset>:<split>"`.
      data_dir: where `unires data build` wrote the datasets (None: the TFDS default).

    Returns:
      A random-access source of records.
    """
    kind, _, rest = spec.strip().partition(":")
    if kind == "sample_photos":
        from unires_jax.data import sample_photos

        records = [
            {"hq": image, "name": name}
            for name, image in sample_photos.load_sample_photos(rest or "train").items()
        ]
        return InMemorySource(records)
    if kind == "folder":
        if not rest:
            raise ValueError(
                f"source spec {spec!r}: `folder:` needs a path, e.g. folder:/data/photos"
            )
        return FolderSource(rest)
    if not rest:
        raise ValueError(
            f"source spec {spec!r} names no split: write `<dataset>:<split>`, e.g. `df2k:train`"
        )
    from unires_jax.data import builders

    return builders.open_built(kind, rest, data_dir=data_dir)


def open_sources(
    specs: str | Iterable[str], *, data_dir: str | os.PathLike | None = None
) -> Any:
    """Opens a comma-separated list (or iterable) of source specs as one source."""
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    opened = [open_source(s, data_dir=data_dir) for s in specs]
    if not opened:
        raise ValueError("no source specs given")
    return opened[0] if len(opened) == 1 else ConcatSource(opened)

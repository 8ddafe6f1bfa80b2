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
- `"photos:train"`: every training photo obtainable offline (the sample photos' train split and
  `unires_jax.data.real_photos.TRAIN`, those whose packages are installed), each at several
  scales (`PhotoSource`). Only the train split exists: held-out photos are never a source.
- `"dead_leaves"` or `"dead_leaves:<size>"`: procedural dead-leaves images of `size` px (default
  128), generated on demand from their index (`DeadLeavesSource`, `unires_jax.data.procedural`).
- `"folder:<path>"`: every image file below a folder (clean images only).
- `"<dataset>:<split>"`: a dataset built with `unires data build <dataset>` into `data_dir`.

A comma-separated list of specs is read as one source: concatenated, or, when every spec ends in
`@<weight>` (`"photos:train@0.7,dead_leaves@0.3"`), mixed in those proportions
(`WeightedSource`).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import PIL.Image

_log = logging.getLogger(__name__)

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


# Short sides (px) of the scales a photo is seen at: log-spaced from 256 to 768 (x1.2). A
# 64 px crop of the 256 px version holds a quarter of the photo's height (its structure), one
# of the 768 px version fine detail.
PHOTO_SHORT_SIDES = (256, 307, 368, 441, 529, 635, 768)


def photo_scales(
    short: int, short_sides: Sequence[int] = PHOTO_SHORT_SIDES
) -> list[int]:
    """The short sides a photo whose short side is `short` px is used at.

    A photo within 10% of the ladder's top or below it: every ladder size at least 10% below
    its own, and the photo itself. A larger photo: the ladder sizes up to half its own, never
    the photo itself. Large files are camera or wallpaper JPEGs, and several of
    mate-backgrounds' are visibly blocky (gradients across 8 px block edges 1.6-2.1x those
    inside blocks); halving averages that away, a 1.5x reduction does not.
    """
    if short > max(short_sides) * 1.1:
        return [s for s in short_sides if s <= short / 2]
    return [s for s in short_sides if s * 1.1 <= short] + [short]


class PhotoSource:
    """Clean photos, each at several scales, decoded and resized once and held in memory.

    Record `i` is one (photo, scale) pair: the photo antialias-resized (Lanczos) so that its
    short side is one of `photo_scales(...)`; the pipeline's random crop then picks the region.
    """

    def __init__(
        self,
        photos: Mapping[str, np.ndarray],
        short_sides: Sequence[int] = PHOTO_SHORT_SIDES,
    ):
        if not photos:
            raise ValueError("PhotoSource needs at least one photo")
        self.photos = tuple(photos)
        self._records: list[dict[str, Any]] = []
        for name, image in photos.items():
            image = PIL.Image.fromarray(np.asarray(image, np.uint8))
            width, height = image.size
            for short in photo_scales(min(width, height), short_sides):
                scale = short / min(width, height)
                size = (
                    max(short, round(width * scale)),
                    max(short, round(height * scale)),
                )
                resized = (
                    image
                    if size == image.size
                    else image.resize(
                        size, PIL.Image.Resampling.LANCZOS, reducing_gap=None
                    )
                )
                self._records.append(
                    {"hq": np.asarray(resized), "name": f"{name}@{short}px"}
                )

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._records[index]

    def __repr__(self) -> str:
        return f"PhotoSource({len(self.photos)} photos, {len(self._records)} scaled records)"


def training_photos() -> dict[str, np.ndarray]:
    """Every training photo installed here: name -> uint8 [H, W, 3].

    The sample photos' train split (always installed) and `real_photos.TRAIN`; photos whose
    package is missing are skipped with a warning that says how to install them. Held-out
    photos of either set (`sample_photos.HELDOUT`, `real_photos.HELDOUT`) are never read.
    """
    from unires_jax.data import real_photos, sample_photos

    photos = sample_photos.load_sample_photos("train")
    missing = {}
    for name in real_photos.TRAIN:
        try:
            path = real_photos.photo_path(name)
        except FileNotFoundError as e:
            missing[name] = e
            continue
        photos[name] = decode_image(path)
    if missing:
        _log.warning(
            "photos:train: %d of the %d real training photos are not installed and are "
            "skipped (%s); training goes on with the other %d photos. %s",
            len(missing),
            len(real_photos.TRAIN),
            ", ".join(missing),
            len(photos),
            next(iter(missing.values())),
        )
    held_out = set(photos) & (set(sample_photos.HELDOUT) | set(real_photos.HELDOUT))
    if held_out:  # The splits are disjoint by construction; this guards future edits.
        raise RuntimeError(
            f"held-out photos {sorted(held_out)} reached the training photos: fix the "
            "splits in unires_jax/data/sample_photos.py / real_photos.py"
        )
    return photos


class DeadLeavesSource:
    """Procedural dead-leaves images, generated on demand from (seed, index): unlimited supply.

    `length` only bounds the index (grain needs a length); record `i` is always the same image.
    """

    def __init__(self, size: int = 128, *, length: int = 10**6, seed: int = 0):
        if size < 8 or length < 1:
            raise ValueError(
                f"DeadLeavesSource needs size >= 8 and length >= 1, got {size}, {length}"
            )
        self.size, self.length, self.seed = int(size), int(length), int(seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} records")
        from unires_jax.data import procedural

        return {
            "hq": procedural.dead_leaves_image(self.seed, index, self.size),
            "name": f"dead_leaves/{index}",
        }

    def __repr__(self) -> str:
        return (
            f"DeadLeavesSource({self.size} px, {self.length} records, seed {self.seed})"
        )


class WeightedSource:
    """Several sources mixed in fixed proportions, by index.

    The index runs through blocks of `period` records; in each block, part k takes a fixed run
    of round(weight_k * period) slots (largest remainders, at least one each) and reads its
    records in order, wrapping around. Any window of `period` consecutive records therefore has
    exactly those proportions, and the pipeline's shuffle spreads them. The length covers every
    record of every part at least once.
    """

    def __init__(
        self, parts: Sequence[Any], weights: Sequence[float], period: int = 100
    ):
        if not parts or len(parts) != len(weights):
            raise ValueError(
                f"WeightedSource needs one weight per source, got {len(parts)} sources and "
                f"{len(weights)} weights"
            )
        w = np.asarray(weights, np.float64)
        if not np.all(np.isfinite(w)) or w.min() <= 0:
            raise ValueError(f"source weights must be positive, got {list(weights)}")
        if len(parts) > period:
            raise ValueError(f"at most {period} weighted sources, got {len(parts)}")
        share = w / w.sum() * (period - len(parts))
        counts = 1 + np.floor(share).astype(np.int64)
        remainder = period - counts.sum()
        counts[np.argsort(-(share - np.floor(share)), kind="stable")[:remainder]] += 1
        self._parts = list(parts)
        self._counts = counts
        self._starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._period = period
        blocks = max(math.ceil(len(p) / int(c)) for p, c in zip(parts, counts))
        self._length = blocks * period

    @property
    def parts(self) -> list[Any]:
        """The sources mixed, in order."""
        return list(self._parts)

    @property
    def fractions(self) -> list[float]:
        """The exact share of each part."""
        return [int(c) / self._period for c in self._counts]

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self._length:
            raise IndexError(f"index {index} out of range for {self._length} records")
        block, slot = divmod(int(index), self._period)
        k = int(np.searchsorted(self._starts, slot, side="right")) - 1
        part = self._parts[k]
        j = block * int(self._counts[k]) + slot - int(self._starts[k])
        return part[j % len(part)]

    def __repr__(self) -> str:
        mix = ", ".join(f"{f:.2f} x {p!r}" for f, p in zip(self.fractions, self._parts))
        return f"WeightedSource({mix})"


def open_source(spec: str, *, data_dir: str | os.PathLike | None = None) -> Any:
    """Opens one source from its spec string (see the module docstring).

    Args:
      spec: `"sample_photos[:split]"`, `"photos:train"`, `"dead_leaves[:size]"`,
        `"folder:<path>"` or `"<dataset>:<split>"`.
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
    if kind == "photos":
        if rest != "train":
            raise ValueError(
                f"source spec {spec!r}: only `photos:train` exists. Held-out photos are never "
                "a training source (they are evaluated by `unires demo` and "
                "benchmarks/real_photos.py)."
            )
        return PhotoSource(training_photos())
    if kind == "dead_leaves":
        try:
            size = int(rest) if rest else 128
        except ValueError:
            raise ValueError(
                f"source spec {spec!r}: write `dead_leaves` or `dead_leaves:<size in px>`"
            ) from None
        return DeadLeavesSource(size)
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
    """Opens a comma-separated list (or iterable) of source specs as one source.

    Specs ending in `@<weight>` are mixed in those proportions (`WeightedSource`); either every
    spec has a weight or none has (then they are concatenated).
    """
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    specs = [s.strip() for s in specs]
    if not specs:
        raise ValueError("no source specs given")
    weighted = [_split_weight(s) for s in specs]
    has_weight = [w is not None for _, w in weighted]
    if any(has_weight) and not all(has_weight):
        raise ValueError(
            f"source specs {specs}: give every spec a weight (`spec@0.7`) or none of them"
        )
    opened = [open_source(s, data_dir=data_dir) for s, _ in weighted]
    if all(has_weight):
        return WeightedSource(opened, [w for _, w in weighted])
    return opened[0] if len(opened) == 1 else ConcatSource(opened)


def _split_weight(spec: str) -> tuple[str, float | None]:
    """`"photos:train@0.7"` -> ("photos:train", 0.7); no `@<number>` suffix -> (spec, None)."""
    head, sep, tail = spec.rpartition("@")
    if not sep:
        return spec, None
    try:
        return head, float(tail)
    except ValueError:
        return spec, None  # an `@` that is part of a path

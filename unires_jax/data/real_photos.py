"""Real photographs from installed packages: the held-out set of `benchmarks/real_photos.py` and
the extra training photos of the default model (issue "the main job on real photos").

Sources (files that installed packages ship; nothing is downloaded):
- matplotlib's sample data (matplotlib is a dependency): grace_hopper.jpg, a portrait.
- Debian's `mate-backgrounds` (`apt-get install mate-backgrounds`), its nature set: twelve
  large JPEG photographs (flowers, grass, water, sky, wood).

The held-out set was chosen by content, before any setting was tuned, and is never trained on
nor used to choose a setting: a portrait with a flag and uniform (grace_hopper), a landscape
with sky, sea and grass (dune), a macro with bokeh (ladybird), a smooth sky (storm) and a
fine texture (wood). The other seven nature photos are training photos.

Each photo is prepared the same way: downscaled (antialiased) so that its short side is
`size * 5 / 4` (which also averages away the source files' own JPEG artefacts), then the
centred `size` x `size` crop.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
from PIL import Image

MATE_NATURE = pathlib.Path("/usr/share/backgrounds/mate/nature")

# name -> (where it comes from, the file). "python:<package>" files are inside an installed
# Python package; "debian:<package>" files are installed by that Debian package.
PHOTOS: dict[str, tuple[str, str]] = {
    "grace_hopper": ("python:matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    **{
        name.lower(): ("debian:mate-backgrounds", str(MATE_NATURE / f"{name}.jpg"))
        for name in (
            "Aqua",
            "Blinds",
            "Dune",
            "FreshFlower",
            "Garden",
            "GreenMeadow",
            "LadyBird",
            "RainDrops",
            "Storm",
            "TwoWings",
            "Wood",
            "YellowFlower",
        )
    },
}
HELDOUT: tuple[str, ...] = ("grace_hopper", "dune", "ladybird", "storm", "wood")
TRAIN: tuple[str, ...] = tuple(sorted(set(PHOTOS) - set(HELDOUT)))
SPLITS = {"heldout": HELDOUT, "train": TRAIN}


def photo_path(name: str) -> pathlib.Path:
    """The file of one photo.

    Raises:
      KeyError: unknown photo name.
      FileNotFoundError: its package is not installed (the message says how to install it).
    """
    if name not in PHOTOS:
        raise KeyError(f"unknown real photo {name!r}; known: {sorted(PHOTOS)}")
    source, relative = PHOTOS[name]
    kind, package = source.split(":")
    if kind == "python":
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"photo {name!r} comes with {package}, which is not installed"
            )
        path = pathlib.Path(next(iter(spec.submodule_search_locations))) / relative
    else:
        path = pathlib.Path(relative)
    if not path.is_file():
        how = (
            f"`apt-get install {package}`"
            if kind == "debian"
            else f"`pip install {package}`"
        )
        raise FileNotFoundError(
            f"{path}: photo {name!r} is not installed; {how} provides it"
        )
    return path


def available(split: str) -> tuple[str, ...]:
    """The photos of a split whose files are installed here."""
    out = []
    for name in SPLITS[split]:
        try:
            photo_path(name)
        except FileNotFoundError:
            continue
        out.append(name)
    return tuple(out)


def load(name: str, size: int = 256) -> np.ndarray:
    """A photo prepared as the module docstring says: float32 [size, size, 3] in [0, 1]."""
    with Image.open(photo_path(name)) as im:
        return prepare(im, size)


def prepare(im: Image.Image, size: int = 256) -> np.ndarray:
    """Any photo prepared as the module docstring says: float32 [size, size, 3] in [0, 1]."""
    im = im.convert("RGB")
    short = round(size * 5 / 4)
    scale = short / min(im.size)
    resized = im.resize(
        (
            max(size, round(im.size[0] * scale)),
            max(size, round(im.size[1] * scale)),
        ),
        Image.Resampling.LANCZOS,
        reducing_gap=None,
    )
    w, h = resized.size
    left, top = (w - size) // 2, (h - size) // 2
    crop = np.asarray(resized.crop((left, top, left + size, top + size)), np.float32)
    return crop / np.float32(255.0)

"""Photos that ship inside installed packages, with a fixed train / held-out split.

These need no download and no network: they are files inside the scikit-image and scikit-learn
wheels (only files bundled in the wheels are listed, never ones that `skimage.data` would fetch
on demand). The demo, the tests and the tiny embedded default model train on the "train" split
and show or evaluate on the "heldout" split, so held-out photos are never trained on.

The held-out photos were picked for content variety before any training, not by tuning: an
animal with fur (chelsea), an indoor still life (coffee), an outdoor scene with sky and
man-made structures (rocket) and a saturated close-up of a plant (flower). The two motorcycle
photos are a stereo pair of one scene, so both stay in the same split.

PyWavelets' images (aero, ascent, camera) are not used: they are grayscale, one duplicates
scikit-image's camera, and PyWavelets is not a dependency.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np

from unires_jax.data import sources

# name -> (top-level package, file path inside that package).
PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "brick": ("skimage", "data/brick.png"),  # grayscale texture
    "camera": ("skimage", "data/camera.png"),  # grayscale
    "chelsea": ("skimage", "data/chelsea.png"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "coffee": ("skimage", "data/coffee.png"),
    "coins": ("skimage", "data/coins.png"),  # grayscale
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "grass": ("skimage", "data/grass.png"),  # grayscale texture
    "gravel": ("skimage", "data/gravel.png"),  # grayscale texture
    "hubble_deep_field": ("skimage", "data/hubble_deep_field.jpg"),
    "ihc": ("skimage", "data/ihc.png"),  # immunohistochemistry micrograph
    "moon": ("skimage", "data/moon.png"),  # grayscale
    "motorcycle_left": ("skimage", "data/motorcycle_left.png"),
    "motorcycle_right": ("skimage", "data/motorcycle_right.png"),
    "retina": ("skimage", "data/retina.jpg"),
    "rocket": ("skimage", "data/rocket.jpg"),
}

HELDOUT: tuple[str, ...] = ("chelsea", "coffee", "flower", "rocket")
TRAIN: tuple[str, ...] = tuple(sorted(set(PHOTOS) - set(HELDOUT)))
SPLITS: dict[str, tuple[str, ...]] = {
    "train": TRAIN,
    "heldout": HELDOUT,
    "all": tuple(sorted(PHOTOS)),
}


def photo_path(name: str) -> pathlib.Path:
    """The file of one sample photo inside its installed package (the package is not imported).

    Raises:
      KeyError: unknown photo name.
      FileNotFoundError: the package or the file is not installed.
    """
    if name not in PHOTOS:
        raise KeyError(f"unknown sample photo {name!r}; known: {sorted(PHOTOS)}")
    package, relative = PHOTOS[name]
    # find_spec on the top-level name locates the package without running its __init__.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"sample photo {name!r} lives in the package {package!r}, which is not installed. "
            "Install unires-jax with its dependencies (scikit-image, scikit-learn)."
        )
    path = pathlib.Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: sample photo {name!r} is missing from the installed {package!r} package. "
            "It ships in the package wheel; reinstall the package or check its version."
        )
    return path


def load_sample_photos(split: str = "train") -> dict[str, np.ndarray]:
    """Decodes the photos of one split.

    Args:
      split: "train", "heldout" or "all".

    Returns:
      name -> uint8 [H, W, 3], in name order. Grayscale photos are repeated over 3 channels.
    """
    if split not in SPLITS:
        raise ValueError(
            f"unknown sample_photos split {split!r}; use one of {sorted(SPLITS)}"
        )
    return {name: sources.decode_image(photo_path(name)) for name in SPLITS[split]}

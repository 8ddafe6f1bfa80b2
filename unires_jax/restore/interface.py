"""What every model family's restorer implements: `ImageRestorer` and its `Restored` images.

Files in and files out (`restore/batch.py`), `unires restore`, `unires eval` and the demo use only
this interface (see `restore/api.py` for `load` by family).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclasses.dataclass
class Restored:
    """One restored image.

    Attributes:
      pixels: `[H', W', 3]` float32 in [0, 1] (H' = H * scale).
      details: JSON-ready facts about this restoration, written into its sidecar (e.g. UniRes:
        the weights, where they came from, UNet evaluations, what deblurring found).
      check_output: called with the written output file; returns facts to add to the sidecar
        (e.g. the quality score of the file as written). None: nothing to check.
    """

    pixels: np.ndarray
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    check_output: Callable[[pathlib.Path], Mapping[str, Any]] | None = None


@runtime_checkable
class ImageRestorer(Protocol):
    """A loaded model that restores images (every family implements it).

    Attributes:
      family: the family tag ("unires", ...).
      scale: output size / input size (1, or the super-resolution factor).
    """

    family: str
    scale: int

    def restore(
        self, image: np.ndarray, *, seed: int = 0, name: str | None = None
    ) -> Restored:
        """Restores `[H, W, 3]` pixels (uint8, uint16 or float in [0, 1]).

        `seed` makes sampling families reproducible; `name` labels per-image logs (the input
        file's path, when there is one).
        """
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts about the model and its settings, recorded in every sidecar."""
        ...


class OptionError(ValueError):
    """Options that the checkpoint's family does not take, or that are invalid for it."""


def check_options(family: str, options: Mapping[str, Any], accepted: set[str]) -> None:
    """Raises OptionError naming the options a family does not take."""
    unknown = sorted(set(options) - accepted)
    if unknown:
        flags = ", ".join(f"{name} (--{name.replace('_', '-')})" for name in unknown)
        raise OptionError(
            f"a {family!r} checkpoint does not take {flags}; its options are: "
            f"{', '.join(sorted(accepted)) or 'none'}"
        )


def checkpoint_label(checkpoint: str | pathlib.Path | None) -> str | None:
    """How `describe()` names a restorer's checkpoint: its absolute path, or None for one built
    in memory or the embedded default (each family says which)."""
    return str(pathlib.Path(checkpoint).resolve()) if checkpoint else None

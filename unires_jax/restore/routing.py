"""Routing by degradation type: one restorer per kind of damage, as FoundIR's test routes weather
and low-light images to specialist models and the rest to its generalist.

A route table maps degradation types to checkpoints (any family `restore.load` reads):

    rain=ckpt/rain_specialist, haze=ckpt/rain_specialist, lowlight=ckpt/lowlight

given as that comma-separated text or as a file with one `type=checkpoint` per line (`#`
comments allowed). An image's type is read from its name (the input file's path, or the sample
id of `unires eval`): the folder names along it, with a leading number dropped (the FoundIR test
layout `12NightRain/LQ/0001.png` gives "nightrain"), are matched case-insensitively against the
table's types, a type matching when it is contained in a folder name (so "rain" routes
"NightRain" and "RainDrop"). The longest matching type wins; unmatched images go to the default
restorer. Every sidecar says which route restored the image.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from unires_jax.restore.interface import ImageRestorer, OptionError, Restored

FAMILY = "routed"


def parse_table(text: str | os.PathLike) -> dict[str, str]:
    """A route table from its text or its file (see the module docstring).

    Raises:
      OptionError: a malformed entry or a type given twice (naming it).
    """
    source = str(text)
    path = pathlib.Path(source)
    if "=" not in source and path.is_file():
        lines = [line.split("#", 1)[0] for line in path.read_text().splitlines()]
        entries, where = [e.strip() for e in lines if e.strip()], str(path)
    else:
        entries, where = [e.strip() for e in source.split(",") if e.strip()], "--route"
    table: dict[str, str] = {}
    for entry in entries:
        kind, sep, checkpoint = entry.partition("=")
        kind = _normal(kind)
        if not sep or not kind or not checkpoint.strip():
            raise OptionError(f"{where}: route {entry!r} is not TYPE=CHECKPOINT")
        if kind in table:
            raise OptionError(f"{where}: degradation type {kind!r} is routed twice")
        table[kind] = checkpoint.strip()
    if not table:
        raise OptionError(f"{where}: no routes given")
    return table


def _normal(name: str) -> str:
    """A folder or type name as routes compare it: lower case, no leading number, letters and
    digits only ("12NightRain" -> "nightrain")."""
    return re.sub(r"[^a-z0-9]", "", re.sub(r"^\d+", "", name.strip()).lower())


def route_for(name: str | None, kinds: list[str]) -> str | None:
    """The table type an image named `name` falls under, or None (see the module docstring)."""
    if not name:
        return None
    parts = [_normal(p) for p in pathlib.PurePath(name).parts[:-1]]
    found = [k for k in kinds for p in parts if k and k in p]
    return max(found, key=len) if found else None


class RoutedRestorer:
    """Restores each image with the restorer its degradation type is routed to."""

    family = FAMILY

    def __init__(self, default: ImageRestorer, routes: Mapping[str, ImageRestorer]):
        scales = {default.scale, *(r.scale for r in routes.values())}
        if len(scales) > 1:
            raise OptionError(
                f"routed restorers must share one output scale, got {sorted(scales)}"
            )
        self.default = default
        self.routes = dict(routes)
        self.scale = default.scale

    def describe(self) -> dict[str, Any]:
        return {
            "family": FAMILY,
            "default": self.default.describe(),
            "routes": {kind: r.describe() for kind, r in self.routes.items()},
        }

    def restore(
        self, image: np.ndarray, *, seed: int = 0, name: str | None = None
    ) -> Restored:
        kind = route_for(name, list(self.routes))
        restorer = self.routes[kind] if kind is not None else self.default
        out = restorer.restore(image, seed=seed, name=name)
        details = {
            "route": kind or "default",
            "route_family": restorer.family,
            **out.details,
        }
        return Restored(out.pixels, details, out.check_output)

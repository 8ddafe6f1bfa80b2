"""LPIPS weight files -> LpipsModel: lpips' linear heads plus a torchvision ImageNet backbone.

Two files, both PyTorch state dicts (or the same keys in .safetensors):

- heads: the `lpips` package's `lpips/weights/v0.1/{alex,vgg}.pth`, keys
  `lin{l}.model.1.weight` [1, C_l, 1, 1] (the `.1` is the conv after NetLinLayer's Dropout).
- backbone: torchvision's `alexnet-owt-7be5be79.pth` / `vgg16-397923af.pth`, keys
  `features.{i}.weight` [O, I, k, k] and `features.{i}.bias` [O]; `classifier.*` is ignored.

`features.{i}` is `LpipsConfig.features[i]`; conv weights go OIHW -> HWIO. Every key is checked
before anything is built: a missing, extra or mis-shaped key raises `LpipsWeightsError` naming the
file, the first offending keys, and the file that was expected (with a hint when the file fits the
other variant or is the other kind of file).

The lpips head files (and older torchvision downloads) are in PyTorch's legacy pre-1.6 format,
which `weight_files.read_weights` refuses; `_read_legacy_torch` reads that format with the same
rule: only tensors and ordered dicts are unpickled, anything else is refused.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np
from flax import nnx

from unires_jax.convert import torch_layout
from unires_jax.convert.weight_files import WeightFileError, read_weights
from unires_jax.quality.lpips_model import CONFIGS, Conv, LpipsConfig, LpipsModel

# The files users are expected to pass, by variant, for error messages.
HEAD_FILES = {
    "alex": "lpips/weights/v0.1/alex.pth",
    "vgg": "lpips/weights/v0.1/vgg.pth",
}
BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth (torchvision AlexNet_Weights.IMAGENET1K_V1)",
    "vgg": "vgg16-397923af.pth (torchvision VGG16_Weights.IMAGENET1K_V1)",
}
_SHOW = 5  # how many offending keys an error lists


class LpipsWeightsError(ValueError):
    """A heads or backbone file is unreadable or does not fit the LPIPS variant."""


# ---------------------------------------------------------------------------------------------
# Key maps (PyTorch names and shapes)


def head_shapes(cfg: LpipsConfig) -> dict[str, tuple[int, ...]]:
    """Every key of an lpips head file for `cfg`, with its PyTorch shape."""
    return {
        f"lin{t}.model.1.weight": (1, c, 1, 1) for t, c in enumerate(cfg.tap_channels)
    }


def backbone_shapes(cfg: LpipsConfig) -> dict[str, tuple[int, ...]]:
    """Every `features.*` key of a torchvision backbone file that `cfg` uses, with its shape."""
    out, channels = {}, 3
    for i, layer in enumerate(cfg.features):
        if isinstance(layer, Conv):
            out[f"features.{i}.weight"] = (
                layer.features,
                channels,
                layer.kernel,
                layer.kernel,
            )
            out[f"features.{i}.bias"] = (layer.features,)
            channels = layer.features
    return out


class _Kind(NamedTuple):
    name: str  # "heads" / "backbone"
    shapes: Callable[[LpipsConfig], dict[str, tuple[int, ...]]]
    prefix: str  # keys with this prefix must all be expected; others are ignored
    files: dict[str, str]


_HEADS = _Kind("heads", head_shapes, "lin", HEAD_FILES)
_BACKBONE = _Kind("backbone", backbone_shapes, "features.", BACKBONE_FILES)


def _fits(
    arrays: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, ...]]
) -> bool:
    return all(k in arrays and tuple(arrays[k].shape) == s for k, s in shapes.items())


def _hint(arrays: Mapping[str, np.ndarray], kind: _Kind, cfg: LpipsConfig) -> str:
    """What the file looks like, when it is not what was asked for."""
    for net, make in CONFIGS.items():
        other = make()
        if net != cfg.net and _fits(arrays, kind.shapes(other)):
            return (
                f" This file is the {net!r} {kind.name} file: pass net={net!r}, or the "
                f"{cfg.net!r} {kind.name} file."
            )
    swapped = _BACKBONE if kind is _HEADS else _HEADS
    for net, make in CONFIGS.items():
        if _fits(arrays, swapped.shapes(make())):
            return (
                f" This file holds {net!r} {swapped.name} weights: were heads= and "
                "backbone= swapped?"
            )
    return ""


def _check_state(
    arrays: Mapping[str, np.ndarray], cfg: LpipsConfig, kind: _Kind, source: str
) -> None:
    """Raises LpipsWeightsError naming missing, unexpected and mis-shaped keys of one file."""
    expected = kind.shapes(cfg)
    missing = [k for k in expected if k not in arrays]
    unexpected = [k for k in arrays if k.startswith(kind.prefix) and k not in expected]
    mismatched = [
        f"{k} {tuple(arrays[k].shape)} vs {expected[k]}"
        for k in expected
        if k in arrays and tuple(arrays[k].shape) != expected[k]
    ]
    if not (missing or unexpected or mismatched):
        return
    problems = []
    for title, keys in [
        ("missing", missing),
        ("unexpected", unexpected),
        ("mis-shaped (file vs expected, PyTorch layout)", mismatched),
    ]:
        if keys:
            more = f" (and {len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
            problems.append(f"{len(keys)} {title} keys, e.g. {keys[:_SHOW]}{more}")
    raise LpipsWeightsError(
        f"{source}: not an LPIPS-{cfg.net} {kind.name} file: "
        + "; ".join(problems)
        + f". Expected {kind.files[cfg.net]}."
        + _hint(arrays, kind, cfg)
    )


def to_params(
    heads: Mapping[str, np.ndarray],
    backbone: Mapping[str, np.ndarray],
    cfg: LpipsConfig,
) -> dict[tuple[str | int, ...], np.ndarray]:
    """Checked state dicts -> LpipsModel parameter paths, in Flax layout (float32)."""
    out = {}
    for j, i in enumerate(cfg.conv_indices):
        w = np.asarray(backbone[f"features.{i}.weight"], np.float32)
        out[("backbone", "convs", j, "kernel")] = torch_layout.conv_kernel(w)
        out[("backbone", "convs", j, "bias")] = np.asarray(
            backbone[f"features.{i}.bias"], np.float32
        )
    for t in range(len(cfg.taps)):
        w = np.asarray(heads[f"lin{t}.model.1.weight"], np.float32)
        out[("heads", t, "kernel")] = torch_layout.conv_kernel(w)
    return out


# ---------------------------------------------------------------------------------------------
# Reading files


def _read_state_dict(
    path: str | pathlib.Path, cfg: LpipsConfig, kind: _Kind
) -> dict[str, np.ndarray]:
    """Reads a .pth (zip or legacy format) or .safetensors state dict as numpy arrays."""
    path = pathlib.Path(path)
    expected = f"expected the LPIPS-{cfg.net} {kind.name} file {kind.files[cfg.net]}"
    if not path.is_file():
        raise LpipsWeightsError(f"{path}: no such file; {expected}.")
    try:
        # Pickles (zip or legacy format): the reader only rebuilds tensors and dicts and
        # refuses any other object.
        return read_weights(path, allow_pickle=True)
    except WeightFileError as e:
        raise LpipsWeightsError(f"{e} ({expected})") from e


def load_model(
    cfg: LpipsConfig, heads: str | pathlib.Path, backbone: str | pathlib.Path
) -> LpipsModel:
    """Builds an LpipsModel from the two files, checking every key first.

    Args:
        cfg: the variant (`lpips_model.lpips_config("alex")`).
        heads: lpips' linear-head file (`lpips/weights/v0.1/{net}.pth`).
        backbone: torchvision's ImageNet file of the same net.

    Raises:
        LpipsWeightsError: a file is unreadable, or its keys or shapes do not fit `cfg`.
    """
    head_arrays = _read_state_dict(heads, cfg, _HEADS)
    _check_state(head_arrays, cfg, _HEADS, str(heads))
    backbone_arrays = _read_state_dict(backbone, cfg, _BACKBONE)
    _check_state(backbone_arrays, cfg, _BACKBONE, str(backbone))
    model = nnx.eval_shape(lambda: LpipsModel(cfg, rngs=nnx.Rngs(0)))
    values = to_params(head_arrays, backbone_arrays, cfg)
    targets = torch_layout.param_shapes(model)
    if set(targets) != set(values) or any(
        values[p].shape != s for p, s in targets.items()
    ):
        # The key map and the model disagree: a bug in this file, not in the weights.
        raise RuntimeError(
            f"LpipsModel parameters {sorted(targets)} are not covered by the key map"
        )
    return torch_layout.load_into(model, values)

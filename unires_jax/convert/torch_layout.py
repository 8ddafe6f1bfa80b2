"""PyTorch-layout arrays to Flax NNX (NHWC) parameters, and the key walk shared by converters.

A converter supplies regex renames from checkpoint names to module attribute paths; this module
turns each `<path>.weight` / `<path>.bias` into the matching `kernel` / `scale` / `bias`
parameter, transposes kernels (conv OIHW -> HWIO, linear [out, in] -> [in, out]), checks every
shape, and reports unmapped checkpoint keys, parameters missing from the checkpoint and shape
mismatches all in one ValueError.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

Path = tuple[str | int, ...]

# How many examples of each problem an error message lists.
_SHOW = 5


def conv_kernel(w: np.ndarray) -> np.ndarray:
    """torch Conv2d weight [O, I, kh, kw] -> Flax kernel [kh, kw, I, O]."""
    if w.ndim != 4:
        raise ValueError(f"conv weight must be 4-D [O, I, kh, kw], got shape {w.shape}")
    return np.transpose(w, (2, 3, 1, 0))


def linear_kernel(w: np.ndarray) -> np.ndarray:
    """torch Linear weight [out, in] -> Flax kernel [in, out]."""
    if w.ndim != 2:
        raise ValueError(f"linear weight must be 2-D [out, in], got shape {w.shape}")
    return np.transpose(w)


def _torch_shape(flax_shape: tuple[int, ...], leaf: str) -> tuple[int, ...]:
    """The PyTorch-layout shape that converts to `flax_shape` (for error messages)."""
    if leaf == "kernel" and len(flax_shape) == 4:
        kh, kw, i, o = flax_shape
        return (o, i, kh, kw)
    if leaf == "kernel" and len(flax_shape) == 2:
        return tuple(reversed(flax_shape))
    return tuple(flax_shape)


def path_str(path: Path) -> str:
    return ".".join(str(p) for p in path)


def key_to_path(key: str, renames: Sequence[tuple[str, str]] = ()) -> Path:
    """'down_blocks.0.resnets.1.conv1' -> ('down_blocks', 0, 'resnets', 1, 'conv1') after renames.

    `renames` are (regex, replacement) pairs applied in order to the dotted key (with a leading
    dot added so patterns can anchor on '.name.').
    """
    dotted = "." + key + "."
    for pattern, repl in renames:
        dotted = re.sub(pattern, repl, dotted)
    return tuple(int(p) if p.isdigit() else p for p in dotted.strip(".").split("."))


def param_shapes(module: nnx.Module) -> dict[Path, tuple[int, ...]]:
    """Shapes of every nnx.Param of `module` (abstract or concrete), by path."""
    return {
        tuple(path): tuple(var.shape)
        for path, var in nnx.to_flat_state(nnx.state(module, nnx.Param))
    }


def convert_state(
    state: Mapping[str, np.ndarray],
    targets: Mapping[Path, tuple[int, ...]],
    *,
    renames: Sequence[tuple[str, str]] = (),
    what: str,
    source: str = "",
) -> dict[Path, np.ndarray]:
    """Maps a PyTorch state dict onto parameter paths, in Flax layout, checking everything.

    Args:
        state: checkpoint name -> array in PyTorch layout.
        targets: parameter path -> expected Flax shape (from `param_shapes`).
        renames: (regex, replacement) pairs from checkpoint names to module attribute paths.
        what: model name for messages ("UNet", "VAE").
        source: the checkpoint file, named in the error.

    Returns:
        parameter path -> numpy array in Flax layout, one per target.

    Raises:
        ValueError: any checkpoint key that maps to no parameter, parameter with no checkpoint key,
            or shape mismatch (all listed in one message).
    """
    values: dict[Path, np.ndarray] = {}
    unmapped: list[str] = []
    mismatched: list[str] = []
    bad_paths: set[Path] = set()  # reported once, as mismatches, not again as missing
    for key, array in state.items():
        *prefix, leaf = key_to_path(key, renames)
        prefix = tuple(prefix)
        array = np.asarray(array)
        if leaf == "weight" and prefix + ("kernel",) in targets:
            path = prefix + ("kernel",)
            expected = targets[path]
            if array.ndim != len(expected):
                mismatched.append(
                    f"{key} {tuple(array.shape)} vs {_torch_shape(expected, 'kernel')}"
                )
                bad_paths.add(path)
                continue
            array = conv_kernel(array) if array.ndim == 4 else linear_kernel(array)
        elif leaf == "weight" and prefix + ("scale",) in targets:
            path = prefix + ("scale",)
        elif leaf == "bias" and prefix + ("bias",) in targets:
            path = prefix + ("bias",)
        else:
            unmapped.append(key)
            continue
        if tuple(array.shape) != tuple(targets[path]):
            got = _torch_shape(tuple(array.shape), path[-1])
            mismatched.append(f"{key} {got} vs {_torch_shape(targets[path], path[-1])}")
            bad_paths.add(path)
            continue
        values[path] = array
    missing = [path_str(p) for p in targets if p not in values and p not in bad_paths]
    if unmapped or missing or mismatched:
        problems = []
        if unmapped:
            problems.append(
                f"{len(unmapped)} checkpoint keys match no parameter, e.g. {unmapped[:_SHOW]}"
            )
        if missing:
            problems.append(
                f"{len(missing)} model parameters are not in the checkpoint, e.g. {missing[:_SHOW]}"
            )
        if mismatched:
            problems.append(
                f"{len(mismatched)} shapes differ (checkpoint vs model, PyTorch layout), e.g. {mismatched[:_SHOW]}"
            )
        raise ValueError(
            f"{source or '<state dict>'}: {what} weights do not fit the {what} config: "
            + "; ".join(problems)
            + ". Check that config.json belongs to these weights."
        )
    return values


# diffusers bookkeeping keys present in every saved config.json.
METADATA_KEYS = frozenset(
    {"_class_name", "_diffusers_version", "_name_or_path", "_use_default_values"}
)


def check_config_keys(
    config: Mapping[str, Any],
    expected_class: str,
    *,
    fixed: Mapping[str, tuple[Any, ...]],
    used: Collection[str],
    metadata: Collection[str] = (),
) -> None:
    """Refuses a diffusers config.json that asks for a computation the converter does not do.

    Args:
        config: the parsed config.json.
        expected_class: the diffusers class name `_class_name` must have, when present.
        fixed: keys accepted only at the listed values.
        used: keys the converter reads (any value; it checks them itself).
        metadata: further keys that do not affect the computation.

    Raises:
        ValueError: naming the first unknown key, or fixed key with another value.
    """
    cls = config.get("_class_name", expected_class)
    if cls != expected_class:
        raise ValueError(f"_class_name={cls!r}: expected {expected_class!r}")
    for key, value in config.items():
        if key in METADATA_KEYS or key in metadata or key in used:
            continue
        if key not in fixed:
            raise ValueError(
                f"unknown {expected_class} config key {key!r} (value {value!r}); not supported"
            )
        if value not in fixed[key]:
            raise ValueError(
                f"unsupported {key}={value!r}: only {list(fixed[key])} is implemented"
            )


def load_into(module: nnx.Module, values: Mapping[Path, np.ndarray]) -> nnx.Module:
    """Fills every nnx.Param of `module` (typically from nnx.eval_shape) from `values`.

    Arrays are cast to each parameter's dtype; logical-axis metadata is kept.
    Returns the same module, now holding concrete arrays.
    """
    params = nnx.state(module, nnx.Param)
    flat = nnx.to_flat_state(params)
    for path, var in flat:
        var.set_value(jnp.asarray(values[tuple(path)], dtype=var.dtype))
    nnx.update(module, nnx.from_flat_state(flat))
    return module

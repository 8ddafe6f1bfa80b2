"""The device mesh and the one table that maps logical axis names to mesh axes.

Models name parameter axes with logical names only (`unires_jax/models/partitioning.py`); this
file is the only place that says which mesh axis each logical name is split over. Mesh axes:

- `data`: pure data parallelism (parameters replicated along it).
- `fsdp`: data parallelism with parameters and optimiser state sharded along it (ZeRO-3 style);
  the batch is split over `data` and `fsdp` together.
- `tensor`: optional model parallelism inside a layer (size 1 unless configured).

A dimension whose size is not divisible by its mesh axes is replicated instead, and that is logged
(e.g. a 3-channel output convolution on `fsdp=4`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

_log = logging.getLogger(__name__)

MESH_AXES = ("data", "fsdp", "tensor")
# Axes the global batch is split over (its leading dimension).
BATCH_AXES = ("data", "fsdp")

# logical axis name -> mesh axis (or tuple of mesh axes, or None = replicated).
LOGICAL_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    # Activations: the leading batch dimension.
    ("batch", BATCH_AXES),
    # Convolution kernels [kh, kw, c_in, c_out] and biases [c_out]: FSDP shards output
    # channels (all SD UNet/VAE widths are multiples of 32); `tensor` splits input channels.
    ("kh", None),
    ("kw", None),
    ("c_in", "tensor"),
    ("c_out", "fsdp"),
    # Dense kernels [d_in, d_out] and biases [d_out], same split as convolutions.
    ("embed_in", "tensor"),
    ("embed_out", "fsdp"),
    # GroupNorm / LayerNorm scale and bias: tiny, replicated.
    ("norm", None),
    # Embedding tables [vocab, d] / [positions, d]: the d axis follows embed_out.
    ("vocab", "tensor"),
    ("pos", None),
)


def make_mesh(
    data: int = -1,
    fsdp: int = 1,
    tensor: int = 1,
    devices: Sequence[jax.Device] | None = None,
) -> Mesh:
    """Builds the ("data", "fsdp", "tensor") mesh.

    Args:
      data, fsdp, tensor: axis sizes; at most one may be -1, meaning "all remaining devices".
      devices: devices to use (default `jax.devices()`). When the sizes multiply to fewer devices
        than given, the first ones are used (e.g. a (4, 1) mesh on an 8-device host).

    Returns:
      A `Mesh` whose devices are ordered by (process, id), so each process owns a contiguous block
      of the batch axis.
    """
    devices = list(jax.devices() if devices is None else devices)
    sizes = [int(data), int(fsdp), int(tensor)]
    if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
        raise ValueError(
            f"mesh sizes (data={data}, fsdp={fsdp}, tensor={tensor}): use positive sizes and at "
            "most one -1 (set config.mesh.data/fsdp/tensor; see unires_jax/train/sharding.py)"
        )
    if -1 in sizes:
        known = math.prod(s for s in sizes if s != -1)
        if len(devices) % known:
            raise ValueError(
                f"{len(devices)} devices cannot be split into a mesh with data={data}, "
                f"fsdp={fsdp}, tensor={tensor}: {len(devices)} is not divisible by {known}. "
                "Change config.mesh."
            )
        sizes[sizes.index(-1)] = len(devices) // known
    needed = math.prod(sizes)
    if needed > len(devices):
        raise ValueError(
            f"config.mesh asks for {sizes} = {needed} devices but only {len(devices)} are "
            "available; lower config.mesh.data/fsdp/tensor or use -1 for one of them."
        )
    if needed < len(devices):
        _log.info(
            "mesh %s uses %d of %d devices",
            dict(zip(MESH_AXES, sizes)),
            needed,
            len(devices),
        )
    ordered = sorted(devices, key=lambda d: (d.process_index, d.id))[:needed]
    return Mesh(np.array(ordered).reshape(sizes), MESH_AXES)


def _mesh_axes_for(name: str | None) -> tuple[str, ...]:
    """Mesh axes for one logical name; raises KeyError for a name without a rule."""
    if name is None:
        return ()
    for logical, mesh_axes in LOGICAL_RULES:
        if logical == name:
            if mesh_axes is None:
                return ()
            return (mesh_axes,) if isinstance(mesh_axes, str) else tuple(mesh_axes)
    raise KeyError(
        f"logical axis name {name!r} has no rule in LOGICAL_RULES "
        "(unires_jax/train/sharding.py); add one there, or use a name from "
        "unires_jax/models/partitioning.py in the model."
    )


def logical_to_spec(
    names: Sequence[str | None], shape: Sequence[int], mesh: Mesh
) -> tuple[PartitionSpec, list[str]]:
    """Maps the logical axis names of one array to a mesh PartitionSpec.

    Args:
      names: one logical name (or None) per array dimension.
      shape: the array shape.
      mesh: the target mesh; mesh axes of size 1 or absent from it are dropped.

    Returns:
      (spec, notes): the PartitionSpec, and one note per dimension that had to be replicated
      because its size is not divisible by the product of its mesh axis sizes.
    """
    if len(names) != len(shape):
        raise ValueError(
            f"logical names {tuple(names)} do not match shape {tuple(shape)}"
        )
    used: set[str] = set()
    spec, notes = [], []
    for dim, (name, size) in enumerate(zip(names, shape)):
        axes = tuple(
            a
            for a in _mesh_axes_for(name)
            if mesh.shape.get(a, 1) > 1 and a not in used
        )
        parts = math.prod(mesh.shape[a] for a in axes) if axes else 1
        if axes and size % parts:
            notes.append(
                f"dim {dim} ({name}={size}) not divisible by {'x'.join(axes)}={parts}"
            )
            axes = ()
        used.update(axes)
        spec.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return PartitionSpec(*spec), notes


def _logical_names(variable: nnx.Variable) -> tuple[str | None, ...] | None:
    """The logical names a parameter was annotated with via `nnx.with_partitioning`."""
    meta = variable.get_metadata()
    names = meta.get("out_sharding", meta.get("sharding_names", meta.get("sharding")))
    return tuple(names) if names else None


def state_shardings(state: nnx.State, mesh: Mesh, *, what: str = "params") -> dict:
    """NamedShardings for every variable of an (abstract) NNX state, as a pure dict.

    Variables without logical names are replicated. Fallbacks to replication are logged once per
    call with a count and the first few paths.

    Args:
      state: an `nnx.State` (e.g. from `nnx.split` of an `nnx.eval_shape` model).
      mesh: the target mesh.
      what: label used in log messages.

    Returns:
      A pure dict with the structure of `nnx.to_pure_dict(state)` holding `NamedSharding`s.
    """
    flat, fallbacks, unnamed = {}, [], 0
    for path, variable in nnx.to_flat_state(state):
        names = _logical_names(variable)
        shape = variable.get_value().shape
        if names is None:
            unnamed += 1 if len(shape) else 0
            spec = PartitionSpec()
        else:
            spec, notes = logical_to_spec(names, shape, mesh)
            fallbacks += [f"{'/'.join(map(str, path))}: {n}" for n in notes]
        flat[path] = NamedSharding(mesh, spec)
    if fallbacks:
        _log.info(
            "sharding %s: %d dimension(s) replicated instead of sharded, e.g. %s",
            what,
            len(fallbacks),
            "; ".join(fallbacks[:3]),
        )
    if unnamed:
        _log.info(
            "sharding %s: %d array(s) without logical axis names are replicated",
            what,
            unnamed,
        )
    return _unflatten(flat)


def _unflatten(flat: Mapping[tuple, object]) -> dict:
    out: dict = {}
    for path, value in flat.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return out


def replicated(mesh: Mesh) -> NamedSharding:
    """A fully replicated sharding on `mesh`."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding for batch arrays [B, ...]: the leading axis split over ("data", "fsdp")."""
    spec, _ = logical_to_spec(
        ("batch",), (mesh.shape["data"] * mesh.shape["fsdp"],), mesh
    )
    return NamedSharding(mesh, spec)


def batch_parallelism(mesh: Mesh) -> int:
    """Number of batch shards on `mesh` (data x fsdp)."""
    return mesh.shape["data"] * mesh.shape["fsdp"]

"""FoundIR checkpoints (official `model-N.pt`) -> `DiffUIRUNet`, and our "residual" checkpoints.

The official trainer saves `{'step', 'model', 'opt0', 'ema', 'scaler'}` (`Trainer.save` in
FoundIR's src/model.py). `model` is ResidualDiffusion's state dict: its schedule buffers
(`alphas_cumsum`, `delta_cumsum`, ...) and the UNet under `model.unet0.`; `ema` is ema-pytorch's:
`initted`, `step`, `online_model.*` and `ema_model.*`, the EMA UNet under
`ema_model.model.unet0.` (what the official test samples with). A safetensors file holds the same
names flat: with those prefixes (`ema_model.model.unet0.*`, `model.unet0.*`, or nested-flattened
`ema.ema_model.model.unet0.*`, `model.model.unet0.*`) or a bare UNet state dict
(`init_conv.weight`, ...).

The UNet config is read off the weights' shapes (dim, dim_mults, channels), so DiffUIR models of
other sizes convert too; the attention head split (4 x 32) and GroupNorm groups (8) cannot be
seen in shapes and stay at the official values unless a config is given.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.convert import checkpoint as checkpoint_lib
from unires_jax.convert import config_io, torch_layout, weight_files
from unires_jax.diffusion import residual
from unires_jax.models.diffuir import DiffUIRConfig, DiffUIRUNet

FAMILY = "residual"
WEIGHTS = ("ema", "model")
# Where each choice's UNet lies, most specific first: nested-flattened `.pt`, then a flat file.
_PREFIXES = {
    "ema": ("ema.ema_model.model.unet0.", "ema_model.model.unet0."),
    "model": ("model.model.unet0.", "model.unet0."),
}
_BARE_MARKER = "init_conv.weight"
_PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")

# Official state-dict names -> DiffUIRUNet attribute paths (applied to '.'-wrapped keys in order).
FOUNDIR_RENAMES = (
    (r"\.time_mlp\.1\.", ".time_mlp.linear_1."),
    (r"\.time_mlp\.3\.", ".time_mlp.linear_2."),
    (r"\.(downs|ups)\.(\d+)\.0\.", r".\1.\2.block1."),
    (r"\.(downs|ups)\.(\d+)\.1\.", r".\1.\2.block2."),
    (r"\.(downs|ups)\.(\d+)\.2\.fn\.fn\.to_out\.0\.", r".\1.\2.attn.to_out."),
    (r"\.(downs|ups)\.(\d+)\.2\.fn\.fn\.to_out\.1\.", r".\1.\2.attn.out_norm."),
    (r"\.(downs|ups)\.(\d+)\.2\.fn\.fn\.", r".\1.\2.attn."),
    (r"\.(downs|ups)\.(\d+)\.2\.fn\.norm\.", r".\1.\2.attn.norm."),
    (r"\.downs\.(\d+)\.3\.", r".downs.\1.downsample."),
    (r"\.ups\.(\d+)\.3\.1\.", r".ups.\1.upsample."),  # nn.Sequential(Upsample, Conv2d)
    (r"\.ups\.(\d+)\.3\.", r".ups.\1.upsample."),  # the last level: a bare Conv2d
    (r"\.mid_attn\.fn\.fn\.", ".mid_attn."),
    (r"\.mid_attn\.fn\.norm\.", ".mid_attn.norm."),
    (r"\.mlp\.1\.", ".time_proj."),
)

# Sampler defaults of the official test (test.py): 4 steps, start noise 0.1, 1024 tiles at 512.
DEFAULT_SETTINGS = {
    "steps": residual.SAMPLING_STEPS,
    "start_scale": residual.START_SCALE,
    "tile": 1024,  # tiles of 1024 px at stride 512, overlaps averaged (official test.py)
    "tile_overlap": 512,
    "blend": "average",
}
DEFAULT_SCHEDULE = {"num_steps": 1000, "delta_end": residual.DELTA_END}


def read_foundir_state(
    path: str | os.PathLike, *, weights: str = "ema", allow_pickle: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The UNet state dict (official names, PyTorch layout) of a FoundIR checkpoint file.

    Args:
        path: the official `model-N.pt` (a pickle) or a `.safetensors` file.
        weights: "ema" (the EMA weights the official test uses) or "model" (the raw ones).
            A bare UNet state dict (no prefix) says neither and is taken whatever `weights`.
        allow_pickle: permit reading a pickle (`.pt`, `.pth`, `.ckpt`, `.bin`).

    Returns:
        (state, facts): `state` maps `init_conv.weight`, ... to arrays; `facts` holds what the
        file says about itself (`step`, the trainer step, when present).

    Raises:
        WeightFileError / ValueError: unreadable file, a pickle without `allow_pickle`, or no
            UNet of the chosen weights in it (names the file and the prefixes found).
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights={weights!r}: expected one of {WEIGHTS}")
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (expected a FoundIR model-N.pt)")
    facts: dict[str, Any] = {}
    if path.name.endswith(_PICKLE_SUFFIXES):
        tree = weight_files.read_torch_tree(path, allow_pickle=allow_pickle)
        if isinstance(tree.get("step"), int) and not isinstance(tree["step"], bool):
            facts["step"] = tree["step"]
        flat = _flatten(tree)
    elif path.name.endswith(".safetensors"):
        flat = weight_files.read_safetensors(path)
    else:
        raise weight_files.WeightFileError(
            f"{path}: unknown weight file type (expected a FoundIR .pt or a .safetensors file)"
        )
    return _select_unet(flat, weights, path), facts


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dicts -> {'a.b.c': array}; non-array values (ints, optimizer lists) are dropped."""
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, np.ndarray):
            out[name] = value
        elif isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
    return out


def _select_unet(
    flat: Mapping[str, np.ndarray], weights: str, path: pathlib.Path
) -> dict[str, np.ndarray]:
    for prefix in _PREFIXES[weights]:
        state = {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}
        if state:
            return state
    other = "model" if weights == "ema" else "ema"
    if any(k.startswith(p) for p in _PREFIXES[other] for k in flat):
        raise ValueError(
            f"{path}: holds no {weights!r} UNet weights (none under {list(_PREFIXES[weights])}), "
            f"only {other!r} ones; pass weights={other!r} (CLI: --weights {other})"
        )
    if _BARE_MARKER in flat:
        return dict(flat)
    roots = sorted({k.split(".unet0.")[0] + ".unet0." for k in flat if ".unet0." in k})
    raise ValueError(
        f"{path}: no FoundIR UNet found: expected keys under {list(_PREFIXES[weights])} "
        f"(or a bare UNet state dict with {_BARE_MARKER!r}); found "
        f"{roots or sorted(flat)[:5]}. Is this an official FoundIR model-N.pt?"
    )


def _levels(state: Mapping[str, np.ndarray], group: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(rf"{group}\.(\d+)\.", k))}
    return max(found) + 1 if found else 0


def config_from_state(
    state: Mapping[str, np.ndarray],
    *,
    base: DiffUIRConfig | None = None,
    source: str = "",
) -> DiffUIRConfig:
    """The `DiffUIRConfig` whose parameter shapes the official state dict has.

    `dim`, `dim_mults`, `in_channels`, `out_channels` come from the shapes; the rest from `base`
    (default: the official values).

    Raises:
        ValueError: keys the UNet always has are missing, or widths that are no multiples of dim.
    """
    base = base if base is not None else DiffUIRConfig()
    needed = ("init_conv.weight", "final_conv.weight")
    missing = [k for k in needed if k not in state]
    levels = _levels(state, "downs")
    if missing or not levels:
        raise ValueError(
            f"{source or '<state dict>'}: not a DiffUIR UNet state dict: "
            f"{missing or ['downs.0.*']} missing"
        )
    dim, in_channels = state["init_conv.weight"].shape[:2]
    out_channels = state["final_conv.weight"].shape[0]
    widths = []
    for i in range(levels):
        key = f"downs.{i}.3.weight"
        if key not in state:
            raise ValueError(f"{source or '<state dict>'}: {key} missing")
        widths.append(int(state[key].shape[0]))
    if any(w % dim for w in widths):
        raise ValueError(
            f"{source or '<state dict>'}: level widths {widths} are not multiples of dim {dim}"
        )
    return dataclasses.replace(
        base,
        dim=int(dim),
        dim_mults=tuple(w // int(dim) for w in widths),
        in_channels=int(in_channels),
        out_channels=int(out_channels),
    )


def _layernorm_gains(
    state: Mapping[str, np.ndarray], source: str
) -> dict[str, np.ndarray]:
    """The official LayerNorm gain `g` [1, C, 1, 1] -> `weight` [C] (what convert_state maps)."""
    out = {}
    for key, value in state.items():
        if key.endswith(".g"):
            value = np.asarray(value)
            if value.ndim != 4 or value.shape[0] != 1 or value.shape[2:] != (1, 1):
                raise ValueError(
                    f"{source}: LayerNorm gain {key} has shape {value.shape}, expected "
                    "(1, C, 1, 1)"
                )
            out[key[: -len(".g")] + ".weight"] = value.reshape(-1)
        else:
            out[key] = value
    return out


def unet_from_state(
    state: Mapping[str, np.ndarray],
    config: DiffUIRConfig | None = None,
    *,
    dtype: Any = jnp.float32,
    source: str = "",
) -> tuple[DiffUIRUNet, DiffUIRConfig]:
    """Builds a `DiffUIRUNet` holding an official UNet state dict (prefix removed).

    Args:
        state: `init_conv.weight`, `downs.0.0.block1.proj.weight`, ... in PyTorch layout.
        config: the UNet config; None reads it off the shapes (`config_from_state`).
        dtype: parameter and compute dtype.
        source: the file, named in errors.

    Raises:
        ValueError: unmapped keys, missing parameters or shape mismatches, all named.
    """
    source = source or "<state dict>"
    cfg = config if config is not None else config_from_state(state, source=source)
    cfg = dataclasses.replace(cfg, dtype=dtype, param_dtype=dtype)
    model = nnx.eval_shape(lambda: DiffUIRUNet(cfg, rngs=nnx.Rngs(0)))
    values = torch_layout.convert_state(
        _layernorm_gains(state, source),
        torch_layout.param_shapes(model),
        renames=FOUNDIR_RENAMES,
        what="DiffUIR UNet",
        source=source,
    )
    return torch_layout.load_into(model, values), cfg


def load_foundir(
    path: str | os.PathLike,
    *,
    weights: str = "ema",
    allow_pickle: bool = False,
    config: DiffUIRConfig | None = None,
    dtype: Any = jnp.float32,
) -> tuple[DiffUIRUNet, DiffUIRConfig, dict[str, Any]]:
    """Reads an official FoundIR checkpoint into a `DiffUIRUNet`.

    Args:
        path: `model-N.pt` (needs `allow_pickle`) or a `.safetensors` file.
        weights: "ema" (default, as the official test) or "model" (raw weights).
        allow_pickle: permit reading a pickle.
        config: the UNet config; None reads it off the weights' shapes.
        dtype: parameter and compute dtype.

    Returns:
        (model, config, facts): `facts` records the source file, the weights chosen and the
        trainer step when the file has one.
    """
    state, facts = read_foundir_state(path, weights=weights, allow_pickle=allow_pickle)
    try:
        model, cfg = unet_from_state(state, config, dtype=dtype, source=str(path))
    except ValueError as e:
        raise ValueError(
            f"{e} (the UNet read from {weights!r} weights; the official FoundIR UNet is "
            "UnetRes(dim=64, dim_mults=(1, 2, 4, 8)))"
        ) from None
    facts = {"source": pathlib.Path(path).name, "weights": weights, **facts}
    return model, cfg, facts


def save_foundir(
    model: DiffUIRUNet,
    config: DiffUIRConfig,
    dst: str | os.PathLike,
    *,
    settings: Mapping[str, Any] | None = None,
    schedule: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> pathlib.Path:
    """Writes a "residual" checkpoint: the UNet (float32), its config, schedule and settings.

    Args:
        model: the UNet.
        config: its config (stored without the runtime dtype choice: weights are float32).
        dst: the new folder (must not exist).
        settings: default inference settings; default `DEFAULT_SETTINGS` (official test).
        schedule: `residual_schedule` arguments; default T = 1000, delta_end = 1.4e-3.
        extra: facts for the record (source file, weights, step).
    """
    stored = dataclasses.replace(
        config, dtype=jnp.float32, param_dtype=jnp.float32, attention=None
    )
    return checkpoint_lib.save(
        dst,
        family=FAMILY,
        config={
            "unet": config_io.config_to_dict(stored),
            "schedule": dict(schedule if schedule is not None else DEFAULT_SCHEDULE),
        },
        params={"unet": checkpoint_lib.module_params(model)},
        settings=dict(settings if settings is not None else DEFAULT_SETTINGS),
        extra=dict(extra or {}),
    )


def load_foundir_checkpoint(
    path: str | os.PathLike,
    *,
    dtype: Any = jnp.float32,
    attention: str | None = None,
    checkpoint: checkpoint_lib.Checkpoint | None = None,
) -> tuple[DiffUIRUNet, dict[str, Any]]:
    """Reads a "residual" checkpoint written by `save_foundir` (verified first).

    Args:
        path: the checkpoint folder.
        dtype: parameter and compute dtype.
        attention: middle-attention implementation; None keeps `DiffUIRConfig`'s default.
        checkpoint: the already verified `checkpoint.read(path)`, to skip reading it again.

    Returns:
        (model, settings): the stored settings plus `"schedule"`, the `residual_schedule`
        arguments (`num_steps`, `delta_end`).

    Raises:
        CheckpointError: a damaged checkpoint or parameters that do not fit (names the file).
        ValueError: a checkpoint of another family.
    """
    ckpt = checkpoint if checkpoint is not None else checkpoint_lib.read(path)
    meta = str(ckpt.path / checkpoint_lib.META)
    if ckpt.family != FAMILY:
        raise ValueError(
            f"{ckpt.path}: a {ckpt.family!r} checkpoint, not a residual-diffusion (FoundIR) one"
        )
    if "unet" not in ckpt.config:
        raise checkpoint_lib.CheckpointError(f"{meta}: no 'unet' config")
    cfg = config_io.config_from_dict(
        DiffUIRConfig, dict(ckpt.config["unet"]), source=meta
    )
    cfg = dataclasses.replace(cfg, dtype=dtype, param_dtype=dtype, attention=attention)
    model = nnx.eval_shape(lambda: DiffUIRUNet(cfg, rngs=nnx.Rngs(0)))
    params_file = ckpt.file(f"{checkpoint_lib.PARAMS_DIR}/unet.safetensors")
    checkpoint_lib.assign_params(
        model, ckpt.params("unet"), dtype=dtype, source=str(params_file)
    )
    settings = dict(ckpt.settings)
    settings["schedule"] = dict(ckpt.config.get("schedule", DEFAULT_SCHEDULE))
    return model, settings


def convert_foundir(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    weights: str = "ema",
    allow_pickle: bool = False,
    settings: Mapping[str, Any] | None = None,
) -> pathlib.Path:
    """`unires convert foundir`: an official checkpoint file -> a "residual" checkpoint folder."""
    model, cfg, facts = load_foundir(src, weights=weights, allow_pickle=allow_pickle)
    return save_foundir(model, cfg, dst, settings=settings, extra=facts)

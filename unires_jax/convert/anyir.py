"""AnyIR checkpoints (official Lightning `.ckpt`, plain state dicts) -> `AnyIR`, and our "anyir"
checkpoints.

The official trainer (`train.py`, PyTorch Lightning `ModelCheckpoint`) saves `epoch=E-step=S.ckpt`:
a pickle of `state_dict` (the LightningModule's, so every key starts with `net.`: 714
parameters plus the 37 BatchNorm layers' `running_mean`, `running_var`, `num_batches_tracked`),
`epoch`, `global_step`, `pytorch-lightning_version`, `loops`, `callbacks`, `optimizer_states` and
`lr_schedulers`. A plain `.pth` / `.pt` state dict or a `.safetensors` file with the same names,
with or without the `net.` prefix, converts too.

The network config is read off the weights: width, blocks per level, refinement blocks, heads
(from the temperatures), FFN expansion, `bias`, and the version (v2's gate branch has `W_exp`,
v1's GatedCNNBlock has `gic1`). BatchNorm running statistics become the model's `BatchStat`s;
`num_batches_tracked` only matters to torch's cumulative-average mode (momentum=None), which
AnyIR does not use, and is dropped.

Our checkpoint ("anyir" family, `unires_jax/convert/checkpoint.py`) stores the parameters in
`params/anyir.safetensors` and the BatchNorm statistics in `params/batch_stats.safetensors`
(keys: the NNX paths, e.g. `enc1.0.mixer.gate.norm.mean`).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.convert import checkpoint as checkpoint_lib
from unires_jax.convert import config_io, torch_layout, weight_files
from unires_jax.models.anyir import AnyIR, AnyIRConfig

FAMILY = "anyir"
PARAMS = "anyir"
BATCH_STATS = "batch_stats"
PREFIX = "net."
_MARKER = "patch_embed.proj.weight"
_PICKLE_SUFFIXES = (".ckpt", ".pth", ".pt", ".bin")
# Default inference settings: whole images up to 1280 px (GoPro's 1280 x 720 frames run untiled,
# as in the official test), larger ones as tiles.
DEFAULT_SETTINGS = {"tile": 1280, "tile_overlap": 128}

# Official state-dict names -> AnyIR attribute paths (applied to '.'-wrapped keys in order).
ANYIR_RENAMES = (
    (r"\.patch_embed\.proj\.", ".embed."),
    (r"\.encoder_level(\d)\.", r".enc\1."),
    (r"\.decoder_level(\d)\.", r".dec\1."),
    (r"\.refinement\.", ".refine."),
    (r"\.down1_2\.body\.0\.", ".down1."),
    (r"\.down2_3\.body\.0\.", ".down2."),
    (r"\.down3_4\.body\.0\.", ".down3."),
    (r"\.up4_3\.body\.0\.", ".up3."),
    (r"\.up3_2\.body\.0\.", ".up2."),
    (r"\.up2_1\.body\.0\.", ".up1."),
    (r"\.reduce_dim_level3\.", ".latent_reduce."),
    (r"\.reduce_chan_level3\.", ".fuse3."),
    (r"\.reduce_chan_level2\.", ".fuse2."),
    (r"^\.output\.", ".out."),
    (r"\.norm([12])\.body\.", r".norm\1."),
    (r"\.attn\.gatedcnn\.", ".mixer.gate."),
    (r"\.attn\.qkv_dwconv\.", ".mixer.qkv_dw."),
    (r"\.attn\.project_out\.", ".mixer.proj."),
    (r"\.attn\.", ".mixer."),
    (r"\.gate\.(W_exp|gic1)\.", ".gate.expand."),
    (r"\.gate\.(W_depth|cconv)\.", ".gate.depthwise."),
    (r"\.gate\.(W_gate|gic2)\.", ".gate.merge."),
    (r"\.gate\.(W_proj|proj_out)\.", ".gate.proj."),
    (r"\.ffn\.project_in\.", ".ffn.proj_in."),
    (r"\.ffn\.dwconv\.", ".ffn.dw."),
    (r"\.ffn\.project_out\.", ".ffn.proj_out."),
)
# Official leaves that are neither `weight` nor `bias`, with their NNX leaf names.
_VECTOR_LEAVES = {"temperature": "temperature", "tau": "tau", "lam": "lam"}
_STAT_LEAVES = {"running_mean": "mean", "running_var": "var"}
_DROPPED_LEAVES = ("num_batches_tracked",)


def read_anyir_state(
    path: str | os.PathLike, *, allow_pickle: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The network state dict (official names without `net.`, PyTorch layout) of a file.

    Args:
      path: a Lightning `.ckpt`, a `.pth` / `.pt` / `.bin` state dict (pickles: need
        `allow_pickle`), or a `.safetensors` file.
      allow_pickle: permit reading a pickle (it could run code when loaded; our reader only
        rebuilds tensors, dicts and plain values, and refuses anything else).

    Returns:
      (state, facts): `state` maps `patch_embed.proj.weight`, ... to arrays (BatchNorm buffers
      included); `facts` holds what the file says about itself (`epoch`, `global_step`,
      `pytorch_lightning_version`) when present.

    Raises:
      WeightFileError: an unreadable file, or a pickle without `allow_pickle`.
      ValueError: no AnyIR network in it (names the file and what it found).
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such file (expected an AnyIR .ckpt or .pth)"
        )
    facts: dict[str, Any] = {}
    if path.name.endswith(_PICKLE_SUFFIXES):
        tree = weight_files.read_torch_tree(path, allow_pickle=allow_pickle)
        for key, name in (
            ("epoch", "epoch"),
            ("global_step", "global_step"),
            ("pytorch-lightning_version", "pytorch_lightning_version"),
        ):
            if isinstance(tree.get(key), (int, str)) and not isinstance(
                tree[key], bool
            ):
                facts[name] = tree[key]
        flat = (
            tree["state_dict"] if isinstance(tree.get("state_dict"), Mapping) else tree
        )
    elif path.name.endswith(".safetensors"):
        flat = weight_files.read_safetensors(path)
    else:
        raise weight_files.WeightFileError(
            f"{path}: unknown weight file type (expected an AnyIR .ckpt, .pth or .safetensors)"
        )
    return official_state(flat, source=str(path)), facts


def official_state(
    state: Mapping[str, Any], *, source: str = ""
) -> dict[str, np.ndarray]:
    """An official state dict as {name without `net.`: numpy array}.

    Takes what `AnyIR().state_dict()` or a Lightning module's `state_dict()` returns (torch
    tensors, keys with or without `net.`) or numpy arrays; entries that are not arrays are
    dropped.

    Raises:
      ValueError: no AnyIR network in it.
    """
    arrays = {}
    for key, value in state.items():
        if hasattr(
            value, "detach"
        ):  # a torch tensor; torch itself is not imported here
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            arrays[key] = value
    prefixed = {k[len(PREFIX) :]: v for k, v in arrays.items() if k.startswith(PREFIX)}
    found = prefixed if _MARKER in prefixed else arrays
    if _MARKER not in found:
        raise ValueError(
            f"{source or '<state dict>'}: no AnyIR network found: expected "
            f"{PREFIX + _MARKER!r} (a Lightning checkpoint of the official train.py) or "
            f"{_MARKER!r} (a bare state dict); found {sorted(arrays)[:5] or sorted(state)[:5]}"
        )
    return found


def _count(state: Mapping[str, np.ndarray], stage: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(rf"{stage}\.(\d+)\.", k))}
    if found != set(range(len(found))):
        raise ValueError(f"{stage}: blocks {sorted(found)} are not numbered 0..n-1")
    return len(found)


def config_from_state(
    state: Mapping[str, np.ndarray],
    *,
    base: AnyIRConfig | None = None,
    source: str = "",
) -> AnyIRConfig:
    """The `AnyIRConfig` whose parameters have the shapes in an official state dict.

    Raises:
      ValueError: a state dict that is not AnyIR's (names what is missing).
    """
    source = source or "<state dict>"
    state = official_state(state, source=source)
    base = base if base is not None else AnyIRConfig()
    stages = ("encoder_level1", "encoder_level2", "encoder_level3", "latent")
    levels = tuple(_count(state, s) for s in stages)
    refinement = _count(state, "refinement")
    needed = [f"{s}.0.attn.temperature" for s in stages] + [
        "encoder_level1.0.ffn.project_in.weight"
    ]
    missing = [k for k in needed if k not in state]
    if missing or not refinement:
        raise ValueError(
            f"{source}: not an AnyIR state dict: {missing or ['refinement.0.*']} missing"
        )
    if "encoder_level1.0.attn.gatedcnn.W_exp.weight" in state:
        version = "v2"
    elif "encoder_level1.0.attn.gatedcnn.gic1.weight" in state:
        version = "v1"
    else:
        raise ValueError(
            f"{source}: its gate branch is neither v2's (attn.gatedcnn.W_exp) nor v1's "
            "GatedCNNBlock (attn.gatedcnn.gic1)"
        )
    if "encoder_level1.0.norm1.body.bias" not in state:
        raise ValueError(
            f"{source}: LayerNorm without bias ('BiasFree'); only the default 'WithBias' "
            "LayerNorm of the official AnyIR is implemented"
        )
    width, in_channels = state[_MARKER].shape[:2]
    hidden = state["encoder_level1.0.ffn.project_in.weight"].shape[0] // 2
    return dataclasses.replace(
        base,
        version=version,
        width=int(width),
        levels=levels,
        heads=tuple(int(state[f"{s}.0.attn.temperature"].shape[0]) for s in stages),
        refinement_blocks=refinement,
        ffn_expansion=float(hidden) / float(width),
        use_bias="output.bias" in state,
        in_channels=int(in_channels),
        out_channels=int(state["output.weight"].shape[0]),
    )


def model_from_state(
    state: Mapping[str, np.ndarray],
    config: AnyIRConfig | None = None,
    *,
    dtype: Any = jnp.float32,
    source: str = "",
) -> tuple[AnyIR, AnyIRConfig]:
    """Builds an `AnyIR` (in inference mode) holding an official state dict.

    Args:
      state: an official state dict (`official_state`: torch tensors or numpy arrays, names
        with or without `net.`), PyTorch layout, BatchNorm buffers included.
      config: the network config; None reads it off the shapes (`config_from_state`).
      dtype: parameter and compute dtype.
      source: the file, named in errors.

    Raises:
      ValueError: unmapped keys, missing parameters or statistics, or shape mismatches.
    """
    source = source or "<state dict>"
    state = official_state(state, source=source)
    cfg = config if config is not None else config_from_state(state, source=source)
    cfg = dataclasses.replace(cfg, dtype=dtype, param_dtype=dtype)
    model = nnx.eval_shape(lambda: AnyIR(cfg, rngs=nnx.Rngs(0)))
    targets = torch_layout.param_shapes(model)
    special = {p: s for p, s in targets.items() if p[-1] in _VECTOR_LEAVES.values()}
    weights, extra, stats, problems = {}, {}, {}, []
    for key, value in state.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf in _DROPPED_LEAVES:
            continue
        path = torch_layout.key_to_path(key, ANYIR_RENAMES)
        if leaf in _VECTOR_LEAVES:
            extra[path] = np.asarray(value)
        elif leaf in _STAT_LEAVES:
            stats[path[:-1] + (_STAT_LEAVES[leaf],)] = np.asarray(value)
        else:
            weights[key] = value
    values = dict(
        torch_layout.convert_state(
            weights,
            {p: s for p, s in targets.items() if p not in special},
            renames=ANYIR_RENAMES,
            what="AnyIR",
            source=source,
        )
    )
    for path, shape in special.items():
        if path not in extra:
            problems.append(f"{torch_layout.path_str(path)} missing")
        elif extra[path].size != int(np.prod(shape)):
            problems.append(
                f"{torch_layout.path_str(path)} has {extra[path].shape}, expected {shape}"
            )
        else:
            values[path] = extra.pop(path).reshape(shape)
    problems += [f"{torch_layout.path_str(p)} matches no parameter" for p in extra]
    stat_shapes = {
        tuple(p): tuple(v.shape)
        for p, v in nnx.to_flat_state(nnx.state(model, nnx.BatchStat))
    }
    problems += [
        f"BatchNorm statistic {torch_layout.path_str(p)} missing"
        for p in stat_shapes
        if p not in stats
    ]
    for path, value in stats.items():
        if stat_shapes.get(path) != value.shape:
            problems.append(
                f"BatchNorm statistic {torch_layout.path_str(path)} {value.shape} fits no "
                f"layer (expected {stat_shapes.get(path)})"
            )
    if problems:
        raise ValueError(
            f"{source}: AnyIR weights do not fit the AnyIR config: {len(problems)} problem(s), "
            f"e.g. {problems[:5]}"
        )
    torch_layout.load_into(model, values)
    assign_batch_stats(
        model,
        {torch_layout.path_str(p): v for p, v in stats.items()},
        dtype=dtype,
        source=source,
    )
    model.eval()
    return model, cfg


def batch_stats(module: nnx.Module) -> dict[str, np.ndarray]:
    """A module's BatchNorm statistics as {dotted path: float32 array}."""
    return {
        torch_layout.path_str(tuple(path)): np.asarray(v.get_value(), np.float32)
        for path, v in nnx.to_flat_state(nnx.state(module, nnx.BatchStat))
    }


def assign_batch_stats(
    module: nnx.Module, arrays: Mapping[str, np.ndarray], *, dtype: Any, source: str
) -> None:
    """Writes {dotted path: array} into a (possibly abstract) module's BatchNorm statistics.

    Statistics stay float32 whatever `dtype` (nnx.BatchNorm keeps them so).

    Raises:
      CheckpointError: missing, unexpected or mis-shaped statistics (names `source`).
    """
    del dtype
    state = nnx.state(module, nnx.BatchStat)
    flat = nnx.to_flat_state(state)
    names = [torch_layout.path_str(tuple(p)) for p, _ in flat]
    missing = [n for n in names if n not in arrays]
    unexpected = sorted(set(arrays) - set(names))
    wrong = [
        f"{n} {tuple(arrays[n].shape)} (expected {tuple(v.shape)})"
        for n, (_, v) in zip(names, flat)
        if n in arrays and tuple(arrays[n].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        raise checkpoint_lib.CheckpointError(
            f"{source}: the BatchNorm statistics do not fit the stored config: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:3]}), {len(wrong)} of the wrong shape (e.g. {wrong[:3]})"
        )
    for name, (_, variable) in zip(names, flat):
        variable.set_value(jnp.asarray(arrays[name], jnp.float32))
    nnx.update(module, nnx.from_flat_state(flat))


def load_anyir(
    path: str | os.PathLike,
    *,
    allow_pickle: bool = False,
    config: AnyIRConfig | None = None,
    dtype: Any = jnp.float32,
) -> tuple[AnyIR, AnyIRConfig, dict[str, Any]]:
    """Reads an official AnyIR checkpoint file into an `AnyIR` in inference mode.

    Args:
      path: a Lightning `.ckpt` or `.pth` (need `allow_pickle`) or a `.safetensors` file.
      allow_pickle: permit reading a pickle.
      config: the network config; None reads it off the weights' shapes.
      dtype: parameter and compute dtype.

    Returns:
      (model, config, facts): `facts` records the source file and what it says about itself.
    """
    state, facts = read_anyir_state(path, allow_pickle=allow_pickle)
    model, cfg = model_from_state(state, config, dtype=dtype, source=str(path))
    return model, cfg, {"source": pathlib.Path(path).name, **facts}


def save_anyir(
    model: AnyIR,
    config: AnyIRConfig,
    dst: str | os.PathLike,
    *,
    settings: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> pathlib.Path:
    """Writes an "anyir" checkpoint: parameters and BatchNorm statistics (float32), config and
    default inference settings (`DEFAULT_SETTINGS` when None)."""
    stored = dataclasses.replace(config, dtype=jnp.float32, param_dtype=jnp.float32)
    return checkpoint_lib.save(
        dst,
        family=FAMILY,
        config={"anyir": config_io.config_to_dict(stored)},
        params={
            PARAMS: checkpoint_lib.module_params(model),
            BATCH_STATS: batch_stats(model),
        },
        settings=dict(settings if settings is not None else DEFAULT_SETTINGS),
        extra=dict(extra or {}),
    )


def load_anyir_checkpoint(
    path: str | os.PathLike,
    *,
    dtype: Any = jnp.float32,
    checkpoint: checkpoint_lib.Checkpoint | None = None,
) -> tuple[AnyIR, dict[str, Any]]:
    """Reads an "anyir" checkpoint written by `save_anyir` (verified first).

    Args:
      path: the checkpoint folder.
      dtype: parameter and compute dtype.
      checkpoint: the already verified `checkpoint.read(path)`, to skip reading it again.

    Returns:
      (model in inference mode, stored settings).

    Raises:
      CheckpointError: a damaged checkpoint or weights that do not fit (names the file).
      ValueError: a checkpoint of another family.
    """
    ckpt = checkpoint if checkpoint is not None else checkpoint_lib.read(path)
    meta = str(ckpt.path / checkpoint_lib.META)
    if ckpt.family != FAMILY:
        raise ValueError(f"{ckpt.path}: a {ckpt.family!r} checkpoint, not an AnyIR one")
    if "anyir" not in ckpt.config:
        raise checkpoint_lib.CheckpointError(f"{meta}: no 'anyir' config")
    cfg = config_io.config_from_dict(
        AnyIRConfig, dict(ckpt.config["anyir"]), source=meta
    )
    cfg = dataclasses.replace(cfg, dtype=dtype, param_dtype=dtype)
    model = nnx.eval_shape(lambda: AnyIR(cfg, rngs=nnx.Rngs(0)))
    for name in (PARAMS, BATCH_STATS):
        ckpt.file(
            f"{checkpoint_lib.PARAMS_DIR}/{name}.safetensors"
        )  # names a missing file
    source = str(ckpt.path / checkpoint_lib.PARAMS_DIR)
    checkpoint_lib.assign_params(model, ckpt.params(PARAMS), dtype=dtype, source=source)
    assign_batch_stats(model, ckpt.params(BATCH_STATS), dtype=dtype, source=source)
    model.eval()
    return model, dict(ckpt.settings)


def model_from_train_state(
    config: AnyIRConfig, state: Mapping[str, Any], *, use_ema=True
) -> AnyIR:
    """The inference model of a trainer state (`RunResult.state`): EMA (or raw) parameters and
    the BatchNorm statistics in `state["rest"]`."""
    params = jax.device_get(state["ema"] if use_ema else state["params"])
    model = nnx.eval_shape(lambda: AnyIR(config, rngs=nnx.Rngs(0)))
    pstate = nnx.state(model, nnx.Param)
    pstate.replace_by_pure_dict(jax.tree.map(jnp.asarray, params))
    nnx.update(model, pstate)
    stats = nnx.state(model, nnx.BatchStat)
    stats.replace_by_pure_dict(jax.tree.map(jnp.asarray, jax.device_get(state["rest"])))
    nnx.update(model, stats)
    model.eval()
    return model


def convert_anyir(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    version: str | None = None,
    allow_pickle: bool = False,
    settings: Mapping[str, Any] | None = None,
) -> pathlib.Path:
    """`unires convert anyir`: an official checkpoint file -> an "anyir" checkpoint folder.

    Args:
      version: "v2" / "v1" to insist on (a file of the other version is refused); None
        takes what the weights are.
    """
    state, facts = read_anyir_state(src, allow_pickle=allow_pickle)
    cfg = config_from_state(state, source=str(src))
    if version is not None and cfg.version != version:
        raise ValueError(
            f"{src}: holds an AnyIR {cfg.version} network (--version {version} asked); "
            f"drop --version or pass --version {cfg.version}"
        )
    model, cfg = model_from_state(state, cfg, source=str(src))
    facts = {"source": pathlib.Path(src).name, **facts}
    return save_anyir(model, cfg, dst, settings=settings, extra=facts)

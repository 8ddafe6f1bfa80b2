"""Official MUSIQ checkpoints (.npz, keys under `opt/target/`) <-> MusiqModel parameters.

The google-research release (`koniq_ckpt.npz`, `spaq_ckpt.npz`, `paq2piq_ckpt.npz`,
`ava_ckpt.npz`) stores the flattened old-`flax.nn` parameter tree of
`musiq/model/multiscale_transformer.py`, e.g.

    opt/target/conv_root/kernel                                        [7, 7, 3, 64]
    opt/target/gn_root/scale                                           [1, 1, 1, 64]
    opt/target/block1/unit1/{conv1,conv2,conv3,conv_proj}/kernel       HWIO
    opt/target/embedding/kernel                                        [16384, 384]
    opt/target/Transformer/posembed_input/pos_embedding                [1, 100, 384]
    opt/target/Transformer/scaleembed_input/scale_embedding            [1, 3, 384]
    opt/target/Transformer/cls                                         [1, 1, 384]
    opt/target/Transformer/encoderblock_i/LayerNorm_0/{scale,bias}     [384]
    opt/target/Transformer/encoderblock_i/MultiHeadDotProductAttention_1/{query,key,value}/kernel
                                                                       [384, 6, 64]
    opt/target/Transformer/encoderblock_i/MlpBlock_3/Dense_{0,1}/...
    opt/target/head/{kernel,bias}                                      [384, K], [K]

Keys outside `opt/target/` (optimizer state) are ignored, as the official inference script does.
Both layouts are NHWC/HWIO and [in, out], so every mapping is a reshape, except query/key/value,
which are concatenated into our fused `qkv` projection. Loading is strict: a missing, unexpected
or wrongly shaped key raises `MusiqCheckpointError` naming the keys and the file.
"""

from __future__ import annotations

import math
import pathlib
import zipfile
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.quality.musiq_model import HEADS, MusiqConfig, MusiqModel

PREFIX = "opt/target/"


class MusiqCheckpointError(ValueError):
    """An .npz is missing, unreadable, or not an official MUSIQ checkpoint for the config."""


class _Entry(NamedTuple):
    ours: str  # dotted MusiqModel parameter path
    keys: tuple[str, ...]  # official keys without PREFIX
    shapes: tuple[tuple[int, ...], ...]  # official shapes, one per key
    shape: tuple[int, ...]  # our shape


def _entries(cfg: MusiqConfig) -> list[_Entry]:
    """The key map, in model order.

    Our value is the concatenation, along our last axis, of each official array reshaped to
    our leading axes; there is one key for everything but the fused q|k|v projection.
    """
    d, h, w = cfg.hidden_size, cfg.num_heads, cfg.resnet_width
    out: list[_Entry] = []

    def one(
        ours: str, official: str, shape: tuple[int, ...], our_shape: tuple[int, ...]
    ):
        out.append(_Entry(ours, (official,), (shape,), our_shape))

    def gn(ours: str, official: str, c: int):
        for p in ("scale", "bias"):
            one(f"{ours}.{p}", f"{official}/{p}", (1, 1, 1, c), (c,))

    def dense(ours: str, official: str, c_in: int, c_out: int):
        one(f"{ours}.kernel", f"{official}/kernel", (c_in, c_out), (c_in, c_out))
        one(f"{ours}.bias", f"{official}/bias", (c_out,), (c_out,))

    def layer_norm(ours: str, official: str):
        for p in ("scale", "bias"):
            one(f"{ours}.{p}", f"{official}/{p}", (d,), (d,))

    def conv(ours: str, official: str, shape: tuple[int, ...]):
        one(f"{ours}.kernel", f"{official}/kernel", shape, shape)

    conv("conv_root", "conv_root", (7, 7, 3, w))
    gn("gn_root", "gn_root", w)
    unit = "block1/unit1"
    conv("block1.conv_proj", f"{unit}/conv_proj", (1, 1, w, 4 * w))
    conv("block1.conv1", f"{unit}/conv1", (1, 1, w, w))
    conv("block1.conv2", f"{unit}/conv2", (3, 3, w, w))
    conv("block1.conv3", f"{unit}/conv3", (1, 1, w, 4 * w))
    for name, c in [("gn_proj", 4 * w), ("gn1", w), ("gn2", w), ("gn3", 4 * w)]:
        gn(f"block1.{name}", f"{unit}/{name}", c)
    dense("embedding", "embedding", cfg.token_features, d)
    g2, s = cfg.grid_size**2, cfg.num_scales
    one(
        "pos_embedding", "Transformer/posembed_input/pos_embedding", (1, g2, d), (g2, d)
    )
    one(
        "scale_embedding",
        "Transformer/scaleembed_input/scale_embedding",
        (1, s, d),
        (s, d),
    )
    one("cls", "Transformer/cls", (1, 1, d), (d,))
    for i in range(cfg.num_layers):
        blk, ours = f"Transformer/encoderblock_{i}", f"blocks.{i}"
        attn = f"{blk}/MultiHeadDotProductAttention_1"
        qkv = ("query", "key", "value")
        layer_norm(f"{ours}.norm1", f"{blk}/LayerNorm_0")
        out.append(
            _Entry(
                f"{ours}.attention.qkv.kernel",
                tuple(f"{attn}/{n}/kernel" for n in qkv),
                ((d, h, d // h),) * 3,
                (d, 3 * d),
            )
        )
        out.append(
            _Entry(
                f"{ours}.attention.qkv.bias",
                tuple(f"{attn}/{n}/bias" for n in qkv),
                ((h, d // h),) * 3,
                (3 * d,),
            )
        )
        one(
            f"{ours}.attention.out.kernel", f"{attn}/out/kernel", (h, d // h, d), (d, d)
        )
        one(f"{ours}.attention.out.bias", f"{attn}/out/bias", (d,), (d,))
        layer_norm(f"{ours}.norm2", f"{blk}/LayerNorm_2")
        dense(f"{ours}.mlp_in", f"{blk}/MlpBlock_3/Dense_0", d, cfg.mlp_dim)
        dense(f"{ours}.mlp_out", f"{blk}/MlpBlock_3/Dense_1", cfg.mlp_dim, d)
    layer_norm("encoder_norm", "Transformer/encoder_norm")
    dense("head", "head", d, cfg.num_classes)
    return out


def official_shapes(cfg: MusiqConfig) -> dict[str, tuple[int, ...]]:
    """Every key (with the `opt/target/` prefix) an official checkpoint for `cfg` holds."""
    return {PREFIX + k: s for e in _entries(cfg) for k, s in zip(e.keys, e.shapes)}


def read_official_npz(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """Reads the `opt/target/...` arrays of an official MUSIQ .npz (other keys are dropped)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise MusiqCheckpointError(
            f"{path}: no such file. MUSIQ needs an official checkpoint .npz from the google-research "
            f"'musiq' release ({', '.join(f for f, _ in HEADS.values())})."
        )
    try:
        _check_npy_sizes(path)
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            arrays = {k: np.asarray(npz[k]) for k in names if k.startswith(PREFIX)}
    except MusiqCheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise MusiqCheckpointError(
            f"{path}: not a readable .npz ({type(e).__name__}: {e}); the file may be truncated or "
            "not an official MUSIQ checkpoint."
        ) from e
    if not arrays:
        raise MusiqCheckpointError(
            f"{path}: no keys under '{PREFIX}' (found {len(names)} keys, e.g. {names[:3]}). Official "
            "MUSIQ checkpoints store parameters as 'opt/target/...'; pyiqa .pth files or re-saved "
            "trees are not read here."
        )
    return arrays


def _check_npy_sizes(path: pathlib.Path) -> None:
    """Each `opt/target/` array must hold the bytes its .npy header claims: numpy allocates the
    claimed size before reading, so a damaged header could ask for terabytes."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not (
                info.filename.startswith(PREFIX) and info.filename.endswith(".npy")
            ):
                continue
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read_header(f)
                held = info.file_size - f.tell()
            claimed = math.prod(shape) * dtype.itemsize
            if claimed > held:
                raise MusiqCheckpointError(
                    f"{path}: array {info.filename[: -len('.npy')]} claims shape {shape} "
                    f"({claimed} bytes) but holds {held} bytes; the file is damaged"
                )


def check_official_arrays(
    arrays: dict[str, np.ndarray], cfg: MusiqConfig, source: str
) -> None:
    """Raises MusiqCheckpointError naming every missing, unexpected or mis-shaped key."""
    expected = official_shapes(cfg)
    missing = sorted(set(expected) - set(arrays))
    unexpected = sorted(set(arrays) - set(expected))
    mismatched = sorted(
        f"{k}: file {tuple(arrays[k].shape)}, expected {expected[k]}"
        for k in set(expected) & set(arrays)
        if tuple(arrays[k].shape) != expected[k]
    )
    if not (missing or unexpected or mismatched):
        return
    lines = [
        (
            f"{source}: does not match MusiqConfig(num_layers={cfg.num_layers}, num_classes={cfg.num_classes}, "
            f"hidden_size={cfg.hidden_size}, num_scales={cfg.num_scales})."
        )
    ]
    for title, keys in [
        ("missing", missing),
        ("unexpected", unexpected),
        ("mismatched", mismatched),
    ]:
        if keys:
            more = f" (and {len(keys) - 10} more)" if len(keys) > 10 else ""
            lines.append(f"{len(keys)} {title} keys: {keys[:10]}{more}")
    head = arrays.get(PREFIX + "head/kernel")
    if head is not None and head.ndim == 2 and head.shape[1] != cfg.num_classes:
        heads = [n for n, (_, k) in HEADS.items() if k == head.shape[1]]
        lines.append(
            f"The file's head has {head.shape[1]} outputs; pass head= one of {heads}."
            if heads
            else f"No quality head has {head.shape[1]} outputs; imagenet_pretrain.npz is a "
            "pre-training checkpoint, not a quality model."
        )
    if missing and not mismatched:
        lines.append(
            "A file with only missing keys is usually truncated or from another model."
        )
    raise MusiqCheckpointError("\n".join(lines))


def official_to_params(
    arrays: dict[str, np.ndarray], cfg: MusiqConfig
) -> dict[str, np.ndarray]:
    """Official arrays (full keys) -> our flat parameters {"blocks.0.norm1.scale": array, ...}."""
    out = {}
    for e in _entries(cfg):
        parts = [arrays[PREFIX + k].reshape(*e.shape[:-1], -1) for k in e.keys]
        out[e.ours] = np.concatenate(parts, axis=-1).astype(np.float32)
    return out


def params_to_official(
    params: dict[str, np.ndarray], cfg: MusiqConfig
) -> dict[str, np.ndarray]:
    """Our flat parameters -> official arrays (full `opt/target/` keys and shapes)."""
    out = {}
    for e in _entries(cfg):
        value = np.asarray(params[e.ours], np.float32)
        if value.shape != e.shape:
            raise ValueError(
                f"parameter {e.ours} has shape {value.shape}, the key map expects {e.shape}"
            )
        for k, shape, piece in zip(
            e.keys, e.shapes, np.split(value, len(e.keys), axis=-1)
        ):
            out[PREFIX + k] = piece.reshape(shape)
    return out


def model_params(model: MusiqModel) -> dict[str, np.ndarray]:
    """Flat {dotted path: array} of a model's parameters."""
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {".".join(str(p) for p in path): np.asarray(v[...]) for path, v in flat}


def load_official_npz(path: str | pathlib.Path, cfg: MusiqConfig) -> MusiqModel:
    """Builds a MusiqModel from an official checkpoint, checking every key first.

    Shapes come from `nnx.eval_shape`, so no random weights are allocated.

    Raises:
        MusiqCheckpointError: unreadable file, or keys missing / unexpected / mis-shaped for cfg.
    """
    arrays = read_official_npz(path)
    check_official_arrays(arrays, cfg, str(path))
    params = official_to_params(arrays, cfg)
    model = nnx.eval_shape(lambda: MusiqModel(cfg, rngs=nnx.Rngs(0)))
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    values = []
    for path_, var in flat:
        name = ".".join(str(p) for p in path_)
        if name not in params or params[name].shape != tuple(var.shape):
            # The key map and the model disagree: a bug in this file, not in the checkpoint.
            raise RuntimeError(
                f"MusiqModel parameter {name} {tuple(var.shape)} is not covered by the key map"
            )
        values.append((path_, jnp.asarray(params[name])))
    nnx.update(model, nnx.from_flat_state(values))
    return model


def save_official_npz(model: MusiqModel, path: str | pathlib.Path) -> None:
    """Writes a model's parameters as an official-layout .npz (`opt/target/...`, uncompressed)."""
    arrays = params_to_official(model_params(model), model.cfg)
    with open(path, "wb") as f:
        np.savez(f, **arrays)

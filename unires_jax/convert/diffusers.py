"""Loads a latent diffusion model (UNet + VAE + CLIP text encoder + tokenizer) from disk.

Two on-disk formats are read by one entry point, `load_ldm`:
- a diffusers Stable Diffusion folder (`model_index.json`, `unet/`, `vae/`, `text_encoder/`,
  `tokenizer/`, `scheduler/`), weights in safetensors (or `.bin` with `allow_pickle=True`);
- this project's own format written by `save_ldm` / `unires convert diffusers SRC DST`:
  `unires_ldm.json` (configs), `params/` (an orbax checkpoint), `tokenizer/`, which every other
  part of the project (training exports, the embedded default model) uses too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.convert import clip as clip_convert
from unires_jax.convert.clip import read_tokenizer
from unires_jax.convert import config_io, weight_files
from unires_jax.convert import unet as unet_convert
from unires_jax.convert import vae as vae_convert
from unires_jax.models import configs as model_configs
from unires_jax.models import ldm as ldm_lib
from unires_jax.models import text as text_models
from unires_jax.models.ldm import LatentDiffusion
from unires_jax.models.unet import UNet
from unires_jax.models.vae import AutoencoderKL

NATIVE_META = "unires_ldm.json"
NATIVE_FORMAT = "unires-ldm"
NATIVE_VERSION = 1
_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def load_ldm(
    path: str | os.PathLike,
    *,
    lq_channels: int = 0,
    dtype: Any = jnp.float32,
    allow_pickle: bool = False,
    attention: str | None = None,
    variant: str | None = None,
) -> LatentDiffusion:
    """Loads a diffusers Stable Diffusion folder or a checkpoint written by `save_ldm`.

    Args:
      path: the folder.
      lq_channels: extra UNet input channels for the low-quality latent, zero-initialised (so the
        model's output does not depend on them) when the weights on disk do not have them yet.
      dtype: parameter and compute dtype (jnp.float32 or jnp.bfloat16).
      allow_pickle: permit reading `.bin` (pickle) weight files.
      attention: UNet attention implementation ("dot_product", "chunked", "naive", "cudnn");
        None keeps a unires-jax checkpoint's own setting and uses "dot_product" for diffusers
        folders ("chunked" is much faster on CPU, "cudnn" is cuDNN's flash attention on NVIDIA
        GPUs in bfloat16, "dot_product" is XLA's).
      variant: diffusers weight variant, e.g. "fp16" for `*.fp16.safetensors`.
    """
    path = pathlib.Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder (expected a model folder)")
    if (path / NATIVE_META).exists():
        return _load_native(path, lq_channels=lq_channels, dtype=dtype, attention=attention)
    if (path / "model_index.json").exists():
        return _load_diffusers(
            path,
            lq_channels=lq_channels,
            dtype=dtype,
            allow_pickle=allow_pickle,
            attention=attention or "dot_product",
            variant=variant,
        )
    raise FileNotFoundError(
        f"{path}: neither model_index.json (a diffusers Stable Diffusion folder) nor {NATIVE_META} "
        "(a unires-jax checkpoint) is there. Point to the folder that contains unet/, vae/, "
        "text_encoder/, tokenizer/ and scheduler/."
    )


def _read_json(path: pathlib.Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e


def _with_source(fn, source: pathlib.Path, *args, **kwargs):
    """Calls a converter, prefixing any ValueError with the file it came from."""
    try:
        return fn(*args, **kwargs)
    except ValueError as e:
        if str(source) in str(e):
            raise
        raise ValueError(f"{source}: {e}") from e


def _load_diffusers(path, *, lq_channels, dtype, allow_pickle, attention, variant) -> LatentDiffusion:
    missing = [c for c in _COMPONENTS if not (path / c).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{path}: missing component folder(s) {missing}; a Stable Diffusion folder in the "
            f"diffusers layout has {list(_COMPONENTS)}"
        )
    unet_cfg_path = path / "unet" / "config.json"
    unet_cfg = _with_source(
        unet_convert.unet_config_from_diffusers,
        unet_cfg_path,
        _read_json(unet_cfg_path),
        lq_channels=lq_channels,
        dtype=dtype,
        param_dtype=dtype,
        attention=attention,
    )
    unet_file = weight_files.find_weight_file(path / "unet", ("diffusion_pytorch_model",), variant)
    unet = unet_convert.unet_from_torch_state(
        weight_files.read_weights(unet_file, allow_pickle=allow_pickle),
        unet_cfg,
        lq_channels=lq_channels,
        source=str(unet_file),
    )

    vae_cfg_path = path / "vae" / "config.json"
    vae_cfg = _with_source(
        vae_convert.vae_config_from_diffusers,
        vae_cfg_path,
        _read_json(vae_cfg_path),
        dtype=dtype,
        param_dtype=dtype,
    )
    vae_file = weight_files.find_weight_file(path / "vae", ("diffusion_pytorch_model",), variant)
    vae = vae_convert.vae_from_torch_state(
        weight_files.read_weights(vae_file, allow_pickle=allow_pickle), vae_cfg, source=str(vae_file)
    )

    text_cfg_path = path / "text_encoder" / "config.json"
    text_cfg = _with_source(
        clip_convert.clip_text_config_from_transformers,
        text_cfg_path,
        _read_json(text_cfg_path),
        dtype=dtype,
        param_dtype=dtype,
    )
    text_file = weight_files.find_weight_file(
        path / "text_encoder", ("model", "pytorch_model"), variant
    )
    text_encoder = clip_convert.clip_text_from_torch_state(
        weight_files.read_weights(text_file, allow_pickle=allow_pickle),
        text_cfg,
        source=str(text_file),
    )

    return LatentDiffusion(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=read_tokenizer(path / "tokenizer"),
        scheduler_config=_read_json(path / "scheduler" / "scheduler_config.json"),
        lq_channels=lq_channels,
        tokenizer_dir=path / "tokenizer",
        source=str(path),
    )


# --- the project's own format -------------------------------------------------------------------

_MODULE_CLASSES = {
    "unet": (UNet, model_configs.UNetConfig),
    "vae": (AutoencoderKL, model_configs.VAEConfig),
    "text_encoder": (text_models.CLIPTextEncoder, text_models.CLIPTextConfig),
}


def _module_classes(vae_kind: str) -> dict[str, tuple[type, type]]:
    if vae_kind not in ldm_lib.VAE_KINDS:
        raise ValueError(f"unknown vae_kind {vae_kind!r}; expected one of {sorted(ldm_lib.VAE_KINDS)}")
    cfg_cls, cls = ldm_lib.VAE_KINDS[vae_kind]
    return {**_MODULE_CLASSES, "vae": (cls, cfg_cls)}


def _param_state(module: nnx.Module) -> dict[str, Any]:
    return nnx.state(module, nnx.Param).to_pure_dict()


def save_ldm(ldm: LatentDiffusion, dst: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> None:
    """Writes `ldm` in the project's format, atomically (a temporary folder renamed at the end).

    `extra` is stored in the metadata (e.g. a UniRes model's expert prompts and training info).
    """
    import orbax.checkpoint as ocp

    dst = pathlib.Path(dst).absolute()
    if dst.exists():
        raise FileExistsError(f"{dst}: already exists; choose a new folder or remove it first")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        meta = {
            "format": NATIVE_FORMAT,
            "version": NATIVE_VERSION,
            "lq_channels": ldm.lq_channels,
            "vae_kind": ldm_lib.vae_kind(ldm.vae.cfg),
            "scheduler": ldm.scheduler_config,
            "extra": {**ldm.extra, **(extra or {})},
        }
        params = {}
        for name in _MODULE_CLASSES:
            module = getattr(ldm, name)
            meta[name] = config_io.config_to_dict(module.cfg)
            # Stored in float32 whatever the runtime dtype, so loading can cast to any dtype.
            state = _param_state(module)
            if state:  # a fixed codec has no parameters
                params[name] = jax.tree.map(lambda x: np.asarray(x, np.float32), state)
        (tmp / NATIVE_META).write_text(json.dumps(meta, indent=2))
        shutil.copytree(ldm.tokenizer_dir, tmp / "tokenizer")
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(tmp / "params", params)
            checkpointer.wait_until_finished()
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load_native(path: pathlib.Path, *, lq_channels, dtype, attention) -> LatentDiffusion:
    import orbax.checkpoint as ocp

    meta = _read_json(path / NATIVE_META)
    if meta.get("format") != NATIVE_FORMAT or meta.get("version") != NATIVE_VERSION:
        raise ValueError(
            f"{path / NATIVE_META}: format {meta.get('format')!r} version {meta.get('version')!r} "
            f"is not {NATIVE_FORMAT!r} version {NATIVE_VERSION}"
        )
    stored_lq = int(meta["lq_channels"])
    if lq_channels not in (0, stored_lq) and stored_lq != 0:
        raise ValueError(
            f"{path}: the UNet already takes {stored_lq} LQ channels; cannot load it with "
            f"lq_channels={lq_channels}"
        )
    pad_lq = lq_channels if stored_lq == 0 else 0

    abstract = {}
    for name, (cls, cfg_cls) in _module_classes(meta.get("vae_kind", "autoencoder_kl")).items():
        if name not in meta:
            raise ValueError(f"{path / NATIVE_META}: no {name!r} config")
        cfg = config_io.config_from_dict(cfg_cls, meta[name], source=str(path / NATIVE_META))
        cfg = dataclasses.replace(cfg, dtype=dtype, param_dtype=dtype)
        if name == "unet" and attention is not None:
            cfg = dataclasses.replace(cfg, attention=attention)
        abstract[name] = nnx.eval_shape(lambda cls=cls, cfg=cfg: cls(cfg, rngs=nnx.Rngs(0)))

    target = {
        name: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, np.float32), state)
        for name, module in abstract.items()
        if (state := _param_state(module))
    }
    params_dir = path / "params"
    if not params_dir.exists():
        raise FileNotFoundError(f"{params_dir}: missing (the checkpoint's weights)")
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            restored = checkpointer.restore(params_dir.absolute(), target)
    except (ValueError, KeyError) as e:
        raise ValueError(
            f"{params_dir}: weights do not match the configs in {NATIVE_META} ({e})"
        ) from e

    modules = {}
    for name, module in abstract.items():
        if name not in restored:
            modules[name] = module
            continue
        params = nnx.state(module, nnx.Param)
        params.replace_by_pure_dict(jax.tree.map(lambda x: jnp.asarray(x, dtype), restored[name]))
        nnx.update(module, params)
        modules[name] = module

    unet = modules["unet"]
    if pad_lq:
        unet = unet_convert.add_lq_channels(unet, pad_lq)
    return LatentDiffusion(
        unet=unet,
        vae=modules["vae"],
        text_encoder=modules["text_encoder"],
        tokenizer=read_tokenizer(path / "tokenizer"),
        scheduler_config=dict(meta.get("scheduler", {})),
        lq_channels=stored_lq or pad_lq,
        tokenizer_dir=path / "tokenizer",
        source=str(path),
        extra=dict(meta.get("extra", {})),
    )

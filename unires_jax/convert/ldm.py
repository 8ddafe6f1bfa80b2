"""Latent diffusion models (UNet + VAE + CLIP text encoder + tokenizer) to and from disk.

`load_ldm` reads three layouts:
- this project's checkpoint format (`unires_jax/convert/checkpoint.py`, family "unires"),
  written by `save_ldm`: `unires convert diffusers`, `unires train --export` and the embedded
  default model;
- a diffusers Stable Diffusion folder (`unires_jax/convert/diffusers.py`);
- the project's earlier format (`unires_ldm.json` + an orbax `params/` folder, no content
  hashes), read so that older exports keep working; `unires convert upgrade OLD NEW` rewrites
  one in the current format.

Stored UniRes metadata comes back in `LatentDiffusion.extra`: "experts" (the expert prompts the
model was trained with), "settings" (default inference settings) and the checkpoint's "extra".
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.convert import checkpoint as checkpoint_lib
from unires_jax.convert import config_io, diffusers
from unires_jax.convert import unet as unet_convert
from unires_jax.convert.clip import read_tokenizer
from unires_jax.models import configs as model_configs
from unires_jax.models import layers
from unires_jax.models import ldm as ldm_lib
from unires_jax.models import text as text_models
from unires_jax.models.ldm import LatentDiffusion
from unires_jax.models.unet import UNet

FAMILY = "unires"
LEGACY_META = "unires_ldm.json"
_NETWORKS = ("unet", "vae", "text_encoder")


def load_ldm(
    path: str | os.PathLike,
    *,
    lq_channels: int = 0,
    dtype: Any = jnp.float32,
    allow_pickle: bool = False,
    attention: str | None = None,
    variant: str | None = None,
    checkpoint: checkpoint_lib.Checkpoint | None = None,
) -> LatentDiffusion:
    """Loads a unires-jax checkpoint or a diffusers Stable Diffusion folder.

    Args:
      path: the folder.
      lq_channels: extra UNet input channels for the low-quality latent, zero-initialised (so the
        model's output does not depend on them) when the weights on disk do not have them yet.
      dtype: parameter and compute dtype (jnp.float32 or jnp.bfloat16).
      allow_pickle: permit reading `.bin` (pickle) weight files of a diffusers folder.
      attention: UNet attention implementation ("dot_product", "chunked", "naive", "cudnn");
        None: the fastest correct one on this backend (`models.layers.default_attention`).
      variant: diffusers weight variant, e.g. "fp16" for `*.fp16.safetensors`.
      checkpoint: the already verified `convert.checkpoint.read(path)`, to skip reading it again.

    Raises:
      CheckpointError: a damaged checkpoint (names the file).
      FileNotFoundError / ValueError: not a model folder, or configs and weights that disagree.
    """
    path = pathlib.Path(path)
    if checkpoint is not None or checkpoint_lib.is_checkpoint(path):
        ckpt = checkpoint or checkpoint_lib.read(path)  # verified before any work
        attention = attention or layers.default_attention()
        return _from_checkpoint(
            ckpt, lq_channels=lq_channels, dtype=dtype, attention=attention
        )
    attention = attention or layers.default_attention()
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder (expected a model folder)")
    if (path / LEGACY_META).exists():
        return _load_legacy(
            path, lq_channels=lq_channels, dtype=dtype, attention=attention
        )
    if diffusers.is_diffusers_folder(path):
        return diffusers.load_diffusers(
            path,
            lq_channels=lq_channels,
            dtype=dtype,
            allow_pickle=allow_pickle,
            attention=attention,
            variant=variant,
        )
    raise FileNotFoundError(
        f"{path}: neither {checkpoint_lib.META} (a unires-jax checkpoint) nor model_index.json (a "
        "diffusers Stable Diffusion folder) is there. Point to the folder that contains them."
    )


def save_ldm(
    ldm: LatentDiffusion,
    dst: str | os.PathLike,
    *,
    experts: list[dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> pathlib.Path:
    """Writes `ldm` as a unires-jax checkpoint (family "unires"), atomically.

    Args:
      ldm: the model; weights are stored in float32 whatever the runtime dtype.
      dst: the new folder (must not exist).
      experts: the UniRes experts as dicts (name, prompt, condition); default `ldm.extra`'s.
      settings: default inference settings (`RestoreSettings` fields); default `ldm.extra`'s.
      extra: facts for the record (merged over `ldm.extra`'s).
    """
    known = {k: v for k, v in ldm.extra.items() if k not in ("experts", "settings")}
    config: dict[str, Any] = {
        "lq_channels": ldm.lq_channels,
        "vae_kind": ldm_lib.vae_kind(ldm.vae.cfg),
        "scheduler": ldm.scheduler_config,
        **{
            name: config_io.config_to_dict(getattr(ldm, name).cfg) for name in _NETWORKS
        },
    }
    experts = experts if experts is not None else ldm.extra.get("experts")
    if experts:
        config["experts"] = [dict(e) for e in experts]
    return checkpoint_lib.save(
        dst,
        family=FAMILY,
        config=config,
        params={
            name: checkpoint_lib.module_params(getattr(ldm, name)) for name in _NETWORKS
        },
        settings=settings if settings is not None else ldm.extra.get("settings", {}),
        extra={**known, **(extra or {})},
        files={"tokenizer": ldm.tokenizer_dir},
    )


def _networks(config: dict[str, Any], source: str) -> dict[str, tuple[type, Any]]:
    """The three networks' classes and configs from a stored config section."""
    vae_kind = config.get("vae_kind", "autoencoder_kl")
    if vae_kind not in ldm_lib.VAE_KINDS:
        raise ValueError(
            f"{source}: unknown vae_kind {vae_kind!r}; expected one of {sorted(ldm_lib.VAE_KINDS)}"
        )
    vae_cfg_cls, vae_cls = ldm_lib.VAE_KINDS[vae_kind]
    classes = {
        "unet": (UNet, model_configs.UNetConfig),
        "vae": (vae_cls, vae_cfg_cls),
        "text_encoder": (text_models.CLIPTextEncoder, text_models.CLIPTextConfig),
    }
    out = {}
    for name, (cls, cfg_cls) in classes.items():
        if name not in config:
            raise ValueError(f"{source}: no {name!r} config")
        out[name] = (
            cls,
            config_io.config_from_dict(cfg_cls, config[name], source=source),
        )
    return out


def _abstract(cls, cfg, *, dtype, attention, name):
    cfg = dataclasses.replace(cfg, dtype=dtype, param_dtype=dtype)
    if name == "unet":
        cfg = dataclasses.replace(cfg, attention=attention)
    return nnx.eval_shape(lambda: cls(cfg, rngs=nnx.Rngs(0)))


def _has_params(module: nnx.Module) -> bool:
    return bool(jax.tree.leaves(nnx.state(module, nnx.Param)))


def _with_lq(ldm_fields: dict[str, Any], stored_lq: int, lq_channels: int, source: str):
    """Zero LQ channels added to a UNet stored without them (fine-tuning a plain SD model)."""
    if lq_channels not in (0, stored_lq) and stored_lq != 0:
        raise ValueError(
            f"{source}: the UNet already takes {stored_lq} LQ channels; cannot load it with "
            f"lq_channels={lq_channels}"
        )
    if stored_lq == 0 and lq_channels:
        ldm_fields["unet"] = unet_convert.add_lq_channels(
            ldm_fields["unet"], lq_channels
        )
    return stored_lq or lq_channels


def _from_checkpoint(ckpt, *, lq_channels, dtype, attention) -> LatentDiffusion:
    source = str(ckpt.path / checkpoint_lib.META)
    if ckpt.family != FAMILY:
        raise ValueError(
            f"{ckpt.path}: a {ckpt.family!r} checkpoint, not a latent diffusion (unires) model"
        )
    modules = {}
    for name, (cls, cfg) in _networks(ckpt.config, source).items():
        module = _abstract(cls, cfg, dtype=dtype, attention=attention, name=name)
        if _has_params(module):
            params_file = ckpt.file(f"{checkpoint_lib.PARAMS_DIR}/{name}.safetensors")
            checkpoint_lib.assign_params(
                module, ckpt.params(name), dtype=dtype, source=str(params_file)
            )
        modules[name] = module
    lq = _with_lq(modules, int(ckpt.config["lq_channels"]), lq_channels, str(ckpt.path))
    extra = dict(ckpt.extra)
    if ckpt.config.get("experts"):
        extra["experts"] = list(ckpt.config["experts"])
    extra["settings"] = dict(ckpt.settings)
    return LatentDiffusion(
        **modules,
        tokenizer=read_tokenizer(ckpt.file("tokenizer")),
        scheduler_config=dict(ckpt.config.get("scheduler", {})),
        lq_channels=lq,
        tokenizer_dir=ckpt.file("tokenizer"),
        source=str(ckpt.path),
        extra=extra,
    )


def _load_legacy(
    path: pathlib.Path, *, lq_channels, dtype, attention
) -> LatentDiffusion:
    """The earlier format: `unires_ldm.json` + an orbax `params/` folder (no content hashes)."""
    import orbax.checkpoint as ocp

    meta_path = path / LEGACY_META
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{meta_path}: not valid JSON ({e})") from e
    if meta.get("format") != "unires-ldm" or meta.get("version") != 1:
        raise ValueError(
            f"{meta_path}: format {meta.get('format')!r} version {meta.get('version')!r} is not "
            "'unires-ldm' version 1"
        )
    modules = {
        name: _abstract(cls, cfg, dtype=dtype, attention=attention, name=name)
        for name, (cls, cfg) in _networks(meta, str(meta_path)).items()
    }
    target = {
        name: jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, np.float32),
            nnx.state(module, nnx.Param).to_pure_dict(),
        )
        for name, module in modules.items()
        if _has_params(module)
    }
    params_dir = path / "params"
    if not params_dir.exists():
        raise FileNotFoundError(f"{params_dir}: missing (the checkpoint's weights)")
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            restored = checkpointer.restore(params_dir.absolute(), target)
    except (ValueError, KeyError) as e:
        raise ValueError(
            f"{params_dir}: weights do not match the configs in {LEGACY_META} ({e})"
        ) from e
    for name, values in restored.items():
        state = nnx.state(modules[name], nnx.Param)
        state.replace_by_pure_dict(
            jax.tree.map(lambda x: jnp.asarray(x, dtype), values)
        )
        nnx.update(modules[name], state)
    lq = _with_lq(modules, int(meta["lq_channels"]), lq_channels, str(path))
    stored = dict(meta.get("extra", {}))
    unires = stored.pop("unires", {})
    extra = {**stored, "settings": dict(unires.get("settings", {}))}
    if unires.get("experts"):
        extra["experts"] = list(unires["experts"])
    return LatentDiffusion(
        **modules,
        tokenizer=read_tokenizer(path / "tokenizer"),
        scheduler_config=dict(meta.get("scheduler", {})),
        lq_channels=lq,
        tokenizer_dir=path / "tokenizer",
        source=str(path),
        extra=extra,
    )

"""Reads a diffusers Stable Diffusion folder into a latent diffusion model (UNet + VAE + CLIP text
encoder + tokenizer): `model_index.json`, `unet/`, `vae/`, `text_encoder/`, `tokenizer/`,
`scheduler/`, weights in safetensors (or `.bin` with `allow_pickle=True`).

`unires_jax.convert.ldm.load_ldm` is the entry point that reads this layout and the project's own
checkpoints alike.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

from unires_jax.convert import clip as clip_convert
from unires_jax.convert import unet as unet_convert
from unires_jax.convert import vae as vae_convert
from unires_jax.convert import weight_files
from unires_jax.convert.clip import read_tokenizer
from unires_jax.models.ldm import LatentDiffusion

_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def is_diffusers_folder(path: str | os.PathLike) -> bool:
    """Whether `path` looks like a diffusers pipeline folder (has model_index.json)."""
    return (pathlib.Path(path) / "model_index.json").is_file()


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


def load_diffusers(
    path: pathlib.Path,
    *,
    lq_channels: int,
    dtype: Any,
    allow_pickle: bool,
    attention: str,
    variant: str | None,
) -> LatentDiffusion:
    """Reads a diffusers Stable Diffusion folder (see `unires_jax.convert.ldm.load_ldm`)."""
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
    unet_file = weight_files.find_weight_file(
        path / "unet", ("diffusion_pytorch_model",), variant
    )
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
    vae_file = weight_files.find_weight_file(
        path / "vae", ("diffusion_pytorch_model",), variant
    )
    vae = vae_convert.vae_from_torch_state(
        weight_files.read_weights(vae_file, allow_pickle=allow_pickle),
        vae_cfg,
        source=str(vae_file),
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

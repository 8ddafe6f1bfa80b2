"""Frozen model configs to and from JSON-safe dicts (checkpoints written by this project, and the
`model` sections of configs/*.py)."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import jax.numpy as jnp

from unires_jax.models.configs import UNetConfig
from unires_jax.models.ldm import VAE_KINDS, LDMConfig
from unires_jax.models.text import CLIPTextConfig

T = TypeVar("T")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Turns a frozen config dataclass into plain JSON types (dtypes become their names)."""
    out = {}
    for field in dataclasses.fields(cfg):
        out[field.name] = _to_json(getattr(cfg, field.name))
    return out


def config_fields(cfg: Any) -> dict[str, Any]:
    """`config_to_dict` with sequences as tuples, for ml_collections config files: a tuple
    field can be overridden on the command line (`--config.model.unet.block_out_channels=
    '(96, 96, 96)'`), a list field cannot."""
    return _tuples(config_to_dict(cfg))


def _tuples(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, (tuple, list)):
        return [_to_json(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    try:
        return jnp.dtype(value).name
    except TypeError:
        raise TypeError(
            f"config value {value!r} of type {type(value).__name__} is not serialisable"
        )


def config_from_dict(cls: type[T], data: dict[str, Any], *, source: str = "") -> T:
    """Rebuilds `cls` from `config_to_dict` output; unknown keys are an error, not ignored."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(
            f"{source or cls.__name__}: unknown {cls.__name__} keys {unknown}; was this checkpoint "
            "written by a newer unires-jax?"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key.endswith("dtype") and isinstance(value, str):
            value = jnp.dtype(value)
        elif isinstance(value, list):
            value = _to_tuple(value)
        elif isinstance(value, dict) and dataclasses.is_dataclass(hints.get(key)):
            value = config_from_dict(hints[key], value, source=source)
        kwargs[key] = value
    return cls(**kwargs)


def _to_tuple(value: list) -> tuple:
    return tuple(_to_tuple(v) if isinstance(v, list) else v for v in value)


def ldm_config_from_dict(model: Mapping[str, Any]) -> LDMConfig:
    """Reads the `model` section of a configs/*.py file (plain dicts of config fields)."""
    model = dict(model)
    kind = model.get("vae_kind", "autoencoder_kl")
    if kind not in VAE_KINDS:
        raise ValueError(
            f"config.model.vae_kind={kind!r}: expected one of {sorted(VAE_KINDS)}"
        )
    return LDMConfig(
        unet=config_from_dict(
            UNetConfig, dict(model["unet"]), source="config.model.unet"
        ),
        vae=config_from_dict(
            VAE_KINDS[kind][0], dict(model["vae"]), source="config.model.vae"
        ),
        text=config_from_dict(
            CLIPTextConfig, dict(model["text"]), source="config.model.text"
        ),
        lq_channels=int(model.get("lq_channels", 0)),
    )

"""configs/ldm_*.py build the networks they promise; SD sizes match diffusers' counts."""

import importlib.util
import pathlib

import pytest

from unires_jax.convert.config_io import ldm_config_from_dict
from unires_jax.models import configs, count_params
from unires_jax.models.ldm import abstract_ldm_modules

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, CONFIGS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


@pytest.mark.parametrize(
    "name, preset", [("ldm_sd15", configs.sd15_unet), ("ldm_sd21", configs.sd21_unet)]
)
def test_sd_configs_build_the_presets_counted_against_diffusers(name, preset):
    # tests/models/test_unet.py counts the presets' parameters against diffusers' (859,520,964
    # and 865,910,724); equal configs build equal networks, without tracing 860M parameters
    # a second time.
    assert ldm_config_from_dict(_load(name).model).unet == preset()


def test_tiny_config_is_a_few_million_parameters():
    modules = abstract_ldm_modules(ldm_config_from_dict(_load("ldm_tiny").model))
    total = sum(count_params(m) for m in modules.values())
    assert 1_000_000 < count_params(modules["unet"]) < 10_000_000, total


def test_inconsistent_channels_are_rejected():
    model = _load("ldm_tiny").model
    model.lq_channels = 4  # unet.in_channels still 4
    with pytest.raises(ValueError, match="in_channels=4 must equal"):
        ldm_config_from_dict(model)


def test_unknown_config_key_is_named():
    model = _load("ldm_tiny").model
    model.unet["not_a_field"] = 1
    with pytest.raises(ValueError, match=r"config.model.unet: unknown UNetConfig keys \['not_a_field'\]"):
        ldm_config_from_dict(model)

"""Test-wide setup: 8 fake CPU devices and no network look-ups.

XLA_FLAGS must be set before jax is imported anywhere, so it is set here at import time
of the conftest, which pytest loads before any test module. The GPU-only tests run with
JAX_PLATFORMS=cuda on a GPU machine (benchmarks/run_gpu.sh); the fake devices are CPU ones.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The `unires` command keeps compiled programs in ~/.cache; tests must not write there (the
# cache's own tests point it at a temporary folder).
os.environ["UNIRES_COMPILATION_CACHE"] = "off"
os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)

import pytest


@pytest.fixture(scope="session", autouse=True)
def _check_fake_devices():
    import jax

    if jax.default_backend() != "cpu":
        return  # an accelerator run of the GPU-only tests (JAX_PLATFORMS=cuda)
    assert jax.device_count() == 8, (
        "tests expect 8 fake CPU devices; XLA_FLAGS was set too late "
        f"(got {jax.device_count()} devices, XLA_FLAGS={os.environ.get('XLA_FLAGS')})"
    )

"""Session fixtures for the weight-search tests (see search_helpers.py for the model)."""

from __future__ import annotations

import numpy as np
import pytest
from search_helpers import PAIRS_PER_DEVICE, STEPS, micro_unires_ldm

from unires_jax.restore.restorer import Restorer, RestoreSettings
from unires_jax.search.engine import CandidateSampler


@pytest.fixture(scope="session")
def ldm(tmp_path_factory):
    return micro_unires_ldm(tmp_path_factory.mktemp("micro_search"))


@pytest.fixture(scope="session")
def restorer(ldm):
    return Restorer(ldm, settings=RestoreSettings(steps=STEPS))


@pytest.fixture(scope="session")
def sampler(restorer):
    return CandidateSampler(restorer, pairs_per_device=PAIRS_PER_DEVICE)


@pytest.fixture(scope="session")
def images():
    """Three 32x32 test images: smooth shapes with different noise and blur."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    base = np.stack([xx, yy, 0.5 + 0.5 * np.sin(6 * xx * yy)], axis=-1)
    out = []
    for noise in (0.02, 0.1, 0.2):
        img = np.clip(base + rng.normal(0, noise, base.shape), 0, 1)
        out.append((img * 255).round().astype(np.uint8))
    return out

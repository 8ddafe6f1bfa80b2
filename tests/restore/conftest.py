"""Fixtures shared by the restoration tests."""

import pytest
from unires_fixtures import tiny_unires_ldm


@pytest.fixture(scope="session")
def ldm(tmp_path_factory):
    """The tiny random UniRes model (built once per test process)."""
    return tiny_unires_ldm(tmp_path_factory.mktemp("tiny"))

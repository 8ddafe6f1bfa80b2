"""Where the `unires` command keeps compiled programs (the reuse itself is tested end to end in
test_restore_cli.py)."""

import pathlib

import jax
import pytest

from unires_jax.cli import compilation_cache


def test_default_folder_is_under_the_users_cache_home(monkeypatch, tmp_path):
    monkeypatch.setattr(pathlib.Path, "home", lambda: tmp_path)
    assert compilation_cache.cache_dir({}) == tmp_path / ".cache" / "unires-jax" / "xla"
    xdg = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert compilation_cache.cache_dir(xdg) == tmp_path / "xdg" / "unires-jax" / "xla"


@pytest.mark.parametrize("value", ["off", "OFF", "0", "false", "no"])
def test_switched_off(value):
    assert compilation_cache.cache_dir({compilation_cache.ENV: value}) is None
    assert compilation_cache.enable({compilation_cache.ENV: value}) is None


def test_an_explicit_folder_wins_over_the_cache_home(tmp_path):
    environ = {compilation_cache.ENV: str(tmp_path / "mine"), "XDG_CACHE_HOME": "/elsewhere"}
    assert compilation_cache.cache_dir(environ) == tmp_path / "mine"


def test_jax_own_setting_is_left_to_jax(tmp_path):
    environ = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path), compilation_cache.ENV: str(tmp_path)}
    assert compilation_cache.cache_dir(environ) is None


def test_an_unwritable_folder_leaves_the_cache_off(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert compilation_cache.enable({compilation_cache.ENV: str(blocker / "xla")}) is None


def test_enable_points_jax_at_the_folder(tmp_path):
    before = (
        jax.config.jax_compilation_cache_dir,
        jax.config.jax_persistent_cache_min_compile_time_secs,
    )
    try:
        folder = compilation_cache.enable({compilation_cache.ENV: str(tmp_path / "xla")})
        assert folder == tmp_path / "xla" and folder.is_dir()
        assert jax.config.jax_compilation_cache_dir == str(folder)
        assert (
            jax.config.jax_persistent_cache_min_compile_time_secs
            == compilation_cache.MIN_COMPILE_SECONDS
        )
    finally:
        jax.config.update("jax_compilation_cache_dir", before[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])

"""A persistent XLA compilation cache for the `unires` command.

Every `unires` process compiles the same programs (the sampler, the decoder, the search's sharded
programs, the training step) for the same shapes, and on a CPU the first `unires restore` spends
about a quarter of its time doing so. JAX can keep compiled programs on disk and load them in
later processes; the `unires` command turns that on for itself (library users keep JAX's
defaults). JAX keys each entry on the program, the compile options, the devices and the jax /
jaxlib versions, so an entry is only reused where it was built for.

Where the cache lives, first match wins:
- `JAX_COMPILATION_CACHE_DIR` set: JAX's own setting, left to JAX.
- `UNIRES_COMPILATION_CACHE=off` (or 0 / false / no): no cache.
- `UNIRES_COMPILATION_CACHE=DIR`: that folder.
- otherwise `$XDG_CACHE_HOME/unires-jax/xla`, by default `~/.cache/unires-jax/xla`.
Programs that compile in under `MIN_COMPILE_SECONDS` are not stored, unless JAX's
`JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS` says otherwise.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping

ENV = "UNIRES_COMPILATION_CACHE"
JAX_ENV = "JAX_COMPILATION_CACHE_DIR"
MIN_TIME_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"  # JAX's own; wins when set
_OFF = ("off", "0", "false", "no")
# Programs that compile faster than this are not worth a file read: the many small eager ops
# compile in milliseconds; the UNet sampler (seconds) and the decoder (~1 s on 2 cores) are kept.
MIN_COMPILE_SECONDS = 0.25


def cache_dir(environ: Mapping[str, str] | None = None) -> pathlib.Path | None:
    """The folder the `unires` command caches compiled programs in, or None for no cache of
    its own (switched off, or JAX's `JAX_COMPILATION_CACHE_DIR` already decides)."""
    environ = os.environ if environ is None else environ
    if environ.get(JAX_ENV):
        return None
    value = environ.get(ENV, "").strip()
    if value.lower() in _OFF:
        return None
    if value:
        return pathlib.Path(value).expanduser()
    base = environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(base).expanduser() / "unires-jax" / "xla"


def enable(environ: Mapping[str, str] | None = None) -> pathlib.Path | None:
    """Points JAX's persistent compilation cache at `cache_dir()`; returns the folder used.

    A folder that cannot be created (read-only home, no permission) leaves the cache off: the
    command then only compiles as it would have anyway.
    """
    environ = os.environ if environ is None else environ
    folder = cache_dir(environ)
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    if not environ.get(MIN_TIME_ENV):
        jax.config.update(
            "jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS
        )
    return folder

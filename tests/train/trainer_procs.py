"""Helpers to start trainer subprocesses from tests with a bounded wait."""

import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = pathlib.Path(__file__).with_name("trainer_subprocess.py")
CONFIG = pathlib.Path(__file__).with_name("trainer_toy_config.py")


def env(devices: int = 8, fault: str | None = None, umask: int | None = None, **extra):
    """The subprocess environment; `fault` and `umask` are read by trainer_subprocess.py."""
    out = dict(os.environ)
    out.update(
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join([str(REPO), out.get("PYTHONPATH", "")]),
        PYTHONUNBUFFERED="1",
    )
    out.pop("UNIRES_TEST_FAULT", None)
    out.pop("UNIRES_TEST_UMASK", None)
    if fault:
        out["UNIRES_TEST_FAULT"] = fault
    if umask is not None:
        out["UNIRES_TEST_UMASK"] = oct(umask)
    out.update(extra)
    return out


def command(workdir, *flags) -> list[str]:
    return [
        sys.executable,
        str(SCRIPT),
        f"--config={CONFIG}",
        f"--workdir={workdir}",
        *flags,
    ]


def start(
    workdir, *flags, devices: int = 8, log=None, fault=None, umask=None
) -> subprocess.Popen:
    return subprocess.Popen(
        command(workdir, *flags),
        env=env(devices, fault, umask),
        cwd=REPO,
        stdout=log or subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run(
    workdir,
    *flags,
    devices: int = 8,
    timeout: float = 120,
    fault: str | None = None,
    umask: int | None = None,
) -> subprocess.CompletedProcess:
    """Runs the toy trainer to the end (or to the SIGKILL that `fault` asks for)."""
    return subprocess.run(
        command(workdir, *flags),
        env=env(devices, fault, umask),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )

"""notebooks/unires_colab.ipynb runs top to bottom on CPU with its small settings.

The notebook is executed by nbclient in a fresh kernel (this test's Python, through a temporary
kernelspec, so it works in any virtual environment), with UNIRES_NOTEBOOK_SMALL=1 and its output
folder given by UNIRES_NOTEBOOK_OUTPUT. Any cell error fails the test; the figures the notebook
says it saves must exist and be readable images.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import nbformat
import numpy as np
from nbclient import NotebookClient
from PIL import Image

NOTEBOOK = (
    pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "unires_colab.ipynb"
)
FIGURES = (
    "single_experts.png",
    "before_after.png",
    "landscape_first_step_pairs.png",
    "landscape_first_step_marginals.png",
    "search_ranked.png",
    "sd_restoration.png",
)


def _kernelspec_dir(root: pathlib.Path) -> pathlib.Path:
    """A JUPYTER_PATH entry whose `python3` kernel runs this interpreter (not whatever `python`
    is first on PATH, nor a user-wide kernelspec)."""
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [
                    sys.executable,
                    "-m",
                    "ipykernel_launcher",
                    "-f",
                    "{connection_file}",
                ],
                "display_name": "Python 3 (unires-jax tests)",
                "language": "python",
            }
        )
    )
    return root


def _kernel_env(output: pathlib.Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        UNIRES_NOTEBOOK_SMALL="1",
        UNIRES_NOTEBOOK_OUTPUT=str(output),
        HF_HUB_OFFLINE="1",
        JAX_PLATFORMS="cpu",
        MPLBACKEND="module://matplotlib_inline.backend_inline",
    )
    # A Colab CPU runtime has one JAX device; the 8 fake devices conftest asks for are for the
    # sharding tests and only slow the kernel down.
    flags = env.get("XLA_FLAGS", "").split()
    env["XLA_FLAGS"] = " ".join(
        f for f in flags if "force_host_platform_device_count" not in f
    )
    return env


def test_notebook_runs_top_to_bottom_and_saves_its_figures(tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(
        not c.get("outputs") and c.get("execution_count") is None
        for c in nb.cells
        if c.cell_type == "code"
    ), "commit the notebook with its outputs cleared"
    monkeypatch.setenv("JUPYTER_PATH", str(_kernelspec_dir(tmp_path / "jupyter")))
    workdir = tmp_path / "work"
    workdir.mkdir()
    output = tmp_path / "figures"
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(workdir)}},
    )
    # Raises CellExecutionError (naming the cell and its traceback) if any cell errors.
    client.execute(env=_kernel_env(output))

    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert not errors
    for name in FIGURES:
        path = output / name
        assert path.is_file(), f"the notebook did not save {name}"
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert pixels.std() > 1, f"{name} is blank"
    # The figures are also shown inline (matplotlib and IPython.display), not only saved.
    shown = sum(
        "image/png" in o.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert shown >= 6
    # The SD section loaded the tiny diffusers folder it wrote (no weights outside tmp_path).
    assert (output / "tiny_sd" / "model_index.json").is_file()
    # Nothing may be written into the checkout.
    assert not (NOTEBOOK.parent / "unires_outputs").exists()

"""The layers point one way (style guide, "the house with three families"): a package may import
only the packages below it. Read from the source with `ast`, so lazy imports count too."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "unires_jax"
# package -> the unires_jax packages it must never import.
FORBIDDEN = {
    "models": {"convert", "restore", "train", "search", "evaluate", "cli", "data", "quality"},
    "diffusion": {"models", "convert", "restore", "train", "search", "evaluate", "cli"},
    "quality": {"restore", "train", "search", "evaluate", "cli"},
    "convert": {"restore", "train", "search", "evaluate", "cli"},
    "data": {"restore", "train", "search", "evaluate", "cli"},
    "train": {"restore", "search", "evaluate", "cli"},
    "restore": {"train", "evaluate", "cli"},
    "search": {"train", "evaluate", "cli"},
    "evaluate": {"train", "cli"},
}


def _imported_packages(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "unires_jax" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package):
    wrong = {
        str(path.relative_to(ROOT.parent)): sorted(_imported_packages(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
        # `python -m unires_jax.train` is a command-line entry point, the CLI's layer.
        if path.name != "__main__.py"
    }
    assert not {k: v for k, v in wrong.items() if v}

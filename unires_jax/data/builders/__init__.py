"""TFDS builders (array_record, no TensorFlow needed) for every dataset the project uses.

`BUILDERS` maps the dataset names users type to builder classes; `build` writes a dataset from its
manual folder, `open_built` reads a built split back as a random-access source.
"""

from unires_jax.data.builders.catalog import (
    BUILDERS,
    BuildReport,
    build,
    get_builder,
    is_built,
    open_built,
)
from unires_jax.data.builders.folders import FolderSpec, LayoutError

__all__ = [
    "BUILDERS",
    "BuildReport",
    "FolderSpec",
    "LayoutError",
    "build",
    "get_builder",
    "is_built",
    "open_built",
]

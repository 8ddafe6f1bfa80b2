"""TFDS builder `foundir` (implementation: unires_jax/data/builders/foundir.py).

Build it with `unires data build foundir --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.foundir import FoundIR

__all__ = ["FoundIR"]

"""TFDS builder `bsd68` (implementation: unires_jax/data/builders/bsd68.py).

Build it with `unires data build bsd68 --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.bsd68 import BSD68

__all__ = ["BSD68"]

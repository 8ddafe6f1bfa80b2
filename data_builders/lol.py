"""TFDS builder `lol` (implementation: unires_jax/data/builders/lol.py).

Build it with `unires data build lol --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.lol import LOL

__all__ = ["LOL"]

"""TFDS builder `bsd400_wed` (implementation: unires_jax/data/builders/bsd400_wed.py).

Build it with `unires data build bsd400_wed --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.bsd400_wed import BSD400WED

__all__ = ["BSD400WED"]

"""TFDS builder `lsdir` (implementation: unires_jax/data/builders/lsdir.py).

Build it with `unires data build lsdir --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.lsdir import LSDIR

__all__ = ["LSDIR"]

"""TFDS builder `df2k` (implementation: unires_jax/data/builders/df2k.py).

Build it with `unires data build df2k --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.df2k import DF2K

__all__ = ["DF2K"]

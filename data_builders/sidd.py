"""TFDS builder `sidd` (implementation: unires_jax/data/builders/sidd.py).

Build it with `unires data build sidd --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.sidd import SIDD

__all__ = ["SIDD"]

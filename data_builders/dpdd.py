"""TFDS builder `dpdd` (implementation: unires_jax/data/builders/dpdd.py).

Build it with `unires data build dpdd --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.dpdd import DPDD

__all__ = ["DPDD"]

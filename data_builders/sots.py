"""TFDS builder `sots` (implementation: unires_jax/data/builders/sots.py).

Build it with `unires data build sots --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.sots import SOTS

__all__ = ["SOTS"]

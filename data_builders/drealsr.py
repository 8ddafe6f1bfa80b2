"""TFDS builder `drealsr` (implementation: unires_jax/data/builders/drealsr.py).

Build it with `unires data build drealsr --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.drealsr import DRealSR

__all__ = ["DRealSR"]

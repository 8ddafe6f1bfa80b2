"""TFDS builder `realsr` (implementation: unires_jax/data/builders/realsr.py).

Build it with `unires data build realsr --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.realsr import RealSR

__all__ = ["RealSR"]

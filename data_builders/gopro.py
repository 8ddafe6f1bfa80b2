"""TFDS builder `gopro` (implementation: unires_jax/data/builders/gopro.py).

Build it with `unires data build gopro --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.gopro import GoPro

__all__ = ["GoPro"]

"""TFDS builder `reside_ots` (implementation: unires_jax/data/builders/reside_ots.py).

Build it with `unires data build reside_ots --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.reside_ots import ResideOTS

__all__ = ["ResideOTS"]

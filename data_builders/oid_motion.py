"""TFDS builder `oid_motion` (implementation: unires_jax/data/builders/oid_motion.py).

Build it with `unires data build oid_motion --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.oid_motion import OIDMotion

__all__ = ["OIDMotion"]

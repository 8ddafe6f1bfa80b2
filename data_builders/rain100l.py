"""TFDS builder `rain100l` (implementation: unires_jax/data/builders/rain100l.py).

Build it with `unires data build rain100l --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.rain100l import Rain100L

__all__ = ["Rain100L"]

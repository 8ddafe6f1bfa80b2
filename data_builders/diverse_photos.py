"""TFDS builder `diverse_photos` (implementation: unires_jax/data/builders/diverse_photos.py).

Build it with `unires data build diverse_photos --manual_dir DIR --data_dir DIR`.
"""

from unires_jax.data.builders.diverse_photos import DiversePhotos

__all__ = ["DiversePhotos"]

"""TFDS builder `sample_photos` (implementation: unires_jax/data/builders/sample_photos.py).

Build it with `unires data build sample_photos --data_dir DIR` (no download needed).
"""

from unires_jax.data.builders.sample_photos import SamplePhotos

__all__ = ["SamplePhotos"]

"""Data: degradation operators, dataset builders, sources and the grain input pipeline.

- degradations/    seeded degradation operators and the UniRes task degradations
- builders/        TFDS builders (array_record, no TensorFlow) for every dataset; `unires data`
- sources.py       image decoding (corrupt files skipped and counted) and random-access sources
- sample_photos.py photos shipped inside installed packages, fixed train / held-out split
- pipeline.py      the grain training pipeline (task mixture, crops, on-the-fly degradation)

Only the light modules are re-exported here; import `pipeline` and `builders` as modules (they
load grain and tensorflow_datasets), e.g. `from unires_jax.data import pipeline`.
"""

from unires_jax.data.sample_photos import load_sample_photos

__all__ = ["load_sample_photos"]

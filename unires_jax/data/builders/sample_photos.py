"""sample_photos: the photos shipped inside installed packages, as a TFDS dataset.

Needs no manual folder and no network. The split is fixed by file name in
`unires_jax.data.sample_photos` ("train" and "heldout").
"""

from __future__ import annotations

from collections.abc import Iterator

from unires_jax.data import sample_photos, sources
from unires_jax.data.builders import folders


class SamplePhotos(folders.ImageBuilder):
    """scikit-image and scikit-learn sample photos: "train" and "heldout" splits."""

    name = "sample_photos"
    DESCRIPTION = (
        "Photos bundled in the scikit-image and scikit-learn wheels, with a fixed train / "
        "held-out split by file name (unires_jax/data/sample_photos.py)."
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = None

    def _info(self):
        return self._make_info(folders.image_features(paired=False))

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: the photos are installed files.
        return {split: self._generate_examples(split) for split in ("train", "heldout")}

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict]]:
        for name in sample_photos.SPLITS[split]:
            path = sample_photos.photo_path(name)
            try:
                png, _ = sources.read_png_bytes(path)
            except sources.CorruptImageError as e:
                self.skipped.add(path, e)
                continue
            package = sample_photos.PHOTOS[name][0]
            yield name, {"hq": png, "name": name, "group": package}
        self._record_skipped()

"""OID-Motion: Open Images photos with synthetic camera shake, stored as LQ / HQ pairs.

The LQ image of each photo is synthesised once, at build time, by the motion-deblur degradation
(camera-shake blur, lens blur, shot and read noise, JPEG; `unires_jax.data.degradations`). It is
deterministic per photo: the random generator is seeded from a hash of the file name, so a
rebuild (or a build on another machine) gives the same pairs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from unires_jax.data import sources
from unires_jax.data.builders import folders

Degradation = Callable[[np.ndarray, np.random.Generator], np.ndarray]

_LAYOUT_TEXT = (
    "  <any sub-folders>/<photo>.jpg|.png|...   [train: HQ photos; LQ is synthesised]"
)


def seed_for(file_name: str) -> int:
    """The degradation seed of one photo: the first 8 bytes of SHA-256 of its file name."""
    return int.from_bytes(
        hashlib.sha256(file_name.encode("utf-8")).digest()[:8], "little"
    )


def synthesise(hq: np.ndarray, file_name: str, degrade: Degradation) -> np.ndarray:
    """Degrades one photo deterministically.

    Args:
      hq: uint8 [H, W, 3].
      file_name: the photo's file name (its hash seeds the degradation).
      degrade: float32 [H, W, 3] in [0, 1] + generator -> degraded image of the same shape.

    Returns:
      uint8 [H, W, 3], the LQ image.
    """
    rng = np.random.default_rng(seed_for(file_name))
    lq = np.asarray(degrade(hq.astype(np.float32) / 255.0, rng))
    if lq.shape != hq.shape:
        raise ValueError(
            f"{file_name}: the motion degradation returned shape {lq.shape} for an image of "
            f"shape {hq.shape}; OID-Motion pairs must have the same size."
        )
    return np.clip(np.rint(lq * 255.0), 0, 255).astype(np.uint8)


def _default_degradation() -> Degradation:
    # Imported here: the degradation library is only needed to build, not to read, the dataset.
    from unires_jax.data import degradations

    return degradations.TASK_DEGRADATIONS["motion"]


class OIDMotion(folders.ImageBuilder):
    """Open Images photos + deterministic synthetic camera shake.

    Args (besides the TFDS ones):
      degrade: the degradation applied to each photo; defaults to the library's "motion" task.
    """

    name = "oid_motion"
    DESCRIPTION = "OID-Motion: Open Images photos with synthetic camera shake (UniRes appendix B.2)."
    HOMEPAGE = "https://storage.googleapis.com/openimages/web/index.html"
    CITATION = "Kuznetsova et al., The Open Images Dataset V4, IJCV 2020; Boracchi & Foi, TIP 2012."
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download Open Images photos (any subset, e.g. with the official downloader script) into "
        "one folder; every image file below it (sub-folders included) becomes one pair.\n\n"
        "Expected layout under the manual folder (--manual_dir):\n"
        + _LAYOUT_TEXT
        + "\n"
    )

    def __init__(self, *, degrade: Degradation | None = None, **kwargs):
        super().__init__(**kwargs)
        self._degrade = degrade

    def _info(self):
        return self._make_info(folders.image_features(paired=True))

    def check_manual_dir(self, manual_dir) -> None:
        self._photos(manual_dir)

    def _photos(self, root) -> list:
        paths = sources.list_images(root) if root and os.path.isdir(root) else []
        if not paths:
            raise folders.LayoutError(
                f"{self.name}: no image files found in the manual folder {root}.\n"
                f"Expected under {root}:\n{_LAYOUT_TEXT}\n"
                "Fix: pass --manual_dir pointing at a folder of Open Images photos."
            )
        return paths

    def _split_generators(self, dl_manager):
        root = dl_manager.manual_dir
        degrade = self._degrade or _default_degradation()
        return {"train": self._generate_examples(root, self._photos(root), degrade)}

    def _generate_examples(
        self, root, paths: Sequence[os.PathLike], degrade: Degradation
    ) -> Iterator[tuple[str, dict]]:
        for path in paths:
            try:
                hq_png, hq = sources.read_png_bytes(path)
            except sources.CorruptImageError as e:
                self.skipped.add(path, e)
                continue
            name = os.path.relpath(path, root).replace(os.sep, "/")
            lq = synthesise(hq, os.path.basename(path), degrade)
            group = os.path.dirname(name)
            yield (
                name,
                {
                    "hq": hq_png,
                    "lq": sources.encode_png(lq),
                    "name": name,
                    "group": group,
                },
            )
        self._record_skipped()

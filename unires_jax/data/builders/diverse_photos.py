"""DiversePhotos: 160 real photos with complex degradations (UniRes appendix B.1), LQ only.

Gathered from SPAQ, KonIQ-10k and LIVE-itW by the paper's file lists (below), 40 photos per
dominating degradation. x1: SPAQ and KonIQ photos centre-cropped to 512x512, LIVE photos
(500x500) bicubic-resized to 512x512. x4: the 128x128 centre crop of each x1 image.

One paper typo is resolved here: the KonIQ low-resolution list has an entry printed as
"2 6393826"; it is read as 26393826 (the list needs 14 entries and this is the only split one).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator, Mapping

import numpy as np
import PIL.Image
import tensorflow_datasets as tfds

from unires_jax.data import sources
from unires_jax.data.builders import folders

X1_SIZE = 512
X4_SIZE = 128
LIVE_SIZE = 500  # LIVE-itW photos are 500x500; they are resized, not cropped.

_CATEGORIES = ("low_resolution", "motion_blur", "defocus_blur", "noise")


def _stems(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# source folder -> dominating degradation -> file stems (the paper's 12 listings).
FILE_LISTS: dict[str, dict[str, tuple[str, ...]]] = {
    "SPAQ": {
        "low_resolution": _stems(
            "00019 00025 00033 00109 00192 00226 00251 00381 00414 00559 "
            "00561 00585 00743 03973 04085 04136 04270 04317 04334 06682"
        ),
        "motion_blur": _stems(
            "00043 00075 00121 00161 00175 00178 00236 01868 03513 04089 04272 "
            "04380 06341 06863 10388 10391 10495"
        ),
        "defocus_blur": _stems("00125 00212 00282 04379 06727 09121"),
        "noise": _stems(
            "00077 00086 00096 00143 00187 00199 00292 00365 00450 04337 04345 06485 "
            "06703 07121 07162 07394 07494 07866 07903 08108 09682"
        ),
    },
    "KonIQ-10k": {
        "low_resolution": _stems(
            "1755366250 187640892 2096424103 2443117568 26393826 2704811 "
            "2836089223 2956548148 3015139450 3435545140 3551648026 "
            "4378419360 527633229 86243803"
        ),
        "motion_blur": _stems("2367261033 3147416579 331406867 62480371"),
        "defocus_blur": _stems(
            "1306193020 315889745 55711788 1807195948 206294085 2166503846 "
            "2214729676 23371433 2360058082 2950983139 3149433848 324339500 "
            "427196028 518080817"
        ),
        "noise": _stems(
            "1317678723 1987196687 218457399 2593384818 2837843986 2867718050 "
            "3727572481 4410900135"
        ),
    },
    "LIVE-itW": {
        "low_resolution": _stems("110 723 760 805 819 875"),
        "motion_blur": _stems(
            "1017 104 1156 12 154 239 270 283 29 429 458 460 468 659 663 700 "
            "732 810 856"
        ),
        "defocus_blur": _stems(
            "337 550 592 698 713 714 717 731 737 750 751 787 788 855 862 873 "
            "874 876 884 887"
        ),
        "noise": _stems("1001 1011 1024 1037 1055 1079 1098 1149 370 443 5"),
    },
}

_LAYOUT_TEXT = (
    "  SPAQ/<any sub-folders>/<id>.jpg        e.g. SPAQ/TestImage/00019.jpg\n"
    "  KonIQ-10k/<any sub-folders>/<id>.jpg   e.g. KonIQ-10k/1024x768/1755366250.jpg (1024x768 only)\n"
    "  LIVE-itW/<any sub-folders>/<id>.bmp    e.g. LIVE-itW/Images/110.bmp (500x500)"
)


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The centred size x size window of [H, W, C] (offsets rounded down)."""
    height, width = image.shape[:2]
    if height < size or width < size:
        raise ValueError(
            f"image of {height}x{width} is smaller than the {size}x{size} crop"
        )
    top, left = (height - size) // 2, (width - size) // 2
    return image[top : top + size, left : left + size]


def make_x1(image: np.ndarray, source: str) -> np.ndarray:
    """The 512x512 x1 image of one photo: LIVE is bicubic-resized, the others centre-cropped."""
    if source == "LIVE-itW":
        if image.shape[:2] != (LIVE_SIZE, LIVE_SIZE):
            raise ValueError(
                f"LIVE-itW photos are {LIVE_SIZE}x{LIVE_SIZE}, got {image.shape[:2]}"
            )
        resized = PIL.Image.fromarray(image).resize(
            (X1_SIZE, X1_SIZE), PIL.Image.Resampling.BICUBIC
        )
        return np.asarray(resized)
    return centre_crop(image, X1_SIZE)


class DiversePhotos(folders.ImageBuilder):
    """DiversePhotos x1 ("lq", 512) and x4 ("lq_x4", 128); one "test" split.

    Args (besides the TFDS ones):
      file_lists: source folder -> category -> file stems; defaults to the paper's lists.
    """

    name = "diverse_photos"
    DESCRIPTION = (
        "DiversePhotos (UniRes): 160 real photos with complex degradations from SPAQ, KonIQ-10k "
        "and LIVE-itW; x1 = 512x512, x4 = 128x128 centre crop. No ground truth."
    )
    HOMEPAGE = "https://arxiv.org/abs/2506.05599"
    CITATION = "UniRes: Universal Image Restoration for Complex Degradations (2025), appendix B.1."
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download SPAQ, KonIQ-10k (1024x768 release) and LIVE In the Wild (ChallengeDB_release) "
        "and put them side by side in one folder; the photos named in the paper's lists are "
        "found by file name anywhere below each dataset folder.\n\n"
        "Expected layout under the manual folder (--manual_dir):\n"
        + _LAYOUT_TEXT
        + "\n"
    )

    def __init__(
        self,
        *,
        file_lists: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._file_lists = file_lists or FILE_LISTS

    def _info(self):
        features = tfds.features.FeaturesDict(
            {
                "lq": tfds.features.Image(
                    shape=(X1_SIZE, X1_SIZE, 3), encoding_format="png"
                ),
                "lq_x4": tfds.features.Image(
                    shape=(X4_SIZE, X4_SIZE, 3), encoding_format="png"
                ),
                "name": tfds.features.Text(),
                "source": tfds.features.Text(),
                "category": tfds.features.ClassLabel(names=_CATEGORIES),
            }
        )
        return self._make_info(features)

    def check_manual_dir(self, manual_dir) -> None:
        self._locate(manual_dir)

    def _split_generators(self, dl_manager):
        return {"test": self._generate_examples(self._locate(dl_manager.manual_dir))}

    def _locate(self, manual_dir) -> list[tuple[str, str, str, pathlib.Path]]:
        """(source, category, stem, path) of every listed photo; raises LayoutError if any is missing."""
        root = pathlib.Path(manual_dir) if manual_dir else None
        problems, found = [], []
        for source, categories in self._file_lists.items():
            folder = root / source if root else None
            if folder is None or not folder.is_dir():
                problems.append(f"missing folder {folder}")
                continue
            by_stem: dict[str, list[pathlib.Path]] = {}
            for path in sources.list_images(folder):
                by_stem.setdefault(path.stem, []).append(path)
            missing = []
            for category, stems in categories.items():
                for stem in stems:
                    paths = by_stem.get(stem, [])
                    if len(paths) > 1:
                        problems.append(
                            f"{folder}: {len(paths)} files named {stem}: "
                            f"{', '.join(map(str, paths))}; keep one release only"
                        )
                    elif not paths:
                        missing.append(stem)
                    else:
                        found.append((source, category, stem, paths[0]))
            if missing:
                problems.append(
                    f"{folder}: {len(missing)} listed photo(s) not found: "
                    f"{', '.join(missing)}"
                )
        if problems:
            raise folders.LayoutError(
                f"{self.name}: the manual folder {root} does not have the expected layout:\n"
                + "\n".join(f"  - {p}" for p in problems)
                + f"\nExpected under {root}:\n{_LAYOUT_TEXT}\n"
                "Fix: download the three datasets and pass their parent folder as --manual_dir."
            )
        return found

    def _generate_examples(self, photos) -> Iterator[tuple[str, dict]]:
        for source, category, stem, path in photos:
            try:
                image = sources.decode_image(path)
            except sources.CorruptImageError as e:
                self.skipped.add(path, e)
                continue
            try:
                x1 = make_x1(image, source)
            except ValueError as e:
                raise ValueError(f"{path}: {e}") from e
            name = f"{source}/{stem}"
            yield (
                name,
                {
                    "lq": sources.encode_png(np.ascontiguousarray(x1)),
                    "lq_x4": sources.encode_png(
                        np.ascontiguousarray(centre_crop(x1, X4_SIZE))
                    ),
                    "name": name,
                    "source": source,
                    "category": category,
                },
            )
        self._record_skipped()

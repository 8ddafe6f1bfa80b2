"""GoPro: real motion-blurred / sharp frame pairs from high-speed video (GOPRO_Large)."""

from unires_jax.data.builders import folders
from unires_jax.data.builders.folders import FolderSpec


class GoPro(folders.ImageFolderBuilder):
    """GOPRO_Large: 2,103 train and 1,111 test pairs (the `blur` frames, not `blur_gamma`)."""

    name = "gopro"
    DESCRIPTION = (
        "GoPro motion deblurring pairs (LQ = blur, HQ = sharp), per video sequence."
    )
    HOMEPAGE = "https://seungjunnah.github.io/Datasets/gopro"
    CITATION = (
        "Nah et al., Deep Multi-scale CNN for Dynamic Scene Deblurring, CVPR 2017."
    )
    LAYOUT = (
        FolderSpec("train", "train/<sequence>", hq="sharp/<frame>", lq="blur/<frame>"),
        FolderSpec("test", "test/<sequence>", hq="sharp/<frame>", lq="blur/<frame>"),
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = folders.instructions(
        "Download GOPRO_Large.zip from https://seungjunnah.github.io/Datasets/gopro and extract "
        "it; pass the folder GOPRO_Large (which holds train/ and test/).",
        LAYOUT,
    )

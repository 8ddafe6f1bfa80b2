"""Rain100L: synthetic light rain streaks (RainTrainL for training, Rain100L for testing)."""

from unires_jax.data.builders import folders
from unires_jax.data.builders.folders import FolderSpec


class Rain100L(folders.ImageFolderBuilder):
    """RainTrainL (200 pairs) and Rain100L (100 test pairs), as shipped with PReNet."""

    name = "rain100l"
    DESCRIPTION = "Rain100L deraining pairs (LQ = rain-*, HQ = norain-*)."
    HOMEPAGE = "https://github.com/csdwren/PReNet"
    CITATION = "Yang et al., Deep Joint Rain Detection and Removal from a Single Image, CVPR 2017."
    LAYOUT = (
        FolderSpec("train", "RainTrainL", hq="norain-<id>", lq="rain-<id>"),
        FolderSpec("test", "Rain100L", hq="norain-<id>", lq="rain-<id>"),
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = folders.instructions(
        "Download the PReNet datasets (datasets/train/RainTrainL and datasets/test/Rain100L) and "
        "put both folders side by side in one folder.",
        LAYOUT,
    )

"""DRealSR, x4: real LR / HR pairs from five DSLR cameras by zooming."""

from unires_jax.data.builders import folders
from unires_jax.data.builders.folders import FolderSpec


class DRealSR(folders.ImageFolderBuilder):
    """DRealSR x4 test pairs (and the optional train crops)."""

    name = "drealsr"
    DESCRIPTION = "DRealSR x4 pairs (LQ = test_LR, HQ = test_HR)."
    HOMEPAGE = "https://github.com/xiezw5/Component-Divide-and-Conquer-for-Real-World-Image-Super-Resolution"
    CITATION = "Wei et al., Component Divide-and-Conquer for Real-World Image Super-Resolution, ECCV 2020."
    # File names carry a scale suffix in the release (`<name>_x1` HR, `<name>_x4` LR); copies
    # that dropped the suffix (same names in both folders) pair as well.
    LAYOUT = (
        FolderSpec(
            "train",
            "x4/Train_x4",
            hq="train_HR/<name>[_x1]",
            lq="train_LR/<name>[_x4]",
            required=False,
        ),
        FolderSpec(
            "test", "x4/Test_x4", hq="test_HR/<name>[_x1]", lq="test_LR/<name>[_x4]"
        ),
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = folders.instructions(
        "Download DRealSR from the project page and extract it; pass the folder that holds x4/.",
        LAYOUT,
    )

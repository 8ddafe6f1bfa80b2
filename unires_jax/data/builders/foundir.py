"""FoundIR: million-scale real paired data over 20 degradation types (residual diffusion)."""

from unires_jax.data.builders import folders
from unires_jax.data.builders.folders import FolderSpec


class FoundIR(folders.ImageFolderBuilder):
    """FoundIR train and test pairs in `NN<Type>/{GT,LQ}/` folders; "group" holds `NN<Type>`."""

    name = "foundir"
    DESCRIPTION = "FoundIR pairs (LQ = LQ/, HQ = GT/), one folder per degradation type."
    HOMEPAGE = "https://www.foundir.net"
    # `unires eval` summarises by "group": here the degradation type folder.
    GROUP_IS_DEGRADATION = True
    CITATION = (
        "Li, Chen, Dong, Tang & Pan, FoundIR: Unleashing Million-scale Training Data to Advance "
        "Foundation Models for Image Restoration."
    )
    # Either split may be absent (the test set alone is 1,500 pairs; training is ~1M).
    LAYOUT = (
        FolderSpec(
            "train", "train/<degradation>", hq="GT/<id>", lq="LQ/<id>", required=False
        ),
        FolderSpec(
            "test", "test/<degradation>", hq="GT/<id>", lq="LQ/<id>", required=False
        ),
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = folders.instructions(
        "Download the FoundIR train and/or test archives from https://www.foundir.net "
        "and extract them into train/ and test/ of one folder, keeping the `NN<Type>` folders "
        "(e.g. 01Blur) with their GT/ and LQ/ sub-folders.",
        LAYOUT,
    )

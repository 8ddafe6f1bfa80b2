"""RealSR (V3), x4: real LR / HR pairs taken at two focal lengths with Canon and Nikon cameras."""

from unires_jax.data.builders import folders
from unires_jax.data.builders.folders import FolderSpec


class RealSR(folders.ImageFolderBuilder):
    """RealSR(V3) x4: 400 train and 100 test pairs over both cameras."""

    name = "realsr"
    DESCRIPTION = "RealSR (V3) x4 pairs (LQ = *_LR4, HQ = *_HR), Canon and Nikon."
    HOMEPAGE = "https://github.com/csjcai/RealSR"
    CITATION = "Cai et al., Toward Real-World Single Image Super-Resolution, ICCV 2019."
    LAYOUT = (
        FolderSpec("train", "<camera>/Train/4", hq="<name>_HR", lq="<name>_LR4"),
        FolderSpec("test", "<camera>/Test/4", hq="<name>_HR", lq="<name>_LR4"),
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = folders.instructions(
        "Download RealSR(V3) from https://github.com/csjcai/RealSR and extract it; pass the "
        "folder RealSR(V3) (which holds Canon/ and Nikon/).",
        LAYOUT,
    )

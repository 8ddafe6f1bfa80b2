"""DF2K: the DIV2K and Flickr2K high-resolution photos (clean images).

The super-resolution task degrades them on the fly (Real-ESRGAN-style second-order pipeline).
"""

from unires_jax.data.builders import folders
from unires_jax.data.builders.folders import FolderSpec


class DF2K(folders.ImageFolderBuilder):
    """DIV2K (800 train + 100 validation) and Flickr2K (2,650) HR photos."""

    name = "df2k"
    DESCRIPTION = "DF2K: DIV2K and Flickr2K high-resolution photos, for synthetic super-resolution."
    HOMEPAGE = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
    CITATION = (
        "Agustsson & Timofte, NTIRE 2017 (DIV2K); Lim et al., CVPRW 2017 (Flickr2K)."
    )
    LAYOUT = (
        FolderSpec("train", "DIV2K_train_HR", "<name>"),
        FolderSpec("train", "Flickr2K/Flickr2K_HR", "<name>"),
        FolderSpec("validation", "DIV2K_valid_HR", "<name>", required=False),
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = folders.instructions(
        "Download DIV2K_train_HR.zip (and optionally DIV2K_valid_HR.zip) from "
        "https://data.vision.ee.ethz.ch/cvl/DIV2K/ and Flickr2K.tar from "
        "https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar; extract all into one folder.",
        LAYOUT,
    )

"""LOL (v1): low-light / normal-light pairs."""

from unires_jax.data.builders import folders
from unires_jax.data.builders.folders import FolderSpec


class LOL(folders.ImageFolderBuilder):
    """LOL-v1: 485 train pairs (our485) and 15 test pairs (eval15)."""

    name = "lol"
    DESCRIPTION = "LOL low-light enhancement pairs (LQ = low, HQ = high)."
    HOMEPAGE = "https://daooshee.github.io/BMVC2018website/"
    CITATION = (
        "Wei et al., Deep Retinex Decomposition for Low-Light Enhancement, BMVC 2018."
    )
    LAYOUT = (
        FolderSpec("train", "our485", hq="high/<name>", lq="low/<name>"),
        FolderSpec("test", "eval15", hq="high/<name>", lq="low/<name>"),
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = folders.instructions(
        "Download LOLdataset.zip from the project page and extract it; pass the folder "
        "LOLdataset (which holds our485/ and eval15/).",
        LAYOUT,
    )

"""BSD400 + WED: clean photos for Gaussian denoising (AnyIR / PromptIR protocol).

Noise (sigma 15 / 25 / 50) is added on the fly by the input pipeline.
"""

from unires_jax.data.builders import folders
from unires_jax.data.builders.folders import FolderSpec


class BSD400WED(folders.ImageFolderBuilder):
    """BSD400 (400 photos) and the Waterloo Exploration Database pristine images (4,744)."""

    name = "bsd400_wed"
    DESCRIPTION = "BSD400 and WED clean photos, the AnyIR denoising training set."
    HOMEPAGE = "https://ece.uwaterloo.ca/~k29ma/exploration/"
    CITATION = "Martin et al., ICCV 2001 (BSD); Ma et al., Waterloo Exploration Database, TIP 2017."
    LAYOUT = (
        FolderSpec("train", "BSD400", "<name>"),
        FolderSpec("train", "WED", "<name>"),
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = folders.instructions(
        "Put the 400 BSD training photos in BSD400/ and the WED pristine images "
        "(exploration_database_and_code/pristine_images/*.bmp) in WED/ of one folder.",
        LAYOUT,
    )

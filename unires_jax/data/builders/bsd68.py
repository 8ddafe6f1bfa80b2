"""CBSD68: 68 clean colour photos, the Gaussian denoising test set (noise added at test time)."""

from unires_jax.data.builders import folders
from unires_jax.data.builders.folders import FolderSpec


class BSD68(folders.ImageFolderBuilder):
    """CBSD68 (colour BSD68) clean test photos."""

    name = "bsd68"
    DESCRIPTION = "CBSD68 clean colour photos, the AnyIR denoising test set."
    HOMEPAGE = "https://github.com/clausmichele/CBSD68-dataset"
    CITATION = "Martin et al., ICCV 2001; Roth & Black, Fields of Experts, IJCV 2009."
    LAYOUT = (FolderSpec("test", "CBSD68", "<name>"),)
    MANUAL_DOWNLOAD_INSTRUCTIONS = folders.instructions(
        "Put the 68 clean CBSD68 photos (the `original_png` folder of the CBSD68 release) in "
        "CBSD68/ of one folder.",
        LAYOUT,
    )

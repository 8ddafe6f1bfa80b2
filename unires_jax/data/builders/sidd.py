"""SIDD-Medium (sRGB): real smartphone noise, noisy / ground-truth pairs per scene folder."""

from unires_jax.data.builders import folders
from unires_jax.data.builders.folders import FolderSpec


class SIDD(folders.ImageFolderBuilder):
    """SIDD_Medium_Srgb: 160 scene instances x 2 = 320 pairs."""

    name = "sidd"
    DESCRIPTION = (
        "SIDD-Medium sRGB denoising pairs (LQ = NOISY_SRGB, HQ = GT_SRGB), per scene."
    )
    HOMEPAGE = "https://abdokamel.github.io/sidd/"
    CITATION = "Abdelhamed et al., A High-Quality Denoising Dataset for Smartphone Cameras, CVPR 2018."
    LAYOUT = (
        FolderSpec("train", "Data/<scene>", hq="GT_SRGB_<id>", lq="NOISY_SRGB_<id>"),
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = folders.instructions(
        "Download SIDD_Medium_Srgb.zip from https://abdokamel.github.io/sidd/ and extract it; "
        "pass the folder SIDD_Medium_Srgb (which holds Data/).",
        LAYOUT,
    )

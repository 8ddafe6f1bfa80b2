"""DPDD: defocus-blurred / all-in-focus pairs from a dual-pixel camera (combined views)."""

from unires_jax.data.builders import folders
from unires_jax.data.builders.folders import FolderSpec


class DPDD(folders.ImageFolderBuilder):
    """DPDD combined-view (`*_c`) pairs: 350 train, 74 validation, 76 test."""

    name = "dpdd"
    DESCRIPTION = (
        "DPDD defocus deblurring pairs (LQ = source, HQ = target), combined views."
    )
    HOMEPAGE = "https://github.com/Abdullah-Abuolaim/defocus-deblurring-dual-pixel"
    CITATION = "Abuolaim & Brown, Defocus Deblurring Using Dual-Pixel Data, ECCV 2020."
    LAYOUT = (
        FolderSpec("train", "train_c", hq="target/<name>", lq="source/<name>"),
        FolderSpec(
            "validation",
            "val_c",
            hq="target/<name>",
            lq="source/<name>",
            required=False,
        ),
        FolderSpec("test", "test_c", hq="target/<name>", lq="source/<name>"),
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = folders.instructions(
        "Download dd_dp_dataset_canon.zip (PNG version) from the DPDD project page and extract "
        "it; pass the folder dd_dp_dataset_png (which holds train_c/, val_c/, test_c/).",
        LAYOUT,
    )

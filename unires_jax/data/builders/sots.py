"""SOTS (RESIDE): synthetic haze, hazy / clear pairs; outdoor is the AnyIR dehazing test set."""

from unires_jax.data.builders import folders
from unires_jax.data.builders.folders import FolderSpec


class SOTS(folders.ImageFolderBuilder):
    """SOTS outdoor (500 pairs) and the optional indoor set (500 hazy images over 50 GT)."""

    name = "sots"
    DESCRIPTION = "SOTS dehazing pairs (LQ = hazy, HQ = gt); outdoor and indoor splits."
    HOMEPAGE = "https://sites.google.com/view/reside-dehaze-datasets"
    CITATION = "Li et al., Benchmarking Single-Image Dehazing and Beyond, TIP 2019."
    # Hazy files carry the haze parameters after the scene id: outdoor `0001_0.8_0.2`, indoor
    # `1400_1` (ten hazy versions of one indoor GT).
    LAYOUT = (
        FolderSpec(
            "outdoor", "outdoor", hq="gt/<id>", lq="hazy/<id>_<airlight>_<beta>"
        ),
        FolderSpec(
            "indoor", "indoor", hq="gt/<id>", lq="hazy/<id>_<k>", required=False
        ),
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = folders.instructions(
        "Download SOTS from the RESIDE page and extract it; pass the folder SOTS (which holds "
        "outdoor/ and optionally indoor/).",
        LAYOUT,
    )

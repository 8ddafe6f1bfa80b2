"""LSDIR: large-scale photos for image restoration (clean images, degraded on the fly)."""

from unires_jax.data.builders import folders
from unires_jax.data.builders.folders import FolderSpec


class LSDIR(folders.ImageFolderBuilder):
    """LSDIR train shards (84,991 HR photos) and the optional validation set."""

    name = "lsdir"
    DESCRIPTION = "LSDIR high-resolution photos, for synthetic super-resolution."
    HOMEPAGE = "https://ofsoundof.github.io/lsdir-data/"
    CITATION = (
        "Li et al., LSDIR: A Large Scale Dataset for Image Restoration, CVPRW 2023."
    )
    LAYOUT = (
        FolderSpec("train", "train/<shard>", "<name>"),
        FolderSpec("validation", "val1/HR/val", "<name>", required=False),
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = folders.instructions(
        "Download the LSDIR train shards (shard-00.tar.gz ...) and extract each into train/ so "
        "that the shard folders (0001000, 0002000, ...) sit under train/; optionally extract "
        "val1.tar.gz next to it. See https://ofsoundof.github.io/lsdir-data/.",
        LAYOUT,
    )

"""Inference end to end: `load(checkpoint)` gives the family's `ImageRestorer`.

    from unires_jax.restore import load, Restorer
    restorer = load()                        # the embedded default UniRes model
    out = restorer.restore(pixels, seed=0)   # Restored: .pixels [H, W, 3] in [0, 1], .details

- interface.py  ImageRestorer (what every family implements), Restored
- api.py        load(checkpoint, **options) by the checkpoint's family (FAMILIES)
- batch.py      files in, files and sidecars out (family-blind)
- image_io.py   the one image reader, encoder and atomic writer
- inputs.py     input files and folders -> the list of inputs
- unires.py     UniRes as an ImageRestorer (weight choice: fixed or searched)
- restorer.py   UniRes inference: Restorer (latents, K-expert DDIM, decoding)
"""

from unires_jax.restore.api import FAMILIES, family_of, load
from unires_jax.restore.interface import ImageRestorer, OptionError, Restored
from unires_jax.restore.restorer import Restorer, RestoreSettings
from unires_jax.restore.unires import UniResRestorer

__all__ = [
    "FAMILIES",
    "ImageRestorer",
    "OptionError",
    "RestoreSettings",
    "Restored",
    "Restorer",
    "UniResRestorer",
    "family_of",
    "load",
]

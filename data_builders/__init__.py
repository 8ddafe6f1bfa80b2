"""One TFDS builder per dataset (re-exports, one file per dataset).

The implementations live in the installed package, `unires_jax.data.builders` (so that
`unires data build` works after `pip install`); each file here re-exports one builder class.
The shared folder-layout logic is `unires_jax/data/builders/folders.py`.
"""

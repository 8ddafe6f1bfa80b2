"""unires-jax: universal image restoration with latent diffusion, in JAX/Flax."""

import pathlib
import re

from setuptools import find_packages, setup

_ROOT = pathlib.Path(__file__).parent
_VERSION = re.search(
    r'__version__ = "([^"]+)"', (_ROOT / "unires_jax" / "__init__.py").read_text()
).group(1)

# Versions verified together on CPU (see shared/specs/toolchain.md).
INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "tensorflow-datasets==4.9.10",
    "grain==0.2.18",
    "ml-collections==1.1.0",
    "clu==0.0.12",
    "numpy==2.4.6",
    "scipy>=1.13,<2",
    "safetensors>=0.4,<1",
    "pillow>=10,<14",
    "regex>=2023.0",
    "tqdm>=4.60",
    "matplotlib>=3.8,<4",
    "scikit-image>=0.24,<1",  # ships the sample photos (held-out demo split)
    "scikit-learn>=1.4,<2",  # random-forest weight predictor; ships sample photos
    "absl-py>=2.0",
    "tifffile>=2023.1",  # 16-bit TIFF input/output
    "bm3d>=4.0.3,<5",  # the default restore's classical denoiser (restore/adaptive.py)
]

EXTRAS = {
    "tpu": ["jax[tpu]==0.10.2"],
    "gpu": ["jax[cuda12]==0.10.2"],
    "tf": ["tensorflow>=2.16", "tensorboard>=2.16"],
    # Oracles for exactness tests. torch is pinned to the CPU wheel (see toolchain.md).
    "test": [
        "torch==2.13.0",
        "diffusers==0.42.1",
        "transformers==5.23.0",
        "pytest>=8",
        "pytest-timeout>=2.3",
        "pytest-xdist>=3.5",  # the README runs the suite in two processes (-n 2)
        "filelock>=3.12",  # one xdist worker runs the demo fixture, the other reads its report
        "tensorboard==2.21.0",  # reads our TensorBoard event files back (no TensorFlow needed)
        "chex>=0.1.90",
        "nbclient>=0.10",
        "nbformat>=5.10",
        "ipykernel>=6.29",
    ],
}

setup(
    name="unires-jax",
    version=_VERSION,
    description="Universal image restoration with latent diffusion (UniRes) in JAX/Flax",
    long_description=(_ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["unires_jax", "unires_jax.*"]),
    include_package_data=True,
    package_data={
        "unires_jax": ["assets/**/*"],
        "unires_jax.quality": ["assets/*"],
    },
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["unires=unires_jax.cli.main:main"]},
)

"""Flax NNX models. Submodules: layers, unet, vae, text, configs, partitioning."""

import jax
from flax import nnx


def count_params(module: nnx.Module) -> int:
    """Number of trainable parameter scalars (works on abstract modules from nnx.eval_shape)."""
    return sum(int(x.size) for x in jax.tree.leaves(nnx.state(module, nnx.Param)))

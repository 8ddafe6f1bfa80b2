"""Logical axis names that every model parameter is annotated with.

Models name their parameter axes with these logical names only (via `nnx.with_partitioning`);
the mapping from logical names to mesh axes lives in one table in `unires_jax/train/sharding.py`,
and a test checks that every name used here has a rule there.
"""

from __future__ import annotations

from flax import nnx

# Convolution kernels [kh, kw, c_in, c_out] and their per-output-channel vectors.
CONV_KERNEL = ("kh", "kw", "c_in", "c_out")
CONV_BIAS = ("c_out",)
# Dense kernels [d_in, d_out] and bias [d_out].
DENSE_KERNEL = ("embed_in", "embed_out")
DENSE_BIAS = ("embed_out",)
# Normalisation scale/bias (GroupNorm, LayerNorm): small, always replicated.
NORM = ("norm",)
# Token and position embedding tables [vocab, d] / [positions, d].
TOKEN_EMBEDDING = ("vocab", "embed_out")
POSITION_EMBEDDING = ("pos", "embed_out")

ALL_LOGICAL_AXES = frozenset(
    CONV_KERNEL
    + CONV_BIAS
    + DENSE_KERNEL
    + DENSE_BIAS
    + NORM
    + TOKEN_EMBEDDING
    + POSITION_EMBEDDING
)


def partitioned(init, names: tuple[str | None, ...]):
    """Wraps an initializer so the created parameter carries logical axis `names`."""
    return nnx.with_partitioning(init, names)

"""MUSIQ network: ResNet patch stem + hash/scale-embedded pre-norm Transformer + CLS head.

Ke et al., "MUSIQ: Multi-scale Image Quality Transformer", ICCV 2021. Layout follows the
official Flax code (`musiq/model/multiscale_transformer.py`, `resnet.py`,
`multiscale_transformer_utils.py`): every 32x32 patch goes through a weight-standardised ResNet
root (7x7/2 conv, GroupNorm, ReLU, 3x3/2 max-pool) and one bottleneck unit to [8, 8, 256], is
flattened (NHWC order) and projected to a 384-d token; tokens get a hashed spatial embedding
(G x G grid) and a scale embedding, a CLS token is prepended, and 14 pre-norm encoder blocks
(6 heads, MLP 1152) follow. The head reads the CLS token.

Two numerical switches select which reference is reproduced (see `musiq_config`):
`gelu_approximate` (official: tanh GELU; pyiqa: exact erf GELU) and `weight_std_ddof` (official:
population std, ddof=0; pyiqa: torch's unbiased std, ddof=1) in weight standardisation.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.quality import musiq_preprocess

# Head name -> (official checkpoint file, number of outputs). AVA predicts a 10-bin score
# distribution; the others regress the mean opinion score directly.
HEADS = {
    "koniq": ("koniq_ckpt.npz", 1),
    "spaq": ("spaq_ckpt.npz", 1),
    "paq2piq": ("paq2piq_ckpt.npz", 1),
    "ava": ("ava_ckpt.npz", 10),
}

# Reference behaviours, applied on top of MusiqConfig's defaults by `musiq_config`.
PREPROCESSING = {
    "official": {
        "resize_method": "tf_gaussian",
        "gelu_approximate": True,
        "weight_std_ddof": 0,
    },
    "pyiqa": {
        "resize_method": "torch_bicubic",
        "gelu_approximate": False,
        "weight_std_ddof": 1,
    },
}

_WEIGHT_STD_EPS = 1e-5
_ROOT_GN_EPS = 1e-6
_BLOCK_GN_EPS = 1e-4
_LN_EPS = 1e-6


def _default_buckets() -> tuple[int, ...]:
    # Geometric lengths (ratio ~1.125, multiples of 32): at most ~12% padding, few compiled shapes.
    out, n = [], 256
    while n <= 16384:
        out.append(n)
        n = int(np.ceil(n * 1.125 / 32) * 32)
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class MusiqConfig:
    """MUSIQ architecture, preprocessing and batching.

    Attributes:
        num_classes: head outputs: 1 (KonIQ, SPAQ, PaQ-2-PiQ) or 10 (AVA score bins).
        patch_size: side of the square patches (32).
        hidden_size: token width (384).
        mlp_dim: encoder MLP width (1152).
        num_heads: attention heads (6).
        num_layers: encoder blocks (14).
        resnet_width: channels of the stem root (64; the bottleneck outputs 4x that).
        grid_size: G of the hashed spatial embedding (10).
        longer_side_lengths: resized scales besides the native one ((224, 384); () for
            the MUSIQ-single checkpoints).
        resize_method: "tf_gaussian" (official) or "torch_bicubic" (pyiqa).
        resize_antialias: widen the Gaussian kernel when downscaling; the official code does not.
        gelu_approximate: tanh GELU (official, flax.nn.gelu) or exact erf GELU (pyiqa).
        weight_std_ddof: 0 = population std in weight standardisation (official), 1 = sample
            std (pyiqa's torch.std).
        seq_buckets: token counts (before CLS) the sequences are padded to.
        max_batch: images per compiled call; batches are padded to a power of two up to this.
    """

    num_classes: int = 1
    patch_size: int = 32
    hidden_size: int = 384
    mlp_dim: int = 1152
    num_heads: int = 6
    num_layers: int = 14
    resnet_width: int = 64
    grid_size: int = 10
    longer_side_lengths: tuple[int, ...] = (224, 384)
    resize_method: str = "tf_gaussian"
    resize_antialias: bool = False
    gelu_approximate: bool = True
    weight_std_ddof: int = 0
    seq_buckets: tuple[int, ...] = dataclasses.field(default_factory=_default_buckets)
    max_batch: int = 4

    def __post_init__(self):
        if self.resize_method not in musiq_preprocess.RESIZE_METHODS:
            raise ValueError(
                f"MusiqConfig.resize_method={self.resize_method!r}; expected one of "
                f"{musiq_preprocess.RESIZE_METHODS}"
            )
        if self.weight_std_ddof not in (0, 1):
            raise ValueError(
                f"MusiqConfig.weight_std_ddof must be 0 or 1, got {self.weight_std_ddof}"
            )
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        if self.patch_size % 4:
            raise ValueError(
                f"patch_size {self.patch_size} must be a multiple of 4 (the stem's stride)"
            )
        if not self.seq_buckets or self.max_batch < 1:
            raise ValueError(
                "MusiqConfig needs at least one seq_bucket and max_batch >= 1"
            )

    @property
    def num_scales(self) -> int:
        return len(self.longer_side_lengths) + 1

    @property
    def token_features(self) -> int:
        """Length of a flattened stem output: (P / 4)^2 * 4 * resnet_width."""
        return (self.patch_size // 4) ** 2 * 4 * self.resnet_width


def musiq_config(
    preprocessing: str = "official", head: str = "koniq", **overrides
) -> MusiqConfig:
    """MusiqConfig for a reference behaviour and head, with field overrides.

    Args:
        preprocessing: "official" (TF Gaussian resize, tanh GELU, population std) or "pyiqa"
            (bicubic resize, exact GELU, sample std).
        head: one of HEADS; sets num_classes.
        **overrides: any MusiqConfig field.
    """
    if preprocessing not in PREPROCESSING:
        raise ValueError(
            f"unknown MUSIQ preprocessing {preprocessing!r}; expected one of {sorted(PREPROCESSING)}"
        )
    if head not in HEADS:
        raise ValueError(
            f"unknown MUSIQ head {head!r}; expected one of {sorted(HEADS)}"
        )
    fields = {
        **PREPROCESSING[preprocessing],
        "num_classes": HEADS[head][1],
        **overrides,
    }
    return MusiqConfig(**fields)


def standardize_weight(
    kernel: jax.Array, ddof: int, eps: float = _WEIGHT_STD_EPS
) -> jax.Array:
    """Weight standardisation per output channel. kernel: [kh, kw, c_in, c_out].

    (w - mean) / (std + eps) over (kh, kw, c_in); eps is added to the std, not the variance,
    in both reference codes.
    """
    mean = jnp.mean(kernel, axis=(0, 1, 2), keepdims=True)
    centred = kernel - mean
    n = kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
    std = jnp.sqrt(
        jnp.sum(centred * centred, axis=(0, 1, 2), keepdims=True) / (n - ddof)
    )
    return centred / (std + eps)


class StdConv(nnx.Module):
    """Bias-free convolution with standardised weights and TF "SAME" padding (NHWC)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int,
        ddof: int,
        *,
        rngs: nnx.Rngs,
    ):
        init = nnx.initializers.lecun_normal()
        self.kernel = nnx.Param(
            init(rngs.params(), (kernel, kernel, c_in, c_out), jnp.float32)
        )
        self.stride = stride
        self.ddof = ddof

    def __call__(self, x: jax.Array) -> jax.Array:
        w = standardize_weight(self.kernel[...], self.ddof)
        return jax.lax.conv_general_dilated(
            x,
            w,
            (self.stride, self.stride),
            "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )


def _group_norm(c: int, eps: float, rngs: nnx.Rngs) -> nnx.GroupNorm:
    return nnx.GroupNorm(
        c, num_groups=32, epsilon=eps, use_fast_variance=False, rngs=rngs
    )


class Bottleneck(nnx.Module):
    """ResNet v1 bottleneck unit with GroupNorm (the stem's `block1/unit1`), stride 1."""

    def __init__(self, width: int, ddof: int, *, rngs: nnx.Rngs):
        out = 4 * width
        self.conv_proj = StdConv(width, out, 1, 1, ddof, rngs=rngs)
        self.gn_proj = _group_norm(out, _BLOCK_GN_EPS, rngs)
        self.conv1 = StdConv(width, width, 1, 1, ddof, rngs=rngs)
        self.gn1 = _group_norm(width, _BLOCK_GN_EPS, rngs)
        self.conv2 = StdConv(width, width, 3, 1, ddof, rngs=rngs)
        self.gn2 = _group_norm(width, _BLOCK_GN_EPS, rngs)
        self.conv3 = StdConv(width, out, 1, 1, ddof, rngs=rngs)
        self.gn3 = _group_norm(out, _BLOCK_GN_EPS, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        residual = self.gn_proj(self.conv_proj(x))
        x = jax.nn.relu(self.gn1(self.conv1(x)))
        x = jax.nn.relu(self.gn2(self.conv2(x)))
        x = self.gn3(self.conv3(x))
        return jax.nn.relu(x + residual)


class Attention(nnx.Module):
    """Multi-head self-attention with a key padding mask.

    The official query/key/value kernels [D, heads, D/heads] are stored fused as one [D, 3D]
    projection (q | k | v, head-major within each); `unires_jax/convert/musiq.py` maps them.
    """

    def __init__(self, dim: int, num_heads: int, *, rngs: nnx.Rngs):
        self.qkv = nnx.Linear(dim, 3 * dim, rngs=rngs)
        self.out = nnx.Linear(dim, dim, rngs=rngs)
        self.num_heads = num_heads

    def __call__(self, x: jax.Array, key_mask: jax.Array) -> jax.Array:
        """x: [B, T, D]; key_mask: [B, T] bool (False keys get no attention)."""
        b, t, d = x.shape
        h = self.num_heads
        q, k, v = jnp.split(self.qkv(x).reshape(b, t, 3 * h, d // h), 3, axis=2)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q * (d // h) ** -0.5, k)
        # Padded keys get exactly zero weight (both references use a large negative logit).
        logits = jnp.where(
            key_mask[:, None, None, :], logits, jnp.finfo(logits.dtype).min
        )
        weights = jax.nn.softmax(logits, axis=-1)
        return self.out(jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, d))


class EncoderBlock(nnx.Module):
    """Pre-norm Transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg: MusiqConfig, *, rngs: nnx.Rngs):
        d = cfg.hidden_size
        self.norm1 = nnx.LayerNorm(
            d, epsilon=_LN_EPS, use_fast_variance=False, rngs=rngs
        )
        self.attention = Attention(d, cfg.num_heads, rngs=rngs)
        self.norm2 = nnx.LayerNorm(
            d, epsilon=_LN_EPS, use_fast_variance=False, rngs=rngs
        )
        self.mlp_in = nnx.Linear(d, cfg.mlp_dim, rngs=rngs)
        self.mlp_out = nnx.Linear(cfg.mlp_dim, d, rngs=rngs)
        self.gelu_approximate = cfg.gelu_approximate

    def __call__(self, x: jax.Array, key_mask: jax.Array) -> jax.Array:
        x = x + self.attention(self.norm1(x), key_mask)
        y = jax.nn.gelu(self.mlp_in(self.norm2(x)), approximate=self.gelu_approximate)
        return x + self.mlp_out(y)


class MusiqModel(nnx.Module):
    """MUSIQ on pre-extracted patch sequences (see `musiq_preprocess.multiscale_patches`)."""

    def __init__(self, cfg: MusiqConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        w, d = cfg.resnet_width, cfg.hidden_size
        self.conv_root = StdConv(3, w, 7, 2, cfg.weight_std_ddof, rngs=rngs)
        self.gn_root = _group_norm(w, _ROOT_GN_EPS, rngs)
        self.block1 = Bottleneck(w, cfg.weight_std_ddof, rngs=rngs)
        self.embedding = nnx.Linear(cfg.token_features, d, rngs=rngs)
        normal = nnx.initializers.normal(0.02)
        self.pos_embedding = nnx.Param(
            normal(rngs.params(), (cfg.grid_size**2, d), jnp.float32)
        )
        self.scale_embedding = nnx.Param(
            normal(rngs.params(), (cfg.num_scales, d), jnp.float32)
        )
        self.cls = nnx.Param(jnp.zeros((d,), jnp.float32))
        self.blocks = nnx.List(
            [EncoderBlock(cfg, rngs=rngs) for _ in range(cfg.num_layers)]
        )
        self.encoder_norm = nnx.LayerNorm(
            d, epsilon=_LN_EPS, use_fast_variance=False, rngs=rngs
        )
        self.head = nnx.Linear(d, cfg.num_classes, rngs=rngs)

    def embed_patches(self, patches: jax.Array) -> jax.Array:
        """ResNet stem + linear embedding. patches: [N, P, P, 3] -> tokens [N, D]."""
        x = jax.nn.relu(self.gn_root(self.conv_root(patches)))
        x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        x = self.block1(x)
        return self.embedding(x.reshape(x.shape[0], -1))

    def __call__(
        self, patches: jax.Array, spatial: jax.Array, scale: jax.Array, mask: jax.Array
    ) -> jax.Array:
        """Head outputs for a batch of sequences.

        Args:
            patches: [B, L, P, P, 3] float32 in [-1, 1].
            spatial: [B, L] int32 hashed positions in [0, G^2).
            scale: [B, L] int32 scale ids in [0, num_scales).
            mask: [B, L] bool, False for padding tokens.

        Returns:
            [B, num_classes] head outputs (logits for AVA, the score otherwise).
        """
        b, n = mask.shape
        x = self.embed_patches(patches.reshape(b * n, *patches.shape[2:])).reshape(
            b, n, -1
        )
        x = x + self.pos_embedding[...][spatial] + self.scale_embedding[...][scale]
        cls = jnp.broadcast_to(self.cls[...], (b, 1, x.shape[-1]))
        x = jnp.concatenate([cls, x], axis=1)
        key_mask = jnp.concatenate([jnp.ones((b, 1), bool), mask], axis=1)
        for block in self.blocks:
            x = block(x, key_mask)
        return self.head(self.encoder_norm(x[:, 0]))


def logits_to_score(logits: jax.Array) -> jax.Array:
    """[B, K] head outputs -> [B] scores: the value itself for K = 1, else the mean of a softmax
    distribution over the scores 1..K (AVA)."""
    if logits.shape[-1] == 1:
        return logits[:, 0]
    probs = jax.nn.softmax(logits, axis=-1)
    return probs @ jnp.arange(1, logits.shape[-1] + 1, dtype=probs.dtype)

"""LPIPS v0.1 (Zhang et al. 2018) as an NNX module: an ImageNet backbone plus linear heads.

    d(a, b) = sum_l mean_hw( w_l . (n(f_l(s(a))) - n(f_l(s(b))))^2 )

s maps [0, 1] images to [-1, 1] and applies lpips' ScalingLayer; f_l are the activations after
five ReLUs of torchvision's AlexNet or VGG16 `features`; n divides each pixel's feature vector by
its L2 norm (+1e-10); w_l is a 1x1 convolution to one channel without bias (dropout is identity
at inference). Every detail follows the `lpips` package 0.1.4 (`lpips/lpips.py`,
`lpips/pretrained_networks.py`), which `tests/quality/test_lpips.py` uses as the oracle.

The backbone layout is written as torchvision's `features` list, so that layer i here is
`features.i` in a torchvision state dict (`unires_jax/convert/lpips.py` maps the keys). Only the
layers up to the last compared ReLU are built. Activations are NHWC. This module never reads
files.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx


class Conv(NamedTuple):
    """A torchvision Conv2d (with bias) in `features`."""

    features: int
    kernel: int
    stride: int = 1
    padding: int = 0


class MaxPool(NamedTuple):
    """A torchvision MaxPool2d: no padding, floor mode."""

    window: int
    stride: int


RELU = "relu"

Layer = Conv | MaxPool | str


@dataclasses.dataclass(frozen=True)
class LpipsConfig:
    """One LPIPS variant.

    Attributes:
        net: "alex" or "vgg", as `lpips.LPIPS(net=...)`.
        features: torchvision's `features` layers, index for index, up to the last tap.
        taps: indices into `features` whose outputs are compared (the lpips slice ends).
        shift, scale: lpips' ScalingLayer, applied to images in [-1, 1] per RGB channel.
        eps: added to the feature norm in lpips' `normalize_tensor`.
    """

    net: str
    features: tuple[Layer, ...]
    taps: tuple[int, ...]
    shift: tuple[float, float, float] = (-0.030, -0.088, -0.188)
    scale: tuple[float, float, float] = (0.458, 0.448, 0.450)
    eps: float = 1e-10

    def __post_init__(self):
        if not self.taps or list(self.taps) != sorted(set(self.taps)):
            raise ValueError(f"taps must be increasing indices, got {self.taps}")
        if self.taps[-1] != len(self.features) - 1:
            raise ValueError(
                f"features must end at the last tap ({self.taps[-1]}), got {len(self.features)} layers"
            )

    @property
    def conv_indices(self) -> tuple[int, ...]:
        """Indices into `features` of the convolutions (`features.{i}.weight` in torchvision)."""
        return tuple(
            i for i, layer in enumerate(self.features) if isinstance(layer, Conv)
        )

    @property
    def tap_channels(self) -> tuple[int, ...]:
        """Channels of each compared activation (the heads' input widths)."""
        out, channels = [], 3
        for i, layer in enumerate(self.features):
            if isinstance(layer, Conv):
                channels = layer.features
            if i in self.taps:
                out.append(channels)
        return tuple(out)


def alex() -> LpipsConfig:
    """torchvision AlexNet `features[:12]`; taps relu1..relu5 as lpips' `alexnet` slices."""
    return LpipsConfig(
        net="alex",
        features=(
            Conv(64, 11, stride=4, padding=2),  # 0
            RELU,  # 1: relu1
            MaxPool(3, 2),
            Conv(192, 5, padding=2),
            RELU,  # 4: relu2
            MaxPool(3, 2),
            Conv(384, 3, padding=1),
            RELU,  # 7: relu3
            Conv(256, 3, padding=1),
            RELU,  # 9: relu4
            Conv(256, 3, padding=1),
            RELU,  # 11: relu5
        ),
        taps=(1, 4, 7, 9, 11),
    )


def vgg() -> LpipsConfig:
    """torchvision VGG16 `features[:30]`; taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3."""
    layers: list[Layer] = []
    taps = []
    for block, (width, convs) in enumerate(
        [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
    ):
        if block:
            layers.append(MaxPool(2, 2))
        for _ in range(convs):
            layers += [Conv(width, 3, padding=1), RELU]
        taps.append(len(layers) - 1)
    return LpipsConfig(net="vgg", features=tuple(layers), taps=tuple(taps))


CONFIGS = {"alex": alex, "vgg": vgg}


def lpips_config(net: str) -> LpipsConfig:
    """The config of variant `net` ("alex" or "vgg")."""
    if net not in CONFIGS:
        raise ValueError(
            f"unknown LPIPS net {net!r}; implemented: {', '.join(CONFIGS)}"
        )
    return CONFIGS[net]()


def _out_size(size: int, layer: Layer) -> int:
    """Output side length of one layer (floor division, as PyTorch conv and pooling)."""
    if isinstance(layer, Conv):
        return (size + 2 * layer.padding - layer.kernel) // layer.stride + 1
    if isinstance(layer, MaxPool):
        return (size - layer.window) // layer.stride + 1
    return size


def fits(cfg: LpipsConfig, size: int) -> bool:
    """Whether an image side of `size` pixels survives every layer with at least one pixel."""
    for layer in cfg.features:
        size = _out_size(size, layer)
        if size < 1:
            return False
    return True


def min_size(cfg: LpipsConfig) -> int:
    """The smallest image side the backbone accepts (31 for alex, 16 for vgg)."""
    size = 1
    while not fits(cfg, size):
        size += 1
    return size


class Backbone(nnx.Module):
    """torchvision `features` up to the last tap; returns the tapped activations."""

    def __init__(self, cfg: LpipsConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        convs = []
        channels = 3
        for layer in cfg.features:
            if isinstance(layer, Conv):
                p = layer.padding
                convs.append(
                    nnx.Conv(
                        channels,
                        layer.features,
                        (layer.kernel, layer.kernel),
                        strides=layer.stride,
                        padding=((p, p), (p, p)),
                        # A metric: float32 accuracy matters more than TF32/bf16 speed on GPU.
                        precision=jax.lax.Precision.HIGHEST,
                        rngs=rngs,
                    )
                )
                channels = layer.features
        self.convs = nnx.List(convs)

    def __call__(self, x: jax.Array) -> list[jax.Array]:
        """x: [N, H, W, 3] scaled images -> one [N, h_l, w_l, C_l] activation per tap."""
        taps, conv = [], 0
        for i, layer in enumerate(self.cfg.features):
            if isinstance(layer, Conv):
                x = self.convs[conv](x)
                conv += 1
            elif isinstance(layer, MaxPool):
                w, s = layer.window, layer.stride
                x = jax.lax.reduce_window(
                    x, -jnp.inf, jax.lax.max, (1, w, w, 1), (1, s, s, 1), "VALID"
                )
            else:
                x = jax.nn.relu(x)
            if i in self.cfg.taps:
                taps.append(x)
        return taps


def _unit_normalize(x: jax.Array, eps: float) -> jax.Array:
    """lpips.normalize_tensor: x / (||x||_channels + eps), per pixel."""
    return x / (jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True)) + eps)


class LpipsModel(nnx.Module):
    """LPIPS distance between two image batches."""

    def __init__(self, cfg: LpipsConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.backbone = Backbone(cfg, rngs=rngs)
        # lpips' NetLinLayer: Dropout (identity in eval) then a 1x1 conv C -> 1 without bias.
        self.heads = nnx.List(
            [
                nnx.Conv(
                    c,
                    1,
                    (1, 1),
                    use_bias=False,
                    precision=jax.lax.Precision.HIGHEST,
                    rngs=rngs,
                )
                for c in cfg.tap_channels
            ]
        )

    def __call__(self, a: jax.Array, b: jax.Array) -> jax.Array:
        """Distances of image pairs.

        Args:
            a, b: [N, H, W, 3] (or grey [N, H, W, 1]) float images in [0, 1], same shape.

        Returns:
            [N] float32 LPIPS distances (0 for identical images).
        """
        n = a.shape[0]
        x = jnp.concatenate([a, b], axis=0).astype(jnp.float32)
        shift = jnp.asarray(self.cfg.shift, jnp.float32)
        scale = jnp.asarray(self.cfg.scale, jnp.float32)
        # lpips forward(normalize=True), then ScalingLayer; a grey channel broadcasts to RGB
        # exactly as it does against lpips' [1, 3, 1, 1] shift.
        x = ((2 * x - 1) - shift) / scale
        total = jnp.zeros((n,), jnp.float32)
        for feat, head in zip(self.backbone(x), self.heads):
            feat = _unit_normalize(feat, self.cfg.eps)
            diff = (feat[:n] - feat[n:]) ** 2
            total = total + jnp.mean(head(diff), axis=(1, 2, 3))
        return total

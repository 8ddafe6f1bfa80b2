"""A minimal `torchvision` stand-in, so that the `lpips` package can be imported as a test oracle.

Why: lpips 0.1.4 does `from torchvision import models as tv` at import time, but no torchvision
wheel imports beside this project's torch 2.13.0 CPU build ("operator torchvision::nms does not
exist", see shared/specs/toolchain.md), and a matching torchvision would pull a multi-GB CUDA
build. lpips only needs `tv.alexnet(pretrained=...).features`, `tv.vgg16(...).features` (and
`tv.squeezenet1_1`, which we do not test): `torch.nn.Sequential`s whose layer indices its slices
copy. This module rebuilds exactly torchvision's `features` layouts (same layers, same indices, so
`features.{i}.weight` state-dict keys line up) with PyTorch's default random initialisation, and
never loads or downloads weights: `pretrained=True` raises. The tests build lpips with
`pnet_rand=True`, so lpips asks for `pretrained=False` and loads only its shipped head files.

Use `installed()` as a context manager: it puts the stand-in into `sys.modules` (as `torchvision`
and `torchvision.models`) and restores the previous entries afterwards.
"""

from __future__ import annotations

import contextlib
import sys
import types

from torch import nn


class _Net(nn.Module):
    """Holds `features`, as torchvision's AlexNet / VGG do; no classifier (lpips never uses it)."""

    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features = features


def _no_pretrained(name: str, pretrained: bool, kwargs: dict) -> None:
    if pretrained or kwargs.get("weights") is not None:
        raise RuntimeError(
            f"torchvision stand-in: {name}(pretrained=True) would download ImageNet weights; "
            "build lpips.LPIPS with pnet_rand=True and load a backbone state dict yourself."
        )


def alexnet_features() -> nn.Sequential:
    """torchvision.models.AlexNet().features, index for index (13 layers)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def vgg16_features() -> nn.Sequential:
    """torchvision.models.vgg16().features (config "D", no batch norm), index for index (31)."""
    layers: list[nn.Module] = []
    channels = 3
    cfg = [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        "M",
    ]
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [
                nn.Conv2d(channels, v, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
            ]
            channels = v
    return nn.Sequential(*layers)


def alexnet(pretrained: bool = False, **kwargs) -> _Net:
    _no_pretrained("alexnet", pretrained, kwargs)
    return _Net(alexnet_features())


def vgg16(pretrained: bool = False, **kwargs) -> _Net:
    _no_pretrained("vgg16", pretrained, kwargs)
    return _Net(vgg16_features())


def squeezenet1_1(pretrained: bool = False, **kwargs) -> _Net:
    raise NotImplementedError("torchvision stand-in: squeezenet1_1 is not provided")


@contextlib.contextmanager
def installed():
    """Makes `import torchvision` / `from torchvision import models` return the stand-in."""
    models = types.ModuleType("torchvision.models")
    models.alexnet = alexnet
    models.vgg16 = vgg16
    models.squeezenet1_1 = squeezenet1_1
    package = types.ModuleType("torchvision")
    package.__path__ = []  # a package, so `torchvision.models` resolves as a submodule
    package.models = models
    names = ("torchvision", "torchvision.models")
    saved = {k: sys.modules[k] for k in names if k in sys.modules}
    sys.modules.update({"torchvision": package, "torchvision.models": models})
    try:
        yield package
    finally:
        for k in names:
            sys.modules.pop(k, None)
        sys.modules.update(saved)


__all__ = [
    "alexnet",
    "alexnet_features",
    "installed",
    "squeezenet1_1",
    "vgg16",
    "vgg16_features",
]

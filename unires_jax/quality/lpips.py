"""LPIPS full-reference distance (lower is better), equal to the `lpips` package 0.1.4.

    metric = lpips.load("alex", heads="lpips/weights/v0.1/alex.pth",
                        backbone="alexnet-owt-7be5be79.pth")
    d = metric.distance(restored, reference)   # two [N, H, W, 3] batches in [0, 1] -> [N]

`d[i]` is `lpips.LPIPS(net="alex", version="0.1")(a, b, normalize=True)` for the pair i, the
metric most papers report as "LPIPS". Nothing is downloaded: pass the lpips package's linear-head
file (`lpips/weights/v0.1/{alex,vgg}.pth`, inside `pip download lpips==0.1.4`) and torchvision's
ImageNet backbone (https://download.pytorch.org/models/alexnet-owt-7be5be79.pth or
vgg16-397923af.pth). Either may also be a .safetensors file with the same keys.

The forward pass is jitted; each new image shape compiles once. Batches larger than `max_batch`
run in chunks of `max_batch` pairs (the last chunk padded), so long lists compile one shape.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.convert import lpips as convert_lpips
from unires_jax.convert.lpips import LpipsWeightsError
from unires_jax.quality.lpips_model import (
    CONFIGS,
    LpipsConfig,
    LpipsModel,
    fits,
    lpips_config,
    min_size,
)

__all__ = [
    "NETS",
    "LpipsConfig",
    "LpipsMetric",
    "LpipsModel",
    "LpipsWeightsError",
    "load",
]

NETS = tuple(CONFIGS)


class LpipsMetric:
    """LPIPS distances from an LpipsModel.

    Attributes:
        name: "lpips-alex" or "lpips-vgg".
        higher_is_better: False (a distance).
        cfg: the model's LpipsConfig.
        max_batch: pairs per compiled call.
    """

    higher_is_better = False

    def __init__(self, model: LpipsModel, *, max_batch: int = 16):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.cfg = model.cfg
        self.name = f"lpips-{model.cfg.net}"
        self.max_batch = max_batch
        self.min_size = min_size(model.cfg)
        graphdef, state = nnx.split(model)

        def forward(state, a, b):
            return nnx.merge(graphdef, state)(a, b)

        self._state = state
        self._forward = jax.jit(forward)

    def _check(self, a: np.ndarray, b: np.ndarray) -> None:
        if a.shape != b.shape:
            raise ValueError(
                f"{self.name}: the two batches must have the same shape, got "
                f"{a.shape} and {b.shape}"
            )
        if a.ndim != 4 or a.shape[-1] not in (1, 3):
            raise ValueError(
                f"{self.name}: images must be [N, H, W, 3] (or grey [N, H, W, 1]); got shape "
                f"{a.shape}"
            )
        h, w = a.shape[1:3]
        if not (fits(self.cfg, h) and fits(self.cfg, w)):
            raise ValueError(
                f"{self.name}: images of {h}x{w} pixels are too small for the {self.cfg.net} "
                f"backbone; both sides must be at least {self.min_size} pixels."
            )
        for x, which in [(a, "first"), (b, "second")]:
            if x.size and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
                raise ValueError(
                    f"{self.name}: the {which} batch spans [{x.min():.3g}, {x.max():.3g}]; "
                    "LPIPS takes floats in [0, 1] (divide uint8 images by 255; do not map "
                    "to [-1, 1] yourself)."
                )

    def distance(self, a, b) -> np.ndarray:
        """LPIPS distance of each image pair.

        Args:
            a, b: [N, H, W, 3] float images in [0, 1] (NumPy or JAX), same shape; grey
                [N, H, W, 1] images count as RGB with three equal channels (as in lpips).

        Returns:
            [N] float32 distances; 0 for identical images.

        Raises:
            ValueError: shapes differ or are not NHWC, values outside [0, 1], or images too
                small for the backbone.
        """
        a = np.asarray(a, np.float32)
        b = np.asarray(b, np.float32)
        self._check(a, b)
        n, m = a.shape[0], self.max_batch
        if n <= m:
            return np.asarray(
                self._forward(self._state, jnp.asarray(a), jnp.asarray(b))
            )
        out = np.zeros((n,), np.float32)
        for start in range(0, n, m):
            stop = min(start + m, n)
            pad = [(0, m - (stop - start))] + [(0, 0)] * 3
            d = self._forward(
                self._state,
                jnp.asarray(np.pad(a[start:stop], pad)),
                jnp.asarray(np.pad(b[start:stop], pad)),
            )
            out[start:stop] = np.asarray(d)[: stop - start]
        return out


def load(
    net: str = "alex",
    *,
    heads: str | pathlib.Path,
    backbone: str | pathlib.Path,
    max_batch: int = 16,
) -> LpipsMetric:
    """Loads LPIPS v0.1 from the lpips head file and the torchvision backbone file.

    Args:
        net: "alex" or "vgg".
        heads: `lpips/weights/v0.1/{net}.pth` from the lpips 0.1.4 package (or .safetensors).
        backbone: torchvision's `alexnet-owt-7be5be79.pth` / `vgg16-397923af.pth` (or
            .safetensors with the same `features.*` keys).
        max_batch: pairs per compiled call; larger batches run in chunks.

    Raises:
        ValueError: unknown net.
        LpipsWeightsError (a ValueError): a file is missing or unreadable, or its keys or shapes
            do not fit `net` (the message names the file and the file expected).
    """
    cfg = lpips_config(net)
    return LpipsMetric(
        convert_lpips.load_model(cfg, heads=heads, backbone=backbone),
        max_batch=max_batch,
    )

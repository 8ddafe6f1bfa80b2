"""The metrics of an evaluation, by the names `unires eval --metrics` takes.

    psnr    PSNR on RGB ("psnr") and on the BT.601 luma ("psnr_y"), as papers report them
    ssim    SSIM on RGB ("ssim") and on luma ("ssim_y"): Gaussian window, sigma 1.5
    pyiqa   PSNR on RGB ("pyiqa_psnr") and SSIM on luma ("pyiqa_ssim") as pyiqa's default "psnr"
            and "ssim" metrics compute them: the protocol of FoundIR's `cal_metrics.py` and of
            other papers that score with pyiqa (its SSIM rounds a YIQ luma to 8-bit levels and
            clips the contrast term at 0, so it differs from "ssim_y")
    lpips   LPIPS (AlexNet or VGG with the v0.1 linear heads; user-supplied weight files)
    niqe, brisque, piqe, musiq   no-reference quality (`unires_jax.quality`)

Full-reference metrics compare with the ground truth after dropping `crop_border` pixels at each
edge (the Y-channel ones as BasicSR does); they are computed in float64 so that they equal
scikit-image's `peak_signal_noise_ratio` / `structural_similarity` on the same images ("pyiqa":
pyiqa's on the same images).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

FULL_REFERENCE = ("psnr", "ssim", "pyiqa", "lpips")
NO_REFERENCE = ("niqe", "brisque", "piqe", "musiq")
NAMES = FULL_REFERENCE + NO_REFERENCE
# The recorded values each name gives, and whether higher is better.
COLUMNS: dict[str, tuple[str, ...]] = {
    "psnr": ("psnr", "psnr_y"),
    "ssim": ("ssim", "ssim_y"),
    "pyiqa": ("pyiqa_psnr", "pyiqa_ssim"),
    "lpips": ("lpips",),
    **{name: (name,) for name in NO_REFERENCE},
}
HIGHER_IS_BETTER = {
    "psnr": True,
    "psnr_y": True,
    "ssim": True,
    "ssim_y": True,
    "pyiqa_psnr": True,
    "pyiqa_ssim": True,
    "lpips": False,
    "niqe": False,
    "brisque": False,
    "piqe": False,
    "musiq": True,
}


class MetricError(ValueError):
    """Unknown metric names or missing metric weights (the message says what to pass)."""


@dataclasses.dataclass(frozen=True)
class MetricOptions:
    """Where the metrics that need weight files find them, and how borders are handled.

    Attributes:
      crop_border: pixels dropped at each edge before full-reference metrics.
      lpips_net: "alex" or "vgg".
      lpips_heads, lpips_backbone: the lpips package's linear-head file and torchvision's
        backbone file (`unires_jax.quality.lpips.load`).
      quality_checkpoints: no-reference model name -> its weights file (MUSIQ needs one).
    """

    crop_border: int = 0
    lpips_net: str = "alex"
    lpips_heads: str | None = None
    lpips_backbone: str | None = None
    quality_checkpoints: Mapping[str, str] = dataclasses.field(default_factory=dict)


def parse_names(text: str | Sequence[str]) -> tuple[str, ...]:
    """ "psnr,ssim,niqe" -> ("psnr", "ssim", "niqe"); unknown or repeated names are refused."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    unknown = sorted(set(names) - set(NAMES))
    if unknown or not names:
        raise MetricError(
            f"unknown metric(s) {unknown}; choose from {', '.join(NAMES)}"
        )
    if len(set(names)) != len(names):
        raise MetricError(f"metric named twice in {','.join(names)}")
    return tuple(names)


class Metrics:
    """Loaded metrics: `compute(images, reference)` -> {column: [N] values}.

    Load with `Metrics.load(names, options)`: weight files are read (and missing ones reported)
    before any image is restored.
    """

    def __init__(
        self, names: tuple[str, ...], options: MetricOptions, models: dict[str, Any]
    ):
        self.names = names
        self.options = options
        self.models = models

    @classmethod
    def load(
        cls, names: Sequence[str], options: MetricOptions = MetricOptions()
    ) -> Metrics:
        names = parse_names(names)
        models: dict[str, Any] = {}
        if "lpips" in names:
            if not (options.lpips_heads and options.lpips_backbone):
                raise MetricError(
                    "lpips needs its weights, never downloaded: --lpips-heads (the lpips "
                    f"package's lpips/weights/v0.1/{options.lpips_net}.pth) and --lpips-backbone "
                    "(torchvision's alexnet-owt-7be5be79.pth or vgg16-397923af.pth)"
                )
            from unires_jax.quality import lpips

            models["lpips"] = lpips.load(
                options.lpips_net,
                heads=options.lpips_heads,
                backbone=options.lpips_backbone,
            )
        from unires_jax import quality

        for name in names:
            if name in NO_REFERENCE:
                checkpoint = options.quality_checkpoints.get(name)
                kwargs = {} if checkpoint is None else {"checkpoint": checkpoint}
                models[name] = quality.get(name, **kwargs)
        return cls(names, options, models)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for name in self.names for c in COLUMNS[name])

    @property
    def needs_reference(self) -> bool:
        return any(n in FULL_REFERENCE for n in self.names)

    def compute(
        self, images: np.ndarray, reference: np.ndarray | None
    ) -> tuple[list[dict[str, float]], dict[str, str]]:
        """Scores `[N, H, W, 3]` images in [0, 1] against `[H, W, 3]` (None: no-reference only).

        Returns:
          One {column: value} per image, and {column: why} for the metrics that cannot score
          these images (e.g. NIQE on images smaller than two of its blocks): those are None.
        """
        import jax

        from unires_jax.quality import fidelity

        images = np.asarray(images, np.float64)
        out: dict[str, np.ndarray] = {}
        fr = [n for n in self.names if n in FULL_REFERENCE]
        if fr and reference is None:
            raise MetricError(
                f"{', '.join(fr)} need a ground-truth image; this sample has none"
            )
        if reference is not None:
            ref = np.broadcast_to(np.asarray(reference, np.float64), images.shape)
            border = self.options.crop_border
            with jax.enable_x64(True):
                for name, fn in (("psnr", fidelity.psnr), ("ssim", fidelity.ssim)):
                    if name in self.names:
                        out[name] = np.asarray(fn(ref, images, crop_border=border))
                        out[f"{name}_y"] = np.asarray(
                            fn(ref, images, crop_border=border, y_channel=True)
                        )
                if "pyiqa" in self.names:
                    out["pyiqa_psnr"] = np.asarray(
                        fidelity.psnr_pyiqa(images, ref, crop_border=border)
                    )
                    out["pyiqa_ssim"] = np.asarray(
                        fidelity.ssim_pyiqa(images, ref, crop_border=border)
                    )
            if "lpips" in self.names:
                cropped = _crop(images, border), _crop(ref, border)
                out["lpips"] = self.models["lpips"].distance(*cropped)
        errors = {}
        for name in self.names:
            if name in NO_REFERENCE:
                try:
                    out[name] = np.asarray(self.models[name].score(images), np.float64)
                except (
                    ValueError
                ) as e:  # e.g. too small for the model: the others still count
                    out[name] = np.full(images.shape[0], np.nan)
                    errors[name] = str(e)
        scores = [
            {c: _finite_or_none(out[c][i]) for c in self.columns}
            for i in range(images.shape[0])
        ]
        return scores, errors


def _finite_or_none(value) -> float | None:
    """A score, or None (JSON null) where it could not be computed."""
    value = float(value)
    return value if np.isfinite(value) else None


def _crop(images: np.ndarray, border: int) -> np.ndarray:
    return images[:, border:-border, border:-border] if border else images


def better(column: str, a: float, b: float) -> bool:
    """Whether value `a` of `column` is better than `b`."""
    return a > b if HIGHER_IS_BETTER[column] else a < b

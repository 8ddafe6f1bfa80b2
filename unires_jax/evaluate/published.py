"""Published results printed beside an evaluation's own means, for datasets whose layout says
which benchmark they are.

The FoundIR test set (`NN<Type>/GT|LQ` folders, e.g. `01Blur/`, `12NightRain/`, as `unires eval
--pairs` or the `foundir` builder reads it) gets the FoundIR paper's average over its 1,500
pairs: PSNR 27.81 dB on RGB and SSIM 0.8529 on luma, as its `cal_metrics.py` computes them with
pyiqa (our metric "pyiqa": columns "pyiqa_psnr" and "pyiqa_ssim"). The row is marked by its
output name, "published: ..."; it is never averaged with computed rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# A FoundIR degradation-type folder: two digits, then the type ("01Blur", "20Lowlight_Noise_JPEG").
FOUNDIR_TYPE = re.compile(r"^\d{2}[A-Za-z][A-Za-z_]*$")

FOUNDIR = {
    "degradation": "all",
    "output": "published: FoundIR (paper, 1500 test pairs)",
    "images": 1500,
    "pyiqa_psnr": 27.81,
    "pyiqa_ssim": 0.8529,
}
# The metric whose columns the published FoundIR row has.
FOUNDIR_METRIC = "pyiqa"


def is_foundir_layout(degradations: Iterable[str]) -> bool:
    """Whether every degradation type (a sample's group, possibly `split/NNType`) is a FoundIR
    `NN<Type>` folder name."""
    names = [d.rsplit("/", 1)[-1] for d in degradations]
    return bool(names) and all(FOUNDIR_TYPE.match(n) for n in names)


def published_rows(degradations: Iterable[str]) -> list[dict[str, Any]]:
    """Summary rows of published results for samples of these degradation types ([] if none)."""
    return [dict(FOUNDIR)] if is_foundir_layout(degradations) else []

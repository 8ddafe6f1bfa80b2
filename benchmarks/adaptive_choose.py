"""Chooses the noise threshold and the JPEG blend ramp of `restore/adaptive.py` from the rows that
`benchmarks/adaptive_tuning.py` writes on TRAINING photos (never the held-out ones).

- NOISE_ACT: the geometric mean of the largest sigma measured on a photo without added noise
  (clean, JPEG and blur cases) and the smallest measured on a photo with added noise of sigma >= 3
  that DN improves; the printout gives both so the margin is visible.
- The JPEG ramp: DN blended with the input by w(b) = clip((b - act) / ramp, 0, 1) of the measured
  blockiness b, over the rows that neither the blur nor the noise plan takes. Each row's gain at
  w is interpolated linearly between the measured blends (0, 0.25, 0.5, 0.75, 1): PSNR is concave
  in w, so the interpolation underestimates. Chosen on a coarse grid: the largest mean gain whose
  worst row is not below the input, also when the threshold moves by +-0.05 (no knife edge).

With --remeasure-noise each row's degraded photo is made again (same crop, degradation and
seed as `adaptive_tuning.py`; checked by its blockiness) and its noise measured by the current
`restore/analysis.py`: the thresholds follow a change of the noise estimate without rerunning
the experts (their gains do not depend on it).

Run:  python benchmarks/adaptive_choose.py [--remeasure-noise] ROWS.jsonl [ROWS.jsonl ...]
"""

from __future__ import annotations

import json
import math
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

GRID_ACT = tuple(np.round(np.arange(0.10, 1.01, 0.05), 2))
GRID_RAMP = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _added_noise(case: str) -> float:
    for part in case.split("+"):
        if part.startswith("noise:"):
            return float(part.split(":")[1])
    return 0.0


def choose_noise_act(rows) -> tuple[float, float, float]:
    """(threshold, largest sigma measured without added noise, smallest with noise >= 3 that
    DN improves)."""
    quiet = [r["noise"] for r in rows if _added_noise(r["case"]) == 0.0]
    noisy = [
        r["noise"]
        for r in rows
        if _added_noise(r["case"]) >= 3.0
        and "jpeg" not in r["case"]
        and max(r["gains"][f"DN@{w:g}"] for w in BLENDS[1:]) > 0
    ]
    low, high = max(quiet), min(noisy)
    return math.sqrt(max(low, 0.1) * high), low, high


def gain_at(row, weight: float) -> float:
    points = [0.0] + [row["gains"][f"DN@{w:g}"] for w in BLENDS[1:]]
    return float(np.interp(weight, BLENDS, points))


def ramp_weight(blockiness: float, act: float, ramp: float) -> float:
    return float(np.clip((blockiness - act) / ramp, 0.0, 1.0))


def reaches_jpeg_rule(row, noise_act: float) -> bool:
    from unires_jax.restore import adaptive

    psf = row["psf"]
    if row["noise"] < adaptive.DEBLUR_MAX_NOISE and psf["confident"]:
        needed = (
            adaptive.LINE_FIT_MIN if psf["family"] == "line" else adaptive.DISK_FIT_MIN
        )
        if psf["fit"] >= needed:
            return False
    return row["noise"] < noise_act


def choose_ramp(rows, noise_act: float):
    """(act, ramp, mean gain, worst gain) over the rows the JPEG rule reaches."""
    pool = [r for r in rows if reaches_jpeg_rule(r, noise_act)]
    best = None
    for act in GRID_ACT:
        for ramp in GRID_RAMP:
            worst = min(
                gain_at(r, ramp_weight(r["blockiness"], a, ramp))
                for r in pool
                for a in (act - 0.05, act, act + 0.05)
            )
            if worst < 0.0:
                continue
            mean = float(
                np.mean(
                    [gain_at(r, ramp_weight(r["blockiness"], act, ramp)) for r in pool]
                )
            )
            if best is None or mean > best[2] + 1e-9:
                best = (float(act), ramp, mean, worst)
    return best, pool


def remeasure_noise(rows: list[dict], size: int = 256) -> list[dict]:
    """The rows of one `adaptive_tuning.py` file with "noise" measured again (see the module
    docstring). Raises ValueError where a remade photo's blockiness differs from the row's."""
    from adaptive_tuning import degraded

    from unires_jax.restore import analysis

    cases = list(dict.fromkeys(r["case"] for r in rows))
    out = []
    for ci, case in enumerate(cases):
        for pi, row in enumerate(r for r in rows if r["case"] == case):
            lq, _ = degraded(row["photo"], case, ci, pi, size)
            measured = analysis.analyse(lq)
            if abs(measured.blockiness - row["blockiness"]) > 1e-6:
                raise ValueError(
                    f"{case} / {row['photo']}: not the photo the row measured (blockiness "
                    f"{measured.blockiness:.6f}, row {row['blockiness']:.6f})"
                )
            out.append({**row, "noise": measured.noise})
    return out


def main(argv=None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    remeasure = "--remeasure-noise" in args
    paths = [a for a in args if a != "--remeasure-noise"]
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    rows = []
    for p in paths:
        got = [json.loads(line) for line in pathlib.Path(p).read_text().splitlines()]
        rows += remeasure_noise(got) if remeasure else got
    noise_act, low, high = choose_noise_act(rows)
    print(
        f"noise: largest sigma measured without added noise {low:.2f}, smallest with noise >= 3 "
        f"that DN improves {high:.2f} -> NOISE_ACT = {noise_act:.2f}"
    )
    best, pool = choose_ramp(rows, noise_act)
    if best is None:
        print("no JPEG ramp on the grid is never worse: leave the JPEG rule off")
        return 0
    act, ramp, mean, worst = best
    print(
        f"JPEG ramp: w = clip((blockiness - {act:.2f}) / {ramp:g}, 0, 1) over {len(pool)} rows: "
        f"mean gain {mean:+.3f} dB, worst {worst:+.3f} dB (threshold moved +-0.05)"
    )
    for r in sorted(pool, key=lambda r: r["blockiness"]):
        w = ramp_weight(r["blockiness"], act, ramp)
        print(
            f"  {r['case']:24s} {r['photo']:12s} blockiness {r['blockiness']:.3f} "
            f"noise {r['noise']:4.1f}  w {w:.2f}  gain {gain_at(r, w):+.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

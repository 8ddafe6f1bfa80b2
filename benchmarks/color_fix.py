"""Wavelet colour fix speed: the dense per-axis low-pass vs the cascade of dilated blurs, same run.

The weight search decodes and colour-fixes every candidate it scores (hundreds per photo in
`unires demo`), so the fix's cost is paid many times over. `wavelet_lowpass` applies the
5-level low-pass as one matrix per axis up to `DENSE_MAX_SIDE` pixels and as the cascade of
blurs above; this script times both on the same images (interleaved repeats, median) and checks
that they agree.

Run: python benchmarks/color_fix.py [--sizes 128,256,512,1024] [--batch 1] [--repeats 30]
Prints ms per call for each and the ratio dense / cascade (below 1: the dense path is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from unires_jax.models import wavelet

LEVELS = 5  # StableSR's, the colour fix's default


def _time(fn, x) -> float:
    start = time.perf_counter()
    fn(x).block_until_ready()
    return (time.perf_counter() - start) * 1e3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,256,512,1024")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)

    print(f"{jax.devices()[0].device_kind}, {LEVELS} levels, batch {args.batch}")
    print(f"{'side':>6} {'dense ms':>9} {'cascade ms':>11} {'ratio':>6} {'max diff':>9}")
    for side in (int(s) for s in args.sizes.split(",")):
        x = jnp.asarray(
            np.random.default_rng(side).random((args.batch, side, side, 3)), jnp.float32
        )
        # Both paths at every size, whatever DENSE_MAX_SIDE says, to show the crossover.
        dense = jax.jit(lambda x: wavelet.lowpass_dense(x, LEVELS))
        cascade = jax.jit(lambda x: wavelet.lowpass_cascade(x, LEVELS))
        diff = float(jnp.abs(dense(x) - cascade(x)).max())
        times = {"dense": [], "cascade": []}
        for _ in range(args.repeats):
            times["dense"].append(_time(dense, x))
            times["cascade"].append(_time(cascade, x))
        d, c = (statistics.median(times[k]) for k in ("dense", "cascade"))
        used = "dense" if side <= wavelet.DENSE_MAX_SIDE else "cascade"
        print(f"{side:>6} {d:>9.2f} {c:>11.2f} {d / c:>6.2f} {diff:>9.1e}   (used: {used})")


if __name__ == "__main__":
    main()

"""UniRes restoration on CPU: N weight sets for one image in one batched call vs N separate calls.

Claim (issue 4): sampling many weight vectors for one image in one batch is cheaper per image
and weight set than restoring them one by one (the search relies on it). The tiny random UniRes
model (tests/unires_fixtures.tiny_unires_ldm), a 256x256 image, K=6 experts all nonzero, N=16
weight sets. Both paths are warmed up (compiled) first; timings are medians of interleaved runs.
The batched call also shares the LQ/DownLQ encoding and the first DDIM step across vectors.

Run:  python benchmarks/restore.py [--steps 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _weights(n: int, k: int, seed: int = 0) -> np.ndarray:
    """[n, k] weight vectors, every entry nonzero, each summing to 1 (one negative entry)."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.05, 0.3, (n, k))
    w[:, 4] = -rng.uniform(0.05, 0.2, n)  # DN negative, as in the paper's presets
    w[:, -1] += 1.0 - w.sum(axis=1)  # DownLQ takes the rest
    return w.astype(np.float32)


def _interleaved_medians(fns: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, process CPU) seconds of each fn, runs interleaved so load changes hit
    both alike. CPU seconds (all threads) are less disturbed by other processes on a shared
    machine than wall seconds."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {
        name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
        for name, t in times.items()
    }


def _machine() -> str:
    import jax

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"load average {load:.1f}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, jax {jax.__version__} on "
        f"{jax.devices()[0].platform} ({len(jax.devices())} device(s))"
    )


def restore_benchmark(
    size: int = 256, n: int = 16, steps: int = 10, repeats: int = 3
) -> dict[str, float]:
    """Seconds per image per weight set, batched and unbatched, and their ratio."""
    sys.path.insert(0, str(_ROOT / "tests"))
    from unires_fixtures import tiny_unires_ldm

    from unires_jax.restore.restorer import Restorer, RestoreSettings

    with tempfile.TemporaryDirectory() as tmp:
        ldm = tiny_unires_ldm(pathlib.Path(tmp))
    # Room for all N * K (vector, expert) pairs in one UNet batch: one call, one chunk.
    settings = RestoreSettings(steps=steps, max_pairs_per_call=n * 6)
    restorer = Restorer(ldm, settings=settings)
    weights = _weights(n, len(restorer.experts))
    image = (np.random.default_rng(1).uniform(size=(size, size, 3)) * 255).astype(
        np.uint8
    )

    def batched():
        return restorer.restore(image, weights)

    def unbatched():
        return [restorer.restore(image, w) for w in weights]

    # Warm-up (compilation), and the two paths agree.
    np.testing.assert_allclose(batched(), np.stack(unbatched()), atol=1e-4)
    medians = _interleaved_medians(
        {"batched": batched, "unbatched": unbatched}, repeats
    )
    (b_wall, b_cpu), (u_wall, u_cpu) = medians["batched"], medians["unbatched"]
    return {
        "batched_s_per_image_per_set": b_wall / n,
        "unbatched_s_per_image_per_set": u_wall / n,
        "ratio_batched_over_unbatched": b_wall / u_wall,
        "batched_cpu_s_per_image_per_set": b_cpu / n,
        "unbatched_cpu_s_per_image_per_set": u_cpu / n,
        "cpu_ratio_batched_over_unbatched": b_cpu / u_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--n", type=int, default=16, help="weight sets")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = restore_benchmark(args.size, args.n, args.steps, args.repeats)
    print(f"machine: {_machine()}")
    print(
        f"tiny UniRes, {args.size}x{args.size}, K=6 experts all nonzero, N={args.n} weight "
        f"sets, {args.steps} DDIM steps, median of {args.repeats}"
    )
    for kind, prefix in (("wall", ""), ("CPU", "cpu_")):
        b = result[f"batched_{prefix}s_per_image_per_set"]
        u = result[f"unbatched_{prefix}s_per_image_per_set"]
        ratio = result[f"{prefix}ratio_batched_over_unbatched"]
        print(
            f"{kind:>4} s per image per weight set: batched (one call, [N, K]) {b:.3f}, "
            f"unbatched (N calls, [K]) {u:.3f}; ratio batched / unbatched {ratio:.2f}"
        )


if __name__ == "__main__":
    main()

"""MUSIQ throughput at 512x512 on CPU: ours (jitted, warm) vs pyiqa 0.1.16, same weights, same run.

Claim (issue 7): our time per image <= 0.7x pyiqa's. Both get the same random full-size weights
(14 layers, ~27M parameters; pyiqa -> official .npz -> our loader) and the same images; ours runs
with preprocessing="pyiqa" so both do the same work (bicubic resize) and agree on the scores,
which are checked before timing. Preprocessing on the host is included in both timings.

Run:  python benchmarks/quality.py [--images 4] [--repeats 3]
Needs torch and `pip install --no-deps pyiqa==0.1.16` (test-only oracles).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np

_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _interleaved_medians(fns: dict, repeats: int) -> dict[str, float]:
    """Median wall seconds of each fn, runs interleaved so load changes hit both alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def musiq_benchmark(
    n_images: int = 4, size: int = 512, repeats: int = 3
) -> dict[str, float]:
    """Images/s of both implementations and the time ratio ours / pyiqa."""
    import torch

    # The pyiqa loading shims and weight mapping live with the parity tests.
    sys.path.insert(0, str(_ROOT / "tests" / "quality"))
    import test_musiq_pyiqa as oracle

    from unires_jax.quality import musiq

    net = oracle.make_pyiqa_musiq(num_layers=14)
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "random_ckpt.npz"
        np.savez(path, **oracle.pyiqa_to_official(net.state_dict(), 14))
        ours = musiq.load(
            str(path), preprocessing="pyiqa", head="koniq", max_batch=n_images
        )
    images = oracle._images(size, size, n=n_images)

    with torch.inference_mode():
        ref = oracle.pyiqa_scores(net, images)  # warm-up
        start = time.perf_counter()
        got = ours.score(images)  # warm-up: compiles one [n_images, bucket] shape
        compile_s = time.perf_counter() - start
        t = _interleaved_medians(
            {
                "pyiqa": lambda: oracle.pyiqa_scores(net, images),
                "ours": lambda: ours.score(images),
            },
            repeats,
        )
    t_ours, t_pyiqa = t["ours"], t["pyiqa"]
    return {
        "images": n_images,
        "max_abs_score_diff": float(np.abs(got - ref).max()),
        "ours_images_per_s": n_images / t_ours,
        "pyiqa_images_per_s": n_images / t_pyiqa,
        "ours_first_call_s": compile_s,
        "time_ratio_ours_over_pyiqa": t_ours / t_pyiqa,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    r = musiq_benchmark(args.images, args.size, args.repeats)
    print(
        f"MUSIQ {args.size}x{args.size}, batch {r['images']}, CPU ({r['cpus']} cores, torch threads {r['torch_threads']})"
    )
    print(f"  scores agree to      {r['max_abs_score_diff']:.2e}")
    print(
        f"  ours  (jit, warm)    {r['ours_images_per_s']:.3f} images/s   (first call {r['ours_first_call_s']:.1f} s)"
    )
    print(f"  pyiqa 0.1.16 (torch) {r['pyiqa_images_per_s']:.3f} images/s")
    print(
        f"  time ratio ours/pyiqa {r['time_ratio_ours_over_pyiqa']:.2f} (target <= 0.70)"
    )


if __name__ == "__main__":
    main()

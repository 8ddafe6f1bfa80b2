"""Degraded 256x256 training pairs per second from the full UniRes task mixture, on 2 CPU cores.

Claim (issue 6): the grain pipeline (random crop, flip, on-the-fly degradation by the library's
task degradations, weighted .32/.28/.18/.22 mixture) with 2 worker processes produces N pairs/s;
the integrator compares N with the pairs/s that the tiny and SD-size train steps consume
(batch size x steps/s), passed as --consumer_pairs_per_s to print the ratio directly.

Data: every task reads the packaged sample photos (train split), built as a TFDS array_record
dataset in a temporary folder, so each element decodes a full-size PNG as real datasets do.
Baseline printed alongside: the same pipeline with num_workers=0 (one process).

Run:  python benchmarks/data_pipeline.py [--batches 8] [--batch_size 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def _pairs_per_second(config, batches: int, warmup: int = 2) -> float:
    from unires_jax.data import pipeline

    it = pipeline.make_train_iterator(config, process_index=0, process_count=1)
    try:
        for _ in range(warmup):  # Worker start-up and first reads are not throughput.
            next(it)
        start = time.perf_counter()
        for _ in range(batches):
            next(it)
        elapsed = time.perf_counter() - start
    finally:
        if hasattr(it, "close"):
            it.close()
    return batches * config.batch_size / elapsed


def _task_costs(crop: int, repeats: int = 6) -> dict[str, float]:
    """Milliseconds per pair of each task's degradation alone, one core, on 256 crops."""
    from unires_jax.data import degradations, load_sample_photos

    photo = (
        load_sample_photos("train")["astronaut"][:crop, :crop].astype(np.float32)
        / 255.0
    )
    costs = {}
    for task, degrade in degradations.TASK_DEGRADATIONS.items():
        rng = np.random.default_rng(0)
        degrade(photo, rng)
        start = time.perf_counter()
        for _ in range(repeats):
            degrade(photo, rng)
        costs[task] = 1e3 * (time.perf_counter() - start) / repeats
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batches", type=int, default=8, help="timed batches per setting"
    )
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2, help="grain worker processes")
    parser.add_argument(
        "--consumer_pairs_per_s",
        type=float,
        action="append",
        default=[],
        help="pairs/s a train step consumes (batch x steps/s); repeatable",
    )
    args = parser.parse_args()

    from unires_jax.data import builders, pipeline

    with tempfile.TemporaryDirectory() as data_dir:
        builders.build("sample_photos", data_dir=data_dir)
        config = pipeline.default_config()
        config.sources = {task: "sample_photos:train" for task in config.tasks}
        config.update(
            data_dir=data_dir, crop_size=args.crop, batch_size=args.batch_size
        )
        config.update(num_workers=0, read_threads=1)
        single = _pairs_per_second(config, args.batches)
        config.num_workers = args.workers
        parallel = _pairs_per_second(config, args.batches)

    costs = _task_costs(args.crop)
    weights = {t: w for t, w in pipeline.default_config().weights.items()}
    mixture_ms = sum(weights[t] * costs[t] for t in costs) / sum(weights.values())
    print(f"UniRes mixture, {args.crop}x{args.crop} pairs, batch {args.batch_size}:")
    print(f"  num_workers=0 (baseline):      {single:8.2f} pairs/s")
    print(f"  num_workers={args.workers}:                 {parallel:8.2f} pairs/s")
    print(f"  ratio workers / baseline:      {parallel / single:8.2f}x")
    print(
        "  degradation alone, ms per pair (one core): "
        + ", ".join(f"{t} {ms:.1f}" for t, ms in costs.items())
        + f"; weighted mixture {mixture_ms:.1f} ms = {1e3 / mixture_ms:.1f} pairs/s per core"
    )
    for rate in args.consumer_pairs_per_s:
        print(
            f"  ratio pipeline / train step consuming {rate:g} pairs/s: {parallel / rate:8.2f}x"
        )


if __name__ == "__main__":
    main()

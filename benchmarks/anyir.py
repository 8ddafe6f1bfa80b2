"""AnyIR speed and size: forward time on CPU, multiply-adds, and GPU throughput.

Claim (issue 32, acceptance): for v1 (the paper's description) and v2 (the released code's
`AnyIR()`), with random weights (speed only) in inference mode, float32:
- the forward time of one image at 256x256 and 512x512 on the CPU, compilation excluded (one
  warm-up call), median of --repeats;
- the multiply-adds of one 224x224 image from XLA's compiled cost analysis (`flops` / 2:
  XLA counts a multiply-add as 2 flops, and counts the element-wise operations too, which
  fvcore does not), beside the 26.25 GMACs fvcore measures for the released v2 (printed as a
  ratio ours / official);
- on a GPU (when jax has one), the images/s of batches of --gpu-batch 512x512 images.
The ratio line compares v1 with v2.

Run:  python benchmarks/anyir.py [--sizes 256 512] [--repeats 5] [--gpu-batch 8]
(on 2 CPU cores about 5-10 minutes, most of it compiling)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.models import count_params
from unires_jax.models.anyir import AnyIR, AnyIRConfig

OFFICIAL_V2_GMACS = 26.25  # fvcore FlopCountAnalysis of the released AnyIR() at 224x224


def random_model(version: str, seed: int = 0) -> AnyIR:
    """An AnyIR in inference mode with random weights, filled from numpy (no compiled init)."""
    model = nnx.eval_shape(
        lambda: AnyIR(AnyIRConfig(version=version), rngs=nnx.Rngs(0))
    )
    rng = np.random.default_rng(seed)

    def draw(a):
        if len(a.shape) >= 2:
            fan_in = int(np.prod(a.shape[:-1]))
            return jnp.asarray(rng.normal(0, 1 / np.sqrt(fan_in), a.shape), a.dtype)
        return jnp.asarray(1.0 + 0.1 * rng.normal(size=a.shape), a.dtype)

    params = jax.tree.map(draw, nnx.state(model, nnx.Param))
    stats = jax.tree_util.tree_map_with_path(
        lambda p, a: jnp.full(a.shape, "'var'" in jax.tree_util.keystr(p), a.dtype),
        nnx.state(model, nnx.BatchStat),
    )
    nnx.update(model, params, stats)
    model.eval()
    return model


def _forward(model: AnyIR):
    graph, state = nnx.split(model)

    @jax.jit
    def run(state, x):
        return nnx.merge(graph, state)(x)

    return run, state


def forward_seconds(model: AnyIR, size: int, repeats: int, batch: int = 1) -> float:
    """Median seconds of one forward pass of [batch, size, size, 3], compilation excluded."""
    run, state = _forward(model)
    x = jnp.asarray(
        np.random.default_rng(1).uniform(size=(batch, size, size, 3)), jnp.float32
    )
    jax.block_until_ready(run(state, x))  # compile + warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(state, x))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gmacs(model: AnyIR, size: int = 224) -> float:
    """XLA's compiled `flops` / 2 / 1e9 for one size x size image."""
    run, state = _forward(model)
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    cost = run.lower(state, x).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per computation
        cost = cost[0]
    return float(cost["flops"]) / 2e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gpu-batch", type=int, default=8)
    parser.add_argument("--versions", nargs="+", default=["v1", "v2"])
    args = parser.parse_args()

    backend = jax.default_backend()
    print(f"jax {jax.__version__}, backend {backend}, devices {jax.devices()}")
    print(
        f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    cpu = jax.devices("cpu")[0]
    results = {}
    for version in args.versions:
        model = random_model(version)
        row = {"params": count_params(model)}
        with jax.default_device(cpu):
            cpu_model = jax.device_put(model, cpu)
            row["gmacs_224"] = gmacs(cpu_model)
            for size in args.sizes:
                row[f"cpu_s_{size}"] = forward_seconds(cpu_model, size, args.repeats)
        if backend == "gpu":
            s = forward_seconds(model, 512, args.repeats, batch=args.gpu_batch)
            row["gpu_images_per_s_512"] = args.gpu_batch / s
        results[version] = row
        cells = ", ".join(
            f"{k} {v:,}" if isinstance(v, int) else f"{k} {v:.3f}"
            for k, v in row.items()
        )
        print(f"AnyIR {version}: {cells}")
    if backend != "gpu":
        print("GPU images/s at 512x512: skipped (jax has no GPU here)")
    if "v2" in results:
        ratio = results["v2"]["gmacs_224"] / OFFICIAL_V2_GMACS
        print(
            f"v2 multiply-adds at 224x224: {results['v2']['gmacs_224']:.2f} G (XLA) vs "
            f"{OFFICIAL_V2_GMACS} G (official, fvcore): ratio {ratio:.3f}"
        )
    if "v1" in results and "v2" in results:
        for size in args.sizes:
            key = f"cpu_s_{size}"
            print(
                f"ratio v1 / v2 CPU time at {size}x{size}: "
                f"{results['v1'][key] / results['v2'][key]:.2f}"
            )


if __name__ == "__main__":
    main()

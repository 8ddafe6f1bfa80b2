"""Time of a 4-step residual-diffusion restore (FoundIR's sampler) with the official-size UNet.

Claim (issue 31, acceptance): the restore time at 512x512 and 1024x1024 on CPU with
`foundir_unet()` (36,261,187 parameters, random weights: speed only) through
`ResidualRestorer`, compilation excluded (one warm-up call), median of --repeats; on a GPU the
same beside the official PyTorch model on the same GPU (built from the independent torch
re-implementation in tests/convert/test_foundir.py when torch is installed: this repository does
not ship the official code), with the ratio ours / PyTorch. Also the peak resident memory of a
2048x2048 restore with the default tiles (1024 at 512 overlap, 3 x 3 tiles), run in a child
process and read from `resource.getrusage(RUSAGE_CHILDREN)`: tiles run one after another in a
`lax.scan`, so the peak is set by the tile size, not the image size.

Run:  python benchmarks/residual_restore.py [--sizes 512 1024] [--repeats 3]
      [--repeats-large 1] [--rss-size 2048] [--rss-steps 4]
`--rss-size 0` skips the memory run; `--rss-timeout S` stops it after S seconds (the peak comes
in the first tile). On 2 CPU cores shared with other jobs (load average ~8) a 512 px restore
took 72 s and a 1024 px one 394 s, so the defaults' 2048 px memory run (9 tiles) takes about an
hour there; `--repeats 2 --rss-timeout 300` took 15 minutes in all.
"""

from __future__ import annotations

import argparse
import itertools
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _restorer(steps: int = 4, tile: int = 1024, overlap: int = 512):
    from flax import nnx

    from unires_jax.diffusion.residual import residual_schedule
    from unires_jax.models.diffuir import DiffUIRUNet, foundir_unet
    from unires_jax.restore.residual import ResidualRestorer, ResidualSettings

    unet = DiffUIRUNet(foundir_unet(), rngs=nnx.Rngs(0))
    settings = ResidualSettings(steps=steps, tile=tile, tile_overlap=overlap)
    return ResidualRestorer(unet, residual_schedule(), settings)


def _image(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(size, size, 3)).astype(np.float32)


def _compile(restorer, height: int, width: int):
    """Compiles the restorer's program for an image shape without running it (ahead of time,
    the same jitted function and static arguments as `ResidualRestorer.restore`). Returns the
    compiled program: call it as `compiled(restorer._state, restorer.schedule, lq_and_noise)`
    (what `restore` runs, without recompiling; `jit`'s own cache would compile part of it
    again on the first `restore`)."""
    import jax
    import jax.numpy as jnp

    from unires_jax.restore import residual as residual_restore

    s = restorer.settings
    return residual_restore._restore.lower(
        restorer._graph,
        restorer._state,
        restorer.schedule,
        jax.ShapeDtypeStruct((1, height, width, 6), jnp.float32),
        steps=s.steps,
        start_scale=float(s.start_scale),
        tile=s.tile,
        overlap=s.tile_overlap,
        flat=s.blend == "average",
    ).compile()


def _time_ours(restorer, size: int, repeats: int) -> tuple[float, list[float]]:
    """(compile seconds, seconds of each repeat): a repeat is `ResidualRestorer.restore`'s work
    (noise draw, the tiled 4-step sampler, the result back on the host) through the program
    compiled ahead of time, so no repeat pays for compilation."""
    import jax
    import jax.numpy as jnp

    image = jnp.asarray(_image(size))[None] * 2.0 - 1.0
    t0 = time.perf_counter()
    compiled = _compile(restorer, size, size)
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        noise = jax.random.normal(jax.random.key(i), image.shape, jnp.float32)
        out = compiled(
            restorer._state, restorer.schedule, jnp.concatenate([image, noise], -1)
        )
        np.asarray(out)
        times.append(time.perf_counter() - t0)
    return compile_s, times


def _torch_reference():
    """The test suite's independent PyTorch UnetRes (official module layout) when torch sees a
    CUDA device, or None (with the reason printed)."""
    try:
        import torch

        if not torch.cuda.is_available():
            print("PyTorch reference skipped: torch sees no CUDA device")
            return None
        sys.path.insert(0, str(ROOT / "tests" / "convert"))
        from test_foundir import TorchUnetRes  # type: ignore[import-not-found]
    except Exception as e:  # noqa: BLE001 (any import failure means: no reference here)
        print(f"PyTorch reference unavailable ({type(e).__name__}: {e})")
        return None
    return TorchUnetRes


def _time_torch(unet_res_cls, size: int, repeats: int) -> float:
    """Median seconds of the official 4-step `ddim_sample` (eta 0, pred_res) in float32 on CUDA."""
    import torch

    from unires_jax.diffusion.residual import residual_schedule, sampling_timesteps

    dev = torch.device("cuda")
    net = unet_res_cls(dim=64, dim_mults=(1, 2, 4, 8)).unet0.to(dev).eval()
    s = residual_schedule()
    alpha = torch.tensor(s.alpha_bar, device=dev)
    beta = torch.tensor(s.beta_bar, device=dev)
    times = [int(t) for t in sampling_timesteps(4)] + [-1]
    lq = torch.rand(1, 3, size, size, device=dev) * 2 - 1

    @torch.no_grad()
    def run():
        x = (1 - beta[-1]) * lq + 0.1 * torch.randn_like(lq)
        x0 = None
        for t, t_next in itertools.pairwise(times):
            time_in = (alpha[t] * 1000).reshape(1)
            pred_res = net(torch.cat([x, lq], 1), time_in).clamp(-1, 1)
            x0 = (lq - pred_res).clamp(-1, 1)
            if t_next >= 0:
                x = (
                    x
                    - (alpha[t] - alpha[t_next]) * pred_res
                    + (beta[t] - beta[t_next]) * lq
                )
        torch.cuda.synchronize()
        return x0

    run()  # warm-up (cuDNN autotuning, allocations)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def _rss_child(size: int, steps: int) -> None:
    """Runs one restore of a size x size image with the default tiles (child process), after
    printing XLA's buffer sizes for the compiled program."""
    restorer = _restorer(steps=steps)
    t0 = time.perf_counter()
    mem = _compile(restorer, size, size).memory_analysis()
    if mem is not None:
        mib = lambda n: n / 2**20
        print(
            f"child: XLA buffers of the {size}x{size} program: temporaries "
            f"{mib(mem.temp_size_in_bytes):.0f} MiB, arguments "
            f"{mib(mem.argument_size_in_bytes):.0f} MiB, outputs "
            f"{mib(mem.output_size_in_bytes):.0f} MiB",
            flush=True,
        )
    out = restorer.restore(_image(size), seed=0)
    print(
        f"child: {size}x{size}, {out.details['tiles']} tiles x {steps} steps in "
        f"{time.perf_counter() - t0:.0f} s (compile included)",
        flush=True,
    )


def _peak_rss_mib(size: int, steps: int, timeout: float) -> tuple[float, bool]:
    """(peak RSS of the child in MiB, whether it finished within `timeout` (0: no limit))."""
    cmd = [
        sys.executable,
        __file__,
        "--rss-child",
        str(size),
        "--rss-steps",
        str(steps),
    ]
    env = dict(
        os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    try:
        subprocess.run(cmd, check=True, env=env, timeout=timeout or None)
        finished = True
    except subprocess.TimeoutExpired:  # killed and reaped: its usage still counts
        finished = False
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, finished


def _machine() -> str:
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = jax.devices()[0]
    return (
        f"machine: {cpu}, {os.cpu_count()} CPUs, load average "
        f"{'/'.join(f'{x:.1f}' for x in os.getloadavg())}, jax {jax.__version__}, "
        f"backend {jax.default_backend()} ({device.device_kind})"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per size")
    parser.add_argument(
        "--repeats-large",
        type=int,
        default=1,
        help="timed runs for sizes above 512 on CPU",
    )
    parser.add_argument("--rss-size", type=int, default=2048, help="0: no memory run")
    parser.add_argument(
        "--rss-steps",
        type=int,
        default=4,
        help="sampler steps of the memory run (the steps are a scan: memory does not grow "
        "with them, time does)",
    )
    parser.add_argument(
        "--rss-timeout",
        type=float,
        default=0.0,
        help="stop the memory run after this many seconds (0: let it finish); the tiles run "
        "one after another with the same buffers, so the peak is reached in the first tile",
    )
    parser.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        _rss_child(args.rss_child, args.rss_steps)
        return 0

    import jax

    gpu = jax.default_backend() == "gpu"
    print(_machine())
    restorer = _restorer()
    print(
        "UNet: foundir_unet() (36,261,187 parameters), random weights; 4 steps, float32"
    )
    if gpu:
        reference = _torch_reference()
    else:
        reference = None
        print(
            f"GPU path skipped: jax backend is {jax.default_backend()} (on a GPU the same sizes "
            "run beside the official-layout PyTorch UnetRes, with the ratio)"
        )
    for size in args.sizes:
        repeats = args.repeats if gpu or size <= 512 else args.repeats_large
        compile_s, times = _time_ours(restorer, size, repeats)
        ours = statistics.median(times)
        line = (
            f"{size}x{size}: ours {ours:7.2f} s (median of {repeats}: "
            f"{', '.join(f'{t:.2f}' for t in times)}; compile {compile_s:.1f} s, excluded)"
        )
        if reference is not None:
            theirs = _time_torch(reference, size, repeats)
            line += f" | PyTorch {theirs:7.3f} s | ours / PyTorch {ours / theirs:.2f}"
        print(line, flush=True)
    if args.rss_size:
        t0 = time.perf_counter()
        peak, finished = _peak_rss_mib(args.rss_size, args.rss_steps, args.rss_timeout)
        how = (
            "whole run" if finished else f"first {args.rss_timeout:.0f} s, then stopped"
        )
        print(
            f"peak RSS of a {args.rss_size}x{args.rss_size} restore (tiles 1024 / overlap 512, "
            f"{args.rss_steps} steps, child process, {how}): {peak:.0f} MiB "
            f"({time.perf_counter() - t0:.0f} s)"
        )
    print(f"load average after: {'/'.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

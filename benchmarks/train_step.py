"""Train-step time, examples/s and MFU of the trainer's compiled step.

Claim (issue 5): the trainer's step (AdamW + clipping + EMA + non-finite guard, sharded jit) adds
little over a bare jitted forward/backward of the same model and batch, and its MFU estimate
(FLOPs from XLA's cost analysis of the compiled step / step time / peak FLOP/s) is reported.
Printed ratio: trainer step time / bare grad step time (baseline).

Peak FLOP/s: the device table in unires_jax/train/metrics.py (TPU v4/v5e/v5p/v6e, H100/H200/A100,
bf16 dense). CPUs are not in it: on CPU the peak is measured as the FLOP/s of a large matmul in
the compute dtype, so "MFU" there means "fraction of this machine's matmul throughput".

Tasks (--task):
  `conv`         a small conv ResNet denoiser (64x64 RGB, 64 channels) with the models' logical
                 axis annotations, under the trainer defaults (configs/common.py);
  `unires_tiny`  the UniRes task of configs/unires_tiny.py (tiny LDM, 64 px crops);
  `unires_sd21`  the UniRes task of configs/unires_sd21.py: the SD-2.1-size UNet (8 input
                 channels, remat), VAE and OpenCLIP text encoder, random weights, the frozen VAE
                 encoding HQ and LQ images of --size px inside the step (the paper's setting).
The UniRes tasks take the experiment's optimiser and objective; --batch, --dtype and --mesh
override its batch, compute dtype and mesh.

Run:  python benchmarks/train_step.py [--task conv] [--batch 16] [--steps 10] [--size 512]
      [--dtype float32|bfloat16] [--mesh 1,1] [--parallelism jit|pmap] [--peak_flops F]
GPU:  python benchmarks/train_step.py --task unires_sd21 --dtype bfloat16 --batch 16 --size 512
"""

from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from configs import common
from unires_jax.models import partitioning as P
from unires_jax.train import engine, metrics, trainer
from unires_jax.train import task as task_lib
from unires_jax.train.tasks.unires import UniResTask


def _conv(cin, cout, rngs):
    return nnx.Conv(
        cin,
        cout,
        (3, 3),
        rngs=rngs,
        kernel_init=P.partitioned(nnx.initializers.lecun_normal(), P.CONV_KERNEL),
        bias_init=P.partitioned(nnx.initializers.zeros_init(), P.CONV_BIAS),
    )


class _ResBlock(nnx.Module):
    def __init__(self, ch, rngs):
        norm = {
            "scale_init": P.partitioned(nnx.initializers.ones_init(), P.NORM),
            "bias_init": P.partitioned(nnx.initializers.zeros_init(), P.NORM),
        }
        self.norm1 = nnx.GroupNorm(ch, num_groups=8, rngs=rngs, **norm)
        self.conv1 = _conv(ch, ch, rngs)
        self.norm2 = nnx.GroupNorm(ch, num_groups=8, rngs=rngs, **norm)
        self.conv2 = _conv(ch, ch, rngs)

    def __call__(self, x):
        h = self.conv1(nnx.silu(self.norm1(x)))
        return x + self.conv2(nnx.silu(self.norm2(h)))


class ConvDenoiser(nnx.Module):
    """[B, H, W, 3] -> [B, H, W, 3] residual conv net."""

    def __init__(self, rngs, channels=64, blocks=4):
        self.conv_in = _conv(3, channels, rngs)
        self.blocks = nnx.List([_ResBlock(channels, rngs) for _ in range(blocks)])
        self.conv_out = _conv(channels, 3, rngs)

    def __call__(self, x):
        h = self.conv_in(x)
        for block in self.blocks:
            h = block(h)
        return x + self.conv_out(h).astype(x.dtype)


class ConvTask:
    """Noise-prediction MSE on random 64x64 images (the shape of a diffusion objective)."""

    size = 64

    def init(self, rngs):
        return ConvDenoiser(rngs)

    def loss_fn(self, model, batch, rng):
        noise = jax.random.normal(rng, batch["x"].shape, batch["x"].dtype)
        pred = model(batch["x"] + noise)
        return jnp.mean(
            jnp.square(pred.astype(jnp.float32) - noise.astype(jnp.float32))
        ), {}

    def eval(self, model, batch):
        return {}

    def batch(self, n: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(0)
        return {
            "x": rng.uniform(-1, 1, (n, self.size, self.size, 3)).astype(np.float32)
        }


class UniResBenchTask(UniResTask):
    """An experiment's UniRes task (configs/<config_module>.py) fed random HQ/LQ images of
    --size px instead of its data pipeline, with --remat / --attention / --dtype applied."""

    def __init__(self, config_module: str, args: argparse.Namespace):
        config = importlib.import_module(f"configs.{config_module}").get_config()
        if args.remat != "config":
            config.model.unet.remat = args.remat == "on"
        if args.attention:
            config.model.unet.attention = args.attention
        # Before the task is built: it builds the trained UNet in the compute dtype.
        config.precision.compute_dtype = args.dtype
        super().__init__(config)
        self.size = args.size or int(config.data.crop_size)

    def batch(self, n: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(0)
        shape = (n, self.size, self.size, 3)
        return {
            "hq": rng.uniform(0, 1, shape).astype(np.float32),
            "lq": rng.uniform(0, 1, shape).astype(np.float32),
            "task_id": rng.integers(0, self.num_tasks, n).astype(np.int32),
        }


TASKS = {
    "conv": lambda args: ConvTask(),
    "unires_tiny": lambda args: UniResBenchTask("unires_tiny", args),
    "unires_sd21": lambda args: UniResBenchTask("unires_sd21", args),
}


def _measured_matmul_peak(dtype, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of an n x n matmul on device 0 (the CPU stand-in for a peak)."""
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    start = time.perf_counter()
    for _ in range(repeats):
        f(a).block_until_ready()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def _time(fn, args_fn, steps: int) -> float:
    """Seconds per call after two warm-up calls."""
    out = None
    for _ in range(2):
        out = fn(*args_fn(out))
    jax.block_until_ready(out)
    start = time.perf_counter()
    for _ in range(steps):
        out = fn(*args_fn(out))
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="conv")
    parser.add_argument("--batch", type=int, default=16, help="global batch")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--size",
        type=int,
        default=0,
        help="image size of the UniRes tasks (0: the config's)",
    )
    parser.add_argument(
        "--attention",
        default="",
        choices=["", "dot_product", "chunked", "naive", "cudnn"],
        help="UNet attention of the UniRes tasks ('': the config's)",
    )
    parser.add_argument(
        "--skip_bare",
        action="store_true",
        help="time the trainer step only (no baseline: saves its compilation)",
    )
    parser.add_argument(
        "--remat",
        choices=["config", "on", "off"],
        default="config",
        help="UNet rematerialisation of the UniRes tasks. XLA's FLOP count includes recomputed "
        "activations, so the MFU printed with remat on is hardware FLOP utilisation; off gives "
        "model FLOP utilisation",
    )
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--mesh", default="1,1", help="data,fsdp sizes (jit path)")
    parser.add_argument("--parallelism", choices=["jit", "pmap"], default="jit")
    parser.add_argument("--grad_accum", type=int, default=1)
    parser.add_argument(
        "--peak_flops", type=float, default=0.0, help="per device; 0: lookup"
    )
    args = parser.parse_args()

    task = TASKS[args.task](args)
    config = getattr(task, "config", None) or common.base_config()
    data, fsdp = (int(v) for v in args.mesh.split(","))
    config.mesh.update(data=data, fsdp=fsdp)
    config.train.update(
        steps=1000,
        batch_size=args.batch,
        parallelism=args.parallelism,
        grad_accum_steps=args.grad_accum,
    )
    config.precision.compute_dtype = args.dtype
    setup = engine.make_setup(config, task, task_lib.hooks(task))
    eng = trainer.make_engine(config, setup)
    local = task.batch(args.batch)
    batch = eng.put_batch(local)
    eng.compile(batch)
    state = eng.init()
    # The baseline starts from the same initial weights, copied before the step donates them.
    host = None if args.skip_bare else jax.device_get(eng.checkpoint_tree(state))
    step_s = _time(
        lambda s, b: eng.step(s, b)[0], lambda out: (out or state, batch), args.steps
    )

    # Printed before the baseline runs, so the figure survives a baseline that does not fit.
    device = jax.devices()[0]
    peak = args.peak_flops or metrics.peak_flops_per_device(device.device_kind)
    peak_note = "device table"
    if not peak:
        peak, peak_note = (
            _measured_matmul_peak(jnp.dtype(args.dtype)),
            "measured matmul",
        )
    util = metrics.mfu(eng.flops_per_step, step_s, peak)
    print(
        f"device: {device.device_kind} x {jax.device_count()}  ({os.cpu_count()} host cores)"
    )
    print(
        f"task {args.task}, global batch {args.batch}, {args.dtype}, {args.parallelism} "
        f"mesh data={data} fsdp={fsdp}, grad_accum {args.grad_accum}"
        + (
            f", {task.size} px, UNet remat {task.config.model.unet.remat}, "
            f"attention {task.config.model.unet.attention}"
            if hasattr(task, "config")
            else ""
        )
    )
    print(f"trainer step: {step_s * 1e3:.1f} ms, {args.batch / step_s:.1f} examples/s")
    flops = eng.flops_per_step
    print(
        f"FLOPs per step per device (XLA cost analysis): {flops:.3e}"
        if flops
        else "FLOPs per step: not reported by this backend"
    )
    print(f"peak FLOP/s per device ({peak_note}): {peak:.3e}")
    if eng.step_memory is not None:
        limit = metrics.device_memory_limit(device)
        print(metrics.memory_report(eng.step_memory, limit)[0])
    print(f"MFU estimate: {util:.1%}" if util is not None else "MFU estimate: n/a")
    if args.skip_bare:
        return

    # Baseline: a bare jitted gradient of the same loss on one device, no optimiser or EMA.
    params, frozen, rest = (
        jax.tree.map(jnp.asarray, host[k]) for k in ("params", "frozen", "rest")
    )
    # Integer leaves (UniRes task ids) keep their dtype, as in the trainer's step.
    cast = lambda t: jax.tree.map(
        lambda x: (
            x.astype(setup.compute_dtype)
            if jnp.issubdtype(x.dtype, jnp.floating)
            else x
        ),
        t,
    )

    @jax.jit
    def bare(p, b, key):
        def loss(p):
            module = setup.model.merge(cast(frozen), cast(p), rest)
            return task.loss_fn(module, cast(b), key)[0]

        return jax.grad(loss)(p)

    key = jax.random.PRNGKey(0)
    jb = {k: jnp.asarray(v) for k, v in local.items()}
    bare_s = _time(bare, lambda out: (params, jb, key), args.steps)
    print(f"bare grad step (baseline): {bare_s * 1e3:.1f} ms")
    print(f"ratio trainer/bare: {step_s / bare_s:.2f}")


if __name__ == "__main__":
    main()

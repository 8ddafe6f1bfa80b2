"""Our jitted UNet forward vs diffusers' PyTorch UNet2DConditionModel, same weights, CPU float32.

Claim (BENCHMARKS.md): on a "tiny-but-not-toy" SD-layout UNet (4 levels of 64 channels,
2 resnets per level, cross-attention on the first three levels, 8 heads, 77 text tokens),
batch 6, 64x64 latents, float32 on CPU, our forward takes <= 0.8x diffusers' time.

    python benchmarks/unet_vs_diffusers.py                 # the claim above
    python benchmarks/unet_vs_diffusers.py --repeats 9 --batch 2 --size 32
    python benchmarks/unet_vs_diffusers.py --gpu-sd15      # SD-1.5-size UNet, bf16, images/s on GPU

Our side uses attention="chunked" with 128-row blocks by default (--attention/--chunk change it):
on CPU, XLA's unfused attention materialises [B, heads, L, L] logits (3 GB here) and is several
times slower than PyTorch's fused CPU kernel, while the blocked version stays in cache.

Both sides get the same random weights (diffusers' model converted with
unires_jax.convert.unet) and the same inputs; outputs are checked to agree before timing.
Timings: median of --repeats runs after a warm-up (compile for JAX), `block_until_ready` for
JAX, `torch.no_grad()` for PyTorch, runs interleaved so machine load hits both alike.
PyTorch runs with as many intra-op threads as XLA's CPU client uses (all cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.models import configs
from unires_jax.models.unet import UNet

CONTEXT_LEN = 77

# The diffusers config of the CPU comparison: SD 1.x layout at 64 channels.
BENCH_CONFIG = {
    "block_out_channels": (64, 64, 64, 64),
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "layers_per_block": 2,
    "attention_head_dim": 8,
    "cross_attention_dim": 64,
    "norm_num_groups": 32,
    "sample_size": 64,
}


def _machine() -> str:
    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__}, "
        f"threads: torch {torch.get_num_threads()}"
    )


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def compare_on_cpu(args) -> None:
    import torch
    from diffusers import UNet2DConditionModel

    from unires_jax.convert.unet import (
        unet_config_from_diffusers,
        unet_from_torch_state,
    )

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    ref = UNet2DConditionModel(**BENCH_CONFIG).eval()
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    cfg = unet_config_from_diffusers(dict(ref.config), attention=args.attention)
    cfg = dataclasses.replace(cfg, attention_chunk=args.chunk)
    ours = unet_from_torch_state(state, cfg, source="<benchmark>")
    n_params = sum(x.size for x in jax.tree.leaves(nnx.state(ours, nnx.Param)))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 4, args.size, args.size)).astype(np.float32)
    t = rng.integers(0, 1000, args.batch)
    ctx = rng.standard_normal((args.batch, CONTEXT_LEN, 64)).astype(np.float32)
    x_t, t_t, ctx_t = torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(ctx)
    # Our model takes NHWC: the layout change is part of the input pipeline, not timed.
    x_j, t_j, ctx_j = (
        jnp.asarray(x.transpose(0, 2, 3, 1)),
        jnp.asarray(t),
        jnp.asarray(ctx),
    )

    graphdef, params = nnx.split(ours)
    forward = jax.jit(lambda p, x, t, c: nnx.merge(graphdef, p)(x, t, c))

    def run_ours():
        return forward(params, x_j, t_j, ctx_j).block_until_ready()

    def run_torch():
        with torch.no_grad():
            return ref(x_t, t_t, ctx_t).sample

    t0 = time.perf_counter()
    y_ours = np.asarray(run_ours()).transpose(0, 3, 1, 2)
    compile_s = time.perf_counter() - t0
    y_ref = run_torch().numpy()
    err = np.abs(y_ours - y_ref).max() / np.abs(y_ref).max()

    ours_s, torch_s = [], []
    for _ in range(args.repeats):
        ours_s += _time(run_ours, 1)
        torch_s += _time(run_torch, 1)
    mo, mt = statistics.median(ours_s), statistics.median(torch_s)
    print(f"machine: {_machine()}")
    print(
        f"config: UNet {BENCH_CONFIG['block_out_channels']} x {BENCH_CONFIG['layers_per_block']} layers, "
        f"{n_params:,} params, batch {args.batch}, latents {args.size}x{args.size}, float32, "
        f"attention={args.attention}"
        + (f" (chunk {args.chunk})" if args.attention == "chunked" else "")
    )
    print(f"outputs agree: max|diff|/max|ref| = {err:.2e}")
    print(
        f"unires-jax (jit, first call incl. compile {compile_s:.1f} s): median {mo * 1e3:.0f} ms "
        f"over {args.repeats} runs (min {min(ours_s) * 1e3:.0f})"
    )
    print(
        f"diffusers  (torch.no_grad): median {mt * 1e3:.0f} ms over {args.repeats} runs (min {min(torch_s) * 1e3:.0f})"
    )
    print(f"ratio ours/diffusers = {mo / mt:.2f} (target <= 0.8)")


def sd15_on_gpu(args) -> None:
    if jax.default_backend() != "gpu":
        raise SystemExit(
            f"--gpu-sd15 needs a GPU visible to jax; the default backend is {jax.default_backend()!r}"
        )
    cfg = configs.sd15_unet(
        dtype=jnp.bfloat16,
        param_dtype=jnp.bfloat16,
        attention=args.attention,
        attention_chunk=args.chunk,
    )
    model = nnx.jit(lambda: UNet(cfg, rngs=nnx.Rngs(0)))()
    graphdef, params = nnx.split(model)
    n_params = sum(x.size for x in jax.tree.leaves(params))
    forward = jax.jit(lambda p, x, t, c: nnx.merge(graphdef, p)(x, t, c))
    key = jax.random.key(0)
    x = jax.random.normal(key, (args.batch, args.size, args.size, 4), jnp.bfloat16)
    t = jnp.full((args.batch,), 500)
    ctx = jax.random.normal(key, (args.batch, CONTEXT_LEN, 768), jnp.bfloat16)
    forward(params, x, t, ctx).block_until_ready()
    times = _time(lambda: forward(params, x, t, ctx).block_until_ready(), args.repeats)
    med = statistics.median(times)
    print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}")
    print(
        f"SD-1.5 UNet ({n_params:,} params) bf16, batch {args.batch}, latents {args.size}x{args.size}, "
        f"attention={args.attention}: median {med * 1e3:.1f} ms / forward = {args.batch / med:.1f} images/s "
        "(one UNet evaluation per image)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--size", type=int, default=64, help="latent height = width")
    parser.add_argument(
        "--attention",
        default=None,
        choices=("dot_product", "chunked", "naive"),
        help="default: chunked on CPU (blocks stay in cache), dot_product with --gpu-sd15 (fused kernel)",
    )
    parser.add_argument(
        "--chunk", type=int, default=128, help="rows per block for --attention chunked"
    )
    parser.add_argument(
        "--gpu-sd15",
        action="store_true",
        help="time the SD-1.5-size UNet in bf16 on a GPU",
    )
    args = parser.parse_args()
    if args.attention is None:
        args.attention = "dot_product" if args.gpu_sd15 else "chunked"
    if args.gpu_sd15:
        sd15_on_gpu(args)
    else:
        compare_on_cpu(args)


if __name__ == "__main__":
    main()

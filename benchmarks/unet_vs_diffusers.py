"""Our jitted UNet forward vs diffusers' PyTorch UNet2DConditionModel, same weights, CPU float32.

Claim (BENCHMARKS.md, issue "UNet forward on CPU <= 0.8x diffusers' time, by default"): on an
SD-1.x-layout UNet with blocks (64, 128, 256, 256) (CrossAttnDownBlock2D x3 + DownBlock2D,
2 resnets per level, 8 heads, cross-attention dim 64, 77 text tokens, 34M random parameters),
batch 6, 64x64 latents, float32 on CPU, our forward with the library's default attention takes
<= 0.8x diffusers' time.

    python benchmarks/unet_vs_diffusers.py                 # the claim above, all cores
    python benchmarks/unet_vs_diffusers.py --profile       # + per-block table, ours vs diffusers
    python benchmarks/unet_vs_diffusers.py --cpus 1        # both pinned to one core
    python benchmarks/unet_vs_diffusers.py --blocks 64,64,64,64 --repeats 9 --batch 2 --size 32
    python benchmarks/unet_vs_diffusers.py --attention chunked --chunk 256
    python benchmarks/unet_vs_diffusers.py --gpu-sd15      # SD-1.5 UNet, bf16, images/s on GPU,
                                                           # against diffusers on the same GPU
    python benchmarks/unet_vs_diffusers.py --gpu-sd15 --attention cudnn

Without --attention our side uses `unires_jax.models.layers.default_attention()`, what
`load_ldm` and `Restorer.load` pick (on CPU "chunked", with UNetConfig's default block of
`attention_chunk` rows unless --chunk says otherwise); --attention forces an implementation.

Both sides get the same random weights (diffusers' model converted with
unires_jax.convert.unet) and the same inputs; outputs are checked to agree before timing.
Timings: median of --repeats runs after a warm-up (compile for JAX), `block_until_ready` for
JAX, `torch.no_grad()` for PyTorch, runs interleaved so machine load hits both alike.
PyTorch gets one intra-op thread per CPU the process may use, as XLA does. Wall time and
process CPU time are both printed, with the load average: another busy process hurts
PyTorch's OpenMP threads far more than XLA's (a 2-core run beside one busy process has given
ratios near 0.5 that an idle machine does not reproduce), so only figures taken at a load
average well under the core count support the claim. On a shared machine, a one-core run's CPU
time is the figure least disturbed by other processes.

--profile then times each block of the forward in isolation (inputs captured from the diffusers
forward; ours jitted per block), `--repeats` rounds of back-to-back batches, each side's best
round, and prints one row per level and kind of block.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

CONTEXT_LEN = 77
CONTEXT_DIM = 64


def bench_config(blocks: tuple[int, ...] = (64, 128, 256, 256)) -> dict:
    """The diffusers config of the CPU comparison: SD 1.x layout at `blocks` channels."""
    return {
        "block_out_channels": tuple(blocks),
        "down_block_types": ("CrossAttnDownBlock2D",) * (len(blocks) - 1)
        + ("DownBlock2D",),
        "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (len(blocks) - 1),
        "layers_per_block": 2,
        "attention_head_dim": 8,  # diffusers' name for the head count (8 at every level)
        "cross_attention_dim": CONTEXT_DIM,
        "norm_num_groups": 32,
        "sample_size": 64,
    }


def _limit_cpus(n: int) -> None:
    """Pins this process to n CPUs; must run before jax and torch are imported."""
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:n])
    if n == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " " + flags
        ).strip()


def _time(fn, repeats: int) -> tuple[list[float], list[float]]:
    """(wall seconds, process CPU seconds) of each of `repeats` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def _summary(name: str, wall: list[float], cpu: list[float]) -> str:
    return (
        f"{name}: median {statistics.median(wall) * 1e3:.0f} ms wall "
        f"(min {min(wall) * 1e3:.0f}), {statistics.median(cpu) * 1e3:.0f} ms CPU, "
        f"{len(wall)} runs"
    )


def compare_on_cpu(args) -> None:
    import dataclasses

    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    from diffusers import UNet2DConditionModel
    from flax import nnx

    from unires_jax.convert.unet import (
        unet_config_from_diffusers,
        unet_from_torch_state,
    )

    cpus = len(os.sched_getaffinity(0))
    torch.set_num_threads(cpus)
    torch.manual_seed(0)
    diffusers_config = bench_config(args.blocks)
    ref = UNet2DConditionModel(**diffusers_config).eval()
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    cfg = unet_config_from_diffusers(dict(ref.config), attention=args.attention)
    if args.chunk is not None:
        cfg = dataclasses.replace(cfg, attention_chunk=args.chunk)
    ours = unet_from_torch_state(state, cfg, source="<benchmark>")
    n_params = sum(x.size for x in jax.tree.leaves(nnx.state(ours, nnx.Param)))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 4, args.size, args.size), dtype=np.float32)
    t = rng.integers(0, 1000, args.batch)
    ctx = rng.standard_normal((args.batch, CONTEXT_LEN, CONTEXT_DIM), dtype=np.float32)
    x_t, t_t, ctx_t = torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(ctx)
    # Our model takes NHWC: the layout change belongs to the input pipeline, not timed.
    x_j = jnp.asarray(x.transpose(0, 2, 3, 1))
    t_j, ctx_j = jnp.asarray(t), jnp.asarray(ctx)

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

    load_before = os.getloadavg()[0]
    ours_w, ours_c, torch_w, torch_c = [], [], [], []
    for _ in range(args.repeats):
        w, c = _time(run_ours, 1)
        ours_w += w
        ours_c += c
        w, c = _time(run_torch, 1)
        torch_w += w
        torch_c += c
    chunk = f" (chunk {cfg.attention_chunk})" if cfg.attention == "chunked" else ""
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpus} used), "
        f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after, "
        f"jax {jax.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    print(
        f"config: UNet {diffusers_config['block_out_channels']}, "
        f"{diffusers_config['layers_per_block']} resnets/level, {n_params:,} params, "
        f"batch {args.batch}, latents {args.size}x{args.size}, float32, "
        f"attention={cfg.attention}{chunk}{' (default)' if args.default_attention else ''}"
    )
    print(f"outputs agree: max|diff|/max|ref| = {err:.2e}")
    print(_summary(f"unires-jax (jit; compile {compile_s:.0f} s)", ours_w, ours_c))
    print(_summary("diffusers  (torch.no_grad)", torch_w, torch_c))
    wall = statistics.median(ours_w) / statistics.median(torch_w)
    cpu = statistics.median(ours_c) / statistics.median(torch_c)
    print(f"ratio ours/diffusers = {wall:.2f} wall, {cpu:.2f} CPU time (target <= 0.8)")
    if args.profile:
        _profile(ref, ours, (x_t, t_t, ctx_t), args.repeats)


# diffusers sub-module name -> ours, where they differ.
_RENAMES = {"downsamplers.0": "downsampler", "upsamplers.0": "upsampler"}


def _blocks(ref) -> list[str]:
    """diffusers names of the blocks the profile times: every resnet, transformer, sampler."""
    names = ["conv_in", "time_embedding"]
    for name, _ in ref.named_modules():
        parts = name.split(".")
        if parts[0] == "mid_block":
            parts = [parts[0], "", *parts[1:]]  # no level index
        if len(parts) == 4 and parts[2] in (
            "resnets",
            "attentions",
            "downsamplers",
            "upsamplers",
        ):
            names.append(name)
    return [*names, "conv_norm_out", "conv_out"]


def _row(name: str) -> str:
    """'down_blocks.1.resnets.0' -> 'down 1 resnets'; samplers and the stem keep one row each."""
    parts = name.split(".")
    if parts[0] in ("down_blocks", "up_blocks"):
        return f"{parts[0][:-7]} {parts[1]} {parts[2]}"
    if parts[0] == "mid_block":
        return f"mid {parts[1]}"
    return (
        "conv_in + time"
        if name in ("conv_in", "time_embedding")
        else "norm_out + conv_out"
    )


def _profile(ref, ours, inputs, repeats: int) -> None:
    """Times each block on both sides with the inputs it gets in the full forward."""
    import jax
    import jax.numpy as jnp
    import torch
    from flax import nnx

    names = _blocks(ref)
    modules = dict(ref.named_modules())
    captured = {}

    def capture(name):
        def hook(_module, args, kwargs):
            captured.setdefault(name, (args, kwargs))

        return hook

    hooks = [
        modules[n].register_forward_pre_hook(capture(n), with_kwargs=True)
        for n in names
    ]
    with torch.no_grad():
        ref(*inputs)
    for h in hooks:
        h.remove()

    def to_jax(a):
        a = a.numpy()
        return jnp.asarray(a.transpose(0, 2, 3, 1) if a.ndim == 4 else a)

    rows: dict[str, list[float]] = {}
    for name in names:
        args, kwargs = captured[name]
        args = tuple(a for a in args if a is not None)
        torch_module = modules[name]
        if "encoder_hidden_states" in kwargs:  # transformers: (hidden, context)
            args = (args[0], kwargs["encoder_hidden_states"])

            def run_torch(m=torch_module, a=args):
                m(a[0], encoder_hidden_states=a[1])

        else:
            if ".upsamplers." in name:  # diffusers passes the output size; ours doubles
                args = args[:1]

            def run_torch(m=torch_module, a=args):
                m(*a)

        module = ours
        for part in _dotted(name):
            module = module[int(part)] if part.isdigit() else getattr(module, part)
        graphdef, state = nnx.split(module)
        fn = jax.jit(lambda s, *a, g=graphdef: nnx.merge(g, s)(*a))
        jax_args = tuple(to_jax(a) for a in args)

        def run_ours(fn=fn, state=state, a=jax_args):
            jax.block_until_ready(fn(state, *a))

        with torch.no_grad():
            run_ours(), run_torch()
            t0 = time.perf_counter()
            run_ours(), run_torch()
            n = max(1, int(0.2 / (time.perf_counter() - t0)))  # >= 0.2 s per batch
            best = [float("inf"), float("inf")]
            for _ in range(repeats):
                for i, run in enumerate((run_ours, run_torch)):
                    t0 = time.perf_counter()
                    for _ in range(n):
                        run()
                    best[i] = min(best[i], (time.perf_counter() - t0) / n)
        acc = rows.setdefault(_row(name), [0.0, 0.0, 0])
        acc[0] += best[0]
        acc[1] += best[1]
        acc[2] += 1
    print(
        f"per block, each side's best of {repeats} rounds (load average {os.getloadavg()[0]:.1f}):"
    )
    print(
        f"  {'block':24s} {'n':>2s} {'ours ms':>9s} {'diffusers ms':>13s} {'ratio':>6s}"
    )
    total = [0.0, 0.0]
    for row, (o, d, n) in rows.items():
        total[0] += o
        total[1] += d
        print(f"  {row:24s} {n:2d} {o * 1e3:9.1f} {d * 1e3:13.1f} {o / d:6.2f}")
    print(
        f"  {'sum':24s} {'':2s} {total[0] * 1e3:9.1f} {total[1] * 1e3:13.1f} {total[0] / total[1]:6.2f}"
    )


def _dotted(name: str) -> list[str]:
    """A diffusers module path as the attribute / index steps of ours."""
    for old, new in _RENAMES.items():
        name = name.replace(old, new)
    return name.split(".")


def _diffusers_sd15_seconds(args) -> float | None:
    """Median seconds per forward of diffusers' SD-1.5 UNet (bf16, PyTorch's SDPA attention) on
    the same GPU and shapes, or None where torch with CUDA or diffusers is missing."""
    try:
        import torch
        from diffusers import UNet2DConditionModel
    except ImportError as e:
        print(f"diffusers baseline skipped: {e}")
        return None
    if not torch.cuda.is_available():
        print("diffusers baseline skipped: torch sees no CUDA device")
        return None
    torch.manual_seed(0)
    ref = UNet2DConditionModel(cross_attention_dim=768, sample_size=args.size)
    n_params = sum(p.numel() for p in ref.parameters())
    ref = ref.to("cuda", torch.bfloat16).eval()
    x = torch.randn(
        args.batch, 4, args.size, args.size, device="cuda", dtype=torch.bfloat16
    )
    t = torch.full((args.batch,), 500, device="cuda")
    ctx = torch.randn(args.batch, CONTEXT_LEN, 768, device="cuda", dtype=torch.bfloat16)

    def run():
        with torch.no_grad():
            ref(x, t, ctx)
        torch.cuda.synchronize()

    run()
    run()
    wall, _ = _time(run, args.repeats)
    med = statistics.median(wall)
    print(
        f"diffusers {_version('diffusers')} / torch {torch.__version__}: SD-1.5 UNet "
        f"({n_params:,} params) bf16, batch {args.batch}: median {med * 1e3:.1f} ms / forward "
        f"= {args.batch / med:.1f} images/s"
    )
    ref = None  # frees its GPU memory before jax starts
    torch.cuda.empty_cache()
    return med


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def sd15_on_gpu(args) -> None:
    # Timed first, then freed, so that jax (which must not take 75% of the memory up front
    # while torch holds some) and torch do not compete.
    baseline = _diffusers_sd15_seconds(args)
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from unires_jax.models import configs
    from unires_jax.models.unet import UNet

    if jax.default_backend() != "gpu":
        raise SystemExit(
            "--gpu-sd15 needs a GPU visible to jax; "
            f"the default backend is {jax.default_backend()!r}"
        )
    cfg = configs.sd15_unet(
        dtype=jnp.bfloat16,
        param_dtype=jnp.bfloat16,
        attention=args.attention,
        **({} if args.chunk is None else {"attention_chunk": args.chunk}),
    )
    model = nnx.jit(lambda: UNet(cfg, rngs=nnx.Rngs(0)))()
    graphdef, params = nnx.split(model)
    n_params = sum(x.size for x in jax.tree.leaves(params))
    forward = jax.jit(lambda p, x, t, c: nnx.merge(graphdef, p)(x, t, c))
    key = jax.random.key(0)
    shape = (args.batch, args.size, args.size, 4)
    x = jax.random.normal(key, shape, jnp.bfloat16)
    t = jnp.full((args.batch,), 500)
    ctx = jax.random.normal(key, (args.batch, CONTEXT_LEN, 768), jnp.bfloat16)
    forward(params, x, t, ctx).block_until_ready()
    wall, _ = _time(
        lambda: forward(params, x, t, ctx).block_until_ready(), args.repeats
    )
    med = statistics.median(wall)
    print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}")
    print(
        f"SD-1.5 UNet ({n_params:,} params) bf16, batch {args.batch}, "
        f"latents {args.size}x{args.size}, attention={args.attention}: "
        f"median {med * 1e3:.1f} ms / forward = {args.batch / med:.1f} images/s "
        "(one UNet evaluation per image)"
    )
    if baseline:
        print(f"ratio ours/diffusers = {med / baseline:.2f} (time per forward)")


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
        choices=("dot_product", "chunked", "naive", "cudnn"),
        help="default: the library's choice for the backend (models.layers.default_attention); "
        "cudnn: cuDNN flash attention (GPU, bf16)",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="rows per block for chunked attention (default: UNetConfig.attention_chunk)",
    )
    parser.add_argument(
        "--blocks",
        default="64,128,256,256",
        help="block_out_channels of the CPU comparison (comma-separated)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the comparison, time each block of the forward on both sides",
    )
    parser.add_argument(
        "--cpus", type=int, default=0, help="pin both to this many CPUs (0: all)"
    )
    parser.add_argument(
        "--gpu-sd15",
        action="store_true",
        help="time the SD-1.5-size UNet in bf16 on a GPU",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.gpu_sd15:
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if args.cpus:
        _limit_cpus(args.cpus)
    args.blocks = tuple(int(c) for c in args.blocks.split(","))
    args.default_attention = args.attention is None
    if args.attention is None:
        # Imported only now: --cpus must set XLA_FLAGS before jax starts. With --gpu-sd15, jax
        # must not start before diffusers' baseline has run and freed the GPU.
        from unires_jax.models.layers import default_attention

        args.attention = default_attention("gpu" if args.gpu_sd15 else None)
    if args.gpu_sd15:
        sd15_on_gpu(args)
    else:
        compare_on_cpu(args)


if __name__ == "__main__":
    main()

"""Shared trainer config pieces; every key the trainer reads gets its default here.

An experiment config builds on `base_config()` and changes a few fields:

    from configs import common

    def get_config(arg=""):
        c = common.base_config()
        c.task.family = "unires"          # a key of unires_jax.train.tasks.FAMILIES
        c.train.update(steps=200_000, batch_size=256)
        c.precision.compute_dtype = "bfloat16"
        return c

`unires train` binds the name `configs` to the config file's own `configs/` folder (nothing is
added to sys.path), so `from configs import common` works from any working directory.
"""

import ml_collections


def train() -> ml_collections.ConfigDict:
    """Run length, global batch and parallelism."""
    return ml_collections.ConfigDict(
        {
            "steps": 1000,  # optimiser updates
            "batch_size": 8,  # global batch (all devices, all processes, all microbatches)
            "grad_accum_steps": 1,  # microbatches per update; batch_size / k per forward pass
            "seed": 0,
            "parallelism": "jit",  # "jit" (sharded mesh) or "pmap" (replicated fallback)
            "eval_every": 0,  # steps between evaluations; 0 disables
            "eval_steps": 1,  # eval batches per evaluation
            # XLA options for every compiled function, e.g. {"xla_backend_optimization_level": 0}
            # for fast CPU compiles in tests; empty = XLA defaults.
            "compiler_options": {},
        }
    )


def optim() -> ml_collections.ConfigDict:
    """AdamW with warm-up + cosine/constant schedule and global-norm clipping."""
    return ml_collections.ConfigDict(
        {
            "lr": 1e-4,
            "schedule": "cosine",  # "cosine" or "constant"
            "warmup_steps": 0,
            "min_lr_ratio": 0.0,  # cosine end value as a fraction of lr
            "b1": 0.9,
            "b2": 0.999,
            "eps": 1e-8,
            "weight_decay": 0.0,  # decoupled; kernels and embeddings only
            "clip_norm": 1.0,  # global-norm clipping; <= 0 disables
            "frozen": (),  # extra "/"-separated sub-module paths to freeze (beside Task.frozen)
        }
    )


def ema() -> ml_collections.ConfigDict:
    """EMA of the trained weights (what eval, samples and exports use)."""
    return ml_collections.ConfigDict(
        {
            "decay": 0.9999,  # per EMA update
            "every": 1,  # optimiser updates between EMA updates (FoundIR / ema-pytorch: 10)
        }
    )


def checkpoint() -> ml_collections.ConfigDict:
    """orbax checkpoints under WORKDIR/checkpoints (always also on SIGTERM/SIGINT and at the end)."""
    return ml_collections.ConfigDict(
        {
            "every": 1000,
            # "" = WORKDIR/checkpoints; multi-host slices need a directory every host can
            # write, e.g. gs://BUCKET/run/ckpt (run_tpu.sh --ckpt-dir).
            "directory": "",
            "keep": 3,  # most recent checkpoints kept
            "keep_best": 1,  # plus the best ones by best_metric (0: none)
            "best_metric": "loss",  # a logged metric, e.g. "loss" or "eval/loss"
            "best_mode": "min",
            "async_save": True,
        }
    )


def mesh() -> ml_collections.ConfigDict:
    """Device mesh axis sizes for the jit path; one of them may be -1 (all remaining devices)."""
    return ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})


def precision() -> ml_collections.ConfigDict:
    """Compute dtype of the forward/backward pass; master weights are always float32."""
    return ml_collections.ConfigDict({"compute_dtype": "float32"})


def log() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "every": 50,  # steps between metric lines (metrics.jsonl, TensorBoard, train.log)
            "progress_bar": True,
            "sample_every": 0,  # steps between PNG sample grids (Tasks with sample_images); 0: off
            "profile_start": 0,  # first step of a jax.profiler trace
            "profile_steps": 0,  # traced steps; 0: no trace
            "peak_flops_per_device": 0.0,  # MFU denominator; 0: look up the device kind
        }
    )


def base_config() -> ml_collections.ConfigDict:
    """All trainer sections with their defaults, plus an empty `task` section for the family."""
    c = ml_collections.ConfigDict()
    c.task = ml_collections.ConfigDict({"family": ""})
    c.train = train()
    c.optim = optim()
    c.ema = ema()
    c.checkpoint = checkpoint()
    c.mesh = mesh()
    c.precision = precision()
    c.log = log()
    return c

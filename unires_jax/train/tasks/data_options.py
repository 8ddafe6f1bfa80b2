"""The batch size and seed of a Task's training and evaluation iterators (shared by the Tasks that
read the data pipeline directly)."""

from __future__ import annotations

# Evaluation batches are drawn with the training seed plus this: other crops than training's.
EVAL_SEED_OFFSET = 1_000_003


def iterator_options(config, *, evaluation: bool) -> dict[str, int]:
    """`batch_size` and `seed` for the data pipeline: training batches are the global batch with
    the run's seed; evaluation batches are one forward pass (the microbatch of gradient
    accumulation), drawn with another seed."""
    batch = int(config.train.batch_size)
    seed = int(config.train.seed)
    if not evaluation:
        return {"batch_size": batch, "seed": seed}
    return {
        "batch_size": batch // int(config.train.grad_accum_steps),
        "seed": seed + EVAL_SEED_OFFSET,
    }

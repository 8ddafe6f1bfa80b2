"""Training metrics: metrics.jsonl, TensorBoard events, a readable log, curve plots and MFU.

Only process 0 writes (`MetricWriter(enabled=jax.process_index() == 0)`); other processes get a
writer whose methods do nothing. Files under `workdir`:

    metrics.jsonl      one JSON object per logged step: {"step": 100, "loss": ..., ...}
    tensorboard/       events.out.tfevents.* (readable by TensorBoard; no TensorFlow needed)
    train.log          one human-readable line per logged step
    curves.png         loss / grad norm / lr / throughput against step
    samples/           step_XXXXXXXX.png sample grids
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any

import numpy as np

from unires_jax.train.tensorboard import EventFileWriter, encode_png

# Dense peak FLOP/s per device for the MFU denominator (bf16 matmul; fp32 on CPU is unknown).
PEAK_FLOPS = {
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,  # v5e
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v5": 459e12,
    "TPU v6 lite": 918e12,  # v6e (Trillium)
    "NVIDIA H100": 989e12,
    "NVIDIA H200": 989e12,
    "NVIDIA A100": 312e12,
}


def peak_flops_per_device(device_kind: str) -> float | None:
    """Peak FLOP/s of one device of this kind (longest matching prefix), or None if unknown."""
    matches = [k for k in PEAK_FLOPS if device_kind.startswith(k)]
    return PEAK_FLOPS[max(matches, key=len)] if matches else None


def compiled_flops(compiled: Any) -> float | None:
    """FLOPs per device of one call of a compiled executable, from XLA's cost analysis.

    XLA counts a loop body once, so a step with k accumulation microbatches is estimated by the
    caller as k times this (the optimiser update is then over-counted, a small error).
    """
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001  (some backends do not implement it)
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    flops = (cost or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


@dataclasses.dataclass(frozen=True)
class StepMemory:
    """Device memory of one call of a compiled executable, per device, from XLA's buffer
    assignment (bytes). `peak` = arguments + outputs - aliased (donated) + temporaries: XLA
    allocates the temporaries as one block, so this is what the call holds at once."""

    arguments: int
    outputs: int
    aliased: int
    temporaries: int
    peak: int


def compiled_memory(compiled: Any) -> StepMemory | None:
    """`StepMemory` of a compiled executable, or None where the backend does not report it."""
    try:
        stats = compiled.memory_analysis()
    except Exception:  # noqa: BLE001  (some backends do not implement it)
        return None
    if stats is None:
        return None
    sizes = {
        "arguments": int(stats.argument_size_in_bytes),
        "outputs": int(stats.output_size_in_bytes),
        "aliased": int(stats.alias_size_in_bytes),
        "temporaries": int(stats.temp_size_in_bytes),
    }
    peak = (
        sizes["arguments"] + sizes["outputs"] - sizes["aliased"] + sizes["temporaries"]
    )
    return StepMemory(**sizes, peak=peak)


def device_memory_limit(device: Any) -> int | None:
    """Bytes the runtime may allocate on `device` (GPU/TPU), or None (CPU: not reported)."""
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001
        return None
    limit = (stats or {}).get("bytes_limit")
    return int(limit) if limit else None


def memory_report(memory: StepMemory, limit: int | None) -> tuple[str, bool]:
    """One readable line about a compiled step's memory and whether it exceeds `limit`."""
    gib = 2.0**30
    line = (
        f"compiled train step: {memory.peak / gib:.2f} GiB per device at peak (state and batch "
        f"{memory.arguments / gib:.2f}, temporaries {memory.temporaries / gib:.2f})"
    )
    if limit is None:
        return line, False
    line += f"; the device allows {limit / gib:.2f} GiB"
    over = memory.peak > limit
    if over:
        line += (
            ". It does not fit: lower train.batch_size (or raise train.grad_accum_steps), "
            "set model.unet.remat=True, use precision.compute_dtype=bfloat16, or shard the "
            "state over more devices with mesh.fsdp"
        )
    return line, over


def mfu(
    flops_per_step: float | None, step_time_s: float, peak: float | None
) -> float | None:
    """Model FLOPs utilisation: achieved FLOP/s per device over the device's peak."""
    if not flops_per_step or not peak or step_time_s <= 0:
        return None
    return flops_per_step / step_time_s / peak


def image_grid(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """Tiles [N, H, W, C] images in [0, 1] into one [rows*H, cols*W, C] uint8 image."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"image_grid expects [N, H, W, C], got shape {images.shape}")
    n, h, w, c = images.shape
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, c), np.uint8)
    tiles = np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[r * h : (r + 1) * h, q * w : (q + 1) * w] = tiles[i]
    return grid


def _format(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4f}"
    return f"{value:.3e}"


class MetricWriter:
    """Writes scalars and images to every sink; a no-op when `enabled` is False."""

    def __init__(self, workdir: str | os.PathLike, *, enabled: bool = True):
        self.enabled = enabled
        self.workdir = os.fspath(workdir)
        if not enabled:
            return
        os.makedirs(self.workdir, exist_ok=True)
        # Open for the writer's lifetime (closed in close()), appended to on every log step.
        self._jsonl = open(os.path.join(self.workdir, "metrics.jsonl"), "a")  # noqa: SIM115
        self._log = open(os.path.join(self.workdir, "train.log"), "a")  # noqa: SIM115
        self._tb = EventFileWriter(os.path.join(self.workdir, "tensorboard"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Records one step's scalars (non-finite values are kept: they are the evidence)."""
        if not self.enabled:
            return
        values = {k: float(v) for k, v in values.items()}
        self._jsonl.write(json.dumps({"step": int(step), **values}) + "\n")
        self._jsonl.flush()
        self._tb.scalars(step, values)
        self._tb.flush()
        line = " | ".join(f"{k} {_format(v)}" for k, v in values.items())
        self.text(f"step {step} | {line}")

    def text(self, line: str) -> None:
        """Appends a time-stamped line to train.log."""
        if not self.enabled:
            return
        self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        self._log.flush()

    def images(self, step: int, tag: str, images: np.ndarray) -> str | None:
        """Writes a grid of [N, H, W, C] images in [0, 1] to samples/ and TensorBoard.

        Returns:
          The PNG path (None when disabled).
        """
        if not self.enabled:
            return None
        grid = image_grid(images)
        folder = os.path.join(self.workdir, "samples")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{tag.replace('/', '_')}_step_{int(step):08d}.png")
        with open(path, "wb") as f:
            f.write(encode_png(grid))
        self._tb.image(step, tag, grid)
        self._tb.flush()
        return path

    def plot(
        self, keys: tuple[str, ...] = ("loss", "grad_norm", "lr", "examples_per_s")
    ) -> None:
        """Redraws curves.png from metrics.jsonl (one panel per key present)."""
        if not self.enabled:
            return
        rows = read_jsonl(os.path.join(self.workdir, "metrics.jsonl"))
        panels = [k for k in keys if any(k in r for r in rows)]
        if not panels:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(
            1, len(panels), figsize=(4 * len(panels), 3), squeeze=False
        )
        for ax, key in zip(axes[0], panels):
            pts = [
                (r["step"], r[key]) for r in rows if key in r and math.isfinite(r[key])
            ]
            if pts:
                ax.plot(*zip(*pts))
            ax.set_title(key)
            ax.set_xlabel("step")
            if key == "loss" and pts and min(v for _, v in pts) > 0:
                ax.set_yscale("log")
        fig.subplots_adjust(left=0.08, right=0.98, bottom=0.18, top=0.88, wspace=0.3)
        fig.savefig(os.path.join(self.workdir, "curves.png"), dpi=80)
        plt.close(fig)

    def close(self) -> None:
        if not self.enabled:
            return
        self._jsonl.close()
        self._log.close()
        self._tb.close()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """All rows of a metrics.jsonl file ([] if absent)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]

"""The evaluation harness: samples -> restorations -> metrics -> JSON lines, tables and montages.

    report = evaluate(samples, produce, metrics, "eval_out", run_config={...})

For each sample (`evaluate/datasets.py`) not yet recorded, `produce(sample, lq, gt)` returns the
images to score by name (for `unires eval`: "input", the degraded image at the ground truth's
size, and "restored"; the demo adds each single expert and the searched weights). Every image is
rounded to 8 bits, as it would be written, and scored (`evaluate/metrics.py`); the main output is
written to `images/<id>.png` and the row to `results.jsonl` (flushed and fsynced), in that order.

The output folder:
    run.json        what was evaluated (checkpoint, options, dataset, metrics); a rerun with
                    other settings into the same folder is refused
    results.jsonl   one JSON line per sample: id, degradation, metrics per output, details
    images/         the main output of every sample (8-bit PNG)
    summary.md/csv  means per degradation type and output (and over all samples), then any
                    published results given (`evaluate/published.py`)
    montages/       per degradation type, the best and worst samples by the main metric's gain
    errors.jsonl    samples that failed (retried by the next run)

Resuming: a rerun reads `results.jsonl` and computes only the samples it lacks; a line cut short
by a kill is dropped (its sample is redone), every complete line is kept.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from unires_jax.evaluate.datasets import Sample
from unires_jax.evaluate.metrics import HIGHER_IS_BETTER, Metrics
from unires_jax.restore import image_io
from unires_jax.restore.interface import ImageRestorer

RESULTS = "results.jsonl"
ERRORS = "errors.jsonl"
RUN = "run.json"
IMAGES = "images"
MONTAGES = "montages"
BASELINE = "input"


@dataclasses.dataclass
class Produced:
    """What a producer made for one sample.

    Attributes:
      images: output name -> `[H, W, 3]` float in [0, 1] at the ground truth's size; "input"
        (the degraded image itself) is the baseline the gains are measured from.
      details: JSON-ready facts recorded in the sample's row.
    """

    images: dict[str, np.ndarray]
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


Producer = Callable[[Sample, np.ndarray, "np.ndarray | None"], Produced]


class EvalError(ValueError):
    """An evaluation that cannot start (names what to change)."""


@dataclasses.dataclass
class EvalReport:
    """The rows of every sample recorded in the output folder, and what this run did."""

    output_dir: pathlib.Path
    rows: list[dict[str, Any]]
    computed: int
    reused: int
    failed: list[tuple[str, str]]
    seconds: float
    summary: list[dict[str, Any]]
    montages: list[pathlib.Path]

    def text(self) -> str:
        lines = [
            f"evaluated {len(self.rows)} sample(s) into {self.output_dir} in {self.seconds:.1f} s "
            f"({self.computed} computed, {self.reused} from an earlier run"
            + (f", {len(self.failed)} failed" if self.failed else "")
            + ")",
            format_markdown(self.summary),
        ]
        lines += [f"failed: {sample_id}: {error}" for sample_id, error in self.failed]
        return "\n".join(lines)


def evaluate(
    samples: Sequence[Sample],
    produce: Producer,
    metrics: Metrics,
    output_dir: str | os.PathLike,
    *,
    run_config: Mapping[str, Any],
    main_output: str = "restored",
    save_outputs: Sequence[str] = (),
    quantize_to_8_bits: bool = True,
    montage_count: int = 3,
    progress: bool | None = None,
    label: str = "unires eval",
    published: Sequence[Mapping[str, Any]] = (),
) -> EvalReport:
    """Evaluates every sample not yet recorded in `output_dir` (see the module docstring).

    Args:
      samples: the cases, ids unique.
      produce: makes the images of one sample.
      metrics: loaded metrics.
      output_dir: created if missing; may hold an earlier run of the same `run_config`.
      run_config: JSON-ready description of the evaluation (a rerun must give the same).
      main_output: the output written to images/ and ranked in the montages.
      save_outputs: other outputs also written to images/ (`image_path(..., output)`).
      quantize_to_8_bits: score the images as an 8-bit file holds them (the default: what a
        user gets); False scores the producer's floats (the demo measures the model itself).
      montage_count: best and worst samples per degradation type in each montage.
      progress: show a progress bar (None: on a terminal; elsewhere a line per sample).
      label: the progress bar's and error messages' prefix.
      published: summary rows of published results, appended to the summary as given.

    Raises:
      EvalError: repeated sample ids, or an output folder holding another evaluation.
    """
    from tqdm import tqdm

    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise EvalError("sample ids must be unique; the dataset repeats some")
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    _claim(
        output_dir,
        {
            **run_config,
            "metrics": list(metrics.names),
            "main": main_output,
            "quantize_to_8_bits": quantize_to_8_bits,
        },
    )
    done = read_rows(output_dir / RESULTS)
    t0 = time.perf_counter()
    failed, computed = [], 0
    todo = [s for s in samples if s.id not in done]
    lines = progress is None and not sys.stderr.isatty()
    with (
        open(output_dir / RESULTS, "a", encoding="utf-8") as results,
        tqdm(
            todo,
            unit="image",
            desc=label,
            file=sys.stderr,
            disable=None if progress is None else not progress,
        ) as bar,
    ):
        for sample in bar:
            bar.set_postfix_str(sample.id, refresh=False)
            try:
                row = _evaluate_one(
                    sample,
                    produce,
                    metrics,
                    output_dir,
                    (main_output, *save_outputs),
                    quantize_to_8_bits,
                )
            except Exception as e:  # noqa: BLE001 - one bad sample must not stop the others
                message = f"{type(e).__name__}: {e}"
                failed.append((sample.id, message))
                bar.write(f"{label}: error: {sample.id}: {message}", file=sys.stderr)
                _append(output_dir / ERRORS, {"id": sample.id, "error": message})
                continue
            _append_open(results, row)
            done[sample.id] = row
            computed += 1
            if lines:  # no progress bar (not a terminal): one line per sample instead
                print(
                    f"{label}: [{computed}/{len(todo)}] {sample.id} {_brief(row, main_output)}"
                    f" ({row['seconds']:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    rows = [done[s.id] for s in samples if s.id in done]
    summary = summarize(rows) + [dict(p) for p in published]
    write_summary(output_dir, summary)
    montages = write_montages(output_dir, rows, samples, main_output, montage_count)
    return EvalReport(
        output_dir,
        rows,
        computed,
        len(rows) - computed,
        failed,
        time.perf_counter() - t0,
        summary,
        montages,
    )


def restorer_producer(restorer: ImageRestorer, *, seed: int = 0) -> Producer:
    """The producer of `unires eval`: "input" (the LQ image, bicubic-upscaled to the ground
    truth's size for super-resolution samples) and "restored" (`restorer.restore`)."""
    from unires_jax.restore.upscale import upscale_input

    def produce(sample: Sample, lq: np.ndarray, gt: np.ndarray | None) -> Produced:
        restored = restorer.restore(lq, seed=seed, name=sample.id)
        if gt is not None and restored.pixels.shape != gt.shape:
            factor = gt.shape[0] // max(1, lq.shape[0])
            hint = (
                f"; the LQ image is {factor}x smaller: restore with --upscale {factor}"
                if factor > 1
                and gt.shape[:2] == (lq.shape[0] * factor, lq.shape[1] * factor)
                else ""
            )
            raise EvalError(
                f"the restored image is {restored.pixels.shape[1]}x{restored.pixels.shape[0]}, "
                f"the ground truth {gt.shape[1]}x{gt.shape[0]}{hint}"
            )
        factor = restored.pixels.shape[0] // lq.shape[0]
        baseline = lq if factor == 1 else upscale_input(lq, factor)
        details = {k: v for k, v in restored.details.items() if k != "timings"}
        return Produced({BASELINE: baseline, "restored": restored.pixels}, details)

    return produce


def _evaluate_one(
    sample, produce, metrics, output_dir, saved, quantized
) -> dict[str, Any]:
    t0 = time.perf_counter()
    lq, gt = sample.load()
    produced = produce(sample, lq, gt)
    names = list(produced.images)
    images = np.stack(
        [
            quantize(produced.images[n])
            if quantized
            else np.asarray(produced.images[n], np.float64)
            for n in names
        ]
    )
    scores, errors = metrics.compute(images, gt)
    for index, output in enumerate(saved):
        if output in produced.images:
            written = image_path(output_dir, sample.id, None if index == 0 else output)
            written.parent.mkdir(parents=True, exist_ok=True)
            pixels = _to_uint8(images[names.index(output)])
            image_io.write_atomic(written, image_io.write_png(pixels))
    return {
        "id": sample.id,
        "degradation": sample.degradation,
        "source": sample.source,
        "lq_size": list(lq.shape[:2]),
        "size": list(images.shape[1:3]),
        "seconds": time.perf_counter() - t0,
        "metrics": dict(zip(names, scores)),
        **({"metric_errors": errors} if errors else {}),
        "details": produced.details,
    }


def _brief(row: Mapping[str, Any], main_output: str) -> str:
    """The main output's scores of a row, short: "psnr 27.31 ssim 0.812"."""
    scores = row["metrics"].get(main_output, {})
    return " ".join(f"{k} {v:.4g}" for k, v in scores.items() if v is not None)


def quantize(image: np.ndarray) -> np.ndarray:
    """The float image as an 8-bit file holds it, back in [0, 1] (float64)."""
    return _to_uint8(image).astype(np.float64) / 255.0


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(image, np.float64) * 255.0), 0, 255).astype(
        np.uint8
    )


def image_path(
    output_dir: pathlib.Path, sample_id: str, output: str | None = None
) -> pathlib.Path:
    """Where a sample's main output is written, images/<id>.png (another output:
    images/<id>.<output>.png), with characters unsafe in file names replaced."""
    parts = [re.sub(r"[^A-Za-z0-9._-]", "_", p) for p in sample_id.split("/") if p]
    name = parts[-1] + (
        "" if output is None else "." + re.sub(r"[^A-Za-z0-9_-]", "_", output)
    )
    return output_dir / IMAGES / pathlib.Path(*parts[:-1], name + ".png")


# --- the JSON-lines record ---------------------------------------------------------------------------


def read_rows(path: pathlib.Path) -> dict[str, dict[str, Any]]:
    """The recorded rows by id. A last line cut short by a kill is removed from the file."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(
            path, "r+b"
        ) as f:  # drop the partial line, so appends start on a fresh one
            f.truncate(len(complete))
    rows = {}
    for number, line in enumerate(complete.decode("utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise EvalError(
                f"{path}: line {number} is not JSON; the file was edited or damaged. Remove that "
                "line (its sample is recomputed) or start a new --output."
            ) from None
        rows[row["id"]] = row
    return rows


def _append_open(f, row: Mapping[str, Any]) -> None:
    f.write(json.dumps(row, default=_json_default) + "\n")
    f.flush()
    os.fsync(f.fileno())


def _append(path: pathlib.Path, row: Mapping[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        _append_open(f, row)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pathlib.PurePath):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to results.jsonl")


def _claim(output_dir: pathlib.Path, config: Mapping[str, Any]) -> None:
    """Records the run's configuration, or checks it against the one already there."""
    path = output_dir / RUN
    wanted = json.loads(json.dumps(config, default=_json_default))
    if path.exists():
        stored = json.loads(path.read_text())
        if stored != wanted:
            changed = sorted(
                k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k)
            )
            raise EvalError(
                f"{output_dir} holds an evaluation with other settings (differing: "
                f"{', '.join(changed)}); resuming needs the same command. Use another --output."
            )
        return
    image_io.write_atomic(path, (json.dumps(wanted, indent=2) + "\n").encode())


# --- tables --------------------------------------------------------------------------------------------


def summarize(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Means per (degradation type, output) and over all rows: [{degradation, output, images,
    <column>: mean, ...}], in first-seen order, "all" last."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["degradation"], []).append(row)
    if len(groups) > 1:
        groups["all"] = list(rows)
    table = []
    for degradation, members in groups.items():
        outputs = list(dict.fromkeys(o for r in members for o in r["metrics"]))
        for output in outputs:
            scored = [r["metrics"][output] for r in members if output in r["metrics"]]
            entry: dict[str, Any] = {
                "degradation": degradation,
                "output": output,
                "images": len(scored),
            }
            for column in dict.fromkeys(c for s in scored for c in s):
                values = [s[column] for s in scored if _known(s.get(column))]
                entry[column] = float(np.mean(values)) if values else math.nan
            table.append(entry)
    return table


def _known(value) -> bool:
    return value is not None and math.isfinite(value)


def _columns(table: Sequence[Mapping[str, Any]]) -> list[str]:
    skip = {"degradation", "output", "images"}
    return list(dict.fromkeys(k for e in table for k in e if k not in skip))


def format_markdown(table: Sequence[Mapping[str, Any]]) -> str:
    """The summary as a Markdown table (an arrow says which way each column is better)."""
    columns = _columns(table)
    arrows = [f"{c} {'↑' if HIGHER_IS_BETTER.get(c, True) else '↓'}" for c in columns]
    lines = [
        "| degradation | output | images | " + " | ".join(arrows) + " |",
        "|---|---|---:|" + "---:|" * len(columns),
    ]
    for e in table:
        values = [_fmt(e.get(c, math.nan)) for c in columns]
        lines.append(
            f"| {e['degradation']} | {e['output']} | {e['images']} | "
            + " | ".join(values)
            + " |"
        )
    return "\n".join(lines)


def _fmt(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def write_summary(output_dir: pathlib.Path, table: Sequence[Mapping[str, Any]]) -> None:
    """summary.md, summary.csv and summary.json, each written atomically."""
    columns = _columns(table)
    md = "# Evaluation summary\n\n" + format_markdown(table) + "\n"
    csv_lines = [",".join(["degradation", "output", "images", *columns])]
    for e in table:
        cells = [_csv(e["degradation"]), e["output"], str(e["images"])]
        cells += [repr(float(e[c])) if c in e else "" for c in columns]
        csv_lines.append(",".join(cells))
    for name, text in (
        ("summary.md", md),
        ("summary.csv", "\n".join(csv_lines) + "\n"),
        ("summary.json", json.dumps(list(table), indent=1) + "\n"),
    ):
        image_io.write_atomic(output_dir / name, text.encode("utf-8"))


def _csv(text: str) -> str:
    return f'"{text}"' if any(c in text for c in ',"\n') else text


# --- montages ------------------------------------------------------------------------------------------


def ranking_column(rows: Sequence[Mapping[str, Any]], main_output: str) -> str | None:
    """The column montages rank by: PSNR when there is a reference, else the first one."""
    for row in rows:
        columns = list(row["metrics"].get(main_output, {}))
        if columns:
            return "psnr" if "psnr" in columns else columns[0]
    return None


def write_montages(
    output_dir: pathlib.Path,
    rows: Sequence[Mapping[str, Any]],
    samples: Sequence[Sample],
    main_output: str,
    count: int,
) -> list[pathlib.Path]:
    """Per degradation type, a PNG of the `count` best and worst samples by the gain of the
    ranking column from "input" to the main output: input | main output | ground truth."""
    column = ranking_column(rows, main_output)
    if column is None or count < 1:
        return []
    by_id = {s.id: s for s in samples}
    sign = 1.0 if HIGHER_IS_BETTER.get(column, True) else -1.0
    groups: dict[str, list[tuple[float, Mapping[str, Any]]]] = {}
    for row in rows:
        metrics = row["metrics"]
        if main_output not in metrics or row["id"] not in by_id:
            continue
        base, value = (
            metrics.get(BASELINE, {}).get(column, 0.0),
            metrics[main_output].get(column),
        )
        if not (_known(base) and _known(value)):
            continue
        gain = sign * (value - base)
        groups.setdefault(row["degradation"], []).append((gain, row))
    written = []
    for degradation, scored in groups.items():
        scored.sort(key=lambda item: -item[0] if math.isfinite(item[0]) else math.inf)
        picked = scored[:count] + [
            s for s in scored[-count:] if s not in scored[:count]
        ]
        name = re.sub(r"[^A-Za-z0-9._-]", "_", degradation)
        path = output_dir / MONTAGES / f"{name}.png"
        _montage(
            path, picked, by_id, output_dir, main_output, column, len(scored), count
        )
        written.append(path)
    return written


def _montage(
    path, picked, by_id, output_dir, main_output, column, total, count
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(picked), 3, figsize=(9, 3.1 * len(picked)), squeeze=False
    )
    for rank, (ax_row, (gain, row)) in enumerate(zip(axes, picked)):
        lq, gt = by_id[row["id"]].load()
        restored = image_io.read_image(
            image_path(output_dir, row["id"])
        ).pixels / np.float32(255)
        place = "best" if rank < min(count, total) else "worst"
        base = row["metrics"].get(BASELINE, {}).get(column)
        panels = (
            (
                _at(lq, restored.shape),
                f"input {column} {_fmt(base) if base is not None else ''}",
            ),
            (
                restored,
                f"{main_output}: {column} {_fmt(row['metrics'][main_output][column])} ({place})",
            ),
            (gt, f"ground truth: {row['id']}"),
        )
        for ax, (image, title) in zip(ax_row, panels):
            ax.axis("off")
            if image is not None:
                ax.imshow(np.clip(image, 0, 1))
            ax.set_title(title, fontsize=8)
    which = (
        f"all {total}" if total <= 2 * count else f"best and worst {count} of {total}"
    )
    fig.suptitle(f"{path.stem}: {which} by {column} gain over the input", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72)
    plt.close(fig)
    image_io.write_atomic(path, buffer.getvalue())


def _at(image: np.ndarray, shape) -> np.ndarray:
    """The LQ image shown at the output's size (nearest neighbour for a small SR input)."""
    h, w = shape[:2]
    if image.shape[:2] == (h, w):
        return image
    rows = np.arange(h) * image.shape[0] // h
    cols = np.arange(w) * image.shape[1] // w
    return image[rows][:, cols]

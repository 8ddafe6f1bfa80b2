"""Restoring many image files: outputs, per-file isolation, sidecars and a log (family-blind).

Inputs come from `restore.inputs.collect_inputs`. A file that cannot be read or restored is
reported (stderr, the log) and the others are still done; its output is never partially written.
Each output `<name>.<ext>` gets a JSON sidecar `<name>.json` (the input, the output, the
restorer's `describe()` and the restoration's `details`); every input adds one JSON line to
`restore_log.jsonl` in the output folder. Only the `ImageRestorer` interface is used, so every
model family goes through here unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import numpy as np

import unires_jax
from unires_jax.restore import image_io
from unires_jax.restore.inputs import InputFile, plan_outputs
from unires_jax.restore.interface import ImageRestorer

LOG_NAME = "restore_log.jsonl"


@dataclasses.dataclass
class ItemResult:
    """The outcome for one input (also its line in the log).

    `details` are the restoration's facts (the restorer's `Restored.details`)."""

    input: str
    status: str  # "ok" or "error"
    output: str | None = None
    sidecar: str | None = None
    error: str | None = None
    seconds: float = 0.0
    details: dict[str, Any] | None = None


@dataclasses.dataclass
class BatchReport:
    """All inputs' outcomes in input order."""

    output_dir: pathlib.Path
    results: list[ItemResult]
    seconds: float

    @property
    def failed(self) -> list[ItemResult]:
        return [r for r in self.results if r.status != "ok"]

    def summary(self) -> str:
        """A few human-readable lines: counts, time, failures and where the log is."""
        ok = len(self.results) - len(self.failed)
        lines = [
            f"restored {ok} of {len(self.results)} input(s) into {self.output_dir} "
            f"in {self.seconds:.1f} s"
            + (f"; {len(self.failed)} failed:" if self.failed else "")
        ]
        lines += [f"  {r.error}" for r in self.failed]
        lines.append(f"log: {self.output_dir / LOG_NAME}")
        return "\n".join(lines)


def restore_files(
    restorer: ImageRestorer,
    inputs: Sequence[InputFile],
    output_dir: str | pathlib.Path,
    *,
    seed: int = 0,
    output_format: str = "png",
    progress: bool | None = None,
    errors: TextIO | None = None,
) -> BatchReport:
    """Restores every input, writing outputs, sidecars and log lines into `output_dir`.

    Args:
      restorer: any family's `ImageRestorer` (`unires_jax.restore.load`).
      inputs: from `collect_inputs`.
      output_dir: created if missing.
      seed: sampling seed (the same for every image, so runs are reproducible).
      output_format: "png" or "same" (the input's format).
      progress: show a progress bar (None: only on a terminal).
      errors: where per-file errors are printed as they happen (default stderr).

    Returns:
      The outcome of every input; `failed` lists the ones with no output.
    """
    from tqdm import tqdm

    errors = errors or sys.stderr
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    suffixes = [
        image_io.output_suffix(
            image_io.sniff_format(item.path) if output_format == "same" else None,
            output_format,
        )
        for item in inputs
    ]
    outputs = plan_outputs(inputs, output_dir, suffixes)
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    described = restorer.describe()
    t_start = time.perf_counter()
    results = []
    with (
        open(output_dir / LOG_NAME, "a", encoding="utf-8") as log,
        tqdm(
            total=len(inputs),
            unit="image",
            file=sys.stderr,
            disable=None if progress is None else not progress,
        ) as bar,
    ):
        for item, out_path in zip(inputs, outputs):
            bar.set_postfix_str(item.path.name, refresh=False)
            result = _restore_one(
                restorer,
                described,
                item,
                out_path,
                seed=seed,
                output_format=output_format,
            )
            results.append(result)
            if result.status != "ok":
                bar.write(f"unires restore: error: {result.error}", file=errors)
            line = {"run_started": started, **dataclasses.asdict(result)}
            log.write(json.dumps(line, default=_json_default) + "\n")
            log.flush()
            bar.update()
    return BatchReport(output_dir, results, time.perf_counter() - t_start)


def _restore_one(
    restorer: ImageRestorer,
    described: dict[str, Any],
    item: InputFile,
    out_path: pathlib.Path,
    *,
    seed: int,
    output_format: str,
) -> ItemResult:
    """Reads, restores and writes one input; any failure becomes an "error" result."""
    t0 = time.perf_counter()
    result = ItemResult(input=str(item.path), status="error")
    try:
        image = image_io.read_image(item.path)
        t_read = time.perf_counter()
        restored = restorer.restore(image.pixels, seed=seed, name=str(item.path))
        t_restored = time.perf_counter()
        encoded = image_io.encode_output(
            restored.pixels, image, output_format, upscale=restorer.scale
        )
        sidecar_path = out_path.with_suffix(".json")
        details = dict(restored.details)
        sidecar = {
            "input": str(pathlib.Path(image.info.path).resolve()),
            "output": out_path.name,
            "input_image": image.info.to_json(),
            "output_image": encoded.to_json(),
            **described,
            **details,
            "seed": seed,
            "unires_jax_version": unires_jax.__version__,
            "created": datetime.datetime.now(datetime.UTC).isoformat(
                timespec="seconds"
            ),
            "timings": {
                "read_seconds": t_read - t0,
                "restore_seconds": t_restored - t_read,
                **details.get("timings", {}),
            },
        }
        out_path.parent.mkdir(parents=True, exist_ok=True)
        after_image = None
        if restored.check_output is not None:

            def after_image():
                sidecar.update(restored.check_output(out_path))

        _write_pair(out_path, encoded.data, sidecar_path, sidecar, t0, after_image)
    except image_io.ImageReadError as e:
        result.error = str(e)
    except Exception as e:  # noqa: BLE001 - one bad input must not stop the others
        result.error = f"{item.path}: {type(e).__name__}: {e}"
    else:
        result.status = "ok"
        result.output, result.sidecar = str(out_path), str(sidecar_path)
        result.details = {k: v for k, v in details.items() if k != "timings"}
    result.seconds = time.perf_counter() - t0
    return result


def _write_pair(
    image_path, image_bytes, sidecar_path, sidecar, t0, after_image=None
) -> None:
    """Writes the image, then its sidecar, each atomically; removes the image if the sidecar
    cannot be written (or `after_image`, run in between, fails), so no output exists without
    its sidecar."""
    t_write = time.perf_counter()
    image_io.write_atomic(image_path, image_bytes)
    try:
        if after_image is not None:
            after_image()
        sidecar["timings"]["write_seconds"] = time.perf_counter() - t_write
        sidecar["timings"]["total_seconds"] = time.perf_counter() - t0
        text = json.dumps(sidecar, indent=2, default=_json_default) + "\n"
        image_io.write_atomic(sidecar_path, text.encode("utf-8"))
    except BaseException:
        image_path.unlink(missing_ok=True)
        raise


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pathlib.PurePath, type)):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to the sidecar")

"""Restoring many image files: inputs, output names, per-file isolation, sidecars and a log.

Inputs are files or folders. Folders are searched recursively; every regular file in them whose
name does not start with "." is an input (so a stray non-image is reported, never silently
skipped), and outputs mirror the sub-folders below the given folder. A file that cannot be read
or restored is reported (stderr, the log) and the others are still done; its output is never
partially written. Each output `<name>.<ext>` gets a JSON sidecar `<name>.json`; every input
adds one JSON line to `restore_log.jsonl` in the output folder.

The weights for each image come from a `WeightChooser`: `fixed_weights` uses the same weights
for every image (a preset or `--weights`); a per-image weight search plugs in here too.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

import numpy as np

import unires_jax
from unires_jax.restore import image_io
from unires_jax.restore.restorer import Restorer

LOG_NAME = "restore_log.jsonl"


@dataclasses.dataclass(frozen=True)
class InputFile:
    """One input and where its output goes.

    Attributes:
      path: the input file (may not exist or not be an image: reading reports it).
      relative: output location relative to the output folder, without suffix.
    """

    path: pathlib.Path
    relative: pathlib.PurePath


@dataclasses.dataclass(frozen=True)
class WeightChoice:
    """The mixing weights for one image.

    Attributes:
      weights: weight by expert name (experts not named get 0).
      source: where they come from, e.g. "preset most-popular" or "--weights".
      details: extra facts for the sidecar (e.g. a search's scores).
      score_output: scores the written output file (its path) with the chooser's quality
        model, recorded as `weights_details.output_score` (None, with `output_score_error`,
        when it fails: the output is kept). A search scores the restored image
        before it is rounded to the file's bit depth (and compressed, for JPEG and WebP), and
        quality models like NIQE move by more than their differences between good candidates
        under that rounding (BENCHMARKS.md, #8), so the sidecar carries both.
    """

    weights: Mapping[str, float]
    source: str
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    score_output: Callable[[pathlib.Path], float] | None = None


# Chooses the weights for one image; may run the restorer (a weight search does).
WeightChooser = Callable[[image_io.LoadedImage, Restorer], WeightChoice]


def fixed_weights(weights: Mapping[str, float], source: str) -> WeightChooser:
    """A chooser giving every image the same weights."""
    choice = WeightChoice(dict(weights), source)
    return lambda image, restorer: choice


@dataclasses.dataclass
class ItemResult:
    """The outcome for one input (also its line in the log)."""

    input: str
    status: str  # "ok" or "error"
    output: str | None = None
    sidecar: str | None = None
    error: str | None = None
    seconds: float = 0.0
    weights: dict[str, float] | None = None
    unet_evaluations: int = 0


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


# --- inputs and output names -----------------------------------------------------------------


def collect_inputs(
    paths: Iterable[str | os.PathLike], *, exclude: Sequence[str | os.PathLike] = ()
) -> list[InputFile]:
    """Expands files and folders into inputs, in the given order (folders sorted, recursive).

    A file reached twice (named, and inside a named folder) is an input once.

    Args:
      paths: files or folders. Paths that do not exist are kept, so reading reports them.
      exclude: folders not to descend into (e.g. the output folder inside an input folder).
    """
    skip = {pathlib.Path(p).resolve() for p in exclude}
    out, seen = [], set()

    def add(file: pathlib.Path, relative: pathlib.PurePath) -> None:
        key = file.resolve()
        if key not in seen:
            seen.add(key)
            out.append(InputFile(file, relative))

    for path in map(pathlib.Path, paths):
        if not path.is_dir():
            add(path, pathlib.PurePath(path.stem))
            continue
        for root, dirs, files in os.walk(path):
            root = pathlib.Path(root)
            dirs[:] = sorted(
                d
                for d in dirs
                if not d.startswith(".") and (root / d).resolve() not in skip
            )
            for name in sorted(f for f in files if not f.startswith(".")):
                if (root / name).is_file():
                    add(root / name, (root / name).relative_to(path).with_suffix(""))
    return out


def plan_outputs(
    inputs: Sequence[InputFile], output_dir: pathlib.Path, suffixes: Sequence[str]
) -> list[pathlib.Path]:
    """Output paths, one per input, no two sharing a name (nor a sidecar).

    Names that collide (same stem from two folders, or `a.png` and `a.jpg`) get `_2`, `_3`, ...
    in input order; names compare case-insensitively so case-insensitive file systems are safe.
    """
    taken: set[str] = set()
    out = []
    for item, suffix in zip(inputs, suffixes):
        stem, n = item.relative, 1
        while str(stem).lower() in taken:
            n += 1
            stem = item.relative.with_name(f"{item.relative.name}_{n}")
        taken.add(str(stem).lower())
        out.append(output_dir / stem.parent / (stem.name + suffix))
    return out


# --- restoring -------------------------------------------------------------------------------


def restore_files(
    restorer: Restorer,
    inputs: Sequence[InputFile],
    output_dir: str | os.PathLike,
    *,
    choose_weights: WeightChooser,
    seed: int = 0,
    output_format: str = "png",
    checkpoint: str | None = None,
    progress: bool | None = None,
    errors: TextIO | None = None,
) -> BatchReport:
    """Restores every input, writing outputs, sidecars and log lines into `output_dir`.

    Args:
      restorer: the loaded model and settings (steps, tiling, colour fix, ...).
      inputs: from `collect_inputs`.
      output_dir: created if missing.
      choose_weights: weights for each image (see `fixed_weights`).
      seed: sampling seed (the same for every image, so runs are reproducible).
      output_format: "png" or "same" (the input's format).
      checkpoint: recorded in the sidecars (None: the embedded default model).
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
                item,
                out_path,
                choose_weights=choose_weights,
                seed=seed,
                output_format=output_format,
                checkpoint=checkpoint,
            )
            results.append(result)
            if result.status != "ok":
                bar.write(f"unires restore: error: {result.error}", file=errors)
            line = {"run_started": started, **dataclasses.asdict(result)}
            log.write(json.dumps(line) + "\n")
            log.flush()
            bar.update()
    return BatchReport(output_dir, results, time.perf_counter() - t_start)


def _restore_one(
    restorer: Restorer,
    item: InputFile,
    out_path: pathlib.Path,
    *,
    choose_weights: WeightChooser,
    seed: int,
    output_format: str,
    checkpoint: str | None,
) -> ItemResult:
    """Reads, restores and writes one input; any failure becomes an "error" result."""
    t0 = time.perf_counter()
    result = ItemResult(input=str(item.path), status="error")
    try:
        image = image_io.read_image(item.path)
        t_read = time.perf_counter()
        choice = choose_weights(image, restorer)
        weights = _weights_by_name(restorer, choice.weights)
        restored, timing = restorer.timed_restore(image.pixels, weights, seed=seed)
        t_restored = time.perf_counter()
        encoded = image_io.encode_output(
            restored, image, output_format, upscale=restorer.settings.upscale
        )
        sidecar_path = out_path.with_suffix(".json")
        sidecar = _sidecar(
            restorer,
            image,
            encoded,
            choice,
            weights,
            out_path,
            seed=seed,
            checkpoint=checkpoint,
        )
        sidecar["timings"] = {
            "read_seconds": t_read - t0,
            "restore_seconds": timing["seconds"],
            "choose_and_restore_seconds": t_restored - t_read,
        }
        sidecar["unet_evaluations"] = timing["unet_evaluations"]
        if "deblur" in timing:
            sidecar["deblur"] = timing["deblur"]
        out_path.parent.mkdir(parents=True, exist_ok=True)
        after_image = None
        if choice.score_output is not None:

            def after_image():
                details = sidecar["weights_details"]
                try:
                    details["output_score"] = float(choice.score_output(out_path))
                except Exception as e:  # noqa: BLE001 - the restored image is still good
                    details["output_score"] = None
                    details["output_score_error"] = f"{type(e).__name__}: {e}"

        _write_pair(out_path, encoded.data, sidecar_path, sidecar, t0, after_image)
    except image_io.ImageReadError as e:
        result.error = str(e)
    except Exception as e:  # noqa: BLE001 - one bad input must not stop the others
        result.error = f"{item.path}: {type(e).__name__}: {e}"
    else:
        result.status = "ok"
        result.output, result.sidecar = str(out_path), str(sidecar_path)
        result.weights, result.unet_evaluations = weights, timing["unet_evaluations"]
    result.seconds = time.perf_counter() - t0
    return result


def _weights_by_name(restorer: Restorer, weights: Mapping[str, float]) -> dict[str, float]:
    """Every expert's weight by name, as given (validated first: raises WeightError)."""
    restorer.weights_matrix(dict(weights))
    return {name: float(weights.get(name, 0.0)) for name in restorer.experts}


def _sidecar(
    restorer, image, encoded, choice, weights, out_path, *, seed, checkpoint
) -> dict[str, Any]:
    return {
        "input": str(pathlib.Path(image.info.path).resolve()),
        "output": out_path.name,
        "input_image": image.info.to_json(),
        "output_image": encoded.to_json(),
        "weights": weights,
        "weights_source": choice.source,
        "weights_details": dict(choice.details),
        "experts": restorer.experts,
        "steps": restorer.settings.steps,
        "seed": seed,
        "settings": dataclasses.asdict(restorer.settings),
        "checkpoint": str(pathlib.Path(checkpoint).resolve())
        if checkpoint
        else "embedded default",
        "unet": restorer.unet_record,
        "unires_jax_version": unires_jax.__version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


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

"""Restoring many image files: outputs, per-file isolation, sidecars and a log (family-blind).

Inputs come from `restore.inputs.collect_inputs`; `plan` decides every output name and checks,
before any model loads, that no output would replace an input or a file this project did not
write. A file that cannot be read or restored is reported (stderr, the log) and the others are
still done; its output is never partially written. Each output `<name>.<ext>` gets a JSON sidecar
`<name>.json` (the input, the output, the restorer's `describe()` and the restoration's
`details`); every input adds one JSON line to `restore_log.jsonl` in the output folder. Only the
`ImageRestorer` interface is used, so every model family goes through here unchanged.

Writing one output: a sidecar saying "writing" first, then the image, then the complete sidecar
(with the image's SHA-256), each atomically. So after a kill every file in the output folder is
either complete or recognisably ours and unfinished, and a rerun of the same command skips the
complete outputs, redoes the unfinished ones and removes temporary files a killed run left.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import pathlib
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import numpy as np

import unires_jax
from unires_jax.restore import image_io
from unires_jax.restore.inputs import InputFile, plan_outputs
from unires_jax.restore.interface import ImageRestorer

LOG_NAME = "restore_log.jsonl"
# Sidecar "status" values: written before the image, and once the image is complete.
WRITING, COMPLETE = "writing", "complete"


class PlanError(ValueError):
    """Outputs that would replace an input or a file not written by this project, or an earlier
    run's outputs made with other settings (the message names the file and what to do)."""


@dataclasses.dataclass
class Job:
    """One input, where its output and sidecar go, and an earlier run's complete sidecar."""

    item: InputFile
    output: pathlib.Path
    earlier: dict[str, Any] | None = None

    @property
    def sidecar(self) -> pathlib.Path:
        return self.output.with_suffix(".json")


@dataclasses.dataclass
class Plan:
    """What a batch will write (from `plan`)."""

    output_dir: pathlib.Path
    jobs: list[Job]
    output_format: str
    overwrite: bool

    def check_earlier(self, described: Mapping[str, Any], seed: int) -> None:
        """Raises PlanError when an earlier run's complete outputs were made with another
        model, other settings or another seed (without `overwrite`: skipping them would mix two
        configurations in one folder)."""
        for job in self.jobs:
            if job.earlier is None or self.overwrite:
                continue
            changed = [
                k
                for k, v in {**described, "seed": seed}.items()
                if job.earlier.get(k) != _json(v)
            ]
            if changed:
                raise PlanError(
                    f"{job.output} was restored by an earlier run with other {', '.join(changed)}; "
                    "rerun with those settings to resume it, or add --overwrite to replace it, or "
                    "choose another --output"
                )


@dataclasses.dataclass
class ItemResult:
    """The outcome for one input (also its line in the log).

    `status`: "ok", "skipped" (complete from an earlier run), "error" or "interrupted".
    `details` are the restoration's facts (the restorer's `Restored.details`)."""

    input: str
    status: str
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
    interrupted: bool = False
    removed_temporaries: int = 0

    @property
    def failed(self) -> list[ItemResult]:
        return [r for r in self.results if r.status == "error"]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    def summary(self) -> str:
        """A few human-readable lines: counts, time, failures and where the log is."""
        done = self.count("ok") + self.count("skipped")
        parts = (
            [f"{self.count('skipped')} complete from an earlier run"]
            if self.count("skipped")
            else []
        )
        if self.interrupted:
            parts.append(f"interrupted, {self.count('interrupted')} not started")
        if self.failed:
            parts.append(f"{len(self.failed)} failed:")
        lines = [
            f"restored {done} of {len(self.results)} input(s) into {self.output_dir} in "
            f"{self.seconds:.1f} s" + (f" ({'; '.join(parts)})" if parts else "")
        ]
        lines += [f"  {r.error}" for r in self.failed]
        if self.interrupted:
            lines.append(
                "rerun the same command to finish: complete outputs are kept and skipped"
            )
        lines.append(f"log: {self.output_dir / LOG_NAME}")
        return "\n".join(lines)


# --- planning (no model needed) --------------------------------------------------------------------


def plan(
    inputs: Sequence[InputFile],
    output_dir: str | pathlib.Path,
    *,
    output_format: str = "png",
    name_suffix: str = "",
    overwrite: bool = False,
) -> Plan:
    """Names every output and checks that writing them loses nothing.

    Args:
      inputs: from `collect_inputs`.
      output_dir: where outputs go (need not exist).
      output_format: "png" or "same" (the input's format).
      name_suffix: added to every output name (e.g. "_restored"), so outputs can go into the
        inputs' own folder without replacing them.
      overwrite: replace existing files that this project did not write, and complete outputs of
        an earlier run (default: refuse the first and skip the second).

    Raises:
      PlanError: an output (or its sidecar) would replace an input file, which is refused even
        with `overwrite`; or an existing file that is not an output of an earlier run for the
        same input, without `overwrite`.
    """
    output_dir = pathlib.Path(output_dir)
    suffixes = [
        image_io.output_suffix(
            image_io.sniff_format(item.path) if output_format == "same" else None,
            output_format,
        )
        for item in inputs
    ]
    outputs = plan_outputs(inputs, output_dir, suffixes, name_suffix=name_suffix)
    by_input = {_key(item.path): item for item in inputs}
    jobs = []
    for item, output in zip(inputs, outputs):
        job = Job(item, output)
        for target in (job.output, job.sidecar):
            if _key(target) in by_input:
                raise PlanError(
                    f"writing {target} would replace the input {by_input[_key(target)].path}; "
                    "choose an --output folder that holds no inputs, or add --suffix (e.g. "
                    "--suffix _restored) so outputs get other names"
                )
        job.earlier = _earlier_output(job, overwrite)
        jobs.append(job)
    return Plan(output_dir, jobs, output_format, overwrite)


def _key(path: pathlib.Path) -> str:
    # Case-insensitive: on such file systems `A.png` and `a.png` are one file.
    return str(pathlib.Path(path).resolve()).lower()


def _earlier_output(job: Job, overwrite: bool) -> dict[str, Any] | None:
    """An earlier run's complete sidecar for this job (to skip it), None (nothing there, or an
    unfinished output of ours, which is redone), or PlanError for a file that is not ours."""
    exists = [p for p in (job.output, job.sidecar) if p.exists()]
    if not exists:
        return None
    sidecar = _read_sidecar(job.sidecar)
    ours = (
        sidecar is not None
        and sidecar.get("output") == job.output.name
        and sidecar.get("input") == str(job.item.path.resolve())
    )
    if ours and sidecar.get("status") == COMPLETE and _intact(job.output, sidecar):
        return sidecar
    if ours or overwrite:
        return None  # unfinished (a kill between the files) or damaged: done again
    raise PlanError(
        f"{exists[0]} exists and is not an output of an earlier `unires restore` of "
        f"{job.item.path}; add --overwrite to replace it, or choose another --output"
    )


def _read_sidecar(path: pathlib.Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _intact(image: pathlib.Path, sidecar: Mapping[str, Any]) -> bool:
    try:
        return hashlib.sha256(image.read_bytes()).hexdigest() == sidecar.get(
            "output_sha256"
        )
    except OSError:
        return False


# --- restoring ---------------------------------------------------------------------------------------


def restore_files(
    restorer: ImageRestorer,
    batch: Plan,
    *,
    seed: int = 0,
    progress: bool | None = None,
    errors: TextIO | None = None,
) -> BatchReport:
    """Restores every planned input, writing outputs, sidecars and log lines.

    Complete outputs of an earlier run are skipped (unless the plan overwrites) and temporary
    files a killed run left in the output folder are removed first. A KeyboardInterrupt (SIGINT,
    or SIGTERM where the caller maps it so) abandons the current image (nothing of it is left)
    and returns the report so far, with `interrupted` set.

    Args:
      restorer: any family's `ImageRestorer` (`unires_jax.restore.load`).
      batch: from `plan`; `batch.check_earlier` is applied here too.
      seed: sampling seed (the same for every image, so runs are reproducible).
      progress: show a progress bar (None: only on a terminal).
      errors: where per-file errors are printed as they happen (default stderr).

    Returns:
      The outcome of every input; `failed` lists the ones with no output.
    """
    from tqdm import tqdm

    errors = errors or sys.stderr
    described = restorer.describe()
    batch.check_earlier(described, seed)
    output_dir = batch.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    removed = image_io.remove_stale_temporaries(output_dir)
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    t_start = time.perf_counter()
    results: list[ItemResult] = []
    interrupted = False
    with (
        open(output_dir / LOG_NAME, "a", encoding="utf-8") as log,
        tqdm(
            total=len(batch.jobs),
            unit="image",
            file=sys.stderr,
            disable=None if progress is None else not progress,
        ) as bar,
    ):
        for job in batch.jobs:
            if interrupted:
                results.append(ItemResult(str(job.item.path), "interrupted"))
                continue
            bar.set_postfix_str(job.item.path.name, refresh=False)
            if job.earlier is not None and not batch.overwrite:
                result = ItemResult(
                    str(job.item.path), "skipped", str(job.output), str(job.sidecar)
                )
            else:
                try:
                    result = _restore_one(
                        restorer,
                        described,
                        job,
                        seed=seed,
                        output_format=batch.output_format,
                    )
                except KeyboardInterrupt:
                    interrupted = True
                    results.append(ItemResult(str(job.item.path), "interrupted"))
                    continue
            results.append(result)
            if result.status == "error":
                bar.write(f"unires restore: error: {result.error}", file=errors)
            line = {"run_started": started, **dataclasses.asdict(result)}
            log.write(json.dumps(line, default=_json_default) + "\n")
            log.flush()
            bar.update()
    return BatchReport(
        output_dir, results, time.perf_counter() - t_start, interrupted, len(removed)
    )


class NonFiniteOutputError(ValueError):
    """A restoration with NaN or infinite values (nothing is written for it)."""


def _restore_one(
    restorer: ImageRestorer,
    described: dict[str, Any],
    job: Job,
    *,
    seed: int,
    output_format: str,
) -> ItemResult:
    """Reads, restores and writes one input; any failure becomes an "error" result."""
    t0 = time.perf_counter()
    item, out_path = job.item, job.output
    result = ItemResult(input=str(item.path), status="error")
    try:
        image = image_io.read_image(item.path)
        t_read = time.perf_counter()
        restored = restorer.restore(image.pixels, seed=seed, name=str(item.path))
        t_restored = time.perf_counter()
        pixels = np.asarray(restored.pixels)
        if not np.all(np.isfinite(pixels)):
            raise NonFiniteOutputError(
                f"{np.count_nonzero(~np.isfinite(pixels))} of the restored values are NaN or "
                "infinite (damaged weights or an unstable setting); nothing was written"
            )
        encoded = image_io.encode_output(
            pixels, image, output_format, upscale=restorer.scale
        )
        details = dict(restored.details)
        sidecar = {
            "status": COMPLETE,
            "input": str(pathlib.Path(image.info.path).resolve()),
            "output": out_path.name,
            "output_sha256": hashlib.sha256(encoded.data).hexdigest(),
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

        _write_pair(out_path, encoded.data, job.sidecar, sidecar, t0, after_image)
    except image_io.ImageReadError as e:
        result.error = str(e)
    except Exception as e:  # noqa: BLE001 - one bad input must not stop the others
        result.error = f"{item.path}: {type(e).__name__}: {e}"
    else:
        result.status = "ok"
        result.output, result.sidecar = str(out_path), str(job.sidecar)
        result.details = {k: v for k, v in details.items() if k != "timings"}
    result.seconds = time.perf_counter() - t0
    return result


def _write_pair(
    image_path, image_bytes, sidecar_path, sidecar, t0, after_image=None
) -> None:
    """Writes a "writing" sidecar, the image, then the complete sidecar, each atomically; on any
    failure (or an interrupt) removes both, so no output exists without its complete sidecar,
    and a kill leaves only files a rerun recognises as unfinished."""
    t_write = time.perf_counter()
    pending = {
        "status": WRITING,
        "input": sidecar["input"],
        "output": sidecar["output"],
    }
    try:
        image_io.write_atomic(
            sidecar_path, (json.dumps(pending) + "\n").encode("utf-8")
        )
        image_io.write_atomic(image_path, image_bytes)
        if after_image is not None:
            after_image()
        sidecar["timings"]["write_seconds"] = time.perf_counter() - t_write
        sidecar["timings"]["total_seconds"] = time.perf_counter() - t0
        text = json.dumps(sidecar, indent=2, default=_json_default) + "\n"
        image_io.write_atomic(sidecar_path, text.encode("utf-8"))
    except BaseException:
        image_path.unlink(missing_ok=True)
        sidecar_path.unlink(missing_ok=True)
        raise


def _json(value: Any) -> Any:
    """`value` as it reads back from a sidecar (tuples become lists, and so on)."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pathlib.PurePath, type)):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to the sidecar")

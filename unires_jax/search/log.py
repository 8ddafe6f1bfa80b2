"""Resumable JSON-lines log of scored weight candidates, one file per image.

Every scored candidate is one line, written with flush + fsync before the search moves on, so a
killed run loses at most the batch in flight. A rerun reads the file and skips every candidate
whose key (image hash, seed, steps, stage, run fingerprint, weights) is already there. A torn
last line (the process died mid-write) is ignored.

Line kinds:
  {"kind": "image", "image": HASH, "shape": [H, W], "path": ..., "features": {...}}
  {"kind": "candidate", "image": HASH, "seed": S, "steps": N, "stage": n, "run": FINGERPRINT,
   "quality": NAME, "strategy": NAME, "weights": {expert: w}, "score": Q, "objective": O}
`stage` is the number of DDIM steps run before scoring: `steps` for a finished candidate, fewer
for the decoded x0 prediction that successive halving scores, and 0 for the image decoded from
the weighted sum of the finished single experts' latents (halving's "mixture" first round).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

# Weights are compared after rounding to this many decimals (grid values are exact decimals).
WEIGHT_DECIMALS = 6


def image_hash(image: np.ndarray) -> str:
    """A short content hash of an image array (shape, dtype and bytes)."""
    array = np.ascontiguousarray(image)
    h = hashlib.sha256()
    h.update(f"{array.shape}|{array.dtype.str}|".encode())
    h.update(array.tobytes())
    return h.hexdigest()[:16]


def weights_key(weights: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    """Canonical form of a weight dict: sorted nonzero (name, rounded value) pairs."""
    items = ((n, round(float(w), WEIGHT_DECIMALS)) for n, w in weights.items())
    return tuple(sorted((n, w + 0.0) for n, w in items if w != 0))


def candidate_key(
    image: str,
    seed: int,
    steps: int,
    stage: int,
    run: str,
    weights: Mapping[str, float],
) -> tuple:
    """The identity of one scored candidate; equal keys mean the same sample and score."""
    return (image, int(seed), int(steps), int(stage), run, weights_key(weights))


def weights_dict(vector: Sequence[float], experts: Sequence[str]) -> dict[str, float]:
    """`[K]` vector -> {expert: weight} with the nonzero weights, rounded for readability."""
    return {
        name: round(float(w), WEIGHT_DECIMALS) + 0.0
        for name, w in zip(experts, vector)
        if round(float(w), WEIGHT_DECIMALS) != 0
    }


class CandidateLog:
    """Append-only JSON-lines file of scored candidates with an index of what is done."""

    def __init__(self, path: str | pathlib.Path):
        self.path = pathlib.Path(path)
        self._done: dict[tuple, dict[str, Any]] = {}
        self._images: dict[str, dict[str, Any]] = {}
        self.torn_lines = 0
        if self.path.exists():
            self._read()

    def _read(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                # Only the last line can be torn by a kill; anything else is real damage.
                if number >= len(lines) - 1:
                    self.torn_lines += 1
                    continue
                raise ValueError(
                    f"{self.path}:{number}: not a JSON line; the search log is damaged. "
                    "Delete the line (or the file, to start the image over)."
                ) from None
            self._index(record)

    def _index(self, record: dict[str, Any]) -> None:
        if record.get("kind") == "image":
            self._images[record["image"]] = record
        elif record.get("kind") == "candidate":
            key = candidate_key(
                record["image"],
                record["seed"],
                record["steps"],
                record["stage"],
                record["run"],
                record["weights"],
            )
            self._done[key] = record

    def _write(self, records: Iterable[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        if not text:
            return
        # A torn last line (a kill mid-write) would glue onto the next record: cut it off.
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "r+b") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.seek(0)
                    f.truncate(f.read().rfind(b"\n") + 1)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def add_image(self, record: dict[str, Any]) -> None:
        """Records the image's metadata (hash, shape, path, features) once."""
        record = {"kind": "image", **record}
        if record["image"] in self._images:
            return
        self._write([record])
        self._images[record["image"]] = record

    def add_candidates(self, records: Sequence[dict[str, Any]]) -> None:
        """Appends scored candidates (each line flushed and fsynced before returning)."""
        records = [{"kind": "candidate", **r} for r in records]
        for record in records:
            self._write([record])
            self._index(record)

    def lookup(self, key: tuple) -> dict[str, Any] | None:
        """The logged record for a candidate key, or None."""
        return self._done.get(key)

    def candidates(self) -> list[dict[str, Any]]:
        """All logged candidate records, in file order."""
        return list(self._done.values())

    def images(self) -> dict[str, dict[str, Any]]:
        """Image records by hash."""
        return dict(self._images)


def read_logs(folder: str | pathlib.Path) -> list[CandidateLog]:
    """Every `*.jsonl` search log in a folder (sorted by name)."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of search logs (*.jsonl)")
    return [CandidateLog(p) for p in sorted(folder.glob("*.jsonl"))]


def best_per_run(
    logs: Sequence[CandidateLog],
    *,
    strategies: Sequence[str] | None = ("exhaustive",),
    quality: str | None = None,
    min_candidates: int = 1,
) -> list[tuple[dict[str, Any], dict[str, Any] | None, int]]:
    """The best finished candidate of every (image, run, seed, steps) group in the logs.

    Args:
      logs: candidate logs.
      strategies: only records written by these strategies (None: all).
      quality: only records scored with this quality model (None: all).
      min_candidates: skip groups with fewer finished candidates (e.g. an interrupted search).

    Returns:
      (best record, the image's record or None, finished candidates in the group) per group.
    """
    out = []
    for log in logs:
        groups: dict[tuple, list[dict[str, Any]]] = {}
        for r in log.candidates():
            if r["stage"] != r["steps"]:
                continue
            if strategies is not None and r.get("strategy") not in strategies:
                continue
            if quality is not None and r.get("quality") != quality:
                continue
            groups.setdefault((r["image"], r["run"], r["seed"], r["steps"]), []).append(
                r
            )
        images = log.images()
        for (image, *_), records in groups.items():
            if len(records) < min_candidates:
                continue
            finite = [r for r in records if np.isfinite(r["objective"])]
            if finite:
                best = max(finite, key=lambda r: r["objective"])
                out.append((best, images.get(image), len(records)))
    return out

"""PNG plots of one image's quality landscape over the weights (as the paper's Fig. 11).

- `*_pairs.png`: for each pair of experts, Q along the line that trades weight between them
  (the candidates whose only nonzero weights are that pair, w_a + w_b = 1).
- `*_marginals.png`: for each expert, the best Q among candidates with each value of its weight.
- `*_ranked.png`: all finished candidates' Q, best first, the top ones labelled.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend switch).
"""

from __future__ import annotations

import itertools
import math
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _label(weights: dict[str, float]) -> str:
    return ", ".join(f"{n}={w:g}" for n, w in weights.items())


def _finished(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["stage"] == r["steps"] and np.isfinite(r["score"])]


def _save(fig: Figure, path: pathlib.Path) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def plot_pairs(
    records: Sequence[dict[str, Any]],
    experts: Sequence[str],
    path: str | pathlib.Path,
    *,
    quality: str,
    higher_is_better: bool,
) -> pathlib.Path:
    """Q along w_a + w_b = 1 for every pair of experts (a panel per pair)."""
    records = _finished(records)
    pairs = list(itertools.combinations(experts, 2))
    cols = min(5, len(pairs))
    rows = math.ceil(len(pairs) / cols)
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    pick = max if higher_is_better else min
    for i, (a, b) in enumerate(pairs):
        ax = fig.add_subplot(rows, cols, i + 1)
        line = sorted(
            (r["weights"].get(a, 0.0), r["score"])
            for r in records
            if set(r["weights"]) <= {a, b}
        )
        if line:
            x, y = zip(*line)
            ax.plot(x, y, "o-", ms=3)
            bx, by = pick(line, key=lambda p: p[1])
            ax.plot([bx], [by], "r*", ms=9)
        else:
            ax.text(
                0.5,
                0.5,
                "not sampled",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        ax.set_title(f"{a} vs {b}", fontsize=9)
        ax.set_xlabel(f"w_{a}  (w_{b} = 1 - w_{a})", fontsize=8)
        ax.tick_params(labelsize=7)
        if i % cols == 0:
            ax.set_ylabel(quality, fontsize=8)
    arrow = "higher" if higher_is_better else "lower"
    fig.suptitle(
        f"{quality} ({arrow} is better) trading weight between two experts", fontsize=10
    )
    return _save(fig, pathlib.Path(path))


def plot_marginals(
    records: Sequence[dict[str, Any]],
    experts: Sequence[str],
    path: str | pathlib.Path,
    *,
    quality: str,
    higher_is_better: bool,
) -> pathlib.Path:
    """For each expert, the best Q over candidates with each value of its weight."""
    records = _finished(records)
    cols = min(3, len(experts))
    rows = math.ceil(len(experts) / cols)
    fig = Figure(figsize=(3.6 * cols, 2.6 * rows), layout="constrained")
    pick = max if higher_is_better else min
    for i, name in enumerate(experts):
        ax = fig.add_subplot(rows, cols, i + 1)
        best: dict[float, float] = {}
        for r in records:
            w = r["weights"].get(name, 0.0)
            best[w] = pick(best.get(w, r["score"]), r["score"])
        if best:
            x = sorted(best)
            ax.plot(x, [best[v] for v in x], "o-", ms=3)
        ax.set_title(f"best {quality} per w_{name}", fontsize=9)
        ax.set_xlabel(f"w_{name}", fontsize=8)
        ax.tick_params(labelsize=7)
    arrow = "higher" if higher_is_better else "lower"
    fig.suptitle(
        f"{quality} ({arrow} is better), best over the other weights", fontsize=10
    )
    return _save(fig, pathlib.Path(path))


def plot_ranked(
    records: Sequence[dict[str, Any]],
    path: str | pathlib.Path,
    *,
    quality: str,
    higher_is_better: bool,
    top: int = 8,
) -> pathlib.Path:
    """Every finished candidate's Q, best first; the `top` best are labelled."""
    records = sorted(_finished(records), key=lambda r: -r["objective"])
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    scores = [r["score"] for r in records]
    ax.plot(np.arange(1, len(scores) + 1), scores, ".-", ms=3, lw=0.8)
    for rank, r in enumerate(records[:top], 1):
        ax.annotate(
            str(rank),
            (rank, r["score"]),
            fontsize=7,
            color="red",
            xytext=(2, 4),
            textcoords="offset points",
        )
    listing = "\n".join(
        f"{rank}. {r['score']:.4g}  {_label(r['weights'])}"
        for rank, r in enumerate(records[:top], 1)
    )
    # Scores get worse to the right, so the lower-left (higher is better) or upper-left
    # (lower is better) corner is clear of the curve.
    ax.text(
        0.02,
        0.03 if higher_is_better else 0.97,
        listing,
        transform=ax.transAxes,
        fontsize=7,
        family="monospace",
        ha="left",
        va="bottom" if higher_is_better else "top",
        bbox={"boxstyle": "round", "fc": "white", "alpha": 0.85},
    )
    ax.set_xlabel("rank")
    if len(scores) > 50:
        ax.set_xscale("log")
    arrow = "higher" if higher_is_better else "lower"
    ax.set_ylabel(f"{quality} ({arrow} is better)")
    ax.set_title(f"{len(scores)} finished candidates, best first")
    return _save(fig, pathlib.Path(path))


def write_plots(
    records: Sequence[dict[str, Any]],
    experts: Sequence[str],
    out_dir: str | pathlib.Path,
    stem: str,
    *,
    quality: str,
    higher_is_better: bool,
) -> list[pathlib.Path]:
    """Writes `<stem>_pairs.png`, `<stem>_marginals.png` and `<stem>_ranked.png` in out_dir."""
    out = pathlib.Path(out_dir)
    kw = {"quality": quality, "higher_is_better": higher_is_better}
    return [
        plot_pairs(records, experts, out / f"{stem}_pairs.png", **kw),
        plot_marginals(records, experts, out / f"{stem}_marginals.png", **kw),
        plot_ranked(records, out / f"{stem}_ranked.png", **kw),
    ]

"""Benchmark tables in a paper's layout, from an evaluation's per-degradation means.

`unires eval --paper-table anyir3` (or `anyir5`) lays the summary (`harness.summarize`) out as
the AnyIR paper's Table 1 (three degradations) or Table 2 (five): one PSNR / SSIM cell per
benchmark column in the paper's order, their average, and the paper's own AnyIR row beneath.
A column is found by the summary's degradation label: a paired dataset's name (`--dataset
sots:outdoor` -> "sots") or a synthetic degradation's spec (`--dataset bsd68:test --degrade
noise:15` -> "noise:15"). One `unires eval` run can hold every column, `--dataset` being
repeatable:

    unires eval --checkpoint MODEL --dataset sots:outdoor --dataset rain100l:test \\
        --dataset bsd68:test --degrade noise:15,noise:25,noise:50 --metrics psnr,ssim \\
        --paper-table anyir3 --output ev/

The average is over the columns present; a missing column shows "-" and the average says how
many columns it covers. PSNR and SSIM are the harness's RGB ones (the paper's "full RGB
images"; the official test centre-crops to a multiple of 16, our restorers pad instead).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class PaperTable:
    """A paper's benchmark table: (column title, summary degradation label) pairs and its row."""

    title: str
    columns: tuple[tuple[str, str], ...]
    published_name: str
    published: tuple[
        tuple[float, float], ...
    ]  # (PSNR, SSIM) per column, then the average


TABLES: dict[str, PaperTable] = {
    "anyir3": PaperTable(
        "AnyIR Table 1: three degradations (PSNR / SSIM)",
        (
            ("Dehazing SOTS", "sots"),
            ("Deraining Rain100L", "rain100l"),
            ("Denoising BSD68 σ=15", "noise:15"),
            ("Denoising BSD68 σ=25", "noise:25"),
            ("Denoising BSD68 σ=50", "noise:50"),
        ),
        "AnyIR (paper)",
        (
            (31.38, 0.979),
            (37.90, 0.981),
            (33.95, 0.933),
            (31.29, 0.889),
            (28.03, 0.797),
            (32.51, 0.916),
        ),
    ),
    "anyir5": PaperTable(
        "AnyIR Table 2: five degradations (PSNR / SSIM)",
        (
            ("Dehazing SOTS", "sots"),
            ("Deraining Rain100L", "rain100l"),
            ("Denoising BSD68 σ=25", "noise:25"),
            ("Deblurring GoPro", "gopro"),
            ("Low-light LOLv1", "lol"),
        ),
        "AnyIR (paper)",
        (
            (29.84, 0.977),
            (36.91, 0.977),
            (31.15, 0.882),
            (26.86, 0.822),
            (23.50, 0.845),
            (29.65, 0.901),
        ),
    ),
}


def table_cells(
    name: str, summary: Sequence[Mapping[str, Any]], output: str = "restored"
) -> list[tuple[float, float] | None]:
    """(PSNR, SSIM) of `output` per column of table `name` (None where the summary lacks it),
    then their average over the columns present (None if none).

    Raises:
      KeyError: an unknown table (names the known ones).
    """
    if name not in TABLES:
        raise KeyError(f"unknown paper table {name!r}; known: {sorted(TABLES)}")
    means = {
        e["degradation"]: (e.get("psnr", math.nan), e.get("ssim", math.nan))
        for e in summary
        if e.get("output") == output
    }
    cells = [means.get(label) for _, label in TABLES[name].columns]
    present = [c for c in cells if c is not None]
    average = (
        (
            sum(c[0] for c in present) / len(present),
            sum(c[1] for c in present) / len(present),
        )
        if present
        else None
    )
    return [*cells, average]


def format_table(
    name: str,
    summary: Sequence[Mapping[str, Any]],
    *,
    label: str = "ours",
    outputs: Sequence[str] = ("input", "restored"),
) -> str:
    """Table `name` as Markdown: a row per output of ours present, then the paper's row."""
    table = TABLES[name]
    head = [title for title, _ in table.columns] + ["Average"]
    lines = [
        f"# {table.title}",
        "",
        "| method | " + " | ".join(head) + " |",
        "|---|" + "---:|" * len(head),
    ]
    for output in outputs:
        cells = table_cells(name, summary, output)
        if all(c is None for c in cells):
            continue
        present = sum(c is not None for c in cells[:-1])
        text = [_cell(c) for c in cells]
        if present < len(table.columns):
            text[-1] += f" ({present} of {len(table.columns)})"
        row = label if output == "restored" else f"{output} (no restoration)"
        lines.append(f"| {row} | " + " | ".join(text) + " |")
    lines.append(
        f"| {table.published_name} | "
        + " | ".join(_cell(c) for c in table.published)
        + " |"
    )
    return "\n".join(lines) + "\n"


def _cell(cell: tuple[float, float] | None) -> str:
    if cell is None or not all(math.isfinite(v) for v in cell):
        return "-"
    return f"{cell[0]:.2f} / {cell[1]:.3f}"

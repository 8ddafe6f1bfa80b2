"""`unires eval --paper-table`: the summary in the AnyIR paper's Table 1 / 2 layout, several
datasets in one run."""

import json

import pytest
import toy_family

from unires_jax import restore
from unires_jax.cli.main import main as cli_main
from unires_jax.evaluate import harness, paper_tables


def _summary(cells):
    return [
        {"degradation": d, "output": o, "images": 1, "psnr": p, "ssim": s}
        for d, o, p, s in cells
    ]


def test_table_puts_each_benchmark_in_the_papers_column_and_averages_them():
    summary = _summary(
        [
            ("sots", "restored", 30.0, 0.90),
            ("rain100l", "restored", 36.0, 0.96),
            ("noise:15", "restored", 34.0, 0.93),
            ("noise:25", "restored", 31.0, 0.88),
            ("noise:50", "restored", 27.0, 0.78),
            ("noise:25", "input", 20.0, 0.40),
            ("all", "restored", 0.0, 0.0),
        ]
    )
    cells = paper_tables.table_cells("anyir3", summary)
    assert cells[:5] == [
        (30.0, 0.90),
        (36.0, 0.96),
        (34.0, 0.93),
        (31.0, 0.88),
        (27.0, 0.78),
    ]
    assert cells[5] == pytest.approx((31.6, 0.89))
    text = paper_tables.format_table("anyir3", summary)
    assert "| ours | 30.00 / 0.900 | 36.00 / 0.960 | 34.00 / 0.930 |" in text
    assert "| AnyIR (paper) | 31.38 / 0.979 |" in text and "32.51 / 0.916" in text
    # Table 2 has other columns: only sigma 25 is present here, the average says so.
    five = paper_tables.format_table("anyir5", summary)
    assert "Deblurring GoPro" in five and "(3 of 5)" in five
    assert (
        "input (no restoration) | - | - | 20.00 / 0.400 | - | - | 20.00 / 0.400 (1 of 5)"
        in five
    )
    with pytest.raises(KeyError, match="anyir3"):
        paper_tables.table_cells("nope", summary)


def test_eval_over_two_datasets_writes_the_paper_table(tmp_path, monkeypatch):
    monkeypatch.setitem(restore.FAMILIES, toy_family.FAMILY, toy_family.load_toy)
    toy = toy_family.save_toy(tmp_path / "ckpt", strength=0.7)
    out = tmp_path / "ev"
    argv = ["eval", "--checkpoint", str(toy), "--dataset", "sample_photos:heldout",
            "--dataset", "sample_photos:train", "--degrade", "noise:15,noise:25,noise:50",
            "--limit", "1", "--crop", "48", "--metrics", "psnr,ssim", "--no-progress",
            "--data-dir", str(tmp_path / "tfds"), "--paper-table", "anyir3",
            "--output", str(out)]  # fmt: skip
    assert cli_main(argv) == 0
    rows = [
        json.loads(line) for line in (out / harness.RESULTS).read_text().splitlines()
    ]
    assert len(rows) == 2 * 3 and len({r["id"] for r in rows}) == 6
    assert {r["id"].split("/")[0] for r in rows} == {"sample_photos"}
    table = (out / "paper_table.md").read_text()
    assert table.startswith("# AnyIR Table 1") and "(3 of 5)" in table
    summary = json.loads((out / "summary.json").read_text())
    restored25 = next(
        e
        for e in summary
        if e["degradation"] == "noise:25" and e["output"] == "restored"
    )
    assert f"{restored25['psnr']:.2f} / {restored25['ssim']:.3f}" in table

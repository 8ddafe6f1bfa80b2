"""`unires demo`: held-out sample photos, synthetic degradations, each expert and the weight search.

For every held-out photo (never seen in training) at 256x256: each task's degradation and two
mixed ones are made with fixed parameters (x4 SR as `unires restore --upscale 4` runs it: the
64x64 image is given, upscaled and projected back onto; its baseline is the bicubic upscale),
restored with each single expert (one batched call)
and with weights chosen by a cheap search (NIQE as Q), and scored with PSNR / SSIM against the
clean photo and NIQE without it. Writes a side-by-side PNG per photo, `report.json` (and
`report.jsonl`, one line per case) and prints a table. The cases run through the evaluation
harness of `unires eval` (results.jsonl, summary.md / csv, images/, montages/; resumable).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import pathlib
import time
from typing import Any

import numpy as np
from PIL import Image

# case name -> (fixed degradations applied in order, the expert made for it or None for mixed)
CASES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "denoise": (("noise25",), "DN"),
    "motion": (("motion",), "MD"),
    "defocus": (("defocus",), "DD"),
    "sr_x4": (("sr_x4_bicubic",), "SR"),
    "mixed_defocus_noise": (("defocus", "noise25"), None),
    "mixed_sr_noise": (("sr_x4_bicubic", "noise25"), None),
}
SIZE = 256
# Cases given to the restorer as the small image, restored with `RestoreSettings.upscale` (the
# x`factor` SR flow of `unires restore --upscale`); their "input" is the bicubic upscale.
UPSCALE_CASES: dict[str, int] = {"sr_x4": 4}


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Options of one demo run (defaults: the full demo, under 3 minutes on 2 CPU cores)."""

    photos: tuple[str, ...] | None = None  # held-out photo names; None: all
    cases: tuple[str, ...] = tuple(CASES)
    # Each single expert, then a hill-climb on the paper's grid limits with steps 0.1 and
    # 0.05 from the best of them. Halving must decode and score every grid vector once, and
    # on a CPU that NIQE scoring, not the UNet, dominates.
    strategy: str = "refine"
    refine_base: str = "experts"
    # A share of the paper grid's exhaustive UNet evaluations: about 60 for a 256 px photo,
    # which keeps all 24 cases under 3 minutes on 2 CPU cores (the measured time is in BENCHMARKS.md).
    budget: int | str | None = "0.35%"
    steps: int | None = None
    seed: int = 0


def center_square(image: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Largest centred square, resized to `size` x `size` (antialiased bicubic) -> float [0,1]."""
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = Image.fromarray(image[top : top + s, left : left + s])
    resized = crop.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=None)
    return np.asarray(resized, np.float32) / 255.0


def degrade(hq: np.ndarray, names: tuple[str, ...], seed: int) -> np.ndarray:
    """Applies fixed degradations in order; the result is quantised to 8 bits like a saved photo."""
    from unires_jax.data.degradations import fixed_degradation

    rng = np.random.default_rng(seed)
    x = hq
    for name in names:
        x = fixed_degradation(name, x, rng)
    return np.round(np.clip(x, 0, 1) * 255) / 255


def case_input(hq: np.ndarray, case: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(the image the restorer is given, the input it is measured against) for a demo case.

    Both are the degraded photo, except for `UPSCALE_CASES`: the photo downscaled by the
    benchmark bicubic (8-bit, like a saved file) and its bicubic upscale back to full size.
    """
    factor = UPSCALE_CASES.get(case)
    if factor is None:
        lq = degrade(hq, CASES[case][0], seed=seed)
        return lq, lq
    from unires_jax.data.degradations.resize import resize_image
    from unires_jax.restore.upscale import DOWNSCALE_METHOD, upscale_input

    h, w = hq.shape[:2]
    small = resize_image(hq, (h // factor, w // factor), DOWNSCALE_METHOD)
    small = np.round(np.clip(small, 0, 1) * 255) / 255
    return small.astype(np.float32), upscale_input(small, factor)


def _case_pixels(
    photo: np.ndarray, case: str, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(the image the restorer is given, the clean photo) of one demo case."""
    hq = center_square(photo)
    return case_input(hq, case, seed=seed)[0], hq


def run_demo(
    output: str | os.PathLike,
    *,
    restorer=None,
    settings: DemoSettings = DemoSettings(),
    progress: bool = True,
) -> dict[str, Any]:
    """Runs the demo and writes its files into `output`; returns the report dict.

    The cases go through the evaluation harness (`evaluate/harness.py`): `output` also gets
    results.jsonl, summary.md/csv, images/ and montages/, and a rerun into the same folder
    continues where an interrupted one stopped.
    """
    from unires_jax.data.sample_photos import load_sample_photos
    from unires_jax.evaluate import harness
    from unires_jax.evaluate.datasets import Sample
    from unires_jax.evaluate.metrics import Metrics
    from unires_jax.restore.restorer import Restorer
    from unires_jax.restore.upscale import upscale_input
    from unires_jax.search import CandidateSampler, SearchConfig, search

    output = pathlib.Path(output)
    output.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    restorer = restorer or Restorer.load(None)
    photos = load_sample_photos("heldout")
    names = settings.photos or tuple(sorted(photos))
    unknown = sorted(set(names) - set(photos))
    if unknown:
        raise ValueError(
            f"unknown held-out photo(s) {unknown}; available: {sorted(photos)}"
        )
    experts = restorer.experts
    restorers = {1: restorer}
    samplers = {1: CandidateSampler(restorer)}
    for factor in sorted({UPSCALE_CASES.get(c, 1) for c in settings.cases} - {1}):
        restorers[factor] = restorer.with_settings(upscale=factor)
        samplers[factor] = CandidateSampler(restorers[factor])
    search_config = SearchConfig(
        steps=settings.steps, seed=settings.seed, refine_base=settings.refine_base
    )
    metrics = Metrics.load(["psnr", "ssim", "niqe"])
    jobs = [(p, c) for p in names for c in settings.cases]
    samples = [
        Sample(
            id=f"{photo}/{case}",
            degradation=case,
            source=f"sample_photos:heldout/{photo}",
            load=functools.partial(
                _case_pixels, photos[photo], case, settings.seed + index
            ),
            scale=UPSCALE_CASES.get(case, 1),
        )
        for index, (photo, case) in enumerate(jobs)
    ]

    def produce(sample, given, hq) -> harness.Produced:
        photo, case = sample.id.split("/")
        factor = sample.scale
        found = search(
            given,
            strategy=settings.strategy,
            quality=metrics.models["niqe"],
            budget=settings.budget,
            sampler=samplers[factor],
            config=search_config,
            keep_images=True,
        )
        singles = _single_expert_images(
            found, experts, restorers[factor], given, settings
        )
        lq = upscale_input(given, factor)  # the bicubic upscale, for the x4 case
        chain, expert = CASES[case]
        return harness.Produced(
            {"input": lq, **dict(zip(experts, singles)), "search": found.image},
            {
                "photo": photo,
                "case": case,
                "degradations": list(chain),
                "upscale": factor,
                "task_expert": expert,
                "weights": found.weights,
                "strategy": found.strategy,
                "unet_evaluations": found.unet_evaluations,
                "seconds": found.seconds,
                # What the restorer's blind deblurring fitted to the input, used or not.
                "deblur": found.deblur,
            },
        )

    evaluated = harness.evaluate(
        samples,
        produce,
        metrics,
        output,
        run_config={
            "demo": dataclasses.asdict(settings),
            "model": restorer.ldm.source,
            "experts": experts,
        },
        main_output="search",
        save_outputs=experts,
        quantize_to_8_bits=False,  # the model's own images, as the search scored them
        progress=progress,
        label="unires demo",
    )
    rows = [_demo_row(r, experts) for r in evaluated.rows]
    for photo in dict.fromkeys(r["photo"] for r in rows):
        mine = [r for r in rows if r["photo"] == photo]
        _write_figure(output / f"{photo}.png", photos[photo], mine, output, samples)
    report = {
        "cases": rows,
        "summary": summarize(rows),
        "seconds": time.perf_counter() - t_start,
        "experts": experts,
        "settings": dataclasses.asdict(settings),
    }
    _write_atomic(output / "report.json", json.dumps(report, indent=2))
    _write_atomic(output / "report.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    print(format_table(rows))
    print(
        f"wrote {output}/report.json, summary.md and {len({r['photo'] for r in rows})} "
        f"figure(s) in {report['seconds']:.0f} s"
    )
    return report


def _demo_row(row: dict[str, Any], experts: list[str]) -> dict[str, Any]:
    """A harness row in the demo report's layout."""
    details, metrics = row["details"], row["metrics"]
    out = {
        key: details[key]
        for key in ("photo", "case", "degradations", "upscale", "task_expert")
    }
    out["input"] = metrics["input"]
    out["experts"] = {e: metrics[e] for e in experts}
    out["search"] = {
        **metrics["search"],
        **{
            k: details[k]
            for k in ("weights", "strategy", "unet_evaluations", "seconds")
        },
    }
    out["deblur"] = details["deblur"]
    out["best_single_by_niqe"] = min(experts, key=lambda e: out["experts"][e]["niqe"])
    return out


def _single_expert_images(found, experts, restorer, lq, settings) -> np.ndarray:
    """[K, H, W, 3]: each single expert's restoration, from the search when it finished them.

    The `experts` base of the search samples each one-hot vector with the same seed and steps
    as `Restorer.restore`; only the ones it did not finish are restored here.
    """
    by_expert = found.single_expert_images()
    missing = [e for e in experts if e not in by_expert]
    if missing:
        vectors = np.stack(
            [np.eye(len(experts), dtype=np.float32)[experts.index(e)] for e in missing]
        )
        images = restorer.restore(lq, vectors, steps=settings.steps, seed=settings.seed)
        by_expert.update(zip(missing, images))
    return np.stack([by_expert[e] for e in experts])


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean gains per case: task expert PSNR over the input, search NIQE vs best single."""
    out: dict[str, Any] = {}
    for case in dict.fromkeys(r["case"] for r in rows):
        mine = [r for r in rows if r["case"] == case]
        expert = mine[0]["task_expert"]
        entry: dict[str, Any] = {
            "input_psnr": float(np.mean([r["input"]["psnr"] for r in mine])),
            "search_psnr": float(np.mean([r["search"]["psnr"] for r in mine])),
            "search_niqe": float(np.mean([r["search"]["niqe"] for r in mine])),
        }
        if expert:
            entry["expert"] = expert
            entry["expert_psnr"] = float(
                np.mean([r["experts"][expert]["psnr"] for r in mine])
            )
            entry["expert_psnr_gain"] = entry["expert_psnr"] - entry["input_psnr"]
        best = [r["experts"][r["best_single_by_niqe"]]["niqe"] for r in mine]
        entry["best_single_niqe"] = float(np.mean(best))
        # Strictly better: where the search's best is a single expert itself it only ties.
        entry["search_beats_best_single_niqe"] = float(
            np.mean([r["search"]["niqe"] < b for r, b in zip(mine, best)])
        )
        out[case] = entry
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'photo':<10} {'case':<20} {'input PSNR/SSIM/NIQE':>24} {'expert':>7} {'expert PSNR/SSIM/NIQE':>24} {'search PSNR/SSIM/NIQE':>24}"
    lines = [head, "-" * len(head)]
    for r in rows:
        expert = r["task_expert"] or r["best_single_by_niqe"]
        e = r["experts"][expert]

        def fmt(m):
            return f"{m['psnr']:6.2f}/{m['ssim']:.3f}/{m['niqe']:5.2f}"

        lines.append(
            f"{r['photo']:<10} {r['case']:<20} {fmt(r['input']):>24} {expert:>7} {fmt(e):>24} {fmt(r['search']):>24}"
        )
    return "\n".join(lines)


def _write_figure(path, photo, rows, output, samples) -> None:
    """input | task expert (or the best single by NIQE) | searched weights | reference, per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from unires_jax.evaluate.harness import image_path
    from unires_jax.restore import image_io
    from unires_jax.restore.upscale import upscale_input

    def read(sample_id, output_name=None):
        pixels = image_io.read_image(image_path(output, sample_id, output_name)).pixels
        return pixels.astype(np.float32) / 255.0

    by_id = {s.id: s for s in samples}
    hq = center_square(photo)
    fig, axes = plt.subplots(len(rows), 4, figsize=(12, 3.1 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows):
        sample_id = f"{row['photo']}/{row['case']}"
        given, _ = by_id[sample_id].load()
        lq = upscale_input(given, row["upscale"])
        expert = row["task_expert"] or row["best_single_by_niqe"]
        label = row["task_expert"] or f"best single ({expert})"
        panels = (
            (lq, f"{row['case']}: input"),
            (read(sample_id, expert), label),
            (read(sample_id), "searched weights"),
            (hq, "reference"),
        )
        for ax, (image, title) in zip(ax_row, panels):
            ax.imshow(np.clip(image, 0, 1))
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    image_io.write_atomic(path, buffer.getvalue())


def _write_atomic(path: pathlib.Path, text: str) -> None:
    from unires_jax.restore import image_io

    image_io.write_atomic(path, text.encode("utf-8"))

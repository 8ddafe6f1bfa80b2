"""`unires demo`: held-out sample photos, synthetic degradations, each expert and the weight search.

For every held-out photo (never seen in training) at 256x256: each task's degradation and two
mixed ones are made with fixed parameters (x4 SR as `unires restore --upscale 4` runs it: the
64x64 image is given, upscaled and projected back onto; its baseline is the bicubic upscale),
restored with each single expert (one batched call)
and with weights chosen by a cheap search (NIQE as Q), and scored with PSNR / SSIM against the
clean photo and NIQE without it. Writes a side-by-side PNG per photo, `report.json` (and
`report.jsonl`, one line per case) and prints a table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import tempfile
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


def _metrics(images: np.ndarray, reference: np.ndarray, niqe) -> list[dict[str, float]]:
    from unires_jax.quality import fidelity

    images = np.asarray(images, np.float32)
    ref = np.broadcast_to(reference, images.shape)
    psnr = np.asarray(fidelity.psnr(ref, images))
    ssim = np.asarray(fidelity.ssim(ref, images))
    niqe_scores = niqe.score(images)
    return [
        {"psnr": float(p), "ssim": float(s), "niqe": float(n)}
        for p, s, n in zip(psnr, ssim, niqe_scores)
    ]


def run_demo(
    output: str | os.PathLike,
    *,
    restorer=None,
    settings: DemoSettings = DemoSettings(),
    progress: bool = True,
) -> dict[str, Any]:
    """Runs the demo and writes its files into `output`; returns the report dict."""
    import tqdm

    from unires_jax.data.sample_photos import load_sample_photos
    from unires_jax.quality import get as get_quality
    from unires_jax.restore.restorer import Restorer
    from unires_jax.search import CandidateSampler, SearchConfig, search

    output = pathlib.Path(output)
    output.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    restorer = restorer or Restorer.load(None)
    niqe = get_quality("niqe")
    photos = load_sample_photos("heldout")
    names = settings.photos or tuple(sorted(photos))
    unknown = sorted(set(names) - set(photos))
    if unknown:
        raise ValueError(f"unknown held-out photo(s) {unknown}; available: {sorted(photos)}")
    experts = restorer.experts
    restorers = {1: restorer}
    samplers = {1: CandidateSampler(restorer)}
    for factor in sorted({UPSCALE_CASES.get(c, 1) for c in settings.cases} - {1}):
        restorers[factor] = restorer.with_settings(upscale=factor)
        samplers[factor] = CandidateSampler(restorers[factor])
    search_config = SearchConfig(
        steps=settings.steps, seed=settings.seed, refine_base=settings.refine_base
    )
    rows: list[dict[str, Any]] = []
    jobs = [(p, c) for p in names for c in settings.cases]
    bar = tqdm.tqdm(jobs, desc="unires demo", disable=not progress, unit="case")
    panels: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray, str]]] = {}
    for index, (photo, case) in enumerate(bar):
        hq = center_square(photos[photo])
        chain, expert = CASES[case]
        factor = UPSCALE_CASES.get(case, 1)
        given, lq = case_input(hq, case, seed=settings.seed + index)
        found = search(
            given,
            strategy=settings.strategy,
            quality=niqe,
            budget=settings.budget,
            sampler=samplers[factor],
            config=search_config,
            keep_images=True,
        )
        singles = _single_expert_images(found, experts, restorers[factor], given, settings)
        scored = _metrics(np.concatenate([lq[None], singles, found.image[None]]), hq, niqe)
        row = {
            "photo": photo,
            "case": case,
            "degradations": list(chain),
            "upscale": factor,
            "task_expert": expert,
            "input": scored[0],
            "experts": dict(zip(experts, scored[1:-1])),
            "search": {
                **scored[-1],
                "weights": found.weights,
                "strategy": found.strategy,
                "unet_evaluations": found.unet_evaluations,
                "seconds": found.seconds,
            },
            # What the restorer's blind deblurring fitted to the input, used or not.
            "deblur": found.deblur,
        }
        best_single = min(experts, key=lambda e: row["experts"][e]["niqe"])
        row["best_single_by_niqe"] = best_single
        rows.append(row)
        shown = singles[experts.index(expert)] if expert else singles[experts.index(best_single)]
        label = expert or f"best single ({best_single})"
        panels.setdefault(photo, []).append((case, lq, shown, found.image, label))
    for photo, items in panels.items():
        _write_figure(output / f"{photo}.png", center_square(photos[photo]), items)
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
    print(f"wrote {output}/report.json and {len(panels)} figure(s) in {report['seconds']:.0f} s")
    return report


def _single_expert_images(found, experts, restorer, lq, settings) -> np.ndarray:
    """[K, H, W, 3]: each single expert's restoration, from the search when it finished them.

    The `experts` base of the search samples each one-hot vector with the same seed and steps
    as `Restorer.restore`; only the ones it did not finish are restored here.
    """
    by_expert = found.single_expert_images()
    missing = [e for e in experts if e not in by_expert]
    if missing:
        vectors = np.stack([np.eye(len(experts), dtype=np.float32)[experts.index(e)] for e in missing])
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
            entry["expert_psnr"] = float(np.mean([r["experts"][expert]["psnr"] for r in mine]))
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


def _write_figure(path: pathlib.Path, hq: np.ndarray, items) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(items), 4, figsize=(12, 3.1 * len(items)), squeeze=False)
    for row, (case, lq, single, searched, label) in zip(axes, items):
        for ax, image, title in zip(
            row,
            (lq, single, searched, hq),
            (f"{case}: input", label, "searched weights", "reference"),
        ):
            ax.imshow(np.clip(image, 0, 1))
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as tmp:
        fig.savefig(tmp.name, dpi=80)
    plt.close(fig)
    os.replace(tmp.name, path)


def _write_atomic(path: pathlib.Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)

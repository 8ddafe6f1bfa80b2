"""The cheaper strategies end to end on the micro model: halving, frequent, predict, refine;
plus choose_weights (plots, JSON info) and the restore-batch chooser."""

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image
from search_helpers import SEARCHED, SMALL, SMALL_GRID, STEPS, Sharpness

from unires_jax.restore import batch
from unires_jax.restore.inputs import collect_inputs
from unires_jax.restore.unires import UniResRestorer
from unires_jax.search import (
    PredictorConfig,
    Presets,
    SearchConfig,
    WeightPredictor,
    choose_weights,
    learn_presets,
    search,
    train_predictor,
    weight_chooser,
)
from unires_jax.search.evaluator import Evaluator
from unires_jax.search.interface import candidates

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def exhaustive_logs(sampler, images, tmp_path_factory):
    """Exhaustive searches of the three test images, logged (the training data of presets
    and the predictor) and their results."""
    folder = tmp_path_factory.mktemp("logs")
    results = [
        search(
            im, "exhaustive", Sharpness(), sampler=sampler, config=SMALL, log_dir=folder
        )
        for im in images
    ]
    return folder, results


def _key(weights):
    return tuple(sorted(weights.items()))


@pytest.mark.parametrize("first_round", ["x0", "mixture"])
def test_halving_keeps_the_best_fraction_and_finishes_few(
    sampler, images, exhaustive_logs, first_round
):
    _, results = exhaustive_logs
    config = dataclasses.replace(SMALL, halving_first_round=first_round, halving_rounds=3)
    result = search(images[1], "halving", Sharpness(), sampler=sampler, config=config)
    assert result.candidates_evaluated == 18
    stages = sorted({r["stage"] for r in result.records})
    if first_round == "x0":
        # Stages 1, 2, 3 with eta 4: 18 scored at step 1, 5 at step 2, 2 finished.
        assert result.candidates_finished == 2
        assert stages == [1, 2, STEPS]
    else:
        # 18 mixtures of the 3 finished single experts (stage 0), 5 continued to step 2,
        # 2 finished besides the single experts (or among them).
        assert 3 <= result.candidates_finished <= 5
        assert stages == [0, 2, STEPS]
        assert sum(r["stage"] == 2 for r in result.records) == 5
    exhaustive_scores = {_key(r["weights"]): r["objective"] for r in results[1].records}
    for r in result.records:
        if r["stage"] == STEPS:  # a continued run ends where a straight run ends
            assert r["objective"] == pytest.approx(
                exhaustive_scores[_key(r["weights"])], rel=1e-5
            )
    # Same candidate may be sampled in a different UNet batch size: float rounding only.
    assert result.objective <= results[1].objective + 1e-6


def test_mixture_scores_cost_no_unet_and_are_exact_for_single_experts(sampler, images):
    quality = Sharpness()
    ev = Evaluator(sampler, images[0], quality, steps=STEPS)
    experts = sampler.experts
    used = np.array([experts.index(e) for e in SEARCHED])
    singles = np.eye(len(experts))[used]
    finished, latents = ev.evaluate(singles, final_latents=True)
    before = sampler.unet_evaluations
    grid = candidates(experts, SMALL)
    mixed = ev.score_mixtures(grid, used, latents)
    assert sampler.unet_evaluations == before
    assert np.isfinite(mixed).all() and len(mixed) == len(grid)
    # A one-hot "mixture" is the single expert's own finished image.
    for row, vector in enumerate(singles):
        (i,) = np.flatnonzero((grid == vector).all(axis=1))
        assert mixed[i] == pytest.approx(finished[row], rel=1e-6)
    with pytest.raises(ValueError, match="without latents"):
        ev.score_mixtures(np.eye(len(experts))[:1], used[1:], latents[1:])


def test_halving_with_eta_near_one_finishes_everything_and_matches_exhaustive(
    sampler, images, exhaustive_logs
):
    _, results = exhaustive_logs
    config = SearchConfig(grid=SMALL_GRID, experts=SEARCHED, halving_eta=1.001)
    result = search(images[2], "halving", Sharpness(), sampler=sampler, config=config)
    assert result.candidates_finished == 18
    assert result.weights == results[2].weights
    assert result.score == pytest.approx(results[2].score, rel=1e-5)


def test_halving_respects_its_budget(sampler, images):
    full = sampler.cost(candidates(sampler.experts, SMALL), start=0, stop=STEPS)
    budget = 15
    result = search(
        images[0], "halving", Sharpness(), budget=budget, sampler=sampler, config=SMALL
    )
    assert result.unet_evaluations <= budget < full
    assert result.candidates_finished >= 1
    with pytest.raises(ValueError, match="cannot finish one candidate"):
        search(
            images[0], "halving", Sharpness(), budget=4, sampler=sampler, config=SMALL
        )


def test_budget_as_a_share_of_exhaustive(sampler, images):
    result = search(
        images[0], "halving", Sharpness(), budget="40%", sampler=sampler, config=SMALL
    )
    full = sampler.cost(candidates(sampler.experts, SMALL), start=0, stop=STEPS)
    assert result.unet_evaluations <= 0.4 * full
    with pytest.raises(ValueError, match="share of the exhaustive"):
        search(
            images[0],
            "halving",
            Sharpness(),
            budget="lots",
            sampler=sampler,
            config=SMALL,
        )


def test_frequent_tries_the_top_presets_learned_from_logs(
    sampler, images, exhaustive_logs, tmp_path
):
    folder, results = exhaustive_logs
    presets = learn_presets(folder)
    assert presets.images == 3 and presets.quality == "sharpness"
    assert sum(c for _, c in presets.entries) == 3
    assert {_key(w) for w, _ in presets.entries} == {_key(r.weights) for r in results}
    presets.save(tmp_path / "presets.json")
    loaded = Presets.load(tmp_path / "presets.json")
    assert loaded == presets
    config = SearchConfig(grid=SMALL_GRID, experts=SEARCHED, presets=2)
    result = search(
        images[0],
        "frequent",
        Sharpness(),
        sampler=sampler,
        config=config,
        presets=tmp_path / "presets.json",
    )
    assert result.candidates_finished == min(2, len(presets.entries))
    assert _key(result.weights) in {_key(w) for w, _ in presets.entries[:2]}
    with pytest.raises(ValueError, match="learn-presets"):
        search(images[0], "frequent", Sharpness(), sampler=sampler, config=config)


def test_predict_samples_one_grid_vector_from_a_forest_trained_on_logs(
    sampler, images, exhaustive_logs, tmp_path
):
    folder, _ = exhaustive_logs
    config = PredictorConfig(n_estimators=10, grid=SMALL_GRID)
    predictor = train_predictor(folder, searched=SEARCHED, config=config)
    assert predictor.experts == sampler.experts and len(predictor.features) == 3
    predictor.save(tmp_path / "predictor.json")
    loaded = WeightPredictor.load(tmp_path / "predictor.json")
    vector = loaded.predict(images[0])
    np.testing.assert_array_equal(vector, predictor.predict(images[0]))
    grid = candidates(sampler.experts, SMALL)
    assert any(np.array_equal(vector, g) for g in grid)  # projected onto the grid
    result = search(
        images[0],
        "predict",
        Sharpness(),
        sampler=sampler,
        config=SMALL,
        predictor=loaded,
    )
    assert result.candidates_finished == result.candidates_evaluated == 1
    assert result.unet_evaluations <= STEPS * 3


def test_refine_tries_finer_steps_and_never_ends_worse_than_its_base(sampler, images):
    base = search(images[1], "halving", Sharpness(), sampler=sampler, config=SMALL)
    config = SearchConfig(grid=SMALL_GRID, experts=SEARCHED, refine_levels=1)
    result = search(images[1], "refine", Sharpness(), sampler=sampler, config=config)
    assert result.objective >= base.objective
    finer = [
        r
        for r in result.records
        if r["stage"] == STEPS
        and any(abs(w * 2 - round(w * 2)) > 1e-9 for w in r["weights"].values())
    ]
    assert finer, "no candidate on the finer (0.25) step was tried"
    assert all(set(r["weights"]) <= set(SEARCHED) for r in result.records)


def test_keep_images_returns_every_finished_candidate_as_the_restorer_makes_it(
    restorer, sampler, images
):
    # `unires demo` reports the single experts from the `experts` search instead of sampling
    # them twice, so these images must be the Restorer's own.
    result = search(
        images[0], "experts", Sharpness(), sampler=sampler, config=SMALL, keep_images=True
    )
    assert len(result.finished_images) == result.candidates_finished == len(SEARCHED)
    experts = restorer.experts
    for weights, image in result.finished_images:
        assert list(weights.values()) == [1.0]
        vector = np.eye(len(experts))[experts.index(next(iter(weights)))]
        want = restorer.restore(images[0], vector, steps=STEPS, seed=SMALL.seed)
        np.testing.assert_allclose(image, want, atol=2e-6)
    singles = result.single_expert_images()
    assert sorted(singles) == sorted(next(iter(w)) for w, _ in result.finished_images)
    plain = search(images[0], "experts", Sharpness(), sampler=sampler, config=SMALL)
    assert plain.finished_images is None and plain.single_expert_images() == {}


def test_halving_rerun_reads_mixture_and_finished_scores_from_its_log(sampler, images, tmp_path):
    from unires_jax.search.log import CandidateLog

    config = dataclasses.replace(SMALL, halving_first_round="mixture")
    first = search(
        images[0], "halving", Sharpness(), sampler=sampler, config=config, log_dir=tmp_path
    )
    (path,) = tmp_path.glob("*.jsonl")
    lines = len(CandidateLog(path).candidates())
    assert sum(r["stage"] == 0 for r in CandidateLog(path).candidates()) == 18
    again = search(
        images[0],
        "halving",
        Sharpness(),
        sampler=sampler,
        config=config,
        log_dir=tmp_path,
        return_image=False,  # the best image would be sampled again from the log
    )
    # Nothing is scored twice; only the single experts are sampled again (their latents are
    # the basis of the mixtures and are not logged).
    assert len(CandidateLog(path).candidates()) == lines
    assert again.weights == first.weights and again.score == first.score
    one_hot = np.eye(len(sampler.experts))[[sampler.experts.index(e) for e in SEARCHED]]
    singles = sampler.cost(one_hot, start=0, stop=STEPS)
    assert again.unet_evaluations == singles < first.unet_evaluations


def test_refine_finishes_neighbours_in_mixture_proxy_order(sampler, images):
    """With the single experts finished, refine ranks its neighbours by the mixture proxy and
    finishes the best-ranked first, `chunk` at a time."""
    from unires_jax.search.refine import neighbours, refine

    ev = Evaluator(sampler, images[2], Sharpness(), steps=STEPS)
    experts = sampler.experts
    searched = [experts.index(e) for e in SEARCHED]
    ev.finish_experts(np.array(searched))
    start = np.eye(len(experts))[searched[0]]
    around = neighbours(start, searched, SMALL_GRID.step / 2, SMALL_GRID)
    proxy = ev.mixture_proxy(around)
    top_two = {_key(dict(zip(experts, v))) for v in around[np.argsort(-proxy)[:2]]}
    refine(ev, start, list(SEARCHED), SMALL_GRID, levels=1, chunk=2)
    mixtures = [r for r in ev.finished() if sum(w != 0 for w in r["weights"].values()) > 1]
    first_batch = {_key(r["weights"]) for r in mixtures[:2]}
    top_two = {tuple((e, w) for e, w in k if w != 0) for k in top_two}
    assert first_batch == top_two


def test_choose_weights_returns_json_info_and_readable_plots(
    restorer, sampler, images, tmp_path
):
    weights, info, _ = choose_weights(
        restorer,
        images[0],
        "exhaustive",
        Sharpness(),
        None,
        tmp_path / "logs",
        config=SMALL,
        plot_dir=tmp_path / "plots",
        plot_stem="img0",
        sampler=sampler,
    )
    json.dumps(info)
    assert set(weights) <= set(SEARCHED)
    assert info["candidates_finished"] == 18 and info["quality"] == "sharpness"
    assert [p.split("/")[-1] for p in info["plots"]] == [
        "img0_pairs.png",
        "img0_marginals.png",
        "img0_ranked.png",
    ]
    for path in info["plots"]:
        with open(path, "rb") as f:
            assert f.read(8) == PNG_SIGNATURE
        assert Image.open(path).size[0] > 400
    assert info["log"].endswith(".jsonl")


def test_weight_chooser_plugs_into_restore_files(restorer, sampler, images, tmp_path):
    Image.fromarray(images[2]).save(tmp_path / "photo.png")
    chooser = weight_chooser(
        "exhaustive",
        Sharpness(),
        config=SMALL,
        sampler=sampler,
        plot_dir=tmp_path / "out",
    )
    report = batch.restore_files(
        UniResRestorer(restorer, chooser),
        batch.plan(collect_inputs([tmp_path / "photo.png"]), tmp_path / "out"),
        progress=False,
    )
    assert not report.failed
    sidecar = json.loads((tmp_path / "out" / "photo.json").read_text())
    details = sidecar["weights_details"]
    assert sidecar["weights_source"] == "search exhaustive (sharpness)"
    assert details["candidates_finished"] == 18
    # The search's image is the output: no UNet evaluation besides the search's.
    assert sidecar["unet_evaluations"] == details["unet_evaluations"]
    assert {k: v for k, v in sidecar["weights"].items() if v} == search(
        images[2], "exhaustive", Sharpness(), sampler=sampler, config=SMALL
    ).weights
    assert (tmp_path / "out" / "photo_pairs.png").exists()
    # The written 8-bit file, read back as `unires quality` reads it, scored with the same Q.
    written = np.asarray(Image.open(tmp_path / "out" / "photo.png"), np.float64) / 255
    assert details["output_score"] == pytest.approx(Sharpness().score(written[None])[0])
    assert details["output_score"] != details["score"]  # rounding to 8 bits moved it


def test_unknown_strategy_is_a_clear_error(sampler, images):
    with pytest.raises(ValueError, match="choose one of"):
        search(images[0], "random", Sharpness(), sampler=sampler, config=SMALL)

"""The grain training pipeline: mixture weights, determinism, checkpointing, host sharding."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest

from unires_jax.data import builders, pipeline, sources

TASKS = ("sr", "motion", "defocus", "denoise")
N_RECORDS = 1000  # grain's per-element shuffle is slow for very small sources.


def _identity(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return image


def _shrink(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Like a super-resolution degradation: returns the x2 smaller image."""
    return image[::2, ::2]


def _darken(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return image * rng.uniform(0.2, 0.8)


IDENTITY = dict.fromkeys(TASKS, _identity)


def _id_records(n: int, offset: int, size: int = 4) -> list[dict]:
    """Records whose pixels spell a unique id: channel 0 = id // 256, channel 1 = id % 256."""
    records = []
    for i in range(offset, offset + n):
        hq = np.zeros((size, size, 3), np.uint8)
        hq[..., 0], hq[..., 1] = i // 256, i % 256
        records.append({"hq": hq, "name": f"r{i}"})
    return records


def _ids(batch: dict) -> np.ndarray:
    pixels = np.rint(batch["hq"][:, 0, 0, :2] * 255).astype(int)
    return pixels[:, 0] * 256 + pixels[:, 1]


def _config(**overrides):
    c = pipeline.default_config()
    c.update(crop_size=4, batch_size=50, num_workers=0, read_threads=1, read_buffer=16)
    for key, value in overrides.items():
        setattr(
            c, key, value
        )  # Replaces dict fields whole (update() would merge them).
    return c


@pytest.fixture(scope="module")
def id_sources():
    """A disjoint id range per task, so every element tells its task and record."""
    return {
        t: sources.InMemorySource(_id_records(N_RECORDS, k * N_RECORDS))
        for k, t in enumerate(TASKS)
    }


def _iterator(config, id_sources, **kwargs):
    kwargs.setdefault("process_index", 0)
    kwargs.setdefault("process_count", 1)
    kwargs.setdefault("degradations", IDENTITY)
    return pipeline.make_train_iterator(config, sources=id_sources, **kwargs)


def test_batches_have_the_documented_shapes_types_and_ranges(id_sources):
    batch = next(_iterator(_config(batch_size=8), id_sources))
    assert set(batch) == {"hq", "lq", "task_id"}
    assert batch["hq"].shape == batch["lq"].shape == (8, 4, 4, 3)
    assert batch["hq"].dtype == batch["lq"].dtype == np.float32
    assert batch["task_id"].dtype == np.int32 and batch["task_id"].shape == (8,)
    assert 0.0 <= batch["hq"].min() and batch["hq"].max() <= 1.0
    # Every element came from its own task's source.
    np.testing.assert_array_equal(_ids(batch) // N_RECORDS, batch["task_id"])


def test_mixture_proportions_match_the_weights_over_10000_samples(id_sources):
    config = _config(batch_size=100)
    it = _iterator(config, id_sources)
    task_ids = np.concatenate([next(it)["task_id"] for _ in range(100)])
    assert task_ids.size == 10_000
    fractions = np.bincount(task_ids, minlength=4) / task_ids.size
    weights = np.array([config.weights[t] for t in TASKS])
    np.testing.assert_allclose(fractions, weights / weights.sum(), atol=0.02)


def test_other_weights_are_followed_too(id_sources):
    config = _config(
        batch_size=100,
        weights={"sr": 0.1, "motion": 0.1, "defocus": 0.1, "denoise": 0.7},
    )
    it = _iterator(config, id_sources)
    task_ids = np.concatenate([next(it)["task_id"] for _ in range(20)])
    np.testing.assert_allclose(
        np.bincount(task_ids, minlength=4) / task_ids.size,
        [0.1, 0.1, 0.1, 0.7],
        atol=0.02,
    )


def test_same_seed_same_batches_other_seed_other_batches(id_sources):
    first = [next(it) for it in [_iterator(_config(), id_sources)] for _ in range(3)]
    again = [next(it) for it in [_iterator(_config(), id_sources)] for _ in range(3)]
    other = [
        next(it) for it in [_iterator(_config(seed=1), id_sources)] for _ in range(3)
    ]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(_ids(a), _ids(b))
    assert not all(np.array_equal(_ids(a), _ids(c)) for a, c in zip(first, other))


def test_restoring_the_iterator_state_continues_identically(id_sources):
    config = _config(flip=True)
    it = _iterator(config, id_sources, degradations=dict.fromkeys(TASKS, _darken))
    for _ in range(7):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(4)]
    restored = _iterator(config, id_sources, degradations=dict.fromkeys(TASKS, _darken))
    next(restored)  # A fresh iterator somewhere else; set_state must move it.
    restored.set_state(state)
    for want in expected:
        got = next(restored)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


def test_each_epoch_visits_every_record_of_a_task(id_sources):
    config = _config(batch_size=100, weights=dict.fromkeys(TASKS, 1.0))
    it = _iterator(config, id_sources)
    ids = np.concatenate(
        [_ids(next(it)) for _ in range(40)]
    )  # 4000 = one epoch per task.
    assert set(ids[ids < N_RECORDS]) == set(range(N_RECORDS))


def test_two_hosts_see_disjoint_data(id_sources):
    config = _config(batch_size=100)  # Global batch: 50 per host.
    seen = []
    for index in (0, 1):
        it = _iterator(config, id_sources, process_index=index, process_count=2)
        batches = [next(it) for _ in range(40)]
        assert all(b["hq"].shape[0] == 50 for b in batches)
        seen.append(set(np.concatenate([_ids(b) for b in batches])))
    assert not seen[0] & seen[1]
    assert (
        len(seen[0]) > 1000 and len(seen[1]) > 1000
    )  # Both hosts cover most of their share.


def test_global_batch_must_split_evenly_over_hosts(id_sources):
    with pytest.raises(ValueError, match="not divisible by the 3 hosts"):
        _iterator(_config(batch_size=100), id_sources, process_index=0, process_count=3)


def test_paired_records_keep_their_lq_aligned_and_unpaired_ones_are_degraded():
    rng = np.random.default_rng(0)
    hq = [rng.integers(0, 256, (12, 10, 3), dtype=np.uint8) for _ in range(N_RECORDS)]
    paired = sources.InMemorySource([{"hq": h, "lq": 255 - h, "name": "p"} for h in hq])
    clean = sources.InMemorySource([{"hq": h, "name": "c"} for h in hq])
    config = _config(
        tasks=("motion", "sr"),
        weights={"motion": 0.5, "sr": 0.5},
        sources={},
        crop_size=6,
        batch_size=20,
    )
    it = pipeline.make_train_iterator(
        config,
        process_index=0,
        process_count=1,
        sources={"motion": paired, "sr": clean},
        degradations={"sr": _shrink},  # "motion" is paired: it needs no degradation.
    )
    batch = next(it)
    assert batch["lq"].shape == (20, 6, 6, 3)
    motion = batch["task_id"] == 0
    np.testing.assert_allclose(
        batch["lq"][motion], 1.0 - batch["hq"][motion], atol=1e-6
    )
    # The x2-smaller degraded image was resized back to the crop size.
    assert not np.allclose(batch["lq"][~motion], batch["hq"][~motion])


def _shift_right(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Like a blur kernel reaching one pixel left: column j takes column j - 1 (edge repeated)."""
    return np.concatenate([image[:, :1], image[:, :-1]], axis=1)


@pytest.mark.parametrize("margin", [0, 2])
def test_degradation_margin_lets_the_degradation_see_the_crops_surroundings(margin):
    # Every pixel holds 10 x its column, so a crop's left neighbour is its first column - 10.
    hq = np.broadcast_to((np.arange(20) * 10).astype(np.uint8)[None, :, None], (20, 20, 3))
    source = sources.InMemorySource([{"hq": np.array(hq), "name": "x"}] * N_RECORDS)
    config = _config(
        tasks=("motion",),
        weights={"motion": 1.0},
        sources={},
        crop_size=6,
        batch_size=50,
        degradation_margin=margin,
        flip=False,
    )
    batch = next(
        pipeline.make_train_iterator(
            config,
            process_index=0,
            process_count=1,
            sources={"motion": source},
            degradations={"motion": _shift_right},
        )
    )
    first = np.rint(batch["hq"][:, 0, 0, 0] * 255)
    lq_first = np.rint(batch["lq"][:, 0, 0, 0] * 255)
    inside = first > 0  # crops not at the photo's left edge
    assert inside.sum() > 10 and (~inside).any()
    np.testing.assert_array_equal(batch["lq"][:, :, 1:], batch["hq"][:, :, :-1])
    # At the photo's own edge there is nothing to see, with or without a margin.
    np.testing.assert_array_equal(lq_first[~inside], first[~inside])
    expected = first[inside] - 10 if margin else first[inside]
    np.testing.assert_array_equal(lq_first[inside], expected)


def test_real_pairs_with_a_smaller_lq_are_upsampled_to_the_hq_size():
    hq = np.full((16, 16, 3), 200, np.uint8)
    lq = np.full((4, 4, 3), 100, np.uint8)
    source = sources.InMemorySource([{"hq": hq, "lq": lq, "name": "x"}] * N_RECORDS)
    config = _config(
        tasks=("sr",), weights={"sr": 1.0}, sources={}, crop_size=8, batch_size=2
    )
    batch = next(
        pipeline.make_train_iterator(
            config, process_index=0, process_count=1, sources={"sr": source}
        )
    )
    assert batch["lq"].shape == (2, 8, 8, 3)
    np.testing.assert_allclose(batch["lq"], 100 / 255, atol=1e-6)


def test_clean_source_without_a_degradation_is_an_error(id_sources):
    with pytest.raises(KeyError, match="'denoise' reads clean images"):
        _iterator(
            _config(),
            id_sources,
            degradations={"sr": _identity, "motion": _identity, "defocus": _identity},
        )


def test_image_smaller_than_the_crop_names_the_image(id_sources):
    it = _iterator(_config(crop_size=8), id_sources)
    with pytest.raises(ValueError, match="smaller than crop_size 8"):
        next(it)


def test_weights_must_match_the_tasks(id_sources):
    with pytest.raises(KeyError, match="missing \\['denoise'\\]"):
        _iterator(
            _config(weights={"sr": 1.0, "motion": 1.0, "defocus": 1.0}), id_sources
        )


def test_sample_photos_with_the_library_degradations_gives_all_four_tasks():
    config = pipeline.sample_photos_config()
    config.update(crop_size=48, batch_size=12, read_threads=1)
    batch = next(pipeline.make_train_iterator(config, process_index=0, process_count=1))
    assert batch["hq"].shape == batch["lq"].shape == (12, 48, 48, 3)
    assert set(batch["task_id"].tolist()) == {0, 1, 2, 3}
    assert 0.0 <= batch["lq"].min() and batch["lq"].max() <= 1.0
    for i in range(12):  # Every pair is degraded.
        assert np.abs(batch["lq"][i] - batch["hq"][i]).mean() > 1e-3
    assert pipeline.task_prompts(config.tasks) == [
        "Super-resolution",
        "Motion-deblur",
        "Defocus-deblur",
        "Denoise",
    ]


def test_built_tfds_datasets_are_read_through_source_specs(tmp_path):
    root = tmp_path / "gopro"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for frame in range(3):
            sharp = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            for sub, pixels in (("sharp", sharp), ("blur", 255 - sharp)):
                path = root / split / "SEQ" / sub / f"{frame:06d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                PIL.Image.fromarray(pixels).save(path)
    builders.build("gopro", manual_dir=root, data_dir=tmp_path / "data")
    config = _config(
        tasks=("motion", "denoise"),
        weights={"motion": 0.5, "denoise": 0.5},
        sources={"motion": "gopro:train,gopro:test", "denoise": "sample_photos:train"},
        data_dir=str(tmp_path / "data"),
        crop_size=16,
        batch_size=8,
    )
    batch = next(
        pipeline.make_train_iterator(
            config, process_index=0, process_count=2, degradations={"denoise": _darken}
        )
    )
    motion = batch["task_id"] == 0
    assert batch["hq"].shape == (4, 16, 16, 3) and motion.any()
    np.testing.assert_allclose(
        batch["lq"][motion], 1.0 - batch["hq"][motion], atol=1e-6
    )


@pytest.mark.multiprocess
def test_worker_processes_give_the_same_batches_as_the_main_process(id_sources):
    config = _config(batch_size=20)
    expected = [next(it) for it in [_iterator(config, id_sources)] for _ in range(3)]
    config.num_workers = 2
    it = _iterator(config, id_sources)
    try:
        got = [next(it) for _ in range(3)]
    finally:
        it.close()
    for want, have in zip(expected, got):
        for key in want:
            np.testing.assert_array_equal(have[key], want[key])


@pytest.mark.multiprocess
@pytest.mark.slow
def test_worker_processes_restore_their_state(id_sources):
    config = _config(batch_size=20, num_workers=2)
    it = _iterator(config, id_sources)
    try:
        next(it)
        state = it.get_state()
        expected = [next(it), next(it)]
    finally:
        it.close()
    restored = _iterator(config, id_sources)
    try:
        restored.set_state(state)
        got = [next(restored), next(restored)]
    finally:
        restored.close()
    for want, have in zip(expected, got):
        for key in want:
            np.testing.assert_array_equal(have[key], want[key])


def test_resume_is_exact_with_the_default_models_photos_dead_leaves_and_broad_recipe():
    config = pipeline.sample_photos_config()
    config.update(
        crop_size=32,
        batch_size=6,
        read_threads=1,
        degradation_margin=8,
        degradation_recipe="broad",
    )
    config.sources = {t: "photos:train@0.7,dead_leaves:64@0.3" for t in config.tasks}
    it = pipeline.make_train_iterator(config, process_index=0, process_count=1)
    for _ in range(3):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(3)]
    restored = pipeline.make_train_iterator(config, process_index=0, process_count=1)
    restored.set_state(state)
    for want in expected:
        got = next(restored)
        assert got["hq"].shape == got["lq"].shape == (6, 32, 32, 3)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])

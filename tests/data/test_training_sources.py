"""The default model's training sources: installed photos at several scales (never a held-out
photo), procedural dead leaves, and their weighted mixture."""

import logging

import numpy as np
import pytest

from unires_jax.data import real_photos, sample_photos, sources


@pytest.fixture(scope="module")
def photos() -> sources.PhotoSource:
    return sources.open_source("photos:train")


def _photo_name(record_name: str) -> str:
    return record_name.rsplit("@", 1)[0]


def test_no_held_out_photo_is_ever_a_training_record(photos):
    held_out = set(real_photos.HELDOUT) | set(sample_photos.HELDOUT)
    assert held_out == {"grace_hopper", "dune", "ladybird", "storm", "wood"} | {
        "chelsea",
        "coffee",
        "flower",
        "rocket",
    }
    assert not set(photos.photos) & held_out
    names = {_photo_name(photos[i]["name"]) for i in range(len(photos))}
    assert names == set(photos.photos)
    assert not names & held_out
    # Every training photo that is installed here is used.
    assert set(sample_photos.TRAIN) <= names
    assert set(real_photos.available("train")) <= names


def test_held_out_photos_cannot_be_opened_as_a_training_source():
    for spec in ("photos:heldout", "photos", "photos:all"):
        with pytest.raises(ValueError, match="only `photos:train` exists"):
            sources.open_source(spec)


def test_each_photo_is_seen_at_several_scales_up_to_768px(photos):
    sides = {}
    for i in range(len(photos)):
        record = photos[i]
        hq = record["hq"]
        assert hq.dtype == np.uint8 and hq.ndim == 3 and hq.shape[-1] == 3
        sides.setdefault(_photo_name(record["name"]), []).append(min(hq.shape[:2]))
    assert all(len(s) >= 2 for s in sides.values()), sides
    assert min(min(s) for s in sides.values()) == 256
    assert max(max(s) for s in sides.values()) <= 768
    if "aqua" in sides:  # a 2560 x 1600 mate-backgrounds photo: the whole ladder
        assert sides["aqua"] == list(sources.PHOTO_SHORT_SIDES)


def test_photo_scales_never_upscale_and_halve_large_photos_at_least():
    assert sources.photo_scales(303) == [256, 303]
    assert sources.photo_scales(512) == [256, 307, 368, 441, 512]
    assert sources.photo_scales(800) == [256, 307, 368, 441, 529, 635, 800]
    # Large (JPEG) photos are only used at half their size or less.
    assert sources.photo_scales(1600) == list(sources.PHOTO_SHORT_SIDES)
    assert sources.photo_scales(1203) == [256, 307, 368, 441, 529]
    assert sources.photo_scales(200) == [200]


def test_a_missing_photo_package_is_skipped_with_a_message(
    monkeypatch, tmp_path, caplog
):
    missing = real_photos.TRAIN[0]
    monkeypatch.setitem(
        real_photos.PHOTOS,
        missing,
        ("debian:mate-backgrounds", str(tmp_path / "Missing.jpg")),
    )
    monkeypatch.setattr(sample_photos, "TRAIN", ("astronaut",))
    monkeypatch.setitem(sample_photos.SPLITS, "train", ("astronaut",))
    with caplog.at_level(logging.WARNING):
        photos = sources.training_photos()
    assert missing not in photos and "astronaut" in photos
    assert "apt-get install mate-backgrounds" in caplog.text and missing in caplog.text


def test_dead_leaves_records_are_fixed_by_their_index():
    source = sources.open_source("dead_leaves:48")
    assert isinstance(source, sources.DeadLeavesSource) and len(source) == 10**6
    record = source[123]
    assert record["hq"].shape == (48, 48, 3) and record["hq"].dtype == np.uint8
    np.testing.assert_array_equal(record["hq"], source[123]["hq"])
    assert not np.array_equal(record["hq"], source[124]["hq"])
    assert sources.open_source("dead_leaves")[0]["hq"].shape == (128, 128, 3)
    with pytest.raises(IndexError):
        source[10**6]
    with pytest.raises(ValueError, match="dead_leaves:<size in px>"):
        sources.open_source("dead_leaves:big")


def _tagged(tag: int, n: int) -> sources.InMemorySource:
    return sources.InMemorySource(
        [
            {"hq": np.full((1, 1, 3), tag, np.uint8), "name": f"{tag}/{i}"}
            for i in range(n)
        ]
    )


def test_weighted_source_has_exact_proportions_and_reads_every_record():
    mix = sources.WeightedSource([_tagged(0, 5), _tagged(1, 1000)], [0.7, 0.3])
    assert mix.fractions == [0.7, 0.3]
    tags = np.array([mix[i]["hq"][0, 0, 0] for i in range(len(mix))])
    assert len(mix) == 100 * 34  # 1000 records at 30 per block
    for start in (0, 50, 1234):  # any 100 consecutive records
        assert tags[start : start + 100].sum() == 30
    names = {mix[i]["name"] for i in range(len(mix))}
    assert names == {f"0/{i}" for i in range(5)} | {f"1/{i}" for i in range(1000)}
    assert mix[17]["name"] == mix[17]["name"]  # deterministic
    with pytest.raises(IndexError):
        mix[len(mix)]


def test_weights_are_written_after_an_at_sign_on_every_spec_or_none():
    mix = sources.open_sources("sample_photos:train@3,dead_leaves:32@1")
    assert isinstance(mix, sources.WeightedSource) and mix.fractions == [0.75, 0.25]
    assert isinstance(
        sources.open_sources("sample_photos:train,dead_leaves:32"), sources.ConcatSource
    )
    with pytest.raises(ValueError, match="every spec a weight"):
        sources.open_sources("sample_photos:train@0.5,dead_leaves:32")
    with pytest.raises(ValueError, match="positive"):
        sources.WeightedSource([_tagged(0, 1), _tagged(1, 1)], [1.0, 0.0])

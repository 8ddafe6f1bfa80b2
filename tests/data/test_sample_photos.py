"""The packaged sample photos: no network, a fixed split, held-out photos never in training."""

from __future__ import annotations

import hashlib
import socket

import numpy as np
import pytest

from unires_jax.data import builders, load_sample_photos, sample_photos


def _digest(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """A 16x16 gray thumbnail, normalised: equal for the same photo at another size or format."""
    gray = image.astype(np.float64).mean(axis=-1)
    rows = np.array_split(np.arange(gray.shape[0]), 16)
    cols = np.array_split(np.arange(gray.shape[1]), 16)
    small = np.array([[gray[np.ix_(r, c)].mean() for c in cols] for r in rows])
    return (small - small.mean()) / (small.std() + 1e-9)


@pytest.fixture(scope="module")
def photos():
    return {split: load_sample_photos(split) for split in ("train", "heldout")}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("sample_photos tried to use the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_split_is_fixed_by_name_and_disjoint():
    assert set(sample_photos.HELDOUT) == {"chelsea", "coffee", "flower", "rocket"}
    assert not set(sample_photos.TRAIN) & set(sample_photos.HELDOUT)
    assert set(sample_photos.TRAIN) | set(sample_photos.HELDOUT) == set(
        sample_photos.PHOTOS
    )
    # The stereo pair shows one scene: both halves stay on the same side.
    assert {"motorcycle_left", "motorcycle_right"} <= set(sample_photos.TRAIN)


def test_photos_are_files_inside_the_installed_packages(no_network):
    for name, (package, _) in sample_photos.PHOTOS.items():
        path = sample_photos.photo_path(name)
        assert path.is_file()
        assert f"/{package}/" in path.as_posix(), path  # Not a download cache.


def test_photos_decode_to_rgb_large_enough_for_training_crops(photos):
    for split in photos.values():
        for name, image in split.items():
            assert (
                image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
            ), name
            assert min(image.shape[:2]) >= 256, name
            assert image.std() > 10, name  # A photo, not a flat placeholder.


def test_heldout_photos_never_appear_in_training_even_under_another_name(photos):
    train, heldout = photos["train"], photos["heldout"]
    assert list(heldout) == sorted(sample_photos.HELDOUT)
    assert not {_digest(i) for i in train.values()} & {
        _digest(i) for i in heldout.values()
    }
    for held_name, held in heldout.items():
        for train_name, image in train.items():
            correlation = np.mean(_thumbnail(held) * _thumbnail(image))
            assert correlation < 0.9, (held_name, train_name, correlation)


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="heldout"):
        load_sample_photos("test")


def test_tfds_build_needs_no_network_and_keeps_the_split(tmp_path, photos, no_network):
    report = builders.build("sample_photos", data_dir=tmp_path)
    assert report.splits == {
        "train": len(sample_photos.TRAIN),
        "heldout": len(sample_photos.HELDOUT),
    }
    assert report.skipped == []
    for split, expected in photos.items():
        source = builders.open_built("sample_photos", split, data_dir=tmp_path)
        records = {
            source[i]["name"].decode(): source[i]["hq"] for i in range(len(source))
        }
        assert records.keys() == expected.keys()
        for name, image in expected.items():
            np.testing.assert_array_equal(records[name], image)

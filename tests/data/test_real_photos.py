"""The real-photo sets of the default model's benchmark: fixed, disjoint, prepared the same way."""

import numpy as np
import pytest

from unires_jax.data import real_photos


def test_the_held_out_set_is_fixed_and_never_in_training():
    assert real_photos.HELDOUT == ("grace_hopper", "dune", "ladybird", "storm", "wood")
    assert not set(real_photos.HELDOUT) & set(real_photos.TRAIN)
    assert set(real_photos.HELDOUT) | set(real_photos.TRAIN) == set(real_photos.PHOTOS)


def test_a_photo_is_a_centred_crop_of_the_downscaled_file():
    photo = real_photos.load("grace_hopper", 256)  # matplotlib ships it: always installed
    assert photo.shape == (256, 256, 3) and photo.dtype == np.float32
    assert 0.0 <= photo.min() and photo.max() <= 1.0 and photo.std() > 0.1
    assert real_photos.load("grace_hopper", 64).shape == (64, 64, 3)
    assert "grace_hopper" in real_photos.available("heldout")


def test_a_photo_of_a_missing_debian_package_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(
        real_photos.PHOTOS, "dune", ("debian:mate-backgrounds", str(tmp_path / "Dune.jpg"))
    )
    with pytest.raises(FileNotFoundError, match="apt-get install mate-backgrounds"):
        real_photos.photo_path("dune")
    assert "dune" not in real_photos.available("heldout")

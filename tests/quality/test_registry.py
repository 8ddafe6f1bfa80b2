"""The quality registry: every registered no-reference Q ranks a clean photo first."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import skimage.data

from unires_jax import quality


@pytest.fixture(scope="module")
def triplet() -> np.ndarray:
    """[3, 288, 384, 3]: a clean photo, its Gaussian-noised and its blurred versions."""
    x = skimage.data.coffee()[56:344, 108:492] / 255.0
    noisy = np.clip(x + np.random.default_rng(1).normal(0, 0.05, x.shape), 0, 1)
    blurred = scipy.ndimage.gaussian_filter(x, (2, 2, 0))
    return np.stack([x, noisy, blurred])


@pytest.mark.parametrize("name", ["niqe", "brisque", "piqe"])
def test_every_offline_q_ranks_clean_above_noisy_and_blurred(name, triplet):
    q = quality.get(name)
    assert q.name == name and isinstance(q, quality.QualityModel)
    scores = q.score(triplet)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    value = quality.objective(
        q, scores
    )  # higher is better, whatever the model's direction
    assert value[0] > value[1] and value[0] > value[2], scores


def test_objective_negates_lower_is_better_scores():
    assert not quality.get("niqe").higher_is_better
    np.testing.assert_array_equal(
        quality.objective(quality.get("piqe"), np.array([3.0, 5.0])), [-3.0, -5.0]
    )


def test_scores_accept_lists_of_different_sizes_and_jax_arrays(triplet):
    import jax.numpy as jnp

    q = quality.get("piqe")
    batch = q.score(jnp.asarray(triplet[:2]))
    listed = q.score([triplet[0], triplet[1][:200, :250]])
    assert batch[0] == pytest.approx(listed[0])


def test_registry_names_and_errors():
    assert quality.names() == ["niqe", "brisque", "piqe", "musiq"]
    with pytest.raises(KeyError, match="registered: niqe, brisque, piqe, musiq"):
        quality.get("lpips")
    with pytest.raises(ValueError, match="checkpoint"):
        quality.get("musiq")  # never downloads: asks for the official file
    with pytest.raises(ValueError, match="no model file"):
        quality.get("piqe", checkpoint="x.npz")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        quality.get("piqe").score(np.full((1, 32, 32, 3), 255.0))


MUSIQ_DIR_VARIABLE = "UNIRES_MUSIQ_CHECKPOINTS"


@pytest.mark.parametrize("head", ["koniq", "spaq", "paq2piq", "ava"])
def test_musiq_official_checkpoints_rank_clean_above_noisy_and_blurred(head, triplet):
    """MUSIQ's ranking needs the official trained weights, which users bring and nothing here
    may download: set UNIRES_MUSIQ_CHECKPOINTS to the folder holding the release's .npz files.
    """
    import os
    import pathlib

    from unires_jax.quality.musiq import HEADS

    folder = os.environ.get(MUSIQ_DIR_VARIABLE)
    path = pathlib.Path(folder or ".") / HEADS[head][0]
    if not folder or not path.exists():
        pytest.skip(
            f"needs the official MUSIQ weights, which are not shipped and may not be "
            f"downloaded: set {MUSIQ_DIR_VARIABLE} to a folder with {HEADS[head][0]}"
        )
    q = quality.get("musiq", checkpoint=str(path), head=head)
    value = quality.objective(q, q.score(triplet))
    assert value[0] > value[1] and value[0] > value[2], value

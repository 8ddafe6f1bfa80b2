"""The weight grid: the paper's 1512 vectors, the paper's snippet elsewhere, clear errors."""

import itertools as it
import re
from fractions import Fraction

import numpy as np
import pytest

from unires_jax.search import grid as grid_module_fn  # the function, re-exported
from unires_jax.search.grid import GridSpec, embed, grid


def paper_snippet(vmin, vmax, nvars, interval, max_negative=1):
    """The supplementary's `search_grid` (A.2), with its hard-coded 1 made a parameter."""
    values = np.arange(vmin, vmax + 1e-3, interval)
    valid = []
    for x in it.product(*([values] * nvars)):
        x = np.array(x)
        if not np.abs(1 - np.sum(x)) < 1e-5:
            continue
        if max_negative is not None and not np.count_nonzero(x < -1e-5) <= max_negative:
            continue
        valid.append(x.tolist())
    return np.array(valid)


def test_default_grid_is_the_papers_1512_vectors():
    g = grid()
    assert g is not None and grid_module_fn is grid
    assert g.shape == (1512, 6)
    np.testing.assert_allclose(g.sum(axis=1), 1.0, atol=1e-12)
    assert (np.count_nonzero(g < 0, axis=1) <= 1).all()
    assert set(np.round(g, 9).ravel()) == {-0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2}
    assert len({tuple(v) for v in g}) == 1512
    assert GridSpec().vectors(6).shape == (1512, 6)


@pytest.mark.parametrize(
    "vmin, vmax, step, k, max_negative",
    [
        (-0.2, 1.2, 0.2, 6, 1),
        (-0.2, 1.2, 0.2, 4, 2),
        (0.0, 1.0, 0.25, 4, 0),
        (-0.5, 1.5, 0.5, 3, 1),
        (-0.3, 1.0, 0.1, 3, 1),
        (-1.0, 2.0, 0.5, 3, None),
        (0.0, 1.0, 0.1, 3, 0),
        (-0.2, 1.2, 0.2, 1, 1),
    ],
)
def test_grid_matches_the_paper_snippet(vmin, vmax, step, k, max_negative):
    ours = grid(vmin, vmax, step, k, max_negative)
    theirs = paper_snippet(vmin, vmax, k, step, max_negative)
    # Same vectors in the same (itertools.product) order; values differ only by the float
    # drift of np.arange (ours are the exact decimals).
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_grid_values_are_exact_decimals_not_accumulated_floats():
    g = grid(0.0, 1.0, 0.1, 2, 0)
    # np.arange(0, 1.001, 0.1)[3] is 0.30000000000000004; the grid holds float("0.3").
    assert 0.3 in g[:, 0] and 0.7 in g[:, 0]
    exact = {float(Fraction(i, 10)) for i in range(11)}
    assert set(g.ravel()) == exact
    sums = [
        sum(Fraction(repr(float(v))) for v in row) for row in grid(-0.2, 1.2, 0.1, 3)
    ]
    assert all(abs(s - 1) < Fraction(1, 10**15) for s in sums)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vmin": 0, "vmax": 1, "step": 0.3, "k": 4}, "step too coarse"),
        ({"vmin": 0.5, "vmax": 1, "step": 0.1, "k": 3}, "lower vmin"),
        ({"vmin": 0, "vmax": 0.2, "step": 0.1, "k": 3}, "raise vmax"),
        # {-0.5, 0.75}: only 0.75 + 0.75 - 0.5 sums to 1, which needs a negative weight.
        (
            {"vmin": -0.5, "vmax": 0.75, "step": 1.25, "k": 3, "max_negative": 0},
            "too many negative",
        ),
        ({"step": 0}, "step must be > 0"),
        ({"vmin": 1.0, "vmax": 0.0}, "above vmax"),
        ({"k": 0}, "k (the number of experts)"),
        ({"max_negative": -1}, "max_negative"),
        ({"vmin": float("nan")}, "finite"),
        ({"vmin": -0.2, "vmax": 1.2, "step": 0.01, "k": 6}, "more than"),
    ],
)
def test_grid_rejects_impossible_settings(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        grid(**kwargs)


def test_embed_puts_searched_experts_in_place_and_zeros_elsewhere():
    experts = ["BR", "SR", "MD", "DD", "DN", "DownLQ"]
    full = embed(grid(-0.5, 1.5, 0.5, 2), ["DN", "DownLQ"], experts)
    assert full.shape == (5, 6)
    assert (full[:, :4] == 0).all()
    np.testing.assert_allclose(full.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="unknown expert"):
        embed(grid(0, 1, 0.5, 2), ["DN", "XX"], experts)

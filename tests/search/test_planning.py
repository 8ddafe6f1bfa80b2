"""Pure planning pieces: candidate packing, shape buckets, halving stages and budget plans."""

import numpy as np
import pytest

from unires_jax.search.engine import _bucket, plan_rounds
from unires_jax.search.halving import _affordable, _plan_cost, stage_schedule


@pytest.mark.parametrize("shards, capacity", [(1, 4), (8, 4), (8, 64), (3, 7)])
def test_packing_covers_every_candidate_once_within_capacity(shards, capacity):
    nnz = np.random.default_rng(0).integers(1, 7, size=300)
    rounds = plan_rounds(nnz, shards, capacity)
    placed = [c for r in rounds for shard in r for c in shard]
    assert sorted(placed) == list(range(300))
    for r in rounds:
        assert len(r) == shards
        loads = [int(nnz[s].sum()) for s in r]
        assert max(loads) <= max(capacity, int(nnz.max()))
    # Full rounds are nearly full: every shard within one candidate of the capacity.
    for r in rounds[:-1]:
        assert min(int(nnz[s].sum()) for s in r) > capacity - int(nnz.max())


def test_a_candidate_larger_than_the_capacity_gets_a_shard_alone():
    rounds = plan_rounds(np.array([9, 1, 1]), 2, 4)
    assert [0] in rounds[0]


def test_bucket_sizes_are_few_and_cover_the_load():
    assert [_bucket(n, 64) for n in (1, 2, 3, 5, 7, 8, 9, 33, 64)] == [1, 2, 3, 6, 8, 8, 12, 48, 64]
    assert _bucket(3, 4) == 3 and _bucket(6, 4) == 6 and _bucket(13, 12) == 13
    sizes = {_bucket(n, 64) for n in range(1, 65)}
    assert sizes == {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64}
    # Padding never wastes more than a third of a call (pure powers of two: up to half).
    assert all(_bucket(n, 64) - n < _bucket(n, 64) / 3 + 1e-9 for n in range(1, 65))


def test_stage_schedules_grow_geometrically_from_one_to_steps():
    assert stage_schedule(50, 3) == [1, 4, 14, 50]
    assert stage_schedule(3, 3) == [1, 2, 3]
    assert stage_schedule(4, 1) == [1, 4]
    assert stage_schedule(1, 3) == [1]
    with pytest.raises(ValueError):
        stage_schedule(0, 3)


def test_halving_plans_are_priced_with_the_largest_pair_counts():
    nnz = np.array([1, 6, 2, 3])
    # Keep 4 for stages 1 -> 2 (all pairs), then ceil(4 / 2) = 2 for 2 -> 4 (the two largest).
    assert _plan_cost(nnz, 4, [1, 2, 4], eta=2) == 12 + (6 + 3) * 2
    assert _affordable(nnz, [1, 2, 4], left=30, eta=2, cap=4) == 4
    assert _affordable(nnz, [1, 2, 4], left=29, eta=2, cap=4) == 3
    assert _affordable(nnz, [1, 4], left=2, eta=2, cap=4) == 0

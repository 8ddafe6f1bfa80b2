"""Composition of degradations, x = (D_k o ... o D_1)(y), under the GIR ordering rule.

Rain, snow and haze form at capture time, in front of the lens, so they cannot act on an image
that is already blurred, noisy or compressed: in a composition they may only come first (a run
of capture-time operators at the start is allowed; one after any other operator is rejected).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from unires_jax.data.degradations.operators import GIR_OPERATORS, Operator, get_operator


@dataclasses.dataclass(frozen=True)
class Composition:
    """An ordered, validated chain of operators (first applied first).

    Build with `compose`; `sample` draws one parameter set per operator and `apply` runs the
    chain, so a composition is also usable as `composition(image, rng)`.
    """

    operators: tuple[Operator, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.operators)

    def sample(self, rng: np.random.Generator) -> tuple[Any, ...]:
        """One parameter set per operator, in order."""
        return tuple(op.sample(rng) for op in self.operators)

    def representative(self) -> tuple[Any, ...]:
        """The GIR representative parameters of each operator, in order."""
        return tuple(op.representative for op in self.operators)

    def apply(
        self, image: np.ndarray, params: Sequence[Any], rng: np.random.Generator
    ) -> np.ndarray:
        """Runs the chain: [H, W, 3] -> [H, W, 3] float32 in [0, 1]."""
        if len(params) != len(self.operators):
            raise ValueError(
                f"composition.py: {len(params)} parameter sets for {len(self.operators)} operators "
                f"{self.names}; pass the tuple returned by Composition.sample."
            )
        for op, p in zip(self.operators, params):
            image = op.apply(image, p, rng)
        return image

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Samples the parameters of every operator, then applies the chain."""
        return self.apply(image, self.sample(rng), rng)


def compose(operators: Sequence[Operator | str]) -> Composition:
    """Validates and chains operators (instances or names from `OPERATORS`).

    Args:
        operators: non-empty sequence, first applied first.

    Returns:
        The Composition.

    Raises:
        ValueError: empty, or a capture-time operator (rain / snow / haze) after another one.
        KeyError: an unknown operator name.
    """
    ops = tuple(get_operator(o) if isinstance(o, str) else o for o in operators)
    if not ops:
        raise ValueError("composition.py: compose() needs at least one operator.")
    for i, op in enumerate(ops):
        if op.capture_time and i > 0 and not ops[i - 1].capture_time:
            raise ValueError(
                f"composition.py: capture-time operator {op.name!r} at position {i} follows "
                f"{ops[i - 1].name!r} in {[o.name for o in ops]}. Rain, snow and haze happen "
                "before the camera, so they may only come first: move it to the front."
            )
    return Composition(ops)


def sample_mixture(
    rng: np.random.Generator,
    order_k: int,
    operators: dict[str, Operator] = GIR_OPERATORS,
) -> Composition:
    """Draws a random valid mixture of `order_k` operators, as GIR builds its mixed tasks.

    The first operator is drawn uniformly from all of `operators`; the following ones uniformly
    from the non-capture-time operators (repeats allowed, e.g. "blur + blur"), so weather occurs
    at most once and only first.

    Args:
        rng: random generator.
        order_k: number of operators, >= 1 (GIR uses 1..5).
        operators: the pool (default: the ten GIR operators).
    """
    if order_k < 1:
        raise ValueError(f"composition.py: order_k must be >= 1, got {order_k}.")
    names = sorted(operators)
    later = [n for n in names if not operators[n].capture_time]
    if order_k > 1 and not later:
        raise ValueError(
            "composition.py: the operator pool has only capture-time operators."
        )
    chosen = [names[rng.integers(len(names))]]
    chosen += [later[rng.integers(len(later))] for _ in range(order_k - 1)]
    return compose([operators[n] for n in chosen])

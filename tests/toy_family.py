"""A test-only model family: a three-layer CNN restorer, with its checkpoint, loader and Task-free
inference, registered in `unires_jax.restore.FAMILIES` by the `toy_family` fixture.

It exists to show that a new family goes through `unires restore` and `unires eval` (and
`batch.py`) with no change to them: everything it needs is the checkpoint format
(`convert/checkpoint.py`) and the `ImageRestorer` interface.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.convert import checkpoint as checkpoint_lib
from unires_jax.restore.interface import Restored, check_options

FAMILY = "toy"


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    width: int = 8


class ToyCNN(nnx.Module):
    """x + conv(relu(conv(relu(conv(x))))): a residual three-layer CNN on [B, H, W, 3]."""

    def __init__(self, cfg: ToyConfig, *, rngs: nnx.Rngs):
        w = cfg.width
        self.conv1 = nnx.Conv(3, w, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(w, w, (3, 3), rngs=rngs)
        self.conv3 = nnx.Conv(w, 3, (3, 3), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = jax.nn.relu(self.conv1(x))
        h = jax.nn.relu(self.conv2(h))
        return x + self.conv3(h)


def save_toy(
    dst, *, width: int = 8, seed: int = 0, strength: float = 1.0, delay: float = 0.0
):
    """A toy checkpoint with random weights (scaled down, so outputs stay near the input)."""
    model = ToyCNN(ToyConfig(width), rngs=nnx.Rngs(seed))
    params = {k: v * 0.1 for k, v in checkpoint_lib.module_params(model).items()}
    return checkpoint_lib.save(
        dst,
        family=FAMILY,
        config={"width": width},
        params={"cnn": params},
        settings={"strength": strength, "delay": delay},
    )


class ToyRestorer:
    family = FAMILY
    scale = 1

    def __init__(self, model: ToyCNN, strength: float, path, delay: float = 0.0):
        self.model, self.strength, self.path, self.delay = (
            model,
            strength,
            str(path),
            delay,
        )
        self.calls = 0
        graph, state = nnx.split(model)
        self._forward = jax.jit(lambda state, x: nnx.merge(graph, state)(x))
        self._state = state

    def describe(self):
        return {
            "family": FAMILY,
            "checkpoint": self.path,
            "settings": {"strength": self.strength},
        }

    def restore(self, image, *, seed=0, name=None):
        self.calls += 1
        time.sleep(self.delay)  # a slow model, for interrupting evaluations
        x = np.asarray(image, np.float32)
        if image.dtype == np.uint8:
            x = x / 255.0
        y = np.asarray(self._forward(self._state, jnp.asarray(x[None])))[0]
        out = np.clip(x + self.strength * (y - x), 0.0, 1.0)
        return Restored(out, {"strength": self.strength})


def load_toy(checkpoint, *, workdir=None, **options) -> ToyRestorer:
    check_options(FAMILY, options, {"strength"})
    if checkpoint is None:
        raise FileNotFoundError(
            "the toy family has no embedded model; pass a checkpoint"
        )
    ckpt = checkpoint_lib.read(checkpoint)
    model = nnx.eval_shape(lambda: ToyCNN(ToyConfig(**ckpt.config), rngs=nnx.Rngs(0)))
    checkpoint_lib.assign_params(
        model, ckpt.params("cnn"), dtype=jnp.float32, source=str(ckpt.path)
    )
    strength = float(options.get("strength", ckpt.settings["strength"]))
    return ToyRestorer(
        model, strength, ckpt.path, float(ckpt.settings.get("delay", 0.0))
    )


def register(families) -> None:
    """Adds the toy family to a FAMILIES table (tests use monkeypatch.setitem)."""
    families[FAMILY] = load_toy


if __name__ == "__main__":
    # `python tests/toy_family.py restore|eval ...`: the `unires` command with the toy family
    # registered, for tests that run it in a subprocess (to interrupt or kill it).
    import sys

    from unires_jax import restore
    from unires_jax.cli.main import main

    register(restore.FAMILIES)
    sys.exit(main(sys.argv[1:]))

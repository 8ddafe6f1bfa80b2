"""The UniRes Task trains through the one trainer, and the result restores."""

import numpy as np
import pytest
from task_helpers import config_file

from unires_jax.restore.restorer import Restorer
from unires_jax.train import trainer
from unires_jax.train.tasks import FAMILIES


def _config(arg):
    return config_file("unires_tiny", arg)


def test_unires_sd21_config_builds():
    c = config_file("unires_sd21")
    assert (c.train.batch_size, c.optim.lr, c.train.steps, c.data.crop_size) == (
        256,
        8e-5,
        200_000,
        512,
    )
    assert dict(c.data.weights) == {
        "sr": 0.32,
        "motion": 0.28,
        "defocus": 0.18,
        "denoise": 0.22,
    }
    assert c.model.unet.in_channels == 8 and c.model.lq_channels == 4


def test_unires_task_trains_and_exports(tmp_path):
    config = _config("test")
    task = FAMILIES["unires"](config)
    result = trainer.run(config, tmp_path / "work", task)
    assert result.status == "completed" and result.step == config.train.steps
    assert np.isfinite(result.metrics["loss"])
    # Only the UNet trains: the VAE and text encoder are frozen.
    assert set(result.state["params"]) == {"unet"}
    assert set(result.state["frozen"]) == {"vae", "text_encoder"}

    task.export(result.state, tmp_path / "model")
    restorer = Restorer.load(tmp_path / "model", steps=2)
    assert restorer.experts == ["BR", "SR", "MD", "DD", "DN", "DownLQ"]
    image = np.random.default_rng(0).uniform(size=(32, 32, 3)).astype(np.float32)
    out = restorer.restore(image, {"DN": -0.2, "DownLQ": 1.2})
    assert out.shape == (32, 32, 3) and np.isfinite(out).all()


def test_bfloat16_compute_runs_the_trained_unet_in_bfloat16_and_exports_it_as_configured():
    """A flax layer computes in its own dtype: a float32 UNet would promote the trainer's
    bfloat16 weights back to float32 activations (seen on an H200: the SD-2.1-size step needed
    132 GiB at batch 8)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    config = _config("test")
    config.precision.compute_dtype = "bfloat16"
    task = FAMILIES["unires"](config)
    model = nnx.eval_shape(lambda: task.init(nnx.Rngs(0)))
    params = nnx.state(model, nnx.Param).to_pure_dict()
    assert {x.dtype for x in jax.tree.leaves(params["unet"])} == {
        jnp.dtype(jnp.float32)
    }
    # As in the trainer's step: bfloat16 weights and inputs.
    unet_state = nnx.state(model.unet, nnx.Param)
    unet_state.replace_by_pure_dict(
        jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, jnp.bfloat16), params["unet"]
        )
    )
    nnx.update(model.unet, unet_state)
    cfg = model.unet.cfg
    x = jax.ShapeDtypeStruct((1, 8, 8, cfg.in_channels), jnp.bfloat16)
    t = jax.ShapeDtypeStruct((1,), jnp.int32)
    context = jax.ShapeDtypeStruct((1, 4, cfg.cross_attention_dim), jnp.bfloat16)
    out = nnx.eval_shape(lambda m, x, t, c: m(x, t, c), model.unet, x, t, context)
    assert out.dtype == jnp.bfloat16

    zeros = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), params)
    state = {
        "ema": {"unet": zeros["unet"]},
        "frozen": {k: zeros[k] for k in ("vae", "text_encoder")},
    }
    assert task.to_ldm(state).unet.cfg.dtype == task.model_cfg.unet.dtype == jnp.float32


@pytest.mark.slow
def test_training_loss_decreases_on_the_default_recipe(tmp_path):
    """A few hundred CPU steps of the default-model recipe: its training photos (those whose
    packages are installed here) and dead-leaves images, the "broad" degradations."""
    import json

    config = config_file("unires_default")
    config.train.steps = 200
    # One device: the recipe's learning is what is tested here (sharding is tested elsewhere),
    # and batch 8 split over 8 fake CPU devices runs 2x slower than on one.
    config.mesh.data = 1
    config.log.update(every=25, progress_bar=False)
    config.checkpoint.every = 1000
    trainer.run(config, tmp_path, FAMILIES["unires"](config))
    losses = [
        json.loads(line)["loss"]
        for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ]
    assert len(losses) == 8
    assert np.mean(losses[-2:]) < 0.7 * np.mean(losses[:2]), losses


def test_model_shape_fields_can_be_overridden_on_the_command_line():
    """Config files hold sequences as tuples, which ml_collections can override from a flag
    (`--config.model.unet.block_out_channels='(96, 96, 96)'`); lists it refuses."""
    from unires_jax.cli.train import _define_flags
    from unires_jax.convert.config_io import config_from_dict
    from unires_jax.models.configs import UNetConfig

    argv = [
        "unires",
        "--config=configs/unires_default.py",
        "--config.model.unet.block_out_channels=(96, 96, 96)",
    ]
    holder = _define_flags(argv)
    holder(argv)
    config = holder.config
    assert tuple(config.model.unet.block_out_channels) == (96, 96, 96)
    unet = config_from_dict(UNetConfig, dict(config.model.unet))
    assert unet.block_out_channels == (96, 96, 96)


def test_shipped_default_model_is_what_its_config_exports():
    """scripts/train_default_model.sh must reproduce the embedded model: its stored shapes,
    scheduler and inference settings are the ones configs/unires_default.py exports."""
    import json

    from unires_jax.convert.config_io import config_from_dict
    from unires_jax.models.configs import UNetConfig
    from unires_jax.restore.restorer import DEFAULT_MODEL_DIR

    config = config_file("unires_default")
    shipped = json.loads((DEFAULT_MODEL_DIR / "checkpoint.json").read_text())
    assert shipped["family"] == "unires"
    stored = shipped["config"]
    assert config_from_dict(UNetConfig, stored["unet"]) == config_from_dict(
        UNetConfig, dict(config.model.unet)
    )
    assert stored["scheduler"] == dict(config.task.scheduler)
    assert shipped["settings"] == dict(config.task.restore)
    assert stored["vae_kind"] == config.model.vae_kind

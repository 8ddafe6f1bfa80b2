"""The UniRes Task: fine-tune (or train) a latent diffusion model on LQ/HQ pairs with task prompts.

The model is the three LDM networks; the VAE and text encoder are frozen (paper setting), so only
the UNet trains. Each example's prompt comes from its task id (the data pipeline's task order);
the objective is `unires_jax.diffusion.objectives.unires_loss`.

Config keys read (defaults in `configs/unires_common.py`):
  model: an LDM model section (configs/ldm_*.py layout) whose UNet takes the LQ channels.
  task.pretrained: "" (random init) or a folder `load_ldm` reads (diffusers SD or unires-jax).
  task.tokenizer_dir: CLIP tokenizer folder ("" = the pretrained folder's, else the bundled one).
  task.scheduler: a diffusers scheduler_config dict (the noise schedule).
  task.objective: ObjectiveSettings fields.
  data: the grain pipeline section (`unires_jax.data.pipeline.default_config()` keys).
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from unires_jax.convert.clip import read_tokenizer
from unires_jax.convert.config_io import ldm_config_from_dict
from unires_jax.diffusion import experts as experts_lib
from unires_jax.diffusion.objectives import ObjectiveSettings, unires_loss
from unires_jax.diffusion.schedules import schedule_from_diffusers_config
from unires_jax.models.ldm import LatentDiffusion, LDMConfig, init_ldm_modules, vae_kind

BUNDLED_TOKENIZER = (
    pathlib.Path(__file__).resolve().parents[2] / "assets" / "clip_tokenizer"
)


class UniResModel(nnx.Module):
    """The three networks of a latent diffusion model, as one trainable module."""

    def __init__(self, cfg: LDMConfig, *, rngs: nnx.Rngs):
        modules = init_ldm_modules(cfg, rngs)
        self.unet = modules["unet"]
        self.vae = modules["vae"]
        self.text_encoder = modules["text_encoder"]


class UniResTask:
    """Task protocol implementation for UniRes (see unires_jax/train/task.py)."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        self.model_cfg = ldm_config_from_dict(config.model)
        # Paper setting: only the UNet trains. A fixed codec has no parameters to freeze.
        has_vae_params = vae_kind(self.model_cfg.vae) == "autoencoder_kl"
        self.frozen = ("vae", "text_encoder") if has_vae_params else ("text_encoder",)
        # The trainer casts the parameters to its compute dtype, but a flax layer computes in its
        # own `dtype` and would promote bfloat16 weights back to float32 activations: the trained
        # UNet is therefore built in the compute dtype. Its float32 master weights are
        # `param_dtype`'s, and exported models keep the configured dtype (see `to_ldm`).
        compute_dtype = jnp.dtype(config.precision.compute_dtype)
        if compute_dtype != jnp.float32:
            unet = dataclasses.replace(self.model_cfg.unet, dtype=compute_dtype)
            self.train_cfg = dataclasses.replace(self.model_cfg, unet=unet)
        else:
            self.train_cfg = self.model_cfg
        if self.model_cfg.lq_channels <= 0:
            raise ValueError(
                "config.model.lq_channels must be > 0 for UniRes (the LQ latent is concatenated "
                "to the noisy latent); e.g. 4 with unet.in_channels = 8"
            )
        self.schedule = schedule_from_diffusers_config(dict(config.task.scheduler))
        self.objective = ObjectiveSettings(**dict(config.task.objective))
        self.tokenizer_dir = self._tokenizer_dir(config)
        tokenizer = read_tokenizer(self.tokenizer_dir)
        from unires_jax.data.pipeline import task_prompts

        # Prompt table: the data tasks in task-id order, then "", positive and negative words.
        prompts = task_prompts(tuple(config.data.tasks)) + [
            "",
            experts_lib.POSITIVE_WORDS,
            experts_lib.NEGATIVE_WORDS,
        ]
        self.num_tasks = len(config.data.tasks)
        self.prompt_ids = np.asarray(tokenizer(prompts), np.int32)

    @staticmethod
    def _tokenizer_dir(config) -> pathlib.Path:
        if config.task.tokenizer_dir:
            return pathlib.Path(config.task.tokenizer_dir)
        if config.task.pretrained:
            return pathlib.Path(config.task.pretrained) / "tokenizer"
        return BUNDLED_TOKENIZER

    # --- Task protocol ---------------------------------------------------------------------

    def init(self, rngs: nnx.Rngs) -> UniResModel:
        return UniResModel(self.train_cfg, rngs=rngs)

    def _latents(
        self, model: UniResModel, images: jax.Array, rng: jax.Array | None
    ) -> jax.Array:
        """[B, H, W, 3] in [0, 1] -> scaled latents; a posterior sample when rng is given."""
        mean, logvar = model.vae.encode(images * 2.0 - 1.0)
        z = mean.astype(jnp.float32)
        if rng is not None:
            std = jnp.exp(0.5 * logvar.astype(jnp.float32))
            z = z + std * jax.random.normal(rng, z.shape, jnp.float32)
        return jax.lax.stop_gradient(z * model.vae.scaling_factor)

    def _loss(self, model: UniResModel, batch, rng):
        k_hq, k_loss = jax.random.split(rng)
        hq = self._latents(model, batch["hq"], k_hq)
        lq = self._latents(model, batch["lq"], None)
        prompt_context = jax.lax.stop_gradient(
            model.text_encoder(jnp.asarray(self.prompt_ids))
        )
        context = prompt_context[batch["task_id"]]
        n = self.num_tasks
        return unires_loss(
            model.unet,
            self.schedule,
            hq,
            lq,
            context,
            k_loss,
            empty_context=prompt_context[n],
            settings=self.objective,
            positive_context=prompt_context[n + 1],
            negative_context=prompt_context[n + 2],
        )

    def loss_fn(self, model: UniResModel, batch, rng):
        loss, aux = self._loss(model, batch, rng)
        return loss, {
            "mse": loss,
            "lq_dropped": jnp.mean(aux["lq_dropped"].astype(jnp.float32)),
        }

    def eval(self, model: UniResModel, batch):
        # A fixed key, so successive evaluations of the same batch are comparable.
        loss, _ = self._loss(model, batch, jax.random.key(0))
        return {"loss": loss}

    def load_pretrained(self, model: UniResModel) -> None:
        if not self.config.task.pretrained:
            return
        from unires_jax.convert.ldm import load_ldm

        ldm = load_ldm(
            self.config.task.pretrained, lq_channels=self.model_cfg.lq_channels
        )
        for name in ("unet", "vae", "text_encoder"):
            source = nnx.state(getattr(ldm, name), nnx.Param).to_pure_dict()
            target = nnx.state(getattr(model, name), nnx.Param)
            shapes = jax.tree.map(lambda x: x.shape, target.to_pure_dict())
            got = jax.tree.map(lambda x: x.shape, source)
            if shapes != got:
                raise ValueError(
                    f"{self.config.task.pretrained}: {name} weights do not fit config.model."
                    f"{name}; make config.model match the checkpoint's configs"
                )
            target.replace_by_pure_dict(
                jax.tree.map(
                    lambda old, new: jnp.asarray(new, old.dtype),
                    target.to_pure_dict(),
                    source,
                )
            )
            nnx.update(getattr(model, name), target)

    def make_train_iterator(self, config, process_index: int, process_count: int):
        from unires_jax.data.pipeline import make_train_iterator

        data = ml_collections.ConfigDict(config.data.to_dict())
        data.batch_size = int(config.train.batch_size)
        data.seed = int(config.train.seed)
        return make_train_iterator(
            data, process_index=process_index, process_count=process_count
        )

    # --- export ------------------------------------------------------------------------------

    def to_ldm(self, state: dict, *, use_ema: bool = True) -> LatentDiffusion:
        """Builds the inference model from a trainer state (RunResult.state or a checkpoint)."""
        trained = state["ema"] if use_ema else state["params"]
        merged = _deep_merge(jax.device_get(state["frozen"]), jax.device_get(trained))
        abstract = nnx.eval_shape(lambda: UniResModel(self.model_cfg, rngs=nnx.Rngs(0)))
        params = nnx.state(abstract, nnx.Param)
        params.replace_by_pure_dict(jax.tree.map(jnp.asarray, merged))
        nnx.update(abstract, params)
        return LatentDiffusion(
            unet=abstract.unet,
            vae=abstract.vae,
            text_encoder=abstract.text_encoder,
            tokenizer=read_tokenizer(self.tokenizer_dir),
            scheduler_config=dict(self.config.task.scheduler),
            lq_channels=self.model_cfg.lq_channels,
            tokenizer_dir=self.tokenizer_dir,
            source="unires train",
        )

    def export(self, state: dict, dst) -> None:
        """Writes the EMA model of a trainer state as a UniRes checkpoint at `dst` (the Task
        protocol's optional export hook), with the experts and default inference settings that
        `unires_jax.restore.load` reads."""
        from unires_jax.convert.ldm import save_ldm

        save_ldm(
            self.to_ldm(state),
            dst,
            experts=[dataclasses.asdict(e) for e in experts_lib.DEFAULT_EXPERTS],
            settings=dict(self.config.task.get("restore", {})),
            extra={
                "trained_by": "unires train",
                "steps": int(jax.device_get(state["step"])),
            }
            if "step" in state
            else {"trained_by": "unires train"},
        )


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        if key in out and isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out

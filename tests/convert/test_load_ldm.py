"""load_ldm on a whole diffusers Stable Diffusion folder equals the PyTorch models; the
unires-jax checkpoint written by `unires convert diffusers` loads back to the same outputs."""

import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from clip_vocab import write_clip_tokenizer

from unires_jax.cli.main import main as cli_main
from unires_jax.convert.ldm import load_ldm

TRICKY = ["a photo of a cat", "Super-resolution", "", "Hello,   World!! ünïcödé 🐱 &amp; 日本", "x " * 100]


def _rel_err(ours, ref):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-12)


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    import diffusers
    import transformers

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("sd")
    tok_dir = write_clip_tokenizer(root / "tok_src")
    unet = diffusers.UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        upcast_attention=True,
        norm_num_groups=8,
    )
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
    )
    text = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            vocab_size=49408,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            hidden_act="gelu",
        )
    )
    # Random (not zero) init everywhere so every weight matters.
    with torch.no_grad():
        for model in (unet, vae, text):
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
    pipe = diffusers.StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text,
        tokenizer=transformers.CLIPTokenizer.from_pretrained(tok_dir),
        scheduler=diffusers.DDIMScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
            clip_sample=False, set_alpha_to_one=False,
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    folder = root / "sd"
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder, pipe


def _check_same_as_torch(ldm, pipe, *, lq_extra=None):
    rng = np.random.default_rng(0)
    ids = ldm.tokenizer(TRICKY)
    ref_ids = pipe.tokenizer(TRICKY, padding="max_length", max_length=77, truncation=True).input_ids
    np.testing.assert_array_equal(ids, np.asarray(ref_ids))
    assert ids.dtype == np.int32 and ids.shape == (len(TRICKY), 77)

    with torch.no_grad():
        ref_ctx = pipe.text_encoder(torch.from_numpy(ids).long()).last_hidden_state.numpy()
    ctx = ldm.text_encoder(jnp.asarray(ids))
    assert _rel_err(ctx, ref_ctx) < 1e-4

    sample = rng.standard_normal((2, 16, 16, 4)).astype(np.float32)
    t = np.array([10, 900])
    with torch.no_grad():
        ref = pipe.unet(
            torch.from_numpy(sample).permute(0, 3, 1, 2), torch.from_numpy(t), torch.from_numpy(ref_ctx[:2])
        ).sample.permute(0, 2, 3, 1).numpy()
    inp = sample if lq_extra is None else np.concatenate([sample, lq_extra], -1)
    assert _rel_err(ldm.unet(jnp.asarray(inp), jnp.asarray(t), jnp.asarray(ref_ctx[:2])), ref) < 1e-4

    images = rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        dist = pipe.vae.encode(torch.from_numpy(images).permute(0, 3, 1, 2)).latent_dist
        ref_mean = dist.mean.permute(0, 2, 3, 1).numpy()
        ref_logvar = dist.logvar.permute(0, 2, 3, 1).numpy()
        ref_dec = pipe.vae.decode(dist.mean).sample.permute(0, 2, 3, 1).numpy()
    mean, logvar = ldm.vae.encode(jnp.asarray(images))
    assert _rel_err(mean, ref_mean) < 1e-4
    assert _rel_err(logvar, ref_logvar) < 1e-4
    assert _rel_err(ldm.vae.decode(jnp.asarray(ref_mean)), ref_dec) < 1e-4
    assert ldm.vae.scaling_factor == pytest.approx(pipe.vae.config.scaling_factor)


def test_load_ldm_matches_diffusers(sd_folder):
    folder, pipe = sd_folder
    ldm = load_ldm(folder)
    assert ldm.scheduler_config["steps_offset"] == 1
    _check_same_as_torch(ldm, pipe)


def test_lq_channels_do_not_change_the_output(sd_folder):
    folder, pipe = sd_folder
    ldm = load_ldm(folder, lq_channels=4)
    assert ldm.unet.cfg.in_channels == 8
    extra = np.random.default_rng(1).standard_normal((2, 16, 16, 4)).astype(np.float32) * 10
    _check_same_as_torch(ldm, pipe, lq_extra=extra)


def test_convert_cli_round_trips(sd_folder, tmp_path):
    folder, pipe = sd_folder
    dst = tmp_path / "converted"
    assert cli_main(["convert", "diffusers", str(folder), str(dst), "--lq-channels", "4"]) == 0
    ldm = load_ldm(dst)
    assert ldm.lq_channels == 4
    extra = np.random.default_rng(2).standard_normal((2, 16, 16, 4)).astype(np.float32)
    _check_same_as_torch(ldm, pipe, lq_extra=extra)
    # Converting onto an existing folder is refused, and nothing is half-written.
    assert cli_main(["convert", "diffusers", str(folder), str(dst)]) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".converted")]


def test_bfloat16_load_runs(sd_folder):
    folder, _ = sd_folder
    ldm = load_ldm(folder, dtype=jnp.bfloat16)
    out = ldm.unet(jnp.zeros((1, 16, 16, 4)), jnp.array([5]), jnp.zeros((1, 77, 32)))
    assert out.dtype == jnp.bfloat16 and out.shape == (1, 16, 16, 4)


def test_missing_component_is_named(sd_folder, tmp_path):
    folder, _ = sd_folder
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(FileNotFoundError, match=r"broken: missing component folder\(s\) \['vae'\]"):
        load_ldm(broken)


def test_bin_weights_need_allow_pickle(sd_folder, tmp_path):
    folder, pipe = sd_folder
    broken = tmp_path / "pickled"
    shutil.copytree(folder, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(pipe.unet.state_dict(), broken / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(ValueError, match=r"diffusion_pytorch_model\.bin: .*allow_pickle=True"):
        load_ldm(broken)
    ldm = load_ldm(broken, allow_pickle=True)
    assert ldm.unet.cfg.in_channels == 4


def test_unknown_config_key_names_file(sd_folder, tmp_path):
    folder, _ = sd_folder
    broken = tmp_path / "oddconfig"
    shutil.copytree(folder, broken)
    cfg_path = broken / "unet" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["class_embed_type"] = "timestep"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"unet/config\.json.*class_embed_type"):
        load_ldm(broken)


def test_wrong_shapes_name_file(sd_folder, tmp_path):
    folder, _ = sd_folder
    broken = tmp_path / "wrongshape"
    shutil.copytree(folder, broken)
    cfg_path = broken / "unet" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["cross_attention_dim"] = 48
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"diffusion_pytorch_model\.safetensors.*shape"):
        load_ldm(broken)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        load_ldm(tmp_path)

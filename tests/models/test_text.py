"""CLIP tokenizer against transformers' CLIPTokenizer; CLIP text encoder behaviour and sizes."""

import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from clip_vocab import write_clip_tokenizer
from flax import nnx

from unires_jax.convert.clip import read_tokenizer
from unires_jax.models import count_params
from unires_jax.models.partitioning import ALL_LOGICAL_AXES
from unires_jax.models.text import (
    CLIPTextEncoder,
    sd15_text,
    sd21_text,
    tiny_text,
)

POSITIVE = (
    "photorealistic, clean, high-resolution, ultra-high definition, 4k detail, 8k resolution, "
    "masterpiece, cinematic, highly detailed."
)
NEGATIVE = (
    "oil painting, cartoon, blur, dirty, messy, low quality, deformation, low resolution, "
    "over-smooth."
)
TRICKY = [
    "",
    "a photo of a cat",
    "Super-resolution",
    "Motion-deblur",
    "Defocus-deblur",
    "Denoise",
    POSITIVE,
    NEGATIVE,
    "Hello, World!!! What's up?? (yes) [no] {maybe} <tag> a/b\\c @user #hash $5 50% x^2 a*b+c=d ~`|",
    "ALL CAPS SHOUTING and MiXeD cAsE, DON'T, I'LL, WE'RE, YOU'VE, I'M, HE'D, IT'S",
    "3.14159 1,000,000 2024-01-31 42nd 0x1F 1e-5 007",
    "café naïve résumé Ångström Straße São Paulo ΟΔΟΣ İstanbul",
    "e\u0301 vs \u00e9 (combining accent, NFC)",
    "日本語のテキスト 中文字符 한국어 텍스트 Жёлтый",
    "emoji 🙂👍🏽 👩‍👩‍👧 🇫🇷 ❤️ ✨",
    "html entities &amp; &lt;b&gt; &quot;quoted&quot; &#39; &nbsp;",
    "  multiple   spaces\tand\ttabs\nand\n\nnewlines\r\n  \u3000ideographic\u00a0nbsp  ",
    "special tokens inline <|endoftext|> and <|startoftext|> and <|ENDOFTEXT|> <|StartOfText|>",
    "wow!!! really?! no!",
    " ".join(["word"] * 100),
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis " * 12,
    "zero\u200bwidth soft\u00adhyphen control\x07\x1c chars",
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Tokenizer folders: SD 1.x, SD 2.x, transformers 5.x save_pretrained, 4.34+ config."""
    from transformers import CLIPTokenizer

    root = tmp_path_factory.mktemp("clip_tokenizers")
    out = {
        "sd15": write_clip_tokenizer(root / "sd15"),
        "sd21": write_clip_tokenizer(root / "sd21", pad_token="!"),
    }
    CLIPTokenizer.from_pretrained(out["sd21"]).save_pretrained(root / "saved")
    out["saved"] = root / "saved"
    # transformers >= 4.34 writes `added_tokens_decoder` into tokenizer_config.json and no
    # special_tokens_map.json; special tokens are then plain strings resolved through it.
    atd = out["atd"] = shutil.copytree(out["sd15"], root / "atd")
    config = json.loads((atd / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {
        str(i): {"content": c, "lstrip": False, "normalized": n, "rstrip": False}
        | {"single_word": False, "special": True}
        for i, c, n in [
            (49406, "<|startoftext|>", True),
            (49407, "<|endoftext|>", False),
        ]
    }
    config.update(
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    (atd / "tokenizer_config.json").write_text(json.dumps(config))
    (atd / "special_tokens_map.json").unlink()
    return out


def _reference(folder, texts):
    from transformers import CLIPTokenizer

    ref = CLIPTokenizer.from_pretrained(folder)
    return np.array(
        ref(texts, padding="max_length", max_length=77, truncation=True).input_ids
    )


@pytest.mark.parametrize("style", ["sd15", "sd21", "saved", "atd"])
def test_tokenizer_ids_equal_transformers(folders, style):
    ours = read_tokenizer(folders[style])(TRICKY)
    ref = _reference(folders[style], TRICKY)
    assert ours.dtype == np.int32 and ours.shape == (len(TRICKY), 77)
    for text, a, b in zip(TRICKY, ours, ref):
        np.testing.assert_array_equal(a, b, err_msg=repr(text))


def test_tokenizer_pads_as_the_folder_says(folders):
    sd15 = read_tokenizer(folders["sd15"])(["a photo"])[0]
    sd21 = read_tokenizer(folders["sd21"])(["a photo"])[0]
    assert sd15[0] == sd21[0] == 49406  # <|startoftext|>
    assert sd15[3] == sd21[3] == 49407  # <|endoftext|> after the two words
    assert (sd15[4:] == 49407).all()
    assert (sd21[4:] == 0).all()  # "!" is id 0


def test_tokenizer_truncates_to_77_with_eos_last(folders):
    ids = read_tokenizer(folders["sd15"])([" ".join(["cat"] * 200)])[0]
    assert ids.shape == (77,)
    assert ids[0] == 49406 and ids[-1] == 49407
    assert (ids[1:-1] == ids[1]).all()


def test_tokenizer_reads_legacy_special_tokens_map_over_config(folders, tmp_path):
    # Real SD 2.x folders name pad "<|endoftext|>" in tokenizer_config.json and "!" in
    # special_tokens_map.json; transformers takes the latter.
    folder = shutil.copytree(folders["sd15"], tmp_path / "sd21_real")
    special = json.loads((folder / "special_tokens_map.json").read_text())
    special["pad_token"] = "!"
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    texts = ["a photo!", "Denoise", ""]
    ours = read_tokenizer(folder)(texts)
    np.testing.assert_array_equal(ours, _reference(folder, texts))
    assert ours[2, 2] == 0


@pytest.mark.parametrize("name", ["vocab.json", "merges.txt", "tokenizer_config.json"])
def test_tokenizer_missing_file_names_folder_and_file(folders, tmp_path, name):
    folder = shutil.copytree(folders["sd15"], tmp_path / "tok")
    (folder / name).unlink()
    with pytest.raises(FileNotFoundError) as err:
        read_tokenizer(folder)
    assert str(folder) in str(err.value) and name in str(err.value)


def test_tokenizer_rejects_a_single_string(folders):
    with pytest.raises(TypeError, match="list of strings"):
        read_tokenizer(folders["sd15"])("a photo")


# ----------------------------------------------------------------------------------------------
# Encoder
# ----------------------------------------------------------------------------------------------


def _meta_count(**config) -> int:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        model = CLIPTextModel(CLIPTextConfig(**config))
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "preset, config",
    [
        (
            sd15_text,
            {
                "hidden_size": 768,
                "intermediate_size": 3072,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
            },
        ),
        (
            sd21_text,
            {
                "hidden_size": 1024,
                "intermediate_size": 4096,
                "num_hidden_layers": 23,
                "num_attention_heads": 16,
                "hidden_act": "gelu",
            },
        ),
    ],
)
def test_preset_sizes_equal_transformers(preset, config):
    model = nnx.eval_shape(lambda: CLIPTextEncoder(preset(), rngs=nnx.Rngs(0)))
    assert count_params(model) == _meta_count(**config)


def test_sd15_text_encoder_has_123m_parameters():
    model = nnx.eval_shape(lambda: CLIPTextEncoder(sd15_text(), rngs=nnx.Rngs(0)))
    assert count_params(model) == 123_060_480


def test_every_parameter_has_logical_axes():
    model = nnx.eval_shape(lambda: CLIPTextEncoder(tiny_text(), rngs=nnx.Rngs(0)))
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        names = var.get_metadata().get("out_sharding")
        assert names is not None and len(names) == len(var.shape), path
        assert set(names) <= ALL_LOGICAL_AXES, (path, names)


@pytest.fixture(scope="module")
def tiny():
    return CLIPTextEncoder(tiny_text(vocab_size=1000), rngs=nnx.Rngs(0))


@nnx.jit
def _forward(model, ids):
    return model(ids)


def test_encoder_is_causal_and_keeps_shape(tiny):
    ids = jnp.asarray(np.random.RandomState(0).randint(0, 1000, (2, 77)), jnp.int32)
    out = _forward(tiny, ids)
    assert out.shape == (2, 77, 32) and out.dtype == jnp.float32
    changed = _forward(tiny, ids.at[:, 40:].set(7))
    np.testing.assert_allclose(out[:, :40], changed[:, :40], atol=1e-6)
    assert not np.allclose(out[:, 40:], changed[:, 40:])
    np.testing.assert_allclose(
        tiny(ids[:, :5]), out[:, :5], atol=1e-5
    )  # eager, shorter input


def test_bfloat16_config_stays_close_to_float32(tiny):
    cfg = dataclasses.replace(tiny.cfg, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)
    bf16 = nnx.eval_shape(lambda: CLIPTextEncoder(cfg, rngs=nnx.Rngs(0)))
    nnx.update(
        bf16, jax.tree.map(lambda x: x.astype(jnp.bfloat16), nnx.state(tiny, nnx.Param))
    )
    ids = jnp.asarray(np.random.RandomState(1).randint(0, 1000, (2, 77)), jnp.int32)
    a, b = _forward(tiny, ids), _forward(bf16, ids)
    assert b.dtype == jnp.bfloat16
    assert bf16.token_embedding[...].dtype == jnp.bfloat16
    assert float(jnp.max(jnp.abs(a - b.astype(jnp.float32)))) < 0.1 * float(
        jnp.max(jnp.abs(a))
    )


def test_encoder_rejects_sequences_longer_than_positions(tiny):
    with pytest.raises(ValueError, match="max_position_embeddings"):
        tiny(jnp.zeros((1, 78), jnp.int32))


def test_config_refuses_unknown_activation():
    with pytest.raises(ValueError, match="hidden_act"):
        tiny_text(hidden_act="relu")

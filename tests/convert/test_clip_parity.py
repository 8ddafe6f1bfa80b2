"""transformers CLIPTextModel -> CLIPTextEncoder: same last_hidden_state; clear errors otherwise."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from clip_vocab import write_clip_tokenizer
from flax import nnx

from unires_jax.convert.clip import (
    clip_text_config_from_transformers,
    clip_text_from_torch_state,
    read_tokenizer,
)

TINY = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
}


def _torch_model(hidden_act: str, vocab_size: int = 1000):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    config = CLIPTextConfig(**TINY, hidden_act=hidden_act, vocab_size=vocab_size)
    model = CLIPTextModel(config).eval()
    with (
        torch.no_grad()
    ):  # LayerNorms start at 1/0; perturb them so their mapping is tested
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    return model


def _state(model, prefix: str = "text_model.") -> dict[str, np.ndarray]:
    return {prefix + k: v.numpy() for k, v in model.state_dict().items()}


def _rel_err(ours, ref) -> float:
    return float(np.max(np.abs(np.asarray(ours) - ref)) / np.max(np.abs(ref)))


@nnx.jit
def _forward(model, ids):
    return model(ids)


@pytest.mark.parametrize("hidden_act", ["quick_gelu", "gelu"])
@pytest.mark.parametrize("prefix", ["text_model.", ""])
def test_last_hidden_state_equals_transformers(hidden_act, prefix):
    model = _torch_model(hidden_act)
    cfg = clip_text_config_from_transformers(model.config.to_dict())
    assert cfg.hidden_act == hidden_act
    state = _state(model, prefix)
    state[prefix + "embeddings.position_ids"] = np.arange(77)[
        None
    ]  # a buffer 4.x files carry
    ours = clip_text_from_torch_state(state, cfg, source="tiny.safetensors")
    ids = np.random.RandomState(0).randint(0, 1000, (3, 77)).astype(np.int32)
    with torch.no_grad():
        ref = model(torch.from_numpy(ids).long()).last_hidden_state.numpy()
    assert _rel_err(_forward(ours, jnp.asarray(ids)), ref) < 1e-4


def test_tokenizer_and_encoder_reproduce_the_pipeline_prompt_embeddings(tmp_path):
    from transformers import CLIPTokenizer

    folder = write_clip_tokenizer(tmp_path / "tokenizer")
    model = _torch_model("quick_gelu", vocab_size=49408)
    prompts = ["Super-resolution", "Motion-deblur", "", "A PHOTO of a café, 4k!!"]
    ref_ids = CLIPTokenizer.from_pretrained(folder)(
        prompts,
        padding="max_length",
        max_length=77,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    with torch.no_grad():
        ref = model(ref_ids).last_hidden_state.numpy()
    encoder = clip_text_from_torch_state(
        _state(model), clip_text_config_from_transformers(model.config.to_dict())
    )
    ids = read_tokenizer(folder)(prompts)
    np.testing.assert_array_equal(ids, ref_ids.numpy())
    assert _rel_err(_forward(encoder, jnp.asarray(ids)), ref) < 1e-4


def test_dtype_arguments_reach_the_parameters():
    model = _torch_model("gelu")
    cfg = clip_text_config_from_transformers(
        model.config.to_dict(), dtype=jnp.bfloat16, param_dtype=jnp.bfloat16
    )
    ours = clip_text_from_torch_state(_state(model), cfg)
    assert ours.layers[0].self_attn.q_proj.kernel[...].dtype == jnp.bfloat16
    assert ours.token_embedding[...].dtype == jnp.bfloat16


@pytest.mark.parametrize(
    "change, message",
    [
        ({"hidden_act": "relu"}, "hidden_act"),
        ({"hidden_act": "gelu_new"}, "hidden_act"),
        ({"use_rotary_embeddings": True}, "use_rotary_embeddings"),
        ({"pruned_heads": {"0": [1]}}, "pruned_heads"),
        ({"model_type": "clip", "text_config": {}}, "text_config"),
    ],
)
def test_config_with_unsupported_setting_raises(change, message):
    config = {**_torch_model("quick_gelu").config.to_dict(), **change}
    with pytest.raises(ValueError, match=message):
        clip_text_config_from_transformers(config)


def test_config_ignores_settings_that_do_not_change_the_output():
    config = _torch_model("quick_gelu").config.to_dict()
    config.update(
        projection_dim=768,
        attention_dropout=0.1,
        dropout=0.1,
        pad_token_id=1,
        bos_token_id=0,
    )
    cfg = clip_text_config_from_transformers(config)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (
        32,
        2,
        4,
    )


def test_wrong_shape_missing_and_unknown_keys_are_all_named():
    model = _torch_model("quick_gelu")
    cfg = clip_text_config_from_transformers(model.config.to_dict())
    state = _state(model)
    state["text_model.encoder.layers.1.mlp.fc1.weight"] = np.zeros((38, 32), np.float32)
    del state["text_model.final_layer_norm.bias"]
    state["text_model.text_projection.weight"] = np.zeros((8, 32), np.float32)
    with pytest.raises(ValueError) as err:
        clip_text_from_torch_state(
            state, cfg, source="/ckpt/text_encoder/model.safetensors"
        )
    message = str(err.value)
    assert message.startswith("/ckpt/text_encoder/model.safetensors:")
    assert "text_model.encoder.layers.1.mlp.fc1.weight (38, 32) vs (37, 32)" in message
    assert "text_model.final_layer_norm.bias" in message
    assert "text_model.text_projection.weight" in message


def test_state_for_another_depth_is_refused():
    model = _torch_model("quick_gelu")
    config = {**model.config.to_dict(), "num_hidden_layers": 1}
    with pytest.raises(ValueError, match="encoder.layers.1"):
        clip_text_from_torch_state(
            _state(model), clip_text_config_from_transformers(config)
        )

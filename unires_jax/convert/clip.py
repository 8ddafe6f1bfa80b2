"""transformers CLIPTextModel (config.json + state dict) -> `unires_jax.models.text.CLIPTextEncoder`,
and CLIP tokenizer folders -> `unires_jax.models.text.Tokenizer`.

State-dict names may carry the `text_model.` prefix (checkpoints written by transformers 4.x,
e.g. every Stable Diffusion `text_encoder/`) or not (transformers 5.x `save_pretrained`).
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.convert import torch_layout
from unires_jax.models.text import (
    EOW,
    HIDDEN_ACTS,
    CLIPTextConfig,
    CLIPTextEncoder,
    Tokenizer,
)

# config.json keys read into CLIPTextConfig.
_USED = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "max_position_embeddings",
    "hidden_act",
    "layer_norm_eps",
)
# Keys that do not change `last_hidden_state` at inference: bookkeeping, initialisation, dropout
# (off at inference), token ids (used for pooling only), the projection (CLIPTextModel has none),
# and transformers' generic PretrainedConfig fields that older versions wrote out in full.
_IGNORED = frozenset(
    {
        "_name_or_path", "architectures", "transformers_version", "torch_dtype", "dtype",
        "_attn_implementation", "_commit_hash", "projection_dim", "bos_token_id", "eos_token_id",
        "pad_token_id", "sep_token_id", "decoder_start_token_id", "initializer_range",
        "initializer_factor", "attention_dropout", "dropout", "hidden_dropout_prob",
        "return_dict", "output_hidden_states", "output_attentions", "torchscript", "use_bfloat16",
        "tie_word_embeddings", "is_decoder", "is_encoder_decoder", "add_cross_attention",
        "tie_encoder_decoder", "cross_attention_hidden_size", "chunk_size_feed_forward",
        "id2label", "label2id", "problem_type", "tokenizer_class", "prefix", "finetuning_task",
        "task_specific_params", "max_length", "min_length", "do_sample", "early_stopping",
        "num_beams", "num_beam_groups", "diversity_penalty", "temperature", "top_k", "top_p",
        "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
        "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores",
        "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id",
        "remove_invalid_values", "exponential_decay_length_penalty", "suppress_tokens",
        "begin_suppress_tokens",
    }
)  # fmt: skip
_PREFIX = "text_model."
_BUFFERS = (
    "embeddings.position_ids",
)  # non-persistent in 5.x, saved by some 4.x checkpoints
_SHOW = 5


def clip_text_config_from_transformers(
    config: Mapping[str, Any], *, dtype=jnp.float32, param_dtype=jnp.float32
) -> CLIPTextConfig:
    """Translates a transformers CLIPTextModel config.json dict into a CLIPTextConfig.

    Raises:
        ValueError: naming any unknown key or any value that would change the computation
            (an unknown hidden_act, pruned heads, a full CLIPModel config, ...).
    """
    model_type = config.get("model_type", "clip_text_model")
    if model_type != "clip_text_model":
        hint = "; pass its 'text_config' instead" if "text_config" in config else ""
        raise ValueError(
            f"model_type={model_type!r}: expected 'clip_text_model' (a CLIPTextModel config){hint}"
        )
    for key, value in config.items():
        if key in _USED or key in _IGNORED or key == "model_type":
            continue
        if key == "pruned_heads" and not value:
            continue
        raise ValueError(
            f"unsupported CLIPTextModel config key {key!r} (value {value!r}); not implemented"
        )
    if config.get("hidden_act", "quick_gelu") not in HIDDEN_ACTS:
        raise ValueError(
            f"unsupported hidden_act={config['hidden_act']!r}: only {list(HIDDEN_ACTS)} are implemented"
        )
    if config.get("layer_norm_eps", 1e-5) is None:
        raise ValueError("layer_norm_eps=None: expected a number")
    defaults = CLIPTextConfig()
    kwargs = {key: config.get(key, getattr(defaults, key)) for key in _USED}
    return CLIPTextConfig(**kwargs, dtype=dtype, param_dtype=param_dtype)


def _torch_key(path: torch_layout.Path) -> str:
    """Our parameter path -> the transformers CLIPTextModel state-dict name (without prefix)."""
    if path in (("token_embedding",), ("position_embedding",)):
        return f"embeddings.{path[0]}.weight"
    *prefix, leaf = path
    if prefix and prefix[0] == "layers":
        prefix = ["encoder", *prefix]
    return (
        ".".join(str(p) for p in prefix)
        + "."
        + ("bias" if leaf == "bias" else "weight")
    )


def clip_text_from_torch_state(
    state: Mapping[str, np.ndarray], cfg: CLIPTextConfig, *, source: str = ""
) -> CLIPTextEncoder:
    """Builds a CLIPTextEncoder holding the weights of a transformers CLIPTextModel state dict.

    Args:
        state: state-dict name -> array in PyTorch layout (Linear weights [out, in]).
        cfg: the matching config (see `clip_text_config_from_transformers`).
        source: the checkpoint file, named in errors.

    Returns:
        The encoder; parameters are cast to `cfg.param_dtype` and keep their logical axes.

    Raises:
        ValueError: listing checkpoint keys that map to no parameter, parameters missing from
            the checkpoint, and shape mismatches.
    """
    model = nnx.eval_shape(lambda: CLIPTextEncoder(cfg, rngs=nnx.Rngs(0)))
    targets = torch_layout.param_shapes(model)
    by_key = {_torch_key(path): path for path in targets}

    values: dict[torch_layout.Path, np.ndarray] = {}
    unmapped, mismatched, duplicated = [], [], []
    bad_paths = set()  # reported as mismatches, not again as missing
    for name, array in state.items():
        key = name.removeprefix(_PREFIX)
        if key in _BUFFERS:
            continue
        path = by_key.get(key)
        if path is None:
            unmapped.append(name)
            continue
        if path in values:
            duplicated.append(name)
            continue
        array = np.asarray(array)
        is_kernel = path[-1] == "kernel"
        expected = targets[path][::-1] if is_kernel else targets[path]
        if tuple(array.shape) != tuple(expected):
            mismatched.append(f"{name} {tuple(array.shape)} vs {tuple(expected)}")
            bad_paths.add(path)
            continue
        values[path] = torch_layout.linear_kernel(array) if is_kernel else array
    missing = [
        _PREFIX + k for k, p in by_key.items() if p not in values and p not in bad_paths
    ]

    problems = []
    if unmapped:
        problems.append(
            f"{len(unmapped)} checkpoint keys match no parameter, e.g. {unmapped[:_SHOW]}"
        )
    if duplicated:
        problems.append(
            f"{len(duplicated)} keys appear both with and without '{_PREFIX}', e.g. {duplicated[:_SHOW]}"
        )
    if missing:
        problems.append(
            f"{len(missing)} model parameters are not in the checkpoint, e.g. {missing[:_SHOW]}"
        )
    if mismatched:
        problems.append(
            f"{len(mismatched)} shapes differ (checkpoint vs config, PyTorch layout), e.g. {mismatched[:_SHOW]}"
        )
    if problems:
        raise ValueError(
            f"{source or '<state dict>'}: CLIP text encoder weights do not fit the config: "
            + "; ".join(problems)
            + ". Check that config.json belongs to these weights."
        )
    return torch_layout.load_into(model, values)


# ----------------------------------------------------------------------------------------------
# Tokenizer folders
# ----------------------------------------------------------------------------------------------

_SPECIAL_KEYS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)
# CLIPTokenizer's constructor defaults, used when the folder's config does not name a token.
_CLIP_DEFAULTS = {
    "bos_token": "<|startoftext|>",
    "eos_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
}
# Guards against "no limit" placeholders (transformers writes 1e30) sizing the output array.
_MAX_CONTEXT = 4096


def _read_json(path: pathlib.Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e


def _read_merges(path: pathlib.Path) -> list[tuple[str, str]]:
    merges = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line or (number == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(
                    f"{path}:{number}: a merge must be two symbols separated by one space, got {line!r}"
                )
            merges.append((parts[0], parts[1]))
    return merges


def _read_tokenizer_json(
    path: pathlib.Path,
) -> tuple[dict[str, int], list[tuple[str, str]], dict[str, dict]]:
    """vocab, merges and {content: added-token dict} from a `tokenizers` tokenizer.json."""
    data = _read_json(path)
    model = data.get("model") or {}
    if model.get("type") != "BPE" or model.get("end_of_word_suffix") != EOW:
        raise ValueError(
            f"{path}: not a CLIP tokenizer (model type {model.get('type')!r}, end_of_word_suffix "
            f"{model.get('end_of_word_suffix')!r}; CLIP uses BPE with {EOW!r})"
        )
    merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
        for m in model.get("merges", [])
    ]
    added = {t["content"]: t for t in data.get("added_tokens", [])}
    return dict(model["vocab"]), merges, added


def _token_spec(value: Any, known: dict[str, dict]) -> tuple[str, bool, bool]:
    """(content, normalized, single_word) of a special-token entry as transformers reads it.

    A plain string becomes AddedToken(normalized=False) unless an added-token entry with that
    content exists; a dict carries its own flags (normalized defaults to False for specials).
    """
    if isinstance(value, str):
        entry = known.get(value, {"content": value, "normalized": False})
    elif isinstance(value, dict) and "content" in value:
        entry = value
    else:
        raise ValueError(
            f"special token entry {value!r} is neither a string nor an AddedToken dict"
        )
    return (
        str(entry["content"]),
        bool(entry.get("normalized") or False),
        bool(entry.get("single_word") or False),
    )


def read_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Reads a CLIP tokenizer folder (diffusers' `tokenizer/`); never fetches anything.

    tokenizer.json is used when present (as transformers does; 5.x `save_pretrained` writes only
    that), else vocab.json + merges.txt (diffusers' Stable Diffusion folders). Special tokens
    and model_max_length come from tokenizer_config.json, overridden by special_tokens_map.json
    the way transformers 5.x reads legacy folders, so the ids equal those of
    `CLIPTokenizer.from_pretrained(path)`.

    Raises:
        FileNotFoundError: naming the folder and the missing file.
        ValueError: naming the file with an unusable entry.
    """
    folder = pathlib.Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: tokenizer folder not found")
    config_path = folder / "tokenizer_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{folder}: missing tokenizer_config.json (a CLIP tokenizer folder needs it)"
        )
    config = _read_json(config_path)

    # content -> added-token dict, from the files that list added tokens.
    known: dict[str, dict] = {}
    # transformers prefers tokenizer.json when a folder has both.
    if (folder / "tokenizer.json").is_file():
        vocab, merges, known = _read_tokenizer_json(folder / "tokenizer.json")
    else:
        missing = [
            n for n in ("vocab.json", "merges.txt") if not (folder / n).is_file()
        ]
        if missing:
            raise FileNotFoundError(
                f"{folder}: missing {' and '.join(missing)} (and no tokenizer.json); a CLIP tokenizer "
                "folder has vocab.json + merges.txt or tokenizer.json"
            )
        vocab = _read_json(folder / "vocab.json")
        merges = _read_merges(folder / "merges.txt")

    specials: dict[str, Any] = {
        k: config[k] for k in _SPECIAL_KEYS if config.get(k) is not None
    }
    if "added_tokens_decoder" in config:
        for token in config["added_tokens_decoder"].values():
            known[token["content"]] = token
    elif (folder / "special_tokens_map.json").is_file():
        # Legacy folders (all of diffusers' SD ones): this file overrides tokenizer_config.json.
        legacy = _read_json(folder / "special_tokens_map.json")
        specials.update(
            {k: v for k, v in legacy.items() if k in _SPECIAL_KEYS and v is not None}
        )
    for key, default in _CLIP_DEFAULTS.items():
        specials.setdefault(key, default)

    # Listed added tokens first, then the named special tokens in transformers' attribute order;
    # a later entry with the same content overrides the earlier flags, as in `tokenizers`.
    added: dict[str, bool] = {}
    entries = [(f"added token {c!r}", t) for c, t in known.items()]
    entries += [(k, specials[k]) for k in _SPECIAL_KEYS if k in specials]
    for key, value in entries:
        try:
            content, normalized, single_word = _token_spec(value, known)
        except ValueError as e:
            raise ValueError(f"{config_path}: {key}: {e}") from e
        if single_word:
            raise ValueError(
                f"{config_path}: {key} {content!r} has single_word=True, which CLIP tokenizers never use"
            )
        added[content] = normalized
    contents = {
        k: _token_spec(specials[k], known)[0]
        for k in ("bos_token", "eos_token", "pad_token")
    }
    absent = sorted({c for c in added if c not in vocab})
    if absent:
        raise ValueError(
            f"{folder}: special tokens {absent} are not in the vocabulary; is this a CLIP tokenizer?"
        )
    max_length = config.get("model_max_length", 77)
    if not isinstance(max_length, int) or not 2 <= max_length <= _MAX_CONTEXT:
        raise ValueError(
            f"{config_path}: model_max_length={max_length!r}; CLIP tokenizers use 77"
        )
    return Tokenizer(
        vocab,
        merges,
        bos_token=contents["bos_token"],
        eos_token=contents["eos_token"],
        pad_token=contents["pad_token"],
        added_tokens=added,
        model_max_length=max_length,
    )

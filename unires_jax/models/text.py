"""CLIP text encoder and CLIP BPE tokenizer: the Stable Diffusion prompt path.

`Tokenizer(texts) -> ids [B, 77]` then `CLIPTextEncoder(ids) -> [B, 77, D]` gives exactly what
diffusers' StableDiffusionPipeline feeds the UNet as `encoder_hidden_states` (transformers'
`CLIPTextModel(...).last_hidden_state`, i.e. after `final_layer_norm`, causal mask only).

The tokenizer reproduces transformers 5.x `CLIPTokenizer` (the `tokenizers`-backed one that
diffusers loads) without depending on it: NFC, every whitespace run -> one space, per-character
lowercase (no ftfy, no html unescaping: 5.x does neither), CLIP's pre-tokenizer regex, GPT-2 byte
level BPE with the "</w>" end-of-word suffix, and the special tokens of the folder split out first.
Known gap: characters first assigned in Unicode 16 or later (scripts such as Todhri and Garay,
new Latin capitals) may split or lowercase differently, because `tokenizers` (Oniguruma, Unicode
15) and Python's `regex` / `unicodedata` tables come from different Unicode versions.

Reading tokenizer folders lives in `unires_jax/convert/clip.py` (`read_tokenizer`): models never read files.
Sub-module names follow transformers (`self_attn.q_proj`, `mlp.fc1`, `layer_norm1`,
`final_layer_norm`) so `unires_jax/convert/clip.py` maps checkpoint keys mechanically.
"""

from __future__ import annotations

import dataclasses
import itertools
import unicodedata
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import regex
from flax import nnx

from unires_jax.models import layers
from unires_jax.models import partitioning as P

HIDDEN_ACTS = ("quick_gelu", "gelu")


@dataclasses.dataclass(frozen=True)
class CLIPTextConfig:
    """transformers `CLIPTextConfig`, the fields that change `last_hidden_state`."""

    vocab_size: int = 49408
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    max_position_embeddings: int = 77
    # "quick_gelu" (OpenAI CLIP) or "gelu" (exact erf, OpenCLIP).
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    # Activations and matmuls; LayerNorm statistics and the softmax are always float32.
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        if self.hidden_act not in HIDDEN_ACTS:
            raise ValueError(
                f"CLIPTextConfig.hidden_act={self.hidden_act!r} is not one of {HIDDEN_ACTS}"
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"CLIPTextConfig: hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )


def sd15_text(**overrides) -> CLIPTextConfig:
    """OpenAI CLIP ViT-L/14 text tower, the text encoder of Stable Diffusion 1.x."""
    return dataclasses.replace(CLIPTextConfig(), **overrides)


def sd21_text(**overrides) -> CLIPTextConfig:
    """OpenCLIP ViT-H/14 text tower as diffusers ships it for SD 2.x (23 of its 24 layers)."""
    cfg = CLIPTextConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=23,
        num_attention_heads=16,
        hidden_act="gelu",
    )
    return dataclasses.replace(cfg, **overrides)


def tiny_text(**overrides) -> CLIPTextConfig:
    """A two-layer, width-32 encoder over the full CLIP vocabulary, for tests."""
    cfg = CLIPTextConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    return dataclasses.replace(cfg, **overrides)


# ----------------------------------------------------------------------------------------------
# Encoder
# ----------------------------------------------------------------------------------------------


def _annotated(init, names: tuple[str, ...]):
    # Logical names only; the mesh is chosen later in train/sharding.py (no eager placement).
    return nnx.with_partitioning(init, names, eager_sharding=False)


def causal_self_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Softmax attention where position i sees positions <= i; logits and softmax in float32.

    Args:
        q, k, v: [B, L, H, Dh], same dtype.

    Returns:
        [B, L, H, Dh] in the dtype of v.
    """
    length = q.shape[1]
    scale = q.shape[-1] ** -0.5
    logits = (
        jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * scale
    )
    causal = jnp.tril(jnp.ones((length, length), dtype=bool))
    # Every row keeps its diagonal, so the finite minimum never yields an all-masked row.
    logits = jnp.where(causal, logits, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", probs, v)


def _activation(name: str, x: jax.Array) -> jax.Array:
    if name == "quick_gelu":
        return x * jax.nn.sigmoid(1.702 * x)
    return jax.nn.gelu(x, approximate=False)


class CLIPAttention(nnx.Module):
    """Causal multi-head self-attention with biased q/k/v/out projections."""

    def __init__(self, cfg: CLIPTextConfig, *, rngs: nnx.Rngs):
        d = cfg.hidden_size
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        self.heads = cfg.num_attention_heads
        self.q_proj = layers.linear(d, d, **kw)
        self.k_proj = layers.linear(d, d, **kw)
        self.v_proj = layers.linear(d, d, **kw)
        self.out_proj = layers.linear(d, d, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, L, D] -> [B, L, D]."""
        b, length, d = x.shape
        split = lambda t: t.reshape(b, length, self.heads, d // self.heads)
        out = causal_self_attention(
            split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        )
        return self.out_proj(out.reshape(b, length, d))


class CLIPMLP(nnx.Module):
    """fc1 -> quick_gelu / gelu -> fc2."""

    def __init__(self, cfg: CLIPTextConfig, *, rngs: nnx.Rngs):
        kw = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "rngs": rngs}
        self.hidden_act = cfg.hidden_act
        self.fc1 = layers.linear(cfg.hidden_size, cfg.intermediate_size, **kw)
        self.fc2 = layers.linear(cfg.intermediate_size, cfg.hidden_size, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, L, D] -> [B, L, D]."""
        return self.fc2(_activation(self.hidden_act, self.fc1(x)))


class CLIPEncoderLayer(nnx.Module):
    """Pre-LN transformer layer: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, cfg: CLIPTextConfig, *, rngs: nnx.Rngs):
        norm = {
            "eps": cfg.layer_norm_eps,
            "dtype": cfg.dtype,
            "param_dtype": cfg.param_dtype,
        }
        self.layer_norm1 = layers.LayerNorm(cfg.hidden_size, **norm)
        self.self_attn = CLIPAttention(cfg, rngs=rngs)
        self.layer_norm2 = layers.LayerNorm(cfg.hidden_size, **norm)
        self.mlp = CLIPMLP(cfg, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, L, D] -> [B, L, D]."""
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class CLIPTextEncoder(nnx.Module):
    """transformers `CLIPTextModel` up to `last_hidden_state` (no pooling, no projection)."""

    def __init__(self, cfg: CLIPTextConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        d = cfg.hidden_size
        init = nnx.initializers.normal(0.02)
        self.token_embedding = nnx.Param(
            _annotated(init, P.TOKEN_EMBEDDING)(
                rngs.params(), (cfg.vocab_size, d), cfg.param_dtype
            )
        )
        self.position_embedding = nnx.Param(
            _annotated(init, P.POSITION_EMBEDDING)(
                rngs.params(), (cfg.max_position_embeddings, d), cfg.param_dtype
            )
        )
        self.layers = nnx.List(
            [CLIPEncoderLayer(cfg, rngs=rngs) for _ in range(cfg.num_hidden_layers)]
        )
        self.final_layer_norm = layers.LayerNorm(
            d, eps=cfg.layer_norm_eps, dtype=cfg.dtype, param_dtype=cfg.param_dtype
        )

    def __call__(self, input_ids: jax.Array) -> jax.Array:
        """Encodes token ids.

        Args:
            input_ids: [B, L] integer ids, L <= max_position_embeddings (77 from `Tokenizer`).

        Returns:
            last_hidden_state [B, L, hidden_size] in `cfg.dtype`, after the final LayerNorm.
        """
        if input_ids.ndim != 2:
            raise ValueError(
                f"CLIPTextEncoder: input_ids must be [B, L], got shape {input_ids.shape}"
            )
        length = input_ids.shape[1]
        if length > self.cfg.max_position_embeddings:
            raise ValueError(
                f"CLIPTextEncoder: sequence length {length} exceeds max_position_embeddings "
                f"{self.cfg.max_position_embeddings}"
            )
        tokens = jnp.take(self.token_embedding[...], input_ids, axis=0)
        x = (tokens + self.position_embedding[...][:length]).astype(self.cfg.dtype)
        for layer in self.layers:
            x = layer(x)
        return self.final_layer_norm(x)


# ----------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------

# transformers' CLIPTokenizer pre-tokenizer (a `Split` with this pattern), then ByteLevel's GPT-2
# pattern on each piece (it only changes pieces that spell a special token the added-token pass
# did not take, e.g. "<|ENDOFTEXT|>" after lowercasing).
_CLIP_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)
_GPT2_PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
_WHITESPACE = regex.compile(r"\s+")
EOW = "</w>"  # CLIP's end-of-word suffix on the last symbol of each word
_NO_MERGE = float("inf")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's reversible table from the 256 byte values to printable characters."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def normalize(text: str) -> str:
    """CLIPTokenizer's normaliser: NFC, each whitespace run -> " ", per-character lowercase.

    `tokenizers` lowercases character by character, so a word-final capital sigma becomes "σ",
    not Python's context-dependent "ς"; mapping it first makes `str.lower` agree.
    """
    text = _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text))
    return text.replace("Σ", "σ").lower()


def _split_on(text: str, pattern: regex.Pattern | None) -> list[tuple[str, bool]]:
    """Splits `text` around matches of `pattern`: [(piece, is_match)], empty pieces dropped."""
    if pattern is None:
        return [(text, False)] if text else []
    out, start = [], 0
    for m in pattern.finditer(text):
        if m.start() > start:
            out.append((text[start : m.start()], False))
        out.append((m.group(), True))
        start = m.end()
    if start < len(text):
        out.append((text[start:], False))
    return out


def _alternation(tokens: Sequence[str]) -> regex.Pattern | None:
    # Longest first, so that leftmost-first alternation equals tokenizers' leftmost-longest match.
    if not tokens:
        return None
    return regex.compile(
        "|".join(regex.escape(t) for t in sorted(tokens, key=len, reverse=True))
    )


class Tokenizer:
    """CLIP byte-level BPE tokenizer, ids identical to transformers 5.x `CLIPTokenizer` called with
    `padding="max_length", max_length=model_max_length, truncation=True`.

    Build it with `unires_jax.convert.clip.read_tokenizer(path)` from a diffusers `tokenizer/` folder.
    """

    def __init__(
        self,
        vocab: dict[str, int],
        merges: Sequence[tuple[str, str]],
        *,
        bos_token: str = "<|startoftext|>",
        eos_token: str = "<|endoftext|>",
        pad_token: str = "<|endoftext|>",
        added_tokens: dict[str, bool] | None = None,
        model_max_length: int = 77,
    ):
        """Builds the tokenizer from an in-memory vocabulary (see `from_folder` for files).

        Args:
            vocab: token string -> id (vocab.json).
            merges: BPE merges in priority order (merges.txt without its "#version" line).
            bos_token: content of the begin-of-text token; eos_token, pad_token likewise.
            added_tokens: tokens split out of the text before BPE, content -> `normalized` flag
                (True: matched after normalisation, False: matched in the raw text). Defaults
                to the bos/eos/pad tokens, matched raw.
            model_max_length: output length, bos and eos included (77 for CLIP).
        """
        if added_tokens is None:
            added_tokens = {bos_token: False, eos_token: False, pad_token: False}
        missing = [
            t
            for t in {bos_token, eos_token, pad_token, *added_tokens}
            if t not in vocab
        ]
        if missing:
            raise ValueError(
                f"Tokenizer: special tokens {sorted(missing)} are not in the vocabulary"
            )
        if model_max_length < 2:
            raise ValueError(
                f"Tokenizer: model_max_length {model_max_length} leaves no room for bos and eos"
            )
        self.vocab = dict(vocab)
        self.bpe_ranks = {tuple(m): i for i, m in enumerate(merges)}
        self.bos_token_id = vocab[bos_token]
        self.eos_token_id = vocab[eos_token]
        self.pad_token_id = vocab[pad_token]
        self.model_max_length = int(model_max_length)
        self.added_tokens = dict(added_tokens)
        self._raw_tokens = _alternation(
            [t for t, norm in added_tokens.items() if not norm]
        )
        self._norm_tokens = {
            normalize(t): vocab[t] for t, norm in added_tokens.items() if norm
        }
        self._norm_pattern = _alternation(list(self._norm_tokens))
        self._byte_encoder = _bytes_to_unicode()
        self._cache: dict[str, list[int]] = {}

    def _bpe(self, word: str) -> list[int]:
        """Byte-level BPE of one pre-token -> ids; the last symbol carries the "</w>" suffix."""
        if word in self._cache:
            return self._cache[word]
        symbols = list("".join(self._byte_encoder[b] for b in word.encode("utf-8")))
        symbols[-1] += EOW
        while len(symbols) > 1:
            rank, pos = min(
                (self.bpe_ranks.get(pair, _NO_MERGE), i)
                for i, pair in enumerate(itertools.pairwise(symbols))
            )
            if rank == _NO_MERGE:
                break
            first, second = symbols[pos], symbols[pos + 1]
            merged, i = symbols[:pos], pos
            # Merge every occurrence of the best pair, left to right without overlaps (the same
            # result as tokenizers' leftmost-first priority queue).
            while i < len(symbols):
                if (
                    i < len(symbols) - 1
                    and symbols[i] == first
                    and symbols[i + 1] == second
                ):
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        ids = [self.vocab[s] for s in symbols]
        if len(self._cache) > 100_000:  # bounded memory for long-running prompt streams
            self._cache.clear()
        self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` without bos/eos and without truncation."""
        ids: list[int] = []
        for raw, is_token in _split_on(text, self._raw_tokens):
            if is_token:
                ids.append(self.vocab[raw])
                continue
            for piece, is_norm_token in _split_on(normalize(raw), self._norm_pattern):
                if is_norm_token:
                    ids.append(self._norm_tokens[piece])
                    continue
                for pre in _CLIP_PATTERN.findall(piece):
                    for word in _GPT2_PATTERN.findall(pre):
                        ids.extend(self._bpe(word))
        return ids

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Tokenizes a batch of prompts.

        Args:
            texts: B strings.

        Returns:
            [B, model_max_length] int32: bos, the first model_max_length - 2 tokens, eos, then
            pad ids.
        """
        if isinstance(texts, str):
            raise TypeError(
                "Tokenizer expects a list of strings, got a single str; wrap it in a list"
            )
        out = np.full(
            (len(texts), self.model_max_length), self.pad_token_id, dtype=np.int32
        )
        for row, text in enumerate(texts):
            ids = [
                self.bos_token_id,
                *self.encode(text)[: self.model_max_length - 2],
                self.eos_token_id,
            ]
            out[row, : len(ids)] = ids
        return out

"""Test helper: writes a real CLIP tokenizer folder (as diffusers' `tokenizer/` has it) offline.

The BPE merge list comes from the file that ships inside the installed `open_clip_torch`
package (`open_clip/bpe_simple_vocab_16e6.txt.gz`); the vocabulary is built from it exactly the
way OpenAI's CLIP builds its 49408-token vocabulary. The package is located with
`importlib.util.find_spec` and never imported: `import open_clip` fails when torchvision does not
match the installed torch. If it is missing: `pip install --no-deps open_clip_torch==3.3.0`.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
# OpenAI CLIP keeps the first 49152 - 256 - 2 merges of the 16e6 file (after its header line).
N_MERGES = 49152 - 256 - 2
VOCAB_SIZE = 49408


def _bpe_file() -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "open_clip_torch is not installed; the CLIP tests need its BPE file. "
            "Install it with `pip install --no-deps open_clip_torch==3.3.0`."
        )
    path = (
        Path(next(iter(spec.submodule_search_locations)))
        / "bpe_simple_vocab_16e6.txt.gz"
    )
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing from the installed open_clip_torch package."
        )
    return path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP reversible byte -> printable unicode character table (256 entries)."""
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


def _special(content: str) -> dict:
    # The AddedToken form that diffusers' SD tokenizer folders store.
    return {
        "__type": "AddedToken",
        "content": content,
        "lstrip": False,
        "normalized": True,
        "rstrip": False,
        "single_word": False,
    }


def write_clip_tokenizer(folder, *, pad_token: str = EOS) -> Path:
    """Writes vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json.

    Args:
        folder: directory to create (or reuse).
        pad_token: "<|endoftext|>" as in SD 1.x tokenizers, or "!" as in SD 2.x tokenizers.

    Returns:
        The folder as a `Path`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(_bpe_file()) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : N_MERGES + 1]]
    byte_chars = list(_bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    vocab += [BOS, EOS]
    encoder = {tok: i for i, tok in enumerate(vocab)}
    if len(encoder) != VOCAB_SIZE:
        raise ValueError(
            f"built a CLIP vocabulary of {len(encoder)} tokens, expected {VOCAB_SIZE}"
        )

    with open(folder / "vocab.json", "w", encoding="utf-8") as f:
        json.dump(encoder, f, ensure_ascii=False)
    with open(folder / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.write("\n".join(" ".join(m) for m in merges) + "\n")

    pad = _special(pad_token) if pad_token != EOS else EOS
    special_map = {
        "bos_token": _special(BOS),
        "eos_token": _special(EOS),
        "pad_token": pad,
        "unk_token": _special(EOS),
    }
    config = {
        "add_prefix_space": False,
        "do_lower_case": True,
        "errors": "replace",
        "model_max_length": 77,
        "tokenizer_class": "CLIPTokenizer",
        **special_map,
    }
    # special_tokens_map.json stores the same tokens without the "__type" tag.
    plain_map = {
        k: {kk: vv for kk, vv in v.items() if kk != "__type"}
        if isinstance(v, dict)
        else v
        for k, v in special_map.items()
    }
    with open(folder / "special_tokens_map.json", "w", encoding="utf-8") as f:
        json.dump(plain_map, f, indent=2)
    with open(folder / "tokenizer_config.json", "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    return folder

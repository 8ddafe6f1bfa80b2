"""Writes the CLIP BPE tokenizer bundled with the package (unires_jax/assets/clip_tokenizer).

Built from OpenAI CLIP's BPE merge list (MIT licence) as shipped inside the `open_clip_torch`
package, exactly as tests/clip_vocab.py builds it for the tests. Run once from the repo root:

    pip install --no-deps open_clip_torch==3.3.0
    python scripts/make_clip_tokenizer.py
"""

import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clip_vocab import write_clip_tokenizer

if __name__ == "__main__":
    dst = ROOT / "unires_jax" / "assets" / "clip_tokenizer"
    if dst.exists():
        shutil.rmtree(dst)
    write_clip_tokenizer(dst)
    print("wrote", dst, sorted(p.name for p in dst.iterdir()))

"""MUSIQ against pyiqa 0.1.16's PyTorch port (oracle), with the same random weights.

pyiqa is installed with `pip install --no-deps pyiqa==0.1.16`; its package `__init__` needs cv2
and torchvision, so only `archs/musiq_arch.py` and what it imports are loaded, by path, under
temporary package shells (`load_pyiqa_musiq`). Weights go pyiqa -> official .npz layout (the
inverse of pyiqa's own npz->pth converter) -> our strict npz loader, so the loader is exercised on
a file it did not write. `benchmarks/quality.py` reuses the two helpers.
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys
import types

import numpy as np
import pytest

from unires_jax.convert import musiq as convert_musiq
from unires_jax.quality import musiq, musiq_preprocess

torch = pytest.importorskip(
    "torch", reason="torch is the test-only runtime of the pyiqa oracle"
)
if importlib.util.find_spec("pyiqa") is None:
    pytest.skip(
        "pyiqa oracle missing: pip install --no-deps pyiqa==0.1.16",
        allow_module_level=True,
    )


def load_pyiqa_module(name: str) -> types.ModuleType:
    """A pyiqa module (e.g. "pyiqa.archs.musiq_arch"), imported without running pyiqa/__init__.py.

    Package shells stand in for `pyiqa`, `pyiqa.archs`, `pyiqa.utils` and `pyiqa.data`, and a tiny
    `arch_util` provides the three names musiq_arch imports (no downloads). sys.modules is restored
    afterwards so other tests can import pyiqa their own way.
    """
    root = pathlib.Path(importlib.util.find_spec("pyiqa").submodule_search_locations[0])

    def shell(name: str, path: pathlib.Path) -> types.ModuleType:
        m = types.ModuleType(name)
        m.__path__ = [str(path)]
        return m

    def dist_to_mos(dist):
        return (dist * torch.arange(1, dist.shape[-1] + 1).to(dist)).sum(
            dim=-1, keepdim=True
        )

    def no_download(*args, **kwargs):
        raise RuntimeError(
            "the pyiqa oracle is built with pretrained=False; nothing is downloaded"
        )

    arch_util = types.ModuleType("pyiqa.archs.arch_util")
    arch_util.dist_to_mos = dist_to_mos
    arch_util.load_pretrained_network = no_download
    arch_util.get_url_from_name = lambda name, *a, **k: name
    modules = {
        "pyiqa": shell("pyiqa", root),
        "pyiqa.archs": shell("pyiqa.archs", root / "archs"),
        "pyiqa.utils": shell("pyiqa.utils", root / "utils"),
        "pyiqa.data": shell("pyiqa.data", root / "data"),
        "pyiqa.archs.arch_util": arch_util,
    }

    def is_pyiqa(key: str) -> bool:
        return key == "pyiqa" or key.startswith("pyiqa.")

    # Only pyiqa entries are restored: dependencies imported on the way (scipy, numpy.fft) must
    # stay, since C extensions cannot be loaded twice in one process.
    saved = {k: v for k, v in sys.modules.items() if is_pyiqa(k)}
    sys.modules.update(modules)
    try:
        return importlib.import_module(name)
    finally:
        for k in [k for k in sys.modules if is_pyiqa(k)]:
            del sys.modules[k]
        sys.modules.update(saved)


def load_pyiqa_musiq() -> type:
    """pyiqa's MUSIQ class (see load_pyiqa_module)."""
    return load_pyiqa_module("pyiqa.archs.musiq_arch").MUSIQ


def pyiqa_to_official(sd: dict, num_layers: int) -> dict[str, np.ndarray]:
    """A pyiqa MUSIQ state dict in the official `opt/target/` key layout (every key used once)."""
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in sd.items()}
    used: set[str] = set()
    out: dict[str, np.ndarray] = {}

    def take(k: str) -> np.ndarray:
        used.add(k)
        return sd[k]

    def conv(official: str, ours: str):
        out[official + "/kernel"] = take(ours + ".weight").transpose(
            2, 3, 1, 0
        )  # OIHW -> HWIO

    def gn(official: str, ours: str):
        out[official + "/scale"] = take(ours + ".weight").reshape(1, 1, 1, -1)
        out[official + "/bias"] = take(ours + ".bias").reshape(1, 1, 1, -1)

    def linear(official: str, ours: str):
        out[official + "/kernel"] = take(ours + ".weight").T
        out[official + "/bias"] = take(ours + ".bias")

    def norm(official: str, ours: str):
        out[official + "/scale"] = take(ours + ".weight")
        out[official + "/bias"] = take(ours + ".bias")

    conv("conv_root", "conv_root")
    gn("gn_root", "gn_root")
    for n in ("conv1", "conv2", "conv3", "conv_proj"):
        conv(f"block1/unit1/{n}", f"block1.{n}")
    for n in ("gn1", "gn2", "gn3", "gn_proj"):
        gn(f"block1/unit1/{n}", f"block1.{n}")
    linear("embedding", "embedding")
    te = "transformer_encoder"
    out["Transformer/posembed_input/pos_embedding"] = take(
        f"{te}.posembed_input.position_emb"
    )
    out["Transformer/scaleembed_input/scale_embedding"] = take(
        f"{te}.scaleembed_input.scale_emb"
    )[None]
    out["Transformer/cls"] = take(f"{te}.cls")
    norm("Transformer/encoder_norm", f"{te}.encoder_norm")
    for i in range(num_layers):
        ob, pb = f"Transformer/encoderblock_{i}", f"{te}.transformer.encoderblock_{i}"
        attn = f"{ob}/MultiHeadDotProductAttention_1"
        norm(f"{ob}/LayerNorm_0", f"{pb}.norm1")
        norm(f"{ob}/LayerNorm_2", f"{pb}.norm2")
        for n in ("query", "key", "value"):
            w, b = take(f"{pb}.attention.{n}.weight"), take(f"{pb}.attention.{n}.bias")
            heads = 6 if w.shape[0] == 384 else w.shape[0] // 64
            out[f"{attn}/{n}/kernel"] = w.T.reshape(w.shape[1], heads, -1)
            out[f"{attn}/{n}/bias"] = b.reshape(heads, -1)
        w = take(f"{pb}.attention.out.weight")
        out[f"{attn}/out/kernel"] = w.T.reshape(heads, -1, w.shape[0])
        out[f"{attn}/out/bias"] = take(f"{pb}.attention.out.bias")
        linear(f"{ob}/MlpBlock_3/Dense_0", f"{pb}.mlp.fc1")
        linear(f"{ob}/MlpBlock_3/Dense_1", f"{pb}.mlp.fc2")
    linear("head", "head.0" if "head.0.weight" in sd else "head")
    assert used == set(sd), f"pyiqa weights not mapped: {sorted(set(sd) - used)}"
    return {convert_musiq.PREFIX + k: v for k, v in out.items()}


def make_pyiqa_musiq(num_class: int = 1, num_layers: int = 14, seed: int = 0):
    """pyiqa MUSIQ (eval mode) with random weights; norms, biases and CLS perturbed off their
    trivial initial values so every parameter matters."""
    torch.manual_seed(seed)
    net = load_pyiqa_musiq()(
        num_class=num_class, num_layers=num_layers, pretrained=False
    ).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "gn" in name or "norm" in name:
                p.copy_(
                    (1.0 if name.endswith("weight") else 0.0)
                    + 0.1 * torch.randn_like(p)
                )
            elif name.endswith(("bias", "cls")):
                p.copy_(0.05 * torch.randn_like(p))
    return net


def pyiqa_scores(net, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return (
            net(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
            .numpy()
            .reshape(-1)
        )


def _ours_from_pyiqa(net, tmp_path, head: str, num_layers: int) -> musiq.MusiqScorer:
    path = tmp_path / "pyiqa_as_official.npz"
    np.savez(path, **pyiqa_to_official(net.state_dict(), num_layers))
    return musiq.load(
        str(path), preprocessing="pyiqa", head=head, num_layers=num_layers
    )


def _images(h: int, w: int, n: int = 1, seed: int = 0) -> np.ndarray:
    # Smooth structure plus noise, so resizing has something to act on.
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    base = 0.5 + 0.3 * np.sin(6 * xx + 4 * yy)[..., None] * np.array([1.0, 0.6, -0.4])
    return np.clip(base + 0.15 * rng.standard_normal((n, h, w, 3)), 0, 1).astype(
        np.float32
    )


def test_patch_sequences_match_pyiqa_preprocessing():
    get_multiscale_patches = load_pyiqa_module(
        "pyiqa.data.multiscale_trans_util"
    ).get_multiscale_patches
    image = _images(200, 300)[0] * 2 - 1
    with torch.no_grad():
        ref = get_multiscale_patches(
            torch.from_numpy(image.transpose(2, 0, 1)[None].copy()),
            max_seq_len_from_original_res=-1,
        )
    ref = ref[0].numpy()  # [L, 3 * 32 * 32 + 3], patch features in (c, kh, kw) order
    seq = musiq_preprocess.multiscale_patches(
        image,
        patch_size=32,
        grid_size=10,
        longer_side_lengths=(384, 224),
        method="torch_bicubic",
    )
    assert len(seq) == ref.shape[0] == 49 + 144 + 7 * 10
    np.testing.assert_allclose(
        seq.patches.transpose(0, 3, 1, 2).reshape(len(seq), -1), ref[:, :-3], atol=2e-6
    )
    np.testing.assert_array_equal(seq.spatial, ref[:, -3])
    np.testing.assert_array_equal(seq.scale, ref[:, -2])
    np.testing.assert_array_equal(seq.mask, ref[:, -1] > 0)


@pytest.fixture(scope="module")
def koniq_pair(tmp_path_factory):
    """(pyiqa net, our scorer) sharing one set of random 2-layer weights."""
    net = make_pyiqa_musiq(num_layers=2)
    return net, _ours_from_pyiqa(
        net, tmp_path_factory.mktemp("musiq"), "koniq", num_layers=2
    )


@pytest.mark.parametrize("size", [(224, 224), (200, 300), (384, 512)])
def test_scores_match_pyiqa_on_several_sizes(size, koniq_pair):
    net, ours = koniq_pair
    images = _images(*size, n=2)
    np.testing.assert_allclose(
        ours.score(images), pyiqa_scores(net, images), atol=1e-3, rtol=0
    )


def test_ava_distribution_head_matches_pyiqa(tmp_path):
    net = make_pyiqa_musiq(num_class=10, num_layers=2, seed=1)
    ours = _ours_from_pyiqa(net, tmp_path, "ava", num_layers=2)
    images = _images(160, 250, seed=1)
    expected = pyiqa_scores(net, images)
    assert 1.0 < expected[0] < 10.0
    np.testing.assert_allclose(ours.score(images), expected, atol=1e-3, rtol=0)


def test_full_depth_model_matches_pyiqa(tmp_path):
    net = make_pyiqa_musiq(num_layers=14, seed=2)
    ours = _ours_from_pyiqa(net, tmp_path, "koniq", num_layers=14)
    images = _images(224, 224, seed=2)
    np.testing.assert_allclose(
        ours.score(images), pyiqa_scores(net, images), atol=1e-3, rtol=0
    )

"""LPIPS against the `lpips` package 0.1.4 (oracle), with its shipped heads and random backbones.

Install the oracle with `pip install --no-deps lpips==0.1.4` (its metadata requires torchvision,
which does not import beside our torch 2.13 CPU wheel). lpips is imported under the torchvision
stand-in of `torchvision_standin.py` and built with `pnet_rand=True`, so it loads only its own
head files. The backbone gets random weights (torch's default init), written as a torchvision
state dict file that our loader reads and lpips gets through `load_state_dict`; the ImageNet
weights are not needed to test that the computation is the same.

Tolerance: 1e-4 absolute (the contract) and 1e-4 relative, because with random backbones the
distances are only about 0.005-0.1 (ImageNet features spread them to about 0.1-1). Both sides
compute in float32; the convolutions sum in different orders (oneDNN vs XLA), which moves
features by ~1e-6 relative; the distances agree to ~1e-8 absolute on our CPUs. A real
difference (one pooling stride, the sign of the scaling shift) moves them by 2e-3 to 2e-2.
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys

import numpy as np
import pytest
import scipy.ndimage
import skimage.data

from unires_jax.convert.lpips import LpipsWeightsError
from unires_jax.quality import lpips as lpips_metric

torch = pytest.importorskip(
    "torch", reason="torch is the test-only runtime of the lpips oracle"
)
if importlib.util.find_spec("lpips") is None:
    pytest.skip(
        "lpips oracle missing: pip install --no-deps lpips==0.1.4",
        allow_module_level=True,
    )

import torchvision_standin

ATOL = 1e-4
RTOL = 1e-4
# The lpips package's own head files (legacy pre-1.6 torch format).
HEADS_DIR = (
    pathlib.Path(importlib.util.find_spec("lpips").origin).parent / "weights" / "v0.1"
)
FEATURES = {
    "alex": torchvision_standin.alexnet_features,
    "vgg": torchvision_standin.vgg16_features,
}


@pytest.fixture(scope="module")
def lpips_pkg():
    """The lpips package, imported under the torchvision stand-in; sys.modules restored after."""

    def ours(key: str) -> bool:
        return key == "lpips" or key.startswith("lpips.")

    saved = {k: v for k, v in sys.modules.items() if ours(k)}
    for k in saved:
        del sys.modules[k]
    with torchvision_standin.installed():
        yield importlib.import_module("lpips")
    for k in [k for k in sys.modules if ours(k)]:
        del sys.modules[k]
    sys.modules.update(saved)


def _backbone_state(net: str, seed: int) -> dict[str, torch.Tensor]:
    """A torchvision-style state dict with random `features` weights (plus a classifier key)."""
    torch.manual_seed(seed)
    features = FEATURES[net]()
    for layer in features:
        if isinstance(layer, torch.nn.Conv2d):
            # He init and small biases: torch's default init lets the biases dominate deep layers,
            # which makes every feature map almost constant and every distance almost zero.
            fan_in = layer.weight[0].numel()
            torch.nn.init.normal_(layer.weight, 0.0, (2.0 / fan_in) ** 0.5)
            torch.nn.init.normal_(layer.bias, 0.0, 0.01)
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.1.weight"] = torch.randn(8, 4)  # present in real files; ignored
    return state


class Pair:
    """The oracle and our metric for one net, sharing heads and one random backbone."""

    def __init__(self, lpips_pkg, net: str, folder: pathlib.Path):
        state = _backbone_state(net, seed=1 if net == "alex" else 2)
        self.backbone = folder / f"{net}_backbone.pth"
        # vgg16-397923af.pth predates torch 1.6: exercise the legacy format on the vgg side.
        torch.save(state, self.backbone, _use_new_zipfile_serialization=net == "alex")
        self.heads = HEADS_DIR / f"{net}.pth"
        self.oracle = lpips_pkg.LPIPS(
            net=net,
            version="0.1",
            lpips=True,
            spatial=False,
            pretrained=True,
            pnet_rand=True,
            verbose=False,
        )
        # lpips keeps torchvision's layers under slice{s}.{i}: i is the features index.
        self.oracle.net.load_state_dict(
            {
                k: state["features." + k.split(".", 1)[1]]
                for k in self.oracle.net.state_dict()
            }
        )
        self.ours = lpips_metric.load(net, heads=self.heads, backbone=self.backbone)

    def oracle_distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        def nchw(x):
            return torch.from_numpy(
                np.ascontiguousarray(x.transpose(0, 3, 1, 2), np.float32)
            )

        with torch.no_grad():
            d = self.oracle(nchw(a), nchw(b), normalize=True)
        return d.numpy().reshape(-1)


@pytest.fixture(scope="module")
def pairs(lpips_pkg, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lpips")
    return {net: Pair(lpips_pkg, net, folder) for net in ("alex", "vgg")}


def _images(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two [3, h, w, 3] batches in [0, 1]: photo crops vs noisy, blurred and blocky copies."""
    rng = np.random.default_rng(seed)
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    corners = [
        (20, 30),
        (100, 150),
        (20, 100),
    ]  # textured regions, room for 256x256 crops
    refs = np.stack(
        [p[y : y + h, x : x + w] / 255.0 for p, (y, x) in zip(photos, corners)]
    ).astype(np.float32)
    noisy = np.clip(refs[0] + rng.normal(0, 0.15, refs[0].shape), 0, 1)
    blocky = np.repeat(np.repeat(refs[2, ::4, ::4], 4, 0), 4, 1)[:h, :w]
    blurred = scipy.ndimage.uniform_filter(refs[1], size=(5, 5, 1))
    dist = np.stack([noisy, blurred, blocky]).astype(np.float32)
    return refs, dist


CASES = [
    ("alex", 64, 64),
    ("alex", 100, 77),
    ("alex", 256, 256),
    ("vgg", 64, 64),
    ("vgg", 45, 37),
]


@pytest.mark.parametrize("net,h,w", CASES)
def test_lpips_matches_the_lpips_package(pairs, net, h, w):
    pair = pairs[net]
    a, b = _images(h, w)
    want = pair.oracle_distance(a, b)
    got = pair.ours.distance(a, b)
    assert got.shape == (3,) and got.dtype == np.float32
    print(
        f"lpips-{net} {h}x{w}: max |ours - lpips| = {np.abs(got - want).max():.2e}, {want}"
    )
    assert want.min() > 1e-3  # the comparison is not between zeros
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)


def test_grey_images_count_as_rgb_and_large_batches_run_in_chunks(pairs):
    pair = pairs["alex"]
    a, b = _images(64, 64, seed=1)
    a, b = a[..., :1], b[..., :1]
    want = pair.oracle_distance(
        a, b
    )  # lpips' scaling layer broadcasts one channel to three
    chunked = lpips_metric.load(
        "alex", heads=pair.heads, backbone=pair.backbone, max_batch=2
    )
    np.testing.assert_allclose(chunked.distance(a, b), want, rtol=0, atol=ATOL)
    np.testing.assert_allclose(pair.ours.distance(a, b), want, rtol=0, atol=ATOL)


def test_identical_images_are_at_distance_zero(pairs):
    a, _ = _images(64, 64)
    for pair in pairs.values():
        np.testing.assert_allclose(pair.ours.distance(a, a), 0.0, atol=1e-6)


def test_metric_describes_itself(pairs):
    assert pairs["alex"].ours.name == "lpips-alex"
    assert pairs["vgg"].ours.name == "lpips-vgg"
    assert pairs["alex"].ours.higher_is_better is False


def test_safetensors_files_load_like_pth(pairs, tmp_path):
    import safetensors.numpy

    from unires_jax.convert.weight_files import read_weights

    pair = pairs["alex"]
    heads = tmp_path / "alex_heads.safetensors"
    backbone = tmp_path / "alex_backbone.safetensors"
    state = _backbone_state("alex", seed=1)
    safetensors.numpy.save_file({k: v.numpy() for k, v in state.items()}, backbone)
    legacy = torch.load(pair.heads, map_location="cpu")
    safetensors.numpy.save_file({k: v.numpy() for k, v in legacy.items()}, heads)
    assert read_weights(heads).keys() == legacy.keys()
    a, b = _images(64, 64)
    got = lpips_metric.load("alex", heads=heads, backbone=backbone).distance(a, b)
    np.testing.assert_allclose(got, pair.ours.distance(a, b), rtol=0, atol=1e-6)


def test_backbone_file_missing_keys_is_named(pairs, tmp_path):
    state = _backbone_state("alex", seed=1)
    del state["features.10.weight"], state["features.10.bias"]
    path = tmp_path / "truncated.pth"
    torch.save(state, path)
    with pytest.raises(LpipsWeightsError) as e:
        lpips_metric.load("alex", heads=pairs["alex"].heads, backbone=path)
    msg = str(e.value)
    assert str(path) in msg and "features.10.weight" in msg
    assert "alexnet-owt-7be5be79.pth" in msg  # the file that was expected


def test_heads_of_another_net_are_refused(pairs):
    with pytest.raises(LpipsWeightsError, match=r"vgg.pth.*'vgg' heads file"):
        lpips_metric.load(
            "alex", heads=HEADS_DIR / "vgg.pth", backbone=pairs["alex"].backbone
        )
    with pytest.raises(LpipsWeightsError, match=r"'alex' backbone file"):
        lpips_metric.load(
            "vgg", heads=HEADS_DIR / "vgg.pth", backbone=pairs["alex"].backbone
        )


def test_swapped_files_are_pointed_out(pairs):
    pair = pairs["alex"]
    with pytest.raises(LpipsWeightsError, match="swapped"):
        lpips_metric.load("alex", heads=pair.backbone, backbone=pair.heads)


def test_missing_file_says_what_is_expected(tmp_path):
    with pytest.raises(
        LpipsWeightsError, match=r"no such file.*lpips/weights/v0.1/vgg.pth"
    ):
        lpips_metric.load(
            "vgg", heads=tmp_path / "nope.pth", backbone=tmp_path / "b.pth"
        )


def test_bad_inputs_are_refused(pairs):
    metric = pairs["alex"].ours
    a, b = _images(64, 64)
    with pytest.raises(ValueError, match="at least 31 pixels"):
        metric.distance(a[:, :30], b[:, :30])
    with pytest.raises(ValueError, match="same shape"):
        metric.distance(a, b[:, :63])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metric.distance(2 * a - 1, b)
    with pytest.raises(ValueError, match="at least 16 pixels"):
        pairs["vgg"].ours.distance(a[:, :15], b[:, :15])
    with pytest.raises(ValueError, match="unknown LPIPS net"):
        lpips_metric.load("squeeze", heads="x", backbone="y")


def test_legacy_pickles_with_other_objects_are_refused(tmp_path):
    import datetime

    path = tmp_path / "evil.pth"
    state = _backbone_state("alex", seed=1)
    state["features.0.when"] = datetime.date(2020, 1, 1)
    torch.save(state, path, _use_new_zipfile_serialization=False)
    with pytest.raises(LpipsWeightsError, match="refusing to unpickle datetime.date"):
        lpips_metric.load("alex", heads=HEADS_DIR / "alex.pth", backbone=path)

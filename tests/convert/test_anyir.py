"""Official AnyIR checkpoints -> AnyIR: every weight and BatchNorm statistic mapped, the same
outputs as PyTorch, and the converted model through `unires restore`.

The PyTorch side is written here from the released architecture (Amazingren/AnyIR
`net/anyir.py`: `AnyIR`, `TransformerBlock`, `Attention`, `GatedDegradationAdaption`,
`FeedForward`, `Downsample`, `Upsample`; v1's gate branch is the file's `GatedCNNBlock`), NCHW,
with the official module nesting so its state dict has the official names. Checkpoints are
saved the way the official Lightning trainer does (`state_dict` with `net.` prefixes beside
`epoch`, `global_step`, `loops`, `callbacks`, `optimizer_states`, `lr_schedulers`).
"""

import collections
import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
from flax import nnx
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

from unires_jax import restore
from unires_jax.cli.main import main as cli_main
from unires_jax.convert import anyir as convert
from unires_jax.convert import checkpoint, weight_files
from unires_jax.models.anyir import AnyIRConfig

TOL = 1e-4  # max |ours - torch| / max |torch|, float32
TINY = {
    "width": 8,
    "levels": (1, 2, 1, 1),
    "heads": (1, 2, 2, 4),
    "refinement_blocks": 1,
}
# Compiled once per (config, input shape): eager NNX would compile every op on its own.
_apply = nnx.jit(lambda model, x: model(x))


# --- an independent PyTorch AnyIR (NCHW), official module names ---------------------------------


class TorchLayerNormBody(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):  # over channels of NCHW
        mu = x.mean(1, keepdim=True)
        var = ((x - mu) ** 2).mean(1, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5) * self.weight[
            :, None, None
        ] + self.bias[:, None, None]


class TorchLayerNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = TorchLayerNormBody(c)

    def forward(self, x):
        return self.body(x)


class TorchFeedForward(nn.Module):
    def __init__(self, c, factor, bias):
        super().__init__()
        hidden = int(c * factor)
        self.project_in = nn.Conv2d(c, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(
            2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias
        )
        self.project_out = nn.Conv2d(hidden, c, 1, bias=bias)

    def forward(self, x):
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class TorchGatedAdaption(nn.Module):
    """v2's GatedDegradationAdaption."""

    def __init__(self, c):
        super().__init__()
        hidden = round(8 / 3 * c)
        self.sizes = (c, c, hidden - 2 * c)
        self.norm = nn.BatchNorm2d(c)
        self.W_exp = nn.Conv2d(c, hidden, 1, bias=False)
        a = hidden - 2 * c
        self.W_depth = nn.Conv2d(a, a, 7, padding=3, groups=a, bias=False)
        self.W_gate = nn.Conv2d(c + a, c, 1, bias=False)
        self.W_proj = nn.Conv2d(c, c, 1, bias=False)
        self.tau = nn.Parameter(torch.ones(1, c, 1, 1))

    def forward(self, x):
        f = self.norm(x)
        mu = f.mean(dim=(2, 3), keepdim=True)
        var = ((f - mu) ** 2).mean(dim=(2, 3), keepdim=True)
        tau = self.tau * torch.sigmoid(mu + torch.sqrt(var + 1e-6))
        gamma, beta, alpha = torch.split(self.W_exp(f), self.sizes, dim=1)
        alpha = self.W_depth(alpha)
        reps = -(-alpha.shape[1] // tau.shape[1])
        alpha = alpha * (1.0 + tau.repeat(1, reps, 1, 1)[:, : alpha.shape[1]])
        gated = torch.sigmoid(gamma) * self.W_gate(torch.cat([beta, alpha], dim=1))
        return self.W_proj(gated + x)


class TorchGatedCNN(nn.Module):
    """v1: the released file's GatedCNNBlock (drop-path is the identity in eval mode)."""

    def __init__(self, c):
        super().__init__()
        hidden = int(8 / 3 * c)
        self.sizes = (hidden, hidden - c, c)
        self.norm = nn.BatchNorm2d(c)
        self.gic1 = nn.Conv2d(c, 2 * hidden, 1, bias=False)
        self.cconv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.gic2 = nn.Conv2d(hidden, c, 1, bias=False)
        self.proj_out = nn.Conv2d(c, c, 1, bias=False)

    def forward(self, x):
        g, i, c = torch.split(self.gic1(self.norm(x)), self.sizes, dim=1)
        return self.proj_out(
            self.gic2(F.gelu(g) * torch.cat([i, self.cconv(c)], 1)) + x
        )


class TorchAttention(nn.Module):
    def __init__(self, c, heads, bias, version):
        super().__init__()
        half = c // 2
        self.heads, self.version = heads, version
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(half, 3 * half, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(
            3 * half, 3 * half, 3, padding=1, groups=3 * half, bias=bias
        )
        self.gatedcnn = (TorchGatedAdaption if version == "v2" else TorchGatedCNN)(half)
        if version == "v2":
            self.lam = nn.Parameter(torch.tensor(0.5))
        self.project_out = nn.Conv2d(c, c, 1, bias=bias)

    def forward(self, x):
        att_in, gate_in = x[:, 0::2], x[:, 1::2]
        b, c, h, w = att_in.shape
        q, k, v = self.qkv_dwconv(self.qkv(att_in)).chunk(3, dim=1)
        q, k, v = (t.reshape(b, self.heads, c // self.heads, h * w) for t in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        att = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(-1) @ v
        att = att.reshape(b, c, h, w)
        gate = self.gatedcnn(gate_in)
        spatial = torch.cat(
            [att + torch.sigmoid(gate), gate + torch.sigmoid(att)], dim=1
        )
        if self.version == "v2":
            freq = torch.fft.irfft2(
                torch.fft.rfft2(att) + torch.fft.rfft2(gate), s=(h, w)
            )
            spatial = self.lam * spatial + (1 - self.lam) * freq.repeat_interleave(
                2, dim=1
            )
        return self.project_out(spatial)


class TorchBlock(nn.Module):
    def __init__(self, c, heads, factor, bias, version):
        super().__init__()
        self.norm1 = TorchLayerNorm(c)
        self.attn = TorchAttention(c, heads, bias, version)
        self.norm2 = TorchLayerNorm(c)
        self.ffn = TorchFeedForward(c, factor, bias)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class TorchPatchEmbed(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.proj = nn.Conv2d(3, c, 3, padding=1, bias=False)

    def forward(self, x):
        return self.proj(x)


class TorchResize(nn.Module):
    def __init__(self, c, down):
        super().__init__()
        cout, shuffle = (
            (c // 2, nn.PixelUnshuffle(2)) if down else (2 * c, nn.PixelShuffle(2))
        )
        self.body = nn.Sequential(nn.Conv2d(c, cout, 3, padding=1, bias=False), shuffle)

    def forward(self, x):
        return self.body(x)


class TorchAnyIR(nn.Module):
    def __init__(self, version="v2", width=28, levels=(3, 5, 5, 7), heads=(1, 2, 4, 8),
                 refinement_blocks=4, factor=2.0, bias=False):  # fmt: skip
        super().__init__()
        d1, d2, d3, d4 = (width * 2**i for i in range(4))

        def stage(c, h, n):
            return nn.Sequential(
                *[TorchBlock(c, h, factor, bias, version) for _ in range(n)]
            )

        self.patch_embed = TorchPatchEmbed(width)
        self.encoder_level1 = stage(d1, heads[0], levels[0])
        self.down1_2 = TorchResize(d1, True)
        self.encoder_level2 = stage(d2, heads[1], levels[1])
        self.down2_3 = TorchResize(d2, True)
        self.encoder_level3 = stage(d3, heads[2], levels[2])
        self.down3_4 = TorchResize(d3, True)
        self.latent = stage(d4, heads[3], levels[3])
        self.up4_3 = TorchResize(d3, False)
        self.reduce_chan_level3 = nn.Conv2d(d2 + d3, d3, 1, bias=bias)
        self.reduce_dim_level3 = nn.Conv2d(d4, d3, 1, bias=bias)
        self.decoder_level3 = stage(d3, heads[2], levels[2])
        self.up3_2 = TorchResize(d3, False)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, 1, bias=bias)
        self.decoder_level2 = stage(d2, heads[1], levels[1])
        self.up2_1 = TorchResize(d2, False)
        self.decoder_level1 = stage(d2, heads[0], levels[0])
        self.refinement = stage(d2, heads[0], refinement_blocks)
        self.output = nn.Conv2d(d2, 3, 3, padding=1, bias=bias)

    def forward(self, x):
        e1 = self.encoder_level1(self.patch_embed(x))
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        y = self.reduce_dim_level3(self.latent(self.down3_4(e3)))
        y = self.decoder_level3(
            self.reduce_chan_level3(torch.cat([self.up4_3(y), e3], 1))
        )
        y = self.decoder_level2(
            self.reduce_chan_level2(torch.cat([self.up3_2(y), e2], 1))
        )
        y = self.decoder_level1(torch.cat([self.up2_1(y), e1], 1))
        return self.output(self.refinement(y)) + x


def _tiny_torch(version="v2", seed=0, **overrides):
    """A tiny torch AnyIR with random weights and non-trivial BatchNorm statistics (eval mode)."""
    torch.manual_seed(seed)
    kw = {**TINY, **overrides}
    net = TorchAnyIR(
        version, kw["width"], kw["levels"], kw["heads"], kw["refinement_blocks"]
    )
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("temperature", "tau")):
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif name.endswith("lam"):
                p.fill_(0.3)
            elif p.ndim == 1:  # LayerNorm / BatchNorm affine, the depthwise bias of v1
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen) if "weight" in name
                        else 0.1 * torch.randn(p.shape, generator=gen))  # fmt: skip
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(
                    0.3 * torch.randn(m.running_mean.shape, generator=gen)
                )
                m.running_var.copy_(
                    0.5 + torch.rand(m.running_var.shape, generator=gen)
                )
                m.num_batches_tracked.fill_(1234)
    return net.eval()


def _input(h, w, seed=0):
    return np.random.default_rng(seed).uniform(size=(2, h, w, 3)).astype(np.float32)


def _torch_out(net, x, pad_to=8):
    """The torch network on NHWC x, reflect-padded at the bottom / right as ours."""
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    h, w = t.shape[2:]
    t = F.pad(t, (0, -w % pad_to, 0, -h % pad_to), mode="reflect")
    with torch.no_grad():
        y = net(t)[:, :, :h, :w]
    return y.permute(0, 2, 3, 1).numpy()


def _close(ours, ref):
    err = np.max(np.abs(np.asarray(ours) - ref)) / np.max(np.abs(ref))
    assert err < TOL, err


def _lightning_ckpt(net, path):
    """A checkpoint with the structure of the official trainer's (Lightning 2.0 ModelCheckpoint)."""
    state = collections.OrderedDict(
        (f"net.{k}", v) for k, v in net.state_dict().items()
    )
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-4)
    sum(p.sum() for p in net.parameters()).backward()
    optimizer.step()
    optimizer.zero_grad()
    progress = {
        "total": {"ready": 4, "completed": 4},
        "current": {"ready": 4, "completed": 4},
    }
    torch.save(
        {
            "epoch": 3,
            "global_step": 5348,
            "pytorch-lightning_version": "2.0.9",
            "state_dict": state,
            "loops": {
                "fit_loop": {
                    "state_dict": {},
                    "epoch_loop.state_dict": {"_batches_that_stepped": 5348},
                    "epoch_loop.batch_progress": {**progress, "is_last_batch": True},
                    "epoch_loop.scheduler_progress": progress,
                    "epoch_progress": progress,
                },
                "validate_loop": {"state_dict": {}},
            },
            "callbacks": {
                "ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, "
                "'every_n_epochs': 1, 'train_time_interval': None}": {
                    "monitor": None,
                    "best_model_score": None,
                    "best_model_path": "train_ckpt/epoch=2-step=4011.ckpt",
                    "current_score": None,
                    "dirpath": "train_ckpt",
                    "best_k_models": {},
                    "kth_best_model_path": "",
                    "kth_value": torch.tensor(float("inf")),
                    "last_model_path": "",
                }
            },
            "optimizer_states": [optimizer.state_dict()],
            "lr_schedulers": [
                {
                    "warmup_epochs": 15,
                    "max_epochs": 150,
                    "warmup_start_lr": 0.0,
                    "eta_min": 0.0,
                    "base_lrs": [2e-4],
                    "last_epoch": 3,
                    "verbose": False,
                    "_step_count": 4,
                    "_get_lr_called_within_step": False,
                    "_last_lr": [2.857e-05],
                },
            ],
        },
        path,
    )
    return path


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """(torch net, its Lightning .ckpt) for v2 and v1."""
    folder = tmp_path_factory.mktemp("anyir_official")
    return {
        v: (net, _lightning_ckpt(net, folder / f"{v}_epoch=3-step=5348.ckpt"))
        for v, net in (("v2", _tiny_torch("v2")), ("v1", _tiny_torch("v1", seed=3)))
    }


# --- the released layout --------------------------------------------------------------------------


def test_full_v2_reference_has_the_released_layout_and_every_key_maps():
    """The full-size reference: 825 state-dict entries (714 parameters, 37 BatchNorm layers),
    5,736,376 parameters, names and shapes as the released code's; all of them convert."""
    net = TorchAnyIR("v2")
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    assert len(state) == 825 and len(list(net.parameters())) == 714
    assert sum(p.numel() for p in net.parameters()) == 5_736_376
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 37
    spot = {
        "patch_embed.proj.weight": (28, 3, 3, 3),
        "encoder_level1.0.norm1.body.bias": (28,),
        "encoder_level1.0.attn.gatedcnn.W_exp.weight": (37, 14, 1, 1),
        "encoder_level1.0.attn.gatedcnn.W_depth.weight": (9, 1, 7, 7),
        "encoder_level1.0.attn.gatedcnn.tau": (1, 14, 1, 1),
        "encoder_level2.4.attn.gatedcnn.norm.num_batches_tracked": (),
        "latent.6.attn.temperature": (8, 1, 1),
        "latent.6.attn.qkv_dwconv.weight": (336, 1, 3, 3),
        "reduce_dim_level3.weight": (112, 224, 1, 1),
        "reduce_chan_level3.weight": (112, 168, 1, 1),
        "up2_1.body.0.weight": (112, 56, 3, 3),
        "refinement.3.attn.lam": (),
        "refinement.3.ffn.project_in.weight": (224, 56, 1, 1),
        "output.weight": (3, 56, 3, 3),
    }
    assert {k: tuple(state[k].shape) for k in spot} == spot
    cfg = convert.config_from_state(state)
    assert cfg == AnyIRConfig()
    model, _ = convert.model_from_state(state, cfg)
    stats = convert.batch_stats(model)
    assert len(stats) == 74
    np.testing.assert_array_equal(
        stats["enc2.4.mixer.gate.norm.var"],
        state["encoder_level2.4.attn.gatedcnn.norm.running_var"],
    )


# --- parity ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_lightning_ckpt_converts_to_the_same_outputs_with_running_statistics(
    official, version, tmp_path
):
    net, ckpt = official[version]
    dst = convert.convert_anyir(ckpt, tmp_path / "ckpt", allow_pickle=True)
    stored = checkpoint.read(dst)
    assert stored.family == "anyir" and stored.param_names() == ["anyir", "batch_stats"]
    assert stored.extra == {
        "source": ckpt.name,
        "epoch": 3,
        "global_step": 5348,
        "pytorch_lightning_version": "2.0.9",
    }
    model, settings = convert.load_anyir_checkpoint(dst)
    assert model.cfg.version == version and settings == convert.DEFAULT_SETTINGS
    for h, w in ((32, 40), (27, 45)):  # a multiple of 8, and not (padded, cropped back)
        x = _input(h, w)
        out = np.asarray(_apply(model, x))
        assert out.shape == x.shape
        _close(out, _torch_out(net, x))
    # Inference provably uses the running statistics: with them reset, outputs change.
    model2, _ = convert.load_anyir_checkpoint(dst)
    reset = {k: (np.zeros_like(v) if k.endswith("mean") else np.ones_like(v))
             for k, v in convert.batch_stats(model2).items()}  # fmt: skip
    convert.assign_batch_stats(model2, reset, dtype=np.float32, source="test")
    x = _input(32, 40)
    assert (
        np.max(np.abs(np.asarray(_apply(model2, x)) - np.asarray(_apply(model, x))))
        > 1e-3
    )


def test_training_mode_uses_batch_statistics_and_updates_the_running_ones(
    official, tmp_path
):
    net, ckpt = official["v2"]
    model, _, _ = convert.load_anyir(ckpt, allow_pickle=True)
    model.train()
    x = _input(16, 24, seed=5)
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    train_net = copy.deepcopy(net).train()
    with torch.no_grad():
        ref = train_net(t).permute(0, 2, 3, 1).numpy()
    _close(_apply(model, x), ref)
    stats = convert.batch_stats(model)
    bn = train_net.encoder_level1[0].attn.gatedcnn.norm
    np.testing.assert_allclose(
        stats["enc1.0.mixer.gate.norm.mean"],
        bn.running_mean.numpy(),
        rtol=1e-4,
        atol=1e-5,
    )
    # torch updates the running variance with the unbiased batch variance, flax with the
    # biased one: they differ by the factor n / (n - 1) on the momentum share (documented).
    n = 2 * 16 * 24
    torch_var = bn.running_var.numpy()
    old = 0.9 * net.encoder_level1[0].attn.gatedcnn.norm.running_var.numpy()
    np.testing.assert_allclose(
        stats["enc1.0.mixer.gate.norm.var"] - old, (torch_var - old) * (n - 1) / n, rtol=1e-3,
        atol=1e-6,
    )  # fmt: skip


def test_literal_fft_fusion_equals_the_sum(official):
    net, ckpt = official["v2"]
    state, _ = convert.read_anyir_state(ckpt, allow_pickle=True)
    model, cfg = convert.model_from_state(state)
    literal, _ = convert.model_from_state(
        state, dataclasses.replace(cfg, frequency_fusion="fft")
    )
    x = _input(24, 32, seed=2)
    np.testing.assert_allclose(
        np.asarray(_apply(literal, x)), np.asarray(_apply(model, x)), atol=2e-5
    )
    _close(_apply(literal, x), _torch_out(net, x))


# --- files, flags and refusals --------------------------------------------------------------------


def test_plain_state_dicts_convert_with_and_without_the_prefix(official, tmp_path):
    net, _ = official["v2"]
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(sd, tmp_path / "bare.safetensors")
    torch.save({f"net.{k}": v for k, v in sd.items()}, tmp_path / "prefixed.pth")
    x = _input(32, 40, seed=1)  # the shape of the parity test: compiled once
    ref = _torch_out(net, x)
    for name, pickle in (("bare.safetensors", False), ("prefixed.pth", True)):
        model, _, facts = convert.load_anyir(tmp_path / name, allow_pickle=pickle)
        assert facts == {"source": name}
        _close(_apply(model, x), ref)
    # In memory: a torch state dict (tensors, `net.` prefixes as the LightningModule's).
    model, _ = convert.model_from_state({f"net.{k}": v for k, v in net.state_dict().items()})
    _close(_apply(model, x), ref)


def test_pickle_is_refused_without_opt_in(official, tmp_path, capsys):
    _, ckpt = official["v2"]
    with pytest.raises(weight_files.WeightFileError, match="allow_pickle"):
        convert.read_anyir_state(ckpt)
    assert cli_main(["convert", "anyir", str(ckpt), str(tmp_path / "out")]) == 1
    assert "--allow-pickle" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_wrong_version_and_foreign_files_are_named(official, tmp_path):
    _, ckpt = official["v1"]
    with pytest.raises(ValueError, match="v1 network"):
        convert.convert_anyir(ckpt, tmp_path / "x", version="v2", allow_pickle=True)
    save_file({"conv.weight": torch.zeros(2, 2)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="no AnyIR network"):
        convert.read_anyir_state(tmp_path / "other.safetensors")
    net, _ = official["v2"]
    sd = {
        k: v.contiguous() for k, v in net.state_dict().items() if "running_var" not in k
    }
    save_file(sd, tmp_path / "nostats.safetensors")
    with pytest.raises(ValueError, match="BatchNorm statistic .* missing"):
        convert.load_anyir(tmp_path / "nostats.safetensors")


def test_cli_converts_and_unires_restore_runs_it_with_no_family_flags(
    official, tmp_path
):
    net, ckpt = official["v2"]
    dst = tmp_path / "anyir"
    assert cli_main(["convert", "anyir", str(ckpt), str(dst), "--allow-pickle",
                     "--version", "v2"]) == 0  # fmt: skip
    assert restore.family_of(dst) == "anyir"
    rng = np.random.default_rng(0)
    photo = rng.uniform(0.2, 0.8, (30, 38, 3))
    folder = tmp_path / "in"
    folder.mkdir()
    pixels = (photo * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(folder / "a.png")
    out = tmp_path / "out"
    assert cli_main(["restore", str(folder), "--checkpoint", str(dst), "-o", str(out),
                     "--no-progress"]) == 0  # fmt: skip
    sidecar = json.loads((out / "a.json").read_text())
    assert sidecar["family"] == "anyir" and sidecar["tiles"] == 1
    written = np.asarray(Image.open(out / "a.png"), np.float32) / 255
    ref = np.clip(_torch_out(net, pixels[None].astype(np.float32) / 255)[0], 0, 1)
    assert written.shape == (30, 38, 3)
    assert np.max(np.abs(written - ref)) <= 1 / 255 + 1e-6
    # Tiles cover every pixel; the restorer refuses options of other families.
    restorer = restore.load(dst, tile=16, tile_overlap=4)
    tiled = restorer.restore(photo.astype(np.float32))
    assert tiled.details["tiles"] == 3 * 3 and tiled.pixels.shape == (30, 38, 3)
    assert (
        np.isfinite(tiled.pixels).all()
        and 0 <= tiled.pixels.min() <= tiled.pixels.max() <= 1
    )
    with pytest.raises(restore.OptionError, match="does not take"):
        restore.load(dst, steps=4)

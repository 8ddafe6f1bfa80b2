"""Official FoundIR checkpoints -> DiffUIRUNet: every weight mapped, same output as PyTorch.

The PyTorch side is written here from the official architecture (FoundIR src/model.py, `Unet`
inside `UnetRes`), with the official module nesting so its state dict has the official names;
a synthetic `model-N.pt` with the official structure is saved with torch.save.
"""

import datetime
import hashlib
import itertools
import math

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

from unires_jax.cli.main import main as cli_main
from unires_jax.convert import checkpoint, foundir, torch_layout, weight_files
from unires_jax.models.diffuir import DiffUIRConfig, DiffUIRUNet

TOL = 1e-4  # max |ours - torch| / max |torch|, float32
TINY = {"dim": 16, "dim_mults": (1, 2)}
# sha256 of "\n".join(f"{key} {tuple(shape)}") over the official
# UnetRes(dim=64, dim_mults=(1, 2, 4, 8), condition=True).state_dict(), in order (276 tensors),
# computed from FoundIR commit 6d19958's src/model.py.
OFFICIAL_KEYS_SHA256 = (
    "9244eda649a237a3cf01794a443edc2ba34f3d9cf54297c0bb85190731b0c328"
)
# The 14 schedule buffers ResidualDiffusion registers before its UNet.
SCHEDULE_BUFFERS = [
    "alphas",
    "alphas_cumsum",
    "delta",
    "delta_cumsum",
    "one_minus_alphas_cumsum",
    "betas2",
    "betas",
    "betas2_cumsum",
    "betas_cumsum",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "posterior_mean_coef3",
    "posterior_variance",
    "posterior_log_variance_clipped",
]


# --- an independent PyTorch UnetRes (NCHW), official module names -----------------------------


class TorchWSConv(nn.Conv2d):
    def forward(self, x):
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        return F.conv2d(x, (w - mean) / torch.sqrt(var + 1e-5), self.bias, padding=1)


class TorchChannelNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, c, 1, 1))

    def forward(self, x):
        mean = x.mean(dim=1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5) * self.g


class TorchBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.proj = TorchWSConv(cin, cout, 3, padding=1)
        self.norm = nn.GroupNorm(8, cout)

    def forward(self, x, film=None):
        x = self.norm(self.proj(x))
        if film is not None:
            x = x * (film[0] + 1) + film[1]
        return F.silu(x)


class TorchResnet(nn.Module):
    def __init__(self, cin, cout, tdim):
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(tdim, 2 * cout))
        self.block1 = TorchBlock(cin, cout)
        self.block2 = TorchBlock(cout, cout)
        self.res_conv = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, t):
        scale, shift = self.mlp(t)[:, :, None, None].chunk(2, dim=1)
        return self.block2(self.block1(x, (scale, shift))) + self.res_conv(x)


def _split_heads(t, heads):  # [B, heads*d, H, W] -> [B, heads, d, HW]
    b, c, h, w = t.shape
    return t.reshape(b, heads, c // heads, h * w)


class TorchLinearAttn(nn.Module):
    def __init__(self, c, heads=4, dh=32):
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Conv2d(c, 3 * heads * dh, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(heads * dh, c, 1), TorchChannelNorm(c))

    def forward(self, x):
        b, _, h, w = x.shape
        q, k, v = (_split_heads(t, self.heads) for t in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=2) * q.shape[2] ** -0.5
        k = k.softmax(dim=3)
        v = v / (h * w)
        context = torch.matmul(k, v.transpose(2, 3))  # [B, heads, d, e]
        out = torch.matmul(context.transpose(2, 3), q)  # [B, heads, e, HW]
        return self.to_out(out.reshape(b, -1, h, w))


class TorchFullAttn(nn.Module):
    def __init__(self, c, heads=4, dh=32):
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Conv2d(c, 3 * heads * dh, 1, bias=False)
        self.to_out = nn.Conv2d(heads * dh, c, 1)

    def forward(self, x):
        b, _, h, w = x.shape
        q, k, v = (_split_heads(t, self.heads) for t in self.to_qkv(x).chunk(3, dim=1))
        logits = (
            torch.matmul(q.transpose(2, 3), k) * q.shape[2] ** -0.5
        )  # [B, heads, i, j]
        out = torch.matmul(
            v, logits.softmax(dim=-1).transpose(2, 3)
        )  # [B, heads, d, i]
        return self.to_out(out.reshape(b, -1, h, w))


class TorchPreNorm(nn.Module):
    def __init__(self, c, fn):
        super().__init__()
        self.fn = fn
        self.norm = TorchChannelNorm(c)

    def forward(self, x):
        return self.fn(self.norm(x))


class TorchResidual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return x + self.fn(x)


class TorchSinusoid(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, t):
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half) * -(math.log(10000) / (half - 1)))
        args = t[:, None] * freqs[None]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class TorchUnet(nn.Module):
    def __init__(self, dim=64, dim_mults=(1, 2, 4, 8)):
        super().__init__()
        self.depth = len(dim_mults)
        tdim = 4 * dim
        widths = [dim] + [dim * m for m in dim_mults]
        pairs = list(itertools.pairwise(widths))
        self.init_conv = nn.Conv2d(6, dim, 7, padding=3)
        self.time_mlp = nn.Sequential(
            TorchSinusoid(dim), nn.Linear(dim, tdim), nn.GELU(), nn.Linear(tdim, tdim)
        )
        # Both lists are registered before the middle blocks (the official order, which the
        # state dict follows: downs.*, ups.*, mid_*).
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i, (a, b) in enumerate(pairs):
            last = i == len(pairs) - 1
            down = nn.Conv2d(a, b, 3, padding=1) if last else nn.Conv2d(a, b, 4, 2, 1)
            self.downs.append(
                nn.ModuleList(
                    [
                        TorchResnet(a, a, tdim),
                        TorchResnet(a, a, tdim),
                        TorchResidual(TorchPreNorm(a, TorchLinearAttn(a))),
                        down,
                    ]
                )
            )
        mid = widths[-1]
        self.mid_block1 = TorchResnet(mid, mid, tdim)
        self.mid_attn = TorchResidual(TorchPreNorm(mid, TorchFullAttn(mid)))
        self.mid_block2 = TorchResnet(mid, mid, tdim)
        for i, (a, b) in enumerate(reversed(pairs)):
            last = i == len(pairs) - 1
            up = (
                nn.Conv2d(b, a, 3, padding=1)
                if last
                else nn.Sequential(
                    nn.Upsample(scale_factor=2), nn.Conv2d(b, a, 3, padding=1)
                )
            )
            self.ups.append(
                nn.ModuleList(
                    [
                        TorchResnet(a + b, b, tdim),
                        TorchResnet(a + b, b, tdim),
                        TorchResidual(TorchPreNorm(b, TorchLinearAttn(b))),
                        up,
                    ]
                )
            )
        self.final_res_block = TorchResnet(2 * dim, dim, tdim)
        self.final_conv = nn.Conv2d(dim, 3, 1)

    def forward(self, x, time):
        h, w = x.shape[2:]
        m = 2**self.depth
        x = F.pad(x, (0, -w % m, 0, -h % m), mode="reflect")
        x = self.init_conv(x)
        r = x
        t = self.time_mlp(time)
        skips = []
        for block1, block2, attn, down in self.downs:
            x = block1(x, t)
            skips.append(x)
            x = attn(block2(x, t))
            skips.append(x)
            x = down(x)
        x = self.mid_block2(self.mid_attn(self.mid_block1(x, t)), t)
        for block1, block2, attn, up in self.ups:
            x = block1(torch.cat([x, skips.pop()], dim=1), t)
            x = attn(block2(torch.cat([x, skips.pop()], dim=1), t))
            x = up(x)
        x = self.final_res_block(torch.cat([x, r], dim=1), t)
        return self.final_conv(x)[..., :h, :w]


class TorchUnetRes(nn.Module):
    """Holds the UNet as `unet0`, as the official UnetRes."""

    def __init__(self, **kw):
        super().__init__()
        self.unet0 = TorchUnet(**kw)


def _randomize(model, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith(".g") or ("norm" in name and name.endswith("weight")):
                p.copy_(1 + 0.2 * noise)
            elif p.ndim == 1:
                p.copy_(0.1 * noise)
            else:
                p.copy_(noise / math.sqrt(p[0].numel()))
    return model.eval()


def _official_checkpoint(raw: TorchUnetRes, ema: TorchUnetRes) -> dict:
    """`Trainer.save`'s dict: step, ResidualDiffusion state, Adam state, ema-pytorch state."""
    buffers = {name: torch.rand(1000) for name in SCHEDULE_BUFFERS}
    model_sd = {**buffers, **{f"model.{k}": v for k, v in raw.state_dict().items()}}
    ema_sd = {**buffers, **{f"model.{k}": v for k, v in ema.state_dict().items()}}
    opt = torch.optim.Adam(raw.parameters(), lr=1e-4, betas=(0.9, 0.99))
    for p in raw.parameters():
        p.grad = torch.zeros_like(p)
    state = {k: v.clone() for k, v in raw.state_dict().items()}
    opt.step()  # fills the per-parameter state (step, exp_avg, exp_avg_sq)
    raw.load_state_dict(state)
    return {
        "step": 2000,
        "model": model_sd,
        "opt0": opt.state_dict(),
        "ema": {
            "initted": torch.tensor(True),
            "step": torch.tensor(200000),
            **{f"online_model.{k}": v for k, v in model_sd.items()},
            **{f"ema_model.{k}": v for k, v in ema_sd.items()},
        },
        "scaler": None,
    }


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {
        "model": _randomize(TorchUnetRes(**TINY), seed=1),
        "ema": _randomize(TorchUnetRes(**TINY), seed=2),
    }


@pytest.fixture(scope="module")
def official_pt(nets, tmp_path_factory):
    path = tmp_path_factory.mktemp("foundir") / "model-2000.pt"
    torch.save(_official_checkpoint(nets["model"], nets["ema"]), path)
    return path


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 6, 22, 30)).astype(
        np.float32
    )  # padded to 24 x 32 inside
    t = np.array([993.6472, 276.0626], np.float32)
    return x, t


def _torch_out(net, sample):
    x, t = sample
    with torch.no_grad():
        return net.unet0(torch.from_numpy(x), torch.from_numpy(t)).numpy()


def _ours(model, sample):
    x, t = sample
    out = nnx.jit(lambda m, x, t: m(x, t))(
        model, jnp.asarray(x.transpose(0, 2, 3, 1)), t
    )
    return np.asarray(out).transpose(0, 3, 1, 2)


def _assert_close(ours, ref):
    err = np.max(np.abs(ours - ref)) / np.max(np.abs(ref))
    assert err < TOL, err


# --- the full-size key list --------------------------------------------------------------------


def test_reference_has_the_official_key_list_and_our_model_maps_every_key():
    with torch.device("meta"):
        full = TorchUnetRes()
    sd = full.state_dict()
    text = "\n".join(f"{k} {tuple(v.shape)}" for k, v in sd.items())
    assert len(sd) == 276
    assert hashlib.sha256(text.encode()).hexdigest() == OFFICIAL_KEYS_SHA256
    assert sum(v.numel() for v in sd.values()) == 36_261_187
    # Every official tensor lands on exactly one DiffUIRUNet parameter of the right shape
    # (zero-stride views: no memory).
    state = {
        k[len("unet0.") :]: np.broadcast_to(np.float32(0), tuple(v.shape))
        for k, v in sd.items()
    }
    abstract = nnx.eval_shape(lambda: DiffUIRUNet(rngs=nnx.Rngs(0)))
    targets = torch_layout.param_shapes(abstract)
    values = torch_layout.convert_state(
        foundir._layernorm_gains(state, "test"),
        targets,
        renames=foundir.FOUNDIR_RENAMES,
        what="DiffUIR UNet",
    )
    assert len(values) == len(targets) == 276
    assert foundir.config_from_state(state) == DiffUIRConfig()


# --- conversion and parity ---------------------------------------------------------------------


@pytest.mark.parametrize("weights", ["ema", "model"])
def test_official_pt_converts_to_the_same_outputs(official_pt, nets, sample, weights):
    model, cfg, facts = foundir.load_foundir(
        official_pt, weights=weights, allow_pickle=True
    )
    assert (cfg.dim, cfg.dim_mults) == (16, (1, 2))
    assert facts == {"source": "model-2000.pt", "weights": weights, "step": 2000}
    _assert_close(_ours(model, sample), _torch_out(nets[weights], sample))


def test_ema_is_the_default_and_differs_from_the_raw_weights(official_pt):
    ema, _ = foundir.read_foundir_state(official_pt, allow_pickle=True)
    raw, _ = foundir.read_foundir_state(official_pt, weights="model", allow_pickle=True)
    assert sorted(ema) == sorted(raw) and len(ema) == 160
    assert not np.array_equal(ema["init_conv.weight"], raw["init_conv.weight"])


def test_nested_reader_keeps_plain_values_and_tensors(official_pt):
    tree = weight_files.read_torch_tree(official_pt, allow_pickle=True)
    assert sorted(tree) == ["ema", "model", "opt0", "scaler", "step"]
    assert tree["step"] == 2000 and tree["scaler"] is None
    assert tree["opt0"]["param_groups"][0]["betas"] == (0.9, 0.99)
    assert isinstance(tree["opt0"]["state"][0]["exp_avg"], np.ndarray)
    assert tree["ema"]["initted"].dtype == np.bool_
    assert list(tree["model"])[:14] == SCHEDULE_BUFFERS


def test_pickle_is_refused_without_opt_in(official_pt, tmp_path, capsys):
    with pytest.raises(
        weight_files.WeightFileError, match=r"model-2000\.pt.*allow_pickle=True"
    ):
        foundir.load_foundir(official_pt)
    code = cli_main(["convert", "foundir", str(official_pt), str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert "model-2000.pt" in err and "--allow-pickle" in err
    assert not (tmp_path / "out").exists()


def test_pickle_with_other_objects_is_refused(tmp_path):
    path = tmp_path / "model-1.pt"
    torch.save({"model": {}, "when": datetime.date(2024, 1, 1)}, path)
    with pytest.raises(
        weight_files.WeightFileError, match="refusing to unpickle datetime"
    ):
        weight_files.read_torch_tree(path, allow_pickle=True)


@pytest.mark.parametrize("prefix", ["ema_model.model.unet0.", ""])
def test_safetensors_converts_without_a_flag(nets, sample, tmp_path, prefix):
    path = tmp_path / "foundir.safetensors"
    save_file(
        {
            prefix + k[len("unet0.") :]: v.contiguous()
            for k, v in nets["ema"].state_dict().items()
        },
        path,
    )
    model, _, facts = foundir.load_foundir(path)
    assert facts == {"source": "foundir.safetensors", "weights": "ema"}
    _assert_close(_ours(model, sample), _torch_out(nets["ema"], sample))


def test_missing_choice_and_foreign_files_are_named(nets, tmp_path):
    ema_only = tmp_path / "ema.safetensors"
    save_file(
        {
            f"ema_model.model.{k}": v.contiguous()
            for k, v in nets["ema"].state_dict().items()
        },
        ema_only,
    )
    with pytest.raises(
        ValueError, match=r"ema\.safetensors: holds no 'model'.*--weights ema"
    ):
        foundir.load_foundir(ema_only, weights="model")
    other = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(ValueError, match=r"other\.safetensors: no FoundIR UNet found"):
        foundir.load_foundir(other)
    broken = tmp_path / "broken.safetensors"
    sd = {
        k[len("unet0.") :]: v.contiguous() for k, v in nets["ema"].state_dict().items()
    }
    sd.pop("mid_attn.fn.fn.to_out.bias")
    sd["extra.weight"] = torch.zeros(3)
    save_file(sd, broken)
    with pytest.raises(
        ValueError, match=r"broken\.safetensors.*extra\.weight.*mid_attn\.to_out\.bias"
    ):
        foundir.load_foundir(broken)


def test_cli_writes_a_verified_checkpoint_that_loads_back(
    official_pt, nets, sample, tmp_path, capsys
):
    out = tmp_path / "foundir_ckpt"
    code = cli_main(
        [
            "convert",
            "foundir",
            str(official_pt),
            str(out),
            "--allow-pickle",
            "--weights",
            "model",
        ]
    )
    assert code == 0, capsys.readouterr().err
    ckpt = checkpoint.read(out)
    assert ckpt.family == "residual" and ckpt.param_names() == ["unet"]
    assert ckpt.config["unet"]["dim"] == 16 and ckpt.config["unet"]["dim_mults"] == [
        1,
        2,
    ]
    assert ckpt.config["schedule"] == {"num_steps": 1000, "delta_end": 1.4e-3}
    assert ckpt.extra == {"source": "model-2000.pt", "weights": "model", "step": 2000}
    model, settings = foundir.load_foundir_checkpoint(out)
    assert settings["steps"] == 4 and settings["schedule"]["delta_end"] == 1.4e-3
    _assert_close(_ours(model, sample), _torch_out(nets["model"], sample))

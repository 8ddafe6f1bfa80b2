"""Real-ESRGAN blur kernels: normalisation, closed forms, frequency response and sampling."""

import math

import numpy as np
import pytest
from scipy import special

from unires_jax.data.degradations import kernels


def _all_kind_params():
    rng = np.random.default_rng(0)
    out = []
    for kind in kernels.ALL_KINDS:
        for size in (7, 13, 21):
            sigma_x = float(rng.uniform(0.2, 3.0))
            out.append(
                kernels.KernelParams(
                    kind=kind,
                    size=size,
                    sigma_x=sigma_x,
                    sigma_y=float(rng.uniform(0.2, 3.0))
                    if "aniso" in kind
                    else sigma_x,
                    rotation=float(rng.uniform(-math.pi, math.pi))
                    if "aniso" in kind
                    else 0.0,
                    beta=float(rng.uniform(0.5, 4.0)),
                    omega_c=float(rng.uniform(math.pi / 5, math.pi)),
                )
            )
    return out


@pytest.mark.parametrize(
    "params", _all_kind_params(), ids=lambda p: f"{p.kind}-{p.size}"
)
def test_every_kernel_sums_to_one_with_requested_size(params):
    k = kernels.make_kernel(params)
    assert k.shape == (params.size, params.size)
    assert k.dtype == np.float32
    np.testing.assert_allclose(k.sum(), 1.0, atol=1e-5)


def test_sinc_kernel_matches_circular_lowpass_closed_form():
    for size, omega in [(7, math.pi / 3), (15, 1.2), (21, math.pi), (13, 0.7)]:
        c = size // 2
        y, x = np.mgrid[0:size, 0:size]
        r = np.hypot(x - c, y - c)
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = omega * special.j1(omega * r) / (2 * np.pi * r)
        expected[c, c] = omega**2 / (
            4 * np.pi
        )  # limit of J1(w r) / r at r -> 0 is w / 2
        expected /= expected.sum()
        np.testing.assert_allclose(
            kernels.sinc_kernel(size, omega), expected, atol=1e-6
        )


def test_sinc_kernel_passes_below_cutoff_and_stops_above():
    omega = 1.0
    k = kernels.sinc_kernel(61, omega)
    n = 256
    response = np.abs(np.fft.fft2(k, s=(n, n)))
    f = 2 * np.pi * np.fft.fftfreq(n)
    radius = np.hypot(f[:, None], f[None, :])
    # Truncating the ideal filter leaves Gibbs ripple (~9%) near the cutoff only.
    assert np.all(np.abs(response[radius < 0.7 * omega] - 1) < 0.15)
    assert np.all(response[radius > 1.4 * omega] < 0.15)


def test_anisotropic_gaussian_matches_covariance_formula():
    size, sx, sy, theta = 15, 2.5, 0.8, 0.6
    rot = np.array(
        [[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]
    )
    cov = rot @ np.diag([sx**2, sy**2]) @ rot.T
    inv = np.linalg.inv(cov)
    ax = np.arange(size) - size // 2
    xx, yy = np.meshgrid(ax, ax)
    grid = np.stack([xx, yy], -1)
    q = np.einsum("hwi,ij,hwj->hw", grid, inv, grid)
    expected = np.exp(-0.5 * q)
    expected /= expected.sum()
    np.testing.assert_allclose(
        kernels.gaussian_kernel(size, sx, sy, theta), expected, atol=1e-7
    )
    # beta = 1 generalized Gaussian is the Gaussian; the plateau is 1 / (1 + q^beta).
    np.testing.assert_allclose(
        kernels.generalized_gaussian_kernel(size, sx, sy, theta, 1.0),
        expected,
        atol=1e-7,
    )
    plateau = 1 / (1 + q**1.5)
    np.testing.assert_allclose(
        kernels.plateau_kernel(size, sx, sy, theta, 1.5),
        plateau / plateau.sum(),
        atol=1e-7,
    )


def test_kernel_sampler_covers_real_esrgan_ranges_and_probabilities():
    ranges = kernels.FIRST_ORDER_RANGES
    draws = [
        kernels.sample_kernel_params(np.random.default_rng(s)) for s in range(2000)
    ]
    kinds = [d.kind for d in draws]
    assert abs(kinds.count("sinc") / len(kinds) - ranges.sinc_prob) < 0.03
    mixed = [d for d in draws if d.kind != "sinc"]
    for kind, prob in zip(ranges.types, ranges.probs):
        share = sum(d.kind == kind for d in mixed) / len(mixed)
        assert abs(share - prob) < 0.04, (kind, share, prob)
    assert sorted({d.size for d in draws}) == list(ranges.sizes)
    sig = np.array([[d.sigma_x, d.sigma_y] for d in mixed])
    assert sig.min() >= 0.2 and sig.max() <= 3.0
    assert sig.min() < 0.3 and sig.max() > 2.9
    iso = [d for d in mixed if d.kind in ("iso", "generalized_iso", "plateau_iso")]
    assert all(d.sigma_x == d.sigma_y and d.rotation == 0.0 for d in iso)
    rot = np.array([d.rotation for d in mixed if "aniso" in d.kind])
    assert rot.min() < -2.8 and rot.max() > 2.8
    betag = np.array([d.beta for d in mixed if d.kind.startswith("generalized")])
    assert (
        betag.min() >= 0.5
        and betag.max() <= 4.0
        and betag.min() < 0.6
        and betag.max() > 3.5
    )
    betap = np.array([d.beta for d in mixed if d.kind.startswith("plateau")])
    assert betap.min() >= 1.0 and betap.max() <= 2.0 and betap.max() > 1.9
    for d in draws:
        if d.kind == "sinc":
            lo = math.pi / 3 if d.size < 13 else math.pi / 5
            assert lo <= d.omega_c <= math.pi


def test_second_order_sampler_uses_smaller_sigmas():
    draws = [
        kernels.sample_kernel_params(
            np.random.default_rng(s), kernels.SECOND_ORDER_RANGES
        )
        for s in range(500)
    ]
    sig = np.array([d.sigma_x for d in draws if d.kind != "sinc"])
    assert sig.min() >= 0.2 and sig.max() <= 1.5 and sig.max() > 1.4


def test_odd_size_is_required():
    with pytest.raises(ValueError, match="odd"):
        kernels.gaussian_kernel(8, 1.0, 1.0)

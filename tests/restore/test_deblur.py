"""Blind deblurring: the PSF fit, the consistency step against an iterative solver, the plumbing."""

import numpy as np
import pytest
from scipy import ndimage
from scipy.fft import next_fast_len
from scipy.sparse.linalg import LinearOperator, lsqr

from unires_jax.data.degradations.blur import convolve, disk_kernel, line_kernel
from unires_jax.data.degradations.noise import add_gaussian_noise
from unires_jax.data.sample_photos import load_sample_photos
from unires_jax.evaluate.demo import center_square
from unires_jax.restore import deblur
from unires_jax.restore.restorer import Restorer, RestoreSettings


@pytest.fixture(scope="module")
def photos():
    # Training-split photos only: the held-out ones are kept for the demo's figures.
    train = load_sample_photos("train")
    return {
        name: center_square(train[name])
        for name in ("camera", "coins", "motorcycle_left")
    }


def blurred(image, kernel):
    return (np.round(np.clip(convolve(image, kernel), 0, 1) * 255) / 255).astype(
        np.float32
    )


def angle_error(a, b):
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


@pytest.mark.parametrize(
    "length, angle", [(6.0, 10.0), (15.0, 45.0), (22.5, 118.0), (11.0, 171.0)]
)
def test_fit_finds_a_straight_motion_blur(photos, length, angle):
    for name, photo in photos.items():
        psf = deblur.fit_psf(blurred(photo, line_kernel(length, angle)))
        assert psf.family == "line", name
        assert abs(psf.size - length) <= 0.6, (name, psf)
        assert angle_error(psf.angle, angle) <= 1.5, (name, psf)
        assert psf.confident, (name, psf)


@pytest.mark.parametrize("radius", [1.5, 3.0, 5.5])
def test_fit_finds_a_defocus_disk(photos, radius):
    for name, photo in photos.items():
        psf = deblur.fit_psf(blurred(photo, disk_kernel(radius)))
        assert psf.family == "disk", name
        assert abs(psf.size - radius) <= 0.15, (name, psf)
        assert psf.confident, (name, psf)


def test_sharp_and_noisy_photos_are_left_alone(photos):
    rng = np.random.default_rng(0)
    for name, photo in photos.items():
        assert not deblur.fit_psf(photo).confident, name
        noisy = add_gaussian_noise(photo, 10.0, False, rng)
        assert not deblur.fit_psf(noisy).confident, name


def _response_of(kernel, window):
    canvas = np.zeros((window, window))
    kh, kw = kernel.shape
    canvas[:kh, :kw] = kernel
    return np.abs(np.fft.fft2(canvas)) ** 2


def test_responses_are_the_kernels_spectra():
    # The analytic |K|^2 the fit uses against the FFT of the kernels the deblurring convolves
    # with: same orientation (rows grow downwards) and scale. Compared at low frequencies, below
    # where the kernels' pixel sampling (bilinear splat, coverage anti-aliasing) shows; the
    # mirrored line (angle -> -angle) is off by 0.4-0.9 there.
    f = np.fft.fftfreq(128)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    low = np.hypot(fx, fy) < 0.08
    for length, angle in [(9.0, 30.0), (15.0, 135.0), (20.0, 80.0)]:
        ours = deblur.line_response(length, angle, fx, fy)
        np.testing.assert_allclose(
            ours[low], _response_of(line_kernel(length, angle), 128)[low], atol=0.05
        )
    for radius in (2.0, 4.0):
        ours = deblur.disk_response(radius, fx, fy)
        np.testing.assert_allclose(
            ours[low], _response_of(disk_kernel(radius), 128)[low], atol=0.05
        )


def test_projection_is_the_least_squares_solution():
    # argmin |k * z - y|^2 + lam |z - x|^2 on the symmetric-padded canvas (the kernel's size
    # + 8 on each side, then bottom / right to a fast FFT length) with periodic convolution,
    # solved by LSQR (no FFT), cropped: the closed form must agree.
    rng = np.random.default_rng(1)
    h, w = 18, 15
    kernel = line_kernel(5.0, 30.0)
    y = rng.uniform(0.3, 0.7, size=(h, w, 3)).astype(np.float32)
    x = rng.uniform(0.3, 0.7, size=(h, w, 3)).astype(np.float32)
    lam = 0.05
    op = deblur.BlurConsistency(y, kernel, lam)
    ours = op.project(x)
    p = max(kernel.shape) + 8
    rows = (p, next_fast_len(h + 2 * p, real=True) - h - p)
    cols = (p, next_fast_len(w + 2 * p, real=True) - w - p)
    for c in range(3):
        yp = np.pad(y[..., c], (rows, cols), mode="symmetric").astype(np.float64)
        xp = np.pad(x[..., c], (rows, cols), mode="symmetric").astype(np.float64)
        shape = yp.shape
        n = yp.size

        def forward(v, shape=shape):
            z = v.reshape(shape)
            blur = ndimage.convolve(z, kernel.astype(np.float64), mode="wrap")
            return np.concatenate([blur.ravel(), np.sqrt(lam) * v])

        def adjoint(u, shape=shape, n=n):
            top = u[:n].reshape(shape)
            back = ndimage.correlate(top, kernel.astype(np.float64), mode="wrap")
            return back.ravel() + np.sqrt(lam) * u[n:]

        a = LinearOperator(
            (2 * n, n), matvec=forward, rmatvec=adjoint, dtype=np.float64
        )
        rhs = np.concatenate([yp.ravel(), np.sqrt(lam) * xp.ravel()])
        z = lsqr(a, rhs, atol=1e-12, btol=1e-12, iter_lim=5000)[0].reshape(shape)
        expected = np.clip(z[p : p + h, p : p + w], 0, 1)
        np.testing.assert_allclose(ours[..., c], expected, atol=2e-4)


def test_projection_keeps_batches_and_refuses_wrong_sizes():
    rng = np.random.default_rng(2)
    y = rng.uniform(size=(20, 24, 3)).astype(np.float32)
    op = deblur.BlurConsistency(y, disk_kernel(2.0), 0.01)
    xs = rng.uniform(size=(3, 20, 24, 3)).astype(np.float32)
    both = op.project(xs)
    assert both.shape == xs.shape and both.dtype == np.float32
    np.testing.assert_allclose(both[1], op.project(xs[1]), atol=1e-6)
    with pytest.raises(
        ValueError, match=r"images of \(20, 20\) px, expected \(20, 24\)"
    ):
        op.project(xs[:, :, :20])
    with pytest.raises(ValueError, match="must be positive"):
        deblur.BlurConsistency(y, disk_kernel(2.0), 0.0)


def test_projection_with_the_true_kernel_sharpens_the_blurred_photo(photos):
    photo = photos["camera"]
    y = blurred(photo, line_kernel(15.0, 45.0))
    psf = deblur.fit_psf(y)
    z = deblur.BlurConsistency.of(y, psf).project(y)

    def psnr(a):
        return -10 * np.log10(np.mean((a - photo) ** 2))

    # Even from the blurred image itself as the "restoration", the fitted PSF's data term
    # gives back detail (a regularised deconvolution).
    assert psnr(z) > psnr(y) + 1.0


def test_small_inputs_are_not_analysed():
    assert deblur.estimate_consistency(np.zeros((100, 300, 3), np.float32)) == (
        None,
        None,
    )


def test_restorer_applies_the_consistency_only_to_blurred_inputs(ldm, photos):
    photo = photos["coins"]
    y = blurred(photo, line_kernel(15.0, 45.0))
    on = Restorer(ldm, settings=RestoreSettings(steps=2))
    off = Restorer(ldm, settings=RestoreSettings(steps=2, deblur=False))
    prepared = on.prepare(y)
    assert prepared.psf.family == "line" and prepared.psf.confident
    assert isinstance(prepared.consistency, deblur.BlurConsistency)
    assert off.prepare(y).consistency is None and off.prepare(y).psf is None
    weights = {"MD": 1.0}
    with_deblur, info = on.timed_restore(y, weights)
    without = off.restore(y, weights)
    np.testing.assert_allclose(
        with_deblur, prepared.consistency.project(without), atol=1e-5
    )
    assert info["deblur"]["used"] and info["deblur"]["family"] == "line"
    # A sharp photo: fitted, not used, the same output.
    sharp_prepared = on.prepare(photo)
    assert sharp_prepared.consistency is None and not sharp_prepared.psf.confident
    np.testing.assert_array_equal(
        on.restore(photo, weights), off.restore(photo, weights)
    )


@pytest.mark.parametrize("sigma", [1.5, 2.5])
def test_fit_finds_a_gaussian_blur(photos, sigma):
    from unires_jax.data.degradations.kernels import gaussian_kernel

    size = 2 * int(np.ceil(3 * sigma)) + 1
    for name, photo in photos.items():
        psf = deblur.fit_psf(blurred(photo, gaussian_kernel(size, sigma, sigma)))
        assert psf.family == "gauss", (name, psf)
        # The noise floor of 8-bit rounding flattens the tail: the width comes out short.
        assert sigma - 0.7 <= psf.size <= sigma + 0.1, (name, psf)
        assert psf.confident, (name, psf)
        kernel = psf.kernel()
        assert kernel.shape[0] % 2 == 1 and abs(kernel.sum() - 1) < 1e-5


def test_the_gaussian_response_is_its_kernels_spectrum():
    from unires_jax.data.degradations.kernels import gaussian_kernel

    window = 64
    f = np.fft.fftfreq(window)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    for sigma in (0.8, 2.0):
        measured = _response_of(
            gaussian_kernel(2 * int(np.ceil(4 * sigma)) + 1, sigma, sigma), window
        )
        # Below the band where the sampled kernel's spectrum aliases.
        band = np.hypot(fx, fy) < 0.4
        np.testing.assert_allclose(
            deblur.gauss_response(sigma, fx, fy)[band], measured[band], atol=3e-3
        )

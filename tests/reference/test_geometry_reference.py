"""Geometry losses against their references, in value and gradient (torch float64 autograd).

References: MONAI 1.6 ``LocalNormalizedCrossCorrelationLoss``,
``GlobalMutualInformationLoss`` and ``BendingEnergyLoss`` (imported; inputs
channels-first there), kornia ``losses.inverse_depth_smoothness_loss`` and
``metrics.aepe``, and, rewritten here in torch because their packages do not
import in this environment (in ``bench/families_torch.py``, shared with the
``families`` benchmark suite): mmseg's ``silog_loss``
(open-mmlab/mmsegmentation, ``mmseg/models/losses/silog_loss.py``) and MiDaS's
scale-and-shift-invariant loss (Ranftl et al. 2020, eqs. 1-5 and 11; the
authors' training-loss code linked from isl-org/MiDaS: ``compute_scale_and_shift``,
``mse_loss``, ``gradient_loss``, ``ScaleAndShiftInvariantLoss`` with the
image-based reduction).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss
from bench.families_torch import midas_ssi as _midas_ssi
from bench.families_torch import mmseg_silog as _mmseg_silog

monai_losses = pytest.importorskip("monai.losses")
kornia = pytest.importorskip("kornia")


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _grad_close(actual, expected, rel=1e-5):
    # Gradient entries are sums over windows or images, accumulated in float32 in another
    # order than the float64 reference: compare relative to the largest entry.
    expected = np.asarray(expected, np.float64)
    _close(actual, expected, rtol=1e-4, atol=rel * float(np.max(np.abs(expected))))


def _torch_value_and_grad(fn, *arrays, to_torch=lambda a: a):
    tensors = [torch.tensor(to_torch(np.asarray(a, np.float64)), requires_grad=i == 0)
               for i, a in enumerate(arrays)]
    value = fn(*tensors)
    value.backward()
    return value.detach().numpy(), tensors[0].grad.numpy()


def _jax_value_and_grad(fn, *arrays):
    # Jitted: op-by-op dispatch of the filters' many small operations compiles each one.
    arrays = [jnp.asarray(a) for a in arrays]
    return jax.jit(jax.value_and_grad(lambda x, *rest: fn(x, *rest)))(*arrays)


def _first(a):  # channels-last -> channels-first
    return np.moveaxis(a, -1, 1)


# --------------------------------------------------------------------------------------
# Depth.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,lam,eps", [((3, 6, 7, 1), 0.85, 1e-6), ((2, 5, 4), 0.5, 1e-4)])
def test_silog_against_mmseg(shape, lam, eps):
    rng = np.random.default_rng(0)
    p = rng.uniform(0.2, 4.0, shape).astype(np.float32)
    p.flat[::11] = 1e-7  # clamped at eps, as in mmseg
    t = (p * np.exp(0.4 * rng.normal(size=shape))).astype(np.float32)
    t[rng.random(shape) < 0.25] = 0.0
    value, grad = _jax_value_and_grad(
        lambda a, b: jaxloss.silog_loss(a, b, variance_focus=lam, eps=eps), p, t)
    ref_value, ref_grad = _torch_value_and_grad(lambda a, b: _mmseg_silog(a, b, lam, eps), p, t)
    _close(value, ref_value)
    _grad_close(grad, ref_grad)


@pytest.mark.parametrize("shape,alpha,scales,masked",
                         [((3, 16, 12), 0.5, 4, True), ((2, 9, 11), 2.0, 2, False)])
def test_scale_shift_invariant_against_midas(shape, alpha, scales, masked):
    rng = np.random.default_rng(1)
    t = rng.uniform(0.5, 3.0, shape).astype(np.float32)
    p = (2.0 * t + 1.0 + 0.3 * rng.normal(size=shape)).astype(np.float32)
    mask = rng.random(shape) > (0.3 if masked else -1.0)

    def ours(a, b):
        return jaxloss.scale_shift_invariant_loss(
            a[..., None], b[..., None], gradient_weight=alpha, scales=scales,
            mask=jnp.asarray(mask[..., None]), reduction="none")

    value, grad = _jax_value_and_grad(
        lambda a, b: jnp.sum(ours(a, b) * jnp.arange(1.0, 1.0 + len(a))), p, t)
    weights = torch.arange(1.0, 1.0 + shape[0], dtype=torch.float64)
    ref_value, ref_grad = _torch_value_and_grad(
        lambda a, b: torch.sum(_midas_ssi(a, b, torch.tensor(mask).double(), alpha, scales)
                               * weights), p, t)
    _close(value, ref_value, rtol=2e-5)
    _grad_close(grad, ref_grad)


@pytest.mark.parametrize("shape", [(2, 5, 7), (3, 8, 6)])
def test_edge_aware_smoothness_against_kornia(shape):
    rng = np.random.default_rng(2)
    d = rng.random(shape + (1,)).astype(np.float32)
    image = rng.random(shape + (3,)).astype(np.float32)
    value, grad = _jax_value_and_grad(jaxloss.edge_aware_smoothness_loss, d, image)
    ref_value, ref_grad = _torch_value_and_grad(
        kornia.losses.inverse_depth_smoothness_loss, d, image, to_torch=_first)
    _close(value, ref_value)
    _grad_close(grad, np.moveaxis(ref_grad, 1, -1))


# --------------------------------------------------------------------------------------
# Flow.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,reduction", [((2, 5, 6, 2), "mean"), ((3, 4, 2), "sum")])
def test_endpoint_error_against_kornia(shape, reduction):
    rng = np.random.default_rng(3)
    p = rng.normal(size=shape).astype(np.float32)
    t = rng.normal(size=shape).astype(np.float32)
    value, grad = _jax_value_and_grad(
        lambda a, b: jaxloss.endpoint_error_loss(a, b, reduction=reduction), p, t)
    ref_value, ref_grad = _torch_value_and_grad(
        lambda a, b: kornia.metrics.aepe(a, b, reduction=reduction), p, t)
    _close(value, ref_value)
    _grad_close(grad, ref_grad)


# --------------------------------------------------------------------------------------
# Registration.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,kernel_size,kernel_type", [
    ((2, 11, 12, 2), 9, "rectangular"),
    ((2, 7, 8, 6, 1), 5, "triangular"),
    ((2, 15, 2), 5, "gaussian"),  # 1-D
])
def test_lncc_against_monai(shape, kernel_size, kernel_type):
    rng = np.random.default_rng(4)
    t = rng.random(shape).astype(np.float32)
    p = np.clip(t + 0.3 * rng.normal(size=shape), 0, 1).astype(np.float32)
    monai = monai_losses.LocalNormalizedCrossCorrelationLoss(
        spatial_dims=len(shape) - 2, kernel_size=kernel_size, kernel_type=kernel_type)
    value, grad = _jax_value_and_grad(
        lambda a, b: jaxloss.lncc_loss(a, b, kernel_size=kernel_size, kernel_type=kernel_type),
        p, t)
    ref_value, ref_grad = _torch_value_and_grad(monai, p, t, to_torch=_first)
    _close(value, ref_value, rtol=2e-5)
    _grad_close(grad, np.moveaxis(ref_grad, 1, -1), rel=1e-4)


@pytest.mark.parametrize("shape,num_bins,sigma_ratio", [((2, 9, 10, 1), 23, 0.5),
                                                         ((2, 5, 6, 4, 2), 10, 1.0)])
def test_mutual_information_against_monai(shape, num_bins, sigma_ratio):
    rng = np.random.default_rng(5)
    t = rng.random(shape).astype(np.float32)
    p = np.clip(0.7 * t + 0.2 * rng.random(shape), 0.0, 1.0).astype(np.float32)
    monai = monai_losses.GlobalMutualInformationLoss(num_bins=num_bins, sigma_ratio=sigma_ratio)
    value, grad = _jax_value_and_grad(
        lambda a, b: jaxloss.mutual_information_loss(a, b, num_bins=num_bins,
                                                     sigma_ratio=sigma_ratio), p, t)
    # MONAI flattens each image channels-first; the sample order does not matter.
    ref_value, ref_grad = _torch_value_and_grad(monai, p, t, to_torch=_first)
    _close(value, ref_value, rtol=2e-5)
    _grad_close(grad, np.moveaxis(ref_grad, 1, -1), rel=1e-4)


def test_mutual_information_at_the_bounds_against_monai():
    # Min-max normalised volumes hold exact 0s and 1s: MONAI's clamp passes their whole
    # gradient (a tie of jnp.clip would pass half); values outside [0, 1] get none.
    rng = np.random.default_rng(7)
    t = rng.random((2, 6, 7, 1)).astype(np.float32)
    p = (0.8 * t + 0.2 * rng.random(t.shape)).astype(np.float32)
    p = (p - p.min()) / (p.max() - p.min())
    p[0, :2, :2] = np.array([[0.0, 1.0], [-0.1, 1.1]], np.float32)[..., None]
    t[1, 0, :2] = np.array([0.0, 1.0], np.float32)[:, None]
    monai = monai_losses.GlobalMutualInformationLoss(num_bins=12)
    value, grad = _jax_value_and_grad(
        lambda a, b: jaxloss.mutual_information_loss(a, b, num_bins=12), p, t)
    ref_value, ref_grad = _torch_value_and_grad(monai, p, t, to_torch=_first)
    _close(value, ref_value, rtol=2e-5)
    _grad_close(grad, np.moveaxis(ref_grad, 1, -1), rel=1e-4)


@pytest.mark.filterwarnings("ignore:Using a non-tuple sequence")  # inside MONAI 1.6
@pytest.mark.parametrize("shape,normalize", [((2, 5, 6, 2), False), ((2, 4, 5, 6, 3), True),
                                             ((3, 7, 1), False)])
def test_bending_energy_against_monai(shape, normalize):
    rng = np.random.default_rng(6)
    u = rng.normal(size=shape).astype(np.float32)
    monai = monai_losses.BendingEnergyLoss(normalize=normalize, reduction="sum")
    value, grad = _jax_value_and_grad(
        lambda a: jaxloss.bending_energy_loss(a, normalize=normalize, reduction="sum"), u)
    ref_value, ref_grad = _torch_value_and_grad(monai, u, to_torch=_first)
    _close(value, ref_value, rtol=2e-5)
    _grad_close(grad, np.moveaxis(ref_grad, 1, -1))
    # "none" is MONAI's energy map, channels-last.
    ours = jaxloss.bending_energy_loss(u, normalize=normalize, reduction="none")
    theirs = monai_losses.BendingEnergyLoss(normalize=normalize, reduction="none")(
        torch.tensor(_first(u).astype(np.float64)))
    _close(ours, np.moveaxis(theirs.numpy(), 1, -1), rtol=2e-5, atol=1e-5)


# --------------------------------------------------------------------------------------
# SSIM and MS-SSIM on volumes (the image family's losses, given (N, D, H, W, C)).
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,window_size,sigma", [((2, 9, 10, 11, 2), 5, 1.5)])
def test_ssim_on_volumes_against_monai(shape, window_size, sigma):
    rng = np.random.default_rng(7)
    t = rng.random(shape).astype(np.float32)
    p = np.clip(t + 0.2 * rng.normal(size=shape), 0.0, 1.0).astype(np.float32)
    monai = monai_losses.SSIMLoss(spatial_dims=3, data_range=1.0, win_size=window_size,
                                  kernel_sigma=sigma)
    value, grad = _jax_value_and_grad(
        lambda a, b: jaxloss.ssim_loss(a, b, window_size=window_size, sigma=sigma), p, t)
    # MONAI computes in float32 internally (convert_data_type to torch.float).
    ref_value, ref_grad = _torch_value_and_grad(monai, p, t, to_torch=_first)
    _close(value, ref_value, rtol=1e-4, atol=1e-6)
    _grad_close(grad, np.moveaxis(ref_grad, 1, -1), rel=1e-4)


def test_ms_ssim_on_volumes_against_monai():
    from monai.metrics.regression import compute_ms_ssim

    rng = np.random.default_rng(8)
    shape = (2, 16, 20, 18, 1)
    t = rng.random(shape).astype(np.float32)
    p = np.clip(t + 0.1 * rng.normal(size=shape), 0.0, 1.0).astype(np.float32)
    weights = (0.5, 0.5)
    value, grad = _jax_value_and_grad(
        lambda a, b: jaxloss.ms_ssim_loss(a, b, window_size=5, power_factors=weights), p, t)
    ref_value, ref_grad = _torch_value_and_grad(
        lambda a, b: torch.mean(1.0 - compute_ms_ssim(
            a, b, spatial_dims=3, data_range=1.0, kernel_type="gaussian", kernel_size=(5,) * 3,
            kernel_sigma=(1.5,) * 3, k1=0.01, k2=0.03, weights=weights)), p, t, to_torch=_first)
    _close(value, ref_value, rtol=1e-4, atol=1e-6)
    _grad_close(grad, np.moveaxis(ref_grad, 1, -1), rel=1e-4)

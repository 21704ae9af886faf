"""Image-quality losses against their reference implementations, in value and gradient.

References: dm-pix ``ssim`` (``padding="valid"``, JAX, differentiated with
``jax.grad``), kornia ``metrics.ssim``/``losses.psnr_loss``/
``losses.total_variation`` (torch autograd), pytorch_msssim ``ms_ssim``
(``padding="valid"``), and for MS-SSIM with ``padding="same"`` the same
algorithm assembled in torch from kornia's reflect-padded separable filter
and ``F.avg_pool2d``. Images are NHWC here, NCHW in torch (transposed).
"""

from __future__ import annotations

import warnings

import dm_pix
import jax
import jax.numpy as jnp
import kornia
import numpy as np
import pytest
import pytorch_msssim
import torch
import torch.nn.functional as F

import jaxloss


def _images(rng, shape, noise=0.2):
    x = rng.random(shape).astype(np.float32)
    y = np.clip(x + noise * rng.normal(size=shape), 0.0, 1.0).astype(np.float32)
    return x, y


def _nchw(a, grad=False):
    t = torch.from_numpy(np.ascontiguousarray(np.asarray(a).transpose(0, 3, 1, 2)))
    return t.requires_grad_(grad)


def _nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _grad_close(actual, expected, rel=1e-5):
    # A gradient entry sums window_size^2 products per moment, in another order than the
    # reference's convolution: float32 rounding of that sum, relative to the largest entry.
    expected = np.asarray(expected, np.float64)
    _close(actual, expected, rtol=1e-4, atol=rel * float(np.max(np.abs(expected))))


def _dm_pix_ssim(a, b, **kwargs):
    # dm-pix mixes int and float arrays, which the suite's strict promotion refuses.
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        return dm_pix.ssim(a, b, **kwargs)


def _weights(n):
    # distinct per-image weights: a per-image mix-up in value or gradient cannot cancel
    return np.arange(1.0, n + 1.0, dtype=np.float32)


# ----------------------------------------------------------------------------- SSIM


@pytest.mark.parametrize("shape, kwargs", [
    ((2, 16, 19, 3), {"window_size": 7}),
    ((1, 14, 11, 1), {"window_size": 11, "sigma": 2.0, "k1": 0.02, "k2": 0.05, "max_val": 1.3}),
])
def test_ssim_valid_matches_dm_pix(shape, kwargs):
    x, y = _images(np.random.default_rng(0), shape)
    w = _weights(shape[0])
    names = {"window_size": "filter_size", "sigma": "filter_sigma"}
    ref_kwargs = {names.get(k, k): v for k, v in kwargs.items()}

    def ours(a, b):
        return jnp.sum(w * jaxloss.ssim_loss(a, b, **kwargs, reduction="none"))

    def reference(a, b):
        return jnp.sum(w * (1.0 - _dm_pix_ssim(a, b, **ref_kwargs)))

    value, grads = jax.jit(jax.value_and_grad(ours, argnums=(0, 1)))(x, y)
    ref_value, ref_grads = jax.jit(jax.value_and_grad(reference, argnums=(0, 1)))(x, y)
    _close(value, ref_value)
    for g, r in zip(grads, ref_grads, strict=True):
        _grad_close(g, r)


def test_ssim_traced_constants_match_dm_pix():
    """max_val, k1 and k2 are traced and differentiable (the analytic c1/c2 tangents)."""
    x, y = _images(np.random.default_rng(1), (2, 12, 12, 2))

    def ours(max_val, k1, k2):
        return jaxloss.ssim_loss(x, y, window_size=5, max_val=max_val, k1=k1, k2=k2)

    def reference(max_val, k1, k2):
        return jnp.mean(1.0 - _dm_pix_ssim(x, y, filter_size=5, max_val=max_val, k1=k1, k2=k2))

    args = (jnp.float32(0.8), jnp.float32(0.02), jnp.float32(0.1))
    value, grads = jax.jit(jax.value_and_grad(ours, argnums=(0, 1, 2)))(*args)
    ref_value, ref_grads = jax.jit(jax.value_and_grad(reference, argnums=(0, 1, 2)))(*args)
    _close(value, ref_value)
    _close(grads, ref_grads, rtol=1e-4)


@pytest.mark.parametrize("shape, window", [((2, 13, 12, 2), 11), ((1, 9, 10, 3), 5)])
def test_ssim_same_matches_kornia(shape, window):
    x, y = _images(np.random.default_rng(2), shape)
    w = _weights(shape[0])
    tx, ty = _nchw(x, grad=True), _nchw(y, grad=True)
    # eps=0.0: kornia otherwise adds 1e-12 to the denominator (see kornia.metrics.ssim).
    ssim_map = kornia.metrics.ssim(tx, ty, window, max_val=1.0, eps=0.0, padding="same")
    ref = torch.sum(torch.from_numpy(w) * (1.0 - ssim_map.mean((1, 2, 3))))
    ref.backward()

    def ours(a, b):
        return jnp.sum(w * jaxloss.ssim_loss(a, b, window_size=window, padding="same",
                                             reduction="none"))

    value, (gx, gy) = jax.jit(jax.value_and_grad(ours, argnums=(0, 1)))(x, y)
    _close(value, ref.item())
    _grad_close(gx, _nhwc(tx.grad))
    _grad_close(gy, _nhwc(ty.grad))


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_relation_to_kornia_ssim_loss(padding):
    """kornia's loss is the pixel mean of clamp((1 - SSIM) / 2, 0, 1): half of ours here."""
    x, y = _images(np.random.default_rng(3), (3, 12, 14, 2))
    theirs = kornia.losses.ssim_loss(_nchw(x), _nchw(y), 5, eps=0.0, padding=padding)
    ours = jaxloss.ssim_loss(x, y, window_size=5, padding=padding)
    _close(ours, 2.0 * theirs.item())


# ----------------------------------------------------------------------------- MS-SSIM


def _torch_ms_ssim(x, y, window, powers, *, padding):
    """1 - MS-SSIM per image in torch: pytorch_msssim for "valid"; for "same" its algorithm
    with kornia's reflect-padded separable Gaussian filter (kornia.filters.filter2d_separable)."""
    if padding == "valid":
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # pytorch_msssim must not skip a filter axis
            return 1.0 - pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False,
                                                win_size=window, weights=list(powers))
    kernel = kornia.filters.get_gaussian_kernel1d(window, 1.5)
    c1, c2 = 0.01**2, 0.03**2
    factors = []
    for level in range(len(powers)):
        def blur(z):
            return kornia.filters.filter2d_separable(z, kernel, kernel, border_type="reflect")

        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        if level < len(powers) - 1:
            factors.append(torch.relu(cs.flatten(2).mean(-1)))
            pad = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
        else:
            ssim = (2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs
            factors.append(torch.relu(ssim.flatten(2).mean(-1)))
    stacked = torch.stack(factors)  # (levels, N, C)
    weights = torch.tensor(powers, dtype=torch.float32).view(-1, 1, 1)
    return 1.0 - torch.prod(stacked**weights, dim=0).mean(1)


@pytest.mark.parametrize("shape, window, powers, padding", [
    ((2, 37, 42, 2), 3, (0.2, 0.3, 0.5), "valid"),  # odd sides: pytorch_msssim's pooling pad
    ((2, 27, 30, 2), 5, (0.4, 0.6), "same"),
])
def test_ms_ssim_matches_reference(shape, window, powers, padding):
    x, y = _images(np.random.default_rng(4), shape)
    w = _weights(shape[0])
    tx, ty = _nchw(x, grad=True), _nchw(y, grad=True)
    ref = torch.sum(torch.from_numpy(w) * _torch_ms_ssim(tx, ty, window, powers, padding=padding))
    ref.backward()

    def ours(a, b):
        return jnp.sum(w * jaxloss.ms_ssim_loss(a, b, window_size=window, power_factors=powers,
                                                padding=padding, reduction="none"))

    value, (gx, gy) = jax.jit(jax.value_and_grad(ours, argnums=(0, 1)))(x, y)
    _close(value, ref.item())
    # the product of fractional powers of per-scale means amplifies float32 rounding of the
    # means (a relative 1e-7 error in a mean near 0.1 becomes ~1e-6 in its power's slope)
    _grad_close(gx, _nhwc(tx.grad), rel=2e-5)
    _grad_close(gy, _nhwc(ty.grad), rel=2e-5)


def test_ms_ssim_default_five_scales_matches_pytorch_msssim():
    x, y = _images(np.random.default_rng(5), (1, 176, 176, 1), noise=0.1)
    # Reference in float64: the loss is 1 - MS-SSIM ~ 0.05, and the float32 moments
    # (E[x^2] - mu^2 cancels, in every implementation) are off by ~5e-6 absolute; ours is
    # within 1e-5 of the float64 value (pytorch_msssim's own float32 run is too).
    tx = _nchw(x.astype(np.float64), grad=True)
    ref = _torch_ms_ssim(tx, _nchw(y.astype(np.float64)), 11,
                         (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), padding="valid").sum()
    ref.backward()
    value, grad = jax.jit(jax.value_and_grad(lambda a: jaxloss.ms_ssim_loss(a, y)))(x)
    _close(value, ref.item(), rtol=0.0, atol=1e-5)
    # The same cancellation at the coarse scales (smooth images: small variances) shifts the
    # gradient of each 16x16 block by up to ~1e-4 of the largest entry.
    _grad_close(grad, _nhwc(tx.grad), rel=2e-4)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_ms_ssim_one_scale_is_ssim(padding):
    x, y = _images(np.random.default_rng(6), (2, 12, 11, 3))
    ours = jaxloss.ms_ssim_loss(x, y, window_size=5, power_factors=(1.0,), padding=padding,
                                reduction="none")
    if padding == "valid":
        reference = 1.0 - np.asarray(jax.jit(lambda a, b: _dm_pix_ssim(a, b, filter_size=5))(x, y))
    else:
        reference = 1.0 - kornia.metrics.ssim(_nchw(x), _nchw(y), 5, eps=0.0,
                                              padding="same").mean((1, 2, 3)).numpy()
    _close(ours, reference)
    _close(ours, jaxloss.ssim_loss(x, y, window_size=5, padding=padding, reduction="none"))


# ----------------------------------------------------------------------------- PSNR


def test_psnr_matches_kornia_per_image():
    x, y = _images(np.random.default_rng(7), (3, 6, 7, 2))
    tx = _nchw(x, grad=True)
    # kornia pools the MSE over its batch: one image at a time gives the per-image value.
    per_image = torch.stack([kornia.losses.psnr_loss(tx[i:i + 1], _nchw(y[i:i + 1]), 2.0)
                             for i in range(3)])
    per_image.mean().backward()
    value, grad = jax.jit(jax.value_and_grad(lambda a: jaxloss.psnr_loss(a, y, max_val=2.0)))(x)
    _close(jaxloss.psnr_loss(x, y, max_val=2.0, reduction="none"), per_image.detach().numpy())
    _close(value, per_image.mean().item())
    _grad_close(grad, _nhwc(tx.grad))


# ----------------------------------------------------------------------------- TV


def test_total_variation_matches_kornia():
    x = np.random.default_rng(8).normal(size=(2, 6, 7, 3)).astype(np.float32)
    tx = _nchw(x, grad=True)
    ref = kornia.losses.total_variation(tx, reduction="sum").sum(-1)  # (N, C) -> (N,)
    (ref * torch.tensor([1.0, 3.0])).sum().backward()
    value, grad = jax.jit(jax.value_and_grad(
        lambda a: jnp.sum(jnp.array([1.0, 3.0]) * jaxloss.total_variation_loss(
            a, reduction="none"))))(x)
    _close(jaxloss.total_variation_loss(x, reduction="none"), ref.detach().numpy())
    _close(value, float((ref.detach() * torch.tensor([1.0, 3.0])).sum()))
    _grad_close(grad, _nhwc(tx.grad))


def test_total_variation_isotropic_matches_torch_formula():
    """No library has this form: the formula written in torch (float64 autograd)."""
    x = np.random.default_rng(9).normal(size=(2, 5, 6, 2)).astype(np.float32)
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    dy = F.pad(tx[:, 1:] - tx[:, :-1], (0, 0, 0, 0, 0, 1))  # zero past the last row
    dx = F.pad(tx[:, :, 1:] - tx[:, :, :-1], (0, 0, 0, 1))  # zero past the last column
    ref = torch.sqrt(dx**2 + dy**2).sum((1, 2, 3))
    ref.sum().backward()
    value, grad = jax.jit(jax.value_and_grad(
        lambda a: jaxloss.total_variation_loss(a, isotropic=True, reduction="sum")))(x)
    _close(jaxloss.total_variation_loss(x, isotropic=True, reduction="none"),
           ref.detach().numpy())
    _close(value, ref.sum().item())
    _grad_close(grad, tx.grad.numpy())

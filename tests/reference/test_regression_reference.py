"""jaxloss.regression against its reference implementations, value and gradient.

References: torch.nn.functional 2.13 (mse_loss, l1_loss, huber_loss,
smooth_l1_loss, gaussian_nll_loss), optax (log_cosh, huber_loss, l2_loss,
squared_error) and kornia (cauchy_loss, geman_mcclure_loss, welsch_loss,
charbonnier_loss). The expected values and gradients are computed by those
libraries in this process on the same random float32 inputs. All losses here
are elementwise, so channels-first (torch, kornia) needs no transposition;
kornia is fed the arrays reshaped to 4-D ``(N, C, H, W)`` images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as tf
from kornia import losses as kl

import jaxloss

RTOL, ATOL = 1e-5, 1e-6
SHAPES = [(7,), (5, 6), (2, 3, 4, 5)]
REDUCTIONS = ["mean", "sum", "none"]


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _inputs(shape, seed=0, spread=2.0):
    rng = np.random.default_rng(seed)
    p = (spread * rng.normal(size=shape)).astype(np.float32)
    t = (spread * rng.normal(size=shape)).astype(np.float32)
    return p, t


def _torch_value_and_grads(fn, *arrays, grad_of=(0,)):
    """Value of ``fn(*tensors)`` and the gradients of its sum w.r.t. ``arrays[grad_of]``."""
    tensors = [torch.tensor(a, requires_grad=i in grad_of) for i, a in enumerate(arrays)]
    out = fn(*tensors)
    out.sum().backward()
    return out.detach().numpy(), [tensors[i].grad.numpy() for i in grad_of]


def _jax_value_and_grads(fn, *arrays, grad_of=(0,)):
    arrays = tuple(jnp.asarray(a) for a in arrays)
    value = fn(*arrays)
    grads = jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=grad_of)(*arrays)
    return value, grads


def _masked_mean_torch(fn_none, p, t, mask, weights):
    """torch's reduction='none', then the weighted mean over the selected entries."""
    def reduced(pt, tt):
        values = fn_none(pt, tt)
        w = torch.tensor(weights) * torch.tensor(mask, dtype=torch.float32)
        return (values * w).sum() / w.sum()

    return _torch_value_and_grads(reduced, p, t)


# --------------------------------------------------------------------------------------
# torch.nn.functional: mse, l1, huber, smooth_l1.
# --------------------------------------------------------------------------------------

TORCH_PAIRS = [
    ("mse", jaxloss.mse_loss, {}, tf.mse_loss, {}),
    ("l1", jaxloss.mae_loss, {}, tf.l1_loss, {}),
    ("huber_1", jaxloss.huber_loss, {}, tf.huber_loss, {}),
    ("huber_0.3", jaxloss.huber_loss, {"delta": 0.3}, tf.huber_loss, {"delta": 0.3}),
    ("huber_2.5", jaxloss.huber_loss, {"delta": 2.5}, tf.huber_loss, {"delta": 2.5}),
    ("smooth_l1_1", jaxloss.smooth_l1_loss, {}, tf.smooth_l1_loss, {}),
    ("smooth_l1_0", jaxloss.smooth_l1_loss, {"beta": 0.0}, tf.smooth_l1_loss, {"beta": 0.0}),
    ("smooth_l1_0.4", jaxloss.smooth_l1_loss, {"beta": 0.4}, tf.smooth_l1_loss, {"beta": 0.4}),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("label, fn, kw, ref, ref_kw", TORCH_PAIRS,
                         ids=[c[0] for c in TORCH_PAIRS])
def test_against_torch(label, fn, kw, ref, ref_kw, shape, reduction):
    p, t = _inputs(shape, seed=len(shape))
    expected, (g_expected,) = _torch_value_and_grads(
        lambda a, b: ref(a, b, reduction=reduction, **ref_kw), p, t)
    value, (grad,) = _jax_value_and_grads(
        lambda a, b: fn(a, b, reduction=reduction, **kw), p, t)
    _close(value, expected)
    _close(grad, g_expected)


@pytest.mark.parametrize("label, fn, kw, ref, ref_kw", TORCH_PAIRS,
                         ids=[c[0] for c in TORCH_PAIRS])
def test_against_torch_huge_residuals(label, fn, kw, ref, ref_kw):
    p = np.array([1e4, -1e4, 3e3, 0.5, -0.1, 0.0], np.float32)
    t = np.zeros_like(p)
    expected, (g_expected,) = _torch_value_and_grads(
        lambda a, b: ref(a, b, reduction="none", **ref_kw), p, t)
    value, (grad,) = _jax_value_and_grads(lambda a, b: fn(a, b, reduction="none", **kw), p, t)
    _close(value, expected)
    _close(grad, g_expected)


@pytest.mark.parametrize("shape", [(8,), (6, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("label, fn, kw, ref, ref_kw", TORCH_PAIRS,
                         ids=[c[0] for c in TORCH_PAIRS])
def test_where_and_weights_against_torch(label, fn, kw, ref, ref_kw, shape):
    p, t = _inputs(shape, seed=11)
    rng = np.random.default_rng(12)
    mask = rng.uniform(size=shape) < 0.6
    mask.flat[0] = True
    weights = rng.uniform(0.1, 3.0, size=shape).astype(np.float32)
    expected, (g_expected,) = _masked_mean_torch(
        lambda a, b: ref(a, b, reduction="none", **ref_kw), p, t, mask, weights)
    value, (grad,) = _jax_value_and_grads(
        lambda a, b: fn(a, b, where=jnp.asarray(mask), weights=jnp.asarray(weights), **kw), p, t)
    _close(value, expected)
    _close(grad, g_expected)


# --------------------------------------------------------------------------------------
# torch.nn.functional.gaussian_nll_loss.
# --------------------------------------------------------------------------------------


def _variances(shape, seed, homoscedastic):
    rng = np.random.default_rng(seed)
    var_shape = shape[:-1] + (1,) if homoscedastic else shape
    var = rng.uniform(0.05, 3.0, size=var_shape).astype(np.float32)
    # Every third variance at or below eps = 1e-6 (torch clamps them, passing the gradient).
    flat = var.reshape(-1)  # a view
    below = np.arange(0, flat.size, 3)
    flat[below] = np.array([1e-8, 0.0, 1e-6], np.float32)[np.arange(below.size) % 3]
    return var


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("homoscedastic", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_gaussian_nll_against_torch(shape, homoscedastic, full, reduction):
    m, t = _inputs(shape, seed=3)
    var = _variances(shape, 5, homoscedastic)
    expected, g_expected = _torch_value_and_grads(
        lambda a, b, v: tf.gaussian_nll_loss(a, b, v, full=full, reduction=reduction),
        m, t, var, grad_of=(0, 2))
    value, grads = _jax_value_and_grads(
        lambda a, b, v: jaxloss.gaussian_nll_loss(a, b, v, full=full, reduction=reduction),
        m, t, var, grad_of=(0, 2))
    # Values reach ~1e7 and d/dvar ~1e13 at var <= eps: the comparison is relative.
    _close(value, expected)
    _close(grads[0], g_expected[0])
    _close(grads[1], g_expected[1])


@pytest.mark.parametrize("eps", [1e-6, 1e-2, 0.5])
def test_gaussian_nll_eps_against_torch(eps):
    m, t = _inputs((6, 4), seed=8)
    var = np.random.default_rng(9).uniform(0.0, 1.0, size=(6, 4)).astype(np.float32)
    expected, g_expected = _torch_value_and_grads(
        lambda a, b, v: tf.gaussian_nll_loss(a, b, v, eps=eps), m, t, var, grad_of=(0, 2))
    value, grads = _jax_value_and_grads(
        lambda a, b, v: jaxloss.gaussian_nll_loss(a, b, v, eps=eps), m, t, var, grad_of=(0, 2))
    _close(value, expected)
    _close(grads[0], g_expected[0])
    _close(grads[1], g_expected[1])


def test_gaussian_nll_where_and_weights_against_torch():
    m, t = _inputs((6, 5), seed=21)
    var = np.random.default_rng(22).uniform(0.1, 2.0, size=(6, 1)).astype(np.float32)
    rng = np.random.default_rng(23)
    mask = rng.uniform(size=(6, 5)) < 0.5
    mask[0, 0] = True
    weights = rng.uniform(0.5, 2.0, size=(6, 5)).astype(np.float32)

    def torch_reduced(a, b, v):
        values = tf.gaussian_nll_loss(a, b, v, reduction="none")
        w = torch.tensor(weights) * torch.tensor(mask, dtype=torch.float32)
        return (values * w).sum() / w.sum()

    expected, g_expected = _torch_value_and_grads(torch_reduced, m, t, var, grad_of=(0, 2))
    value, grads = _jax_value_and_grads(
        lambda a, b, v: jaxloss.gaussian_nll_loss(a, b, v, where=jnp.asarray(mask),
                                                  weights=jnp.asarray(weights)),
        m, t, var, grad_of=(0, 2))
    _close(value, expected)
    _close(grads[0], g_expected[0])
    _close(grads[1], g_expected[1])


# --------------------------------------------------------------------------------------
# optax: log_cosh, huber_loss, l2_loss, squared_error.
# --------------------------------------------------------------------------------------

OPTAX_PAIRS = [
    ("log_cosh", lambda p, t: jaxloss.log_cosh_loss(p, t, reduction="none"),
     optax.losses.log_cosh),
    ("huber_1", lambda p, t: jaxloss.huber_loss(p, t, reduction="none"),
     optax.losses.huber_loss),
    ("huber_0.2", lambda p, t: jaxloss.huber_loss(p, t, delta=0.2, reduction="none"),
     lambda p, t: optax.losses.huber_loss(p, t, delta=0.2)),
    ("l2", lambda p, t: 0.5 * jaxloss.mse_loss(p, t, reduction="none"), optax.losses.l2_loss),
    ("squared_error", lambda p, t: jaxloss.mse_loss(p, t, reduction="none"),
     optax.losses.squared_error),
]


@pytest.mark.parametrize("spread", [2.0, 1e-2, 300.0])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("label, fn, ref", OPTAX_PAIRS, ids=[c[0] for c in OPTAX_PAIRS])
def test_against_optax(label, fn, ref, shape, spread):
    p, t = _inputs(shape, seed=7, spread=spread)
    value, (grad,) = _jax_value_and_grads(fn, p, t)
    expected, (g_expected,) = _jax_value_and_grads(ref, p, t)
    # atol: optax's log_cosh is logaddexp(r, -r) - log 2, which cancels to ~1e-7 absolute
    # for small residuals; ours does not (checked against float64 in test_regression.py).
    _close(value, expected, atol=1e-6)
    _close(grad, g_expected, atol=1e-6)


def test_log_cosh_mean_against_optax():
    p, t = _inputs((4, 6), seed=9)
    value = jaxloss.log_cosh_loss(jnp.asarray(p), jnp.asarray(t))
    _close(value, jnp.mean(optax.losses.log_cosh(jnp.asarray(p), jnp.asarray(t))))


# --------------------------------------------------------------------------------------
# kornia: cauchy, geman_mcclure, welsch, charbonnier (scale / eps = 1, and on r / c).
# --------------------------------------------------------------------------------------

KORNIA_PAIRS = [
    ("cauchy", jaxloss.cauchy_loss, kl.cauchy_loss, 0.0),
    ("geman_mcclure", jaxloss.geman_mcclure_loss, kl.geman_mcclure_loss, -2.0),
    ("welsch", jaxloss.welsch_loss, kl.welsch_loss, -np.inf),
]


def _kornia_value_and_grads(ref, p, t, reduction, scale=1.0):
    """kornia's loss on ``(p / c, t / c)`` (Barron's form at scale c), with d/dp."""
    def fn(a, b):
        return ref(_as_image_t(a) / scale, _as_image_t(b) / scale, reduction=reduction)

    value, grads = _torch_value_and_grads(fn, p, t)
    if reduction == "none":
        value = value.reshape(p.shape)
    return value, grads


def _as_image_t(a):
    """kornia's losses take (N, C, H, W) images; these are elementwise, so a reshape will do."""
    return a.reshape((1, 1, 1, -1)) if a.dim() < 4 else a


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("label, fn, ref, alpha", KORNIA_PAIRS, ids=[c[0] for c in KORNIA_PAIRS])
def test_against_kornia(label, fn, ref, alpha, shape, reduction):
    p, t = _inputs(shape, seed=13)
    expected, (g_expected,) = _kornia_value_and_grads(ref, p, t, reduction)
    value, (grad,) = _jax_value_and_grads(lambda a, b: fn(a, b, reduction=reduction), p, t)
    _close(value, expected)
    _close(grad, g_expected)
    # The robust loss at the matching alpha is the same function.
    value, (grad,) = _jax_value_and_grads(
        lambda a, b: jaxloss.robust_loss(a, b, alpha=alpha, reduction=reduction), p, t)
    _close(value, expected)
    _close(grad, g_expected)


@pytest.mark.parametrize("scale", [0.25, 3.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label, fn, ref, alpha", KORNIA_PAIRS, ids=[c[0] for c in KORNIA_PAIRS])
def test_against_kornia_scaled(label, fn, ref, alpha, reduction, scale):
    p, t = _inputs((2, 3, 4, 5), seed=17)
    expected, (g_expected,) = _kornia_value_and_grads(ref, p, t, reduction, scale=scale)
    value, (grad,) = _jax_value_and_grads(
        lambda a, b: fn(a, b, scale=scale, reduction=reduction), p, t)
    _close(value, expected)
    _close(grad, g_expected)
    value, (grad,) = _jax_value_and_grads(
        lambda a, b: jaxloss.robust_loss(a, b, alpha=alpha, scale=scale, reduction=reduction),
        p, t)
    _close(value, expected)
    _close(grad, g_expected)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_charbonnier_against_kornia(shape, reduction):
    p, t = _inputs(shape, seed=19)
    expected, (g_expected,) = _kornia_value_and_grads(kl.charbonnier_loss, p, t, reduction)
    # kornia's Charbonnier is eps = 1; ours defaults to eps = 1e-3.
    value, (grad,) = _jax_value_and_grads(
        lambda a, b: jaxloss.charbonnier_loss(a, b, eps=1.0, reduction=reduction), p, t)
    _close(value, expected)
    _close(grad, g_expected)
    value, (grad,) = _jax_value_and_grads(
        lambda a, b: jaxloss.robust_loss(a, b, alpha=1.0, reduction=reduction), p, t)
    _close(value, expected)
    _close(grad, g_expected)


@pytest.mark.parametrize("eps", [1e-3, 0.2, 5.0])
def test_charbonnier_eps_against_kornia_scaled(eps):
    # sqrt(r^2 + eps^2) - eps = eps * kornia_charbonnier(r / eps): Barron's alpha = 1 at c = eps.
    p, t = _inputs((2, 3, 4, 5), seed=23, spread=0.05 if eps < 0.1 else 2.0)
    expected, (g_expected,) = _kornia_value_and_grads(kl.charbonnier_loss, p, t, "none",
                                                      scale=eps)
    value, (grad,) = _jax_value_and_grads(
        lambda a, b: jaxloss.charbonnier_loss(a, b, eps=eps, reduction="none"), p, t)
    _close(value, eps * expected)
    _close(grad, eps * g_expected)

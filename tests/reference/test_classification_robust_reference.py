"""Hinge, divergence and noise-robust losses against their references, value and gradient.

References: optax.losses.hinge_loss (optax 0.2.8), torch.nn.functional
multi_margin_loss / kl_div / softmax / log_softmax (torch 2.13), and the
papers' formulas written out in torch where no library has the loss (Keras
squared_hinge, Zhang & Sabuncu 2018, Wang et al. 2019). Expected values and
gradients come from the reference, computed in float64; jaxloss runs in
float32 (rtol 1e-5, atol 1e-6).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

import jaxloss

SHAPES = [(7, 5), (3, 4, 6), (2, 3, 2, 4)]
REDUCTIONS = ["none", "mean", "sum"]


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _reduce_torch(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return values
    return values.mean() if reduction == "mean" else values.sum()


def _check(jax_fn, torch_fn, x: np.ndarray, reduction: str, rtol=1e-5, atol=1e-6):
    """Value and gradient (of the sum of the output) of ``jax_fn(x)`` against ``torch_fn``."""
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    expected = torch_fn(xt)
    expected.sum().backward()
    value = jax_fn(jnp.asarray(x))
    grad = jax.grad(lambda z: jnp.sum(jax_fn(z)))(jnp.asarray(x))
    assert value.shape == tuple(expected.shape)
    _close(value, expected.detach().numpy(), rtol, atol)
    _close(grad, xt.grad.numpy(), rtol, atol)


def _logits(rng, shape, scale=2.0):
    return (scale * rng.normal(size=shape)).astype(np.float32)


def _probabilities(rng, shape):
    x = 2 * rng.normal(size=shape)
    e = np.exp(x - x.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------- hinge


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_hinge_matches_optax(shape, reduction):
    rng = np.random.default_rng(0)
    x = _logits(rng, shape)
    t = np.where(rng.uniform(size=shape) < 0.5, -1.0, 1.0).astype(np.float32)
    # optax.losses.hinge_loss is elementwise: reduce it the same way.
    reduce = {"none": lambda v: v, "mean": jnp.mean, "sum": jnp.sum}[reduction]

    def expected(z):
        return reduce(optax.losses.hinge_loss(z, jnp.asarray(t)))

    def actual(z):
        return jaxloss.hinge_loss(z, t, reduction=reduction)

    _close(actual(jnp.asarray(x)), expected(jnp.asarray(x)))
    _close(jax.grad(lambda z: jnp.sum(actual(z)))(jnp.asarray(x)),
           jax.grad(lambda z: jnp.sum(expected(z)))(jnp.asarray(x)))
    # {0, 1} labels (int, bool, float) map 0 -> -1 elementwise.
    zero_one = (t > 0).astype(np.int32)
    for labels in (zero_one, zero_one.astype(bool), zero_one.astype(np.float32)):
        _close(jaxloss.hinge_loss(x, labels, reduction=reduction), expected(jnp.asarray(x)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_squared_hinge_matches_keras_formula(shape, reduction):
    # keras.losses.squared_hinge: mean(square(maximum(1 - y_true * y_pred, 0)), axis=-1), with
    # {0, 1} labels converted to {-1, 1}; written out in torch (keras is not installed).
    # jaxloss keeps it elementwise, so the reference is the term before Keras's mean.
    rng = np.random.default_rng(1)
    x = _logits(rng, shape)
    t01 = (rng.uniform(size=shape) < 0.5).astype(np.float32)
    signed = torch.tensor(2.0 * t01.astype(np.float64) - 1.0)
    _check(lambda z: jaxloss.squared_hinge_loss(z, t01, reduction=reduction),
           lambda z: _reduce_torch(torch.clamp(1 - signed * z, min=0) ** 2, reduction),
           x, reduction)


# --------------------------------------------------------------- multiclass hinge


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("margin", [1.0, 0.3, 2.5])
@pytest.mark.parametrize("use_weights", [False, True])
def test_multiclass_hinge_matches_torch(reduction, p, margin, use_weights):
    rng = np.random.default_rng(2)
    x = _logits(rng, (9, 6))
    y = rng.integers(0, 6, size=(9,))
    w = rng.uniform(0.2, 3.0, size=(6,)).astype(np.float32) if use_weights else None
    wt = None if w is None else torch.tensor(w, dtype=torch.float64)
    _check(
        lambda z: jaxloss.multiclass_hinge_loss(z, y.astype(np.int32), margin=margin, p=p,
                                                class_weights=w, reduction=reduction),
        lambda z: F.multi_margin_loss(z, torch.tensor(y), p=p, margin=margin, weight=wt,
                                      reduction=reduction),
        x, reduction)


@pytest.mark.parametrize("shape", SHAPES[1:])
def test_multiclass_hinge_higher_rank_and_axis(shape):
    # torch takes (N, C): flatten the positions; jaxloss keeps them, with any class axis.
    rng = np.random.default_rng(3)
    x = _logits(rng, shape)
    y = rng.integers(0, shape[-1], size=shape[:-1])
    torch_fn = lambda z: F.multi_margin_loss(  # noqa: E731
        z.reshape(-1, shape[-1]), torch.tensor(y.reshape(-1)), p=2, margin=0.7,
        reduction="none").reshape(shape[:-1])
    _check(lambda z: jaxloss.multiclass_hinge_loss(z, y, p=2, margin=0.7, reduction="none"),
           torch_fn, x, "none")
    channels_first = np.moveaxis(x, -1, 1)
    _close(jaxloss.multiclass_hinge_loss(channels_first, y, p=2, margin=0.7, axis=1,
                                         reduction="none"),
           jaxloss.multiclass_hinge_loss(x, y, p=2, margin=0.7, reduction="none"))


# ------------------------------------------------------------------- divergences


def _kl_torch(log_q, t):
    return F.kl_div(log_q, t, reduction="none").sum(-1)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("from_logits", [True, False])
def test_kl_divergence_matches_torch(shape, reduction, from_logits):
    rng = np.random.default_rng(4)
    x = _logits(rng, shape) if from_logits else _probabilities(rng, shape)
    t = _probabilities(rng, shape)
    t[0] = 0.0
    t[(0,) * (len(shape) - 1) + (1,)] = 1.0                  # exact zeros and a one
    tt = torch.tensor(t, dtype=torch.float64)

    def torch_fn(z):
        log_q = F.log_softmax(z, -1) if from_logits else torch.log(z)
        return _reduce_torch(_kl_torch(log_q, tt), reduction)

    _check(lambda z: jaxloss.kl_divergence_loss(z, t, from_logits=from_logits,
                                                reduction=reduction),
           torch_fn, x, reduction)


def test_kl_divergence_mean_is_torch_batchmean():
    rng = np.random.default_rng(5)
    x = _logits(rng, (8, 5))
    t = _probabilities(rng, (8, 5))
    _check(lambda z: jaxloss.kl_divergence_loss(z, t),
           lambda z: F.kl_div(F.log_softmax(z, -1), torch.tensor(t, dtype=torch.float64),
                              reduction="batchmean"),
           x, "mean")


def _js_torch(p, t):
    m = 0.5 * (p + t)
    # kl_div(log m, t) is 0 * (-inf) = NaN where p = t = 0; those classes contribute 0 to JS,
    # so give them any finite log m.
    log_m = torch.log(torch.where(m > 0, m, torch.ones_like(m)))
    return 0.5 * _kl_torch(log_m, p) + 0.5 * _kl_torch(log_m, t)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("from_logits", [True, False])
def test_js_divergence_matches_torch(shape, reduction, from_logits):
    rng = np.random.default_rng(6)
    x = _logits(rng, shape) if from_logits else _probabilities(rng, shape)
    t = _probabilities(rng, shape)
    t[0] = 0.0
    t[(0,) * (len(shape) - 1) + (2,)] = 1.0                  # exact zeros and a one
    tt = torch.tensor(t, dtype=torch.float64)

    def torch_fn(z):
        p = F.softmax(z, -1) if from_logits else z
        return _reduce_torch(_js_torch(p, tt), reduction)

    _check(lambda z: jaxloss.js_divergence_loss(z, t, from_logits=from_logits,
                                                reduction=reduction),
           torch_fn, x, reduction)


def test_js_divergence_with_zero_predictions_matches_torch():
    # Exact zeros in p where t > 0 and where t == 0: torch's kl_div gives 0 log 0 = 0.
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], np.float32)
    t = np.array([[0.0, 1.0, 0.0], [0.0, 0.5, 0.5], [0.2, 0.3, 0.5]], np.float32)
    value = jaxloss.js_divergence_loss(p, t, from_logits=False, reduction="none")
    expected = _js_torch(torch.tensor(p, dtype=torch.float64), torch.tensor(t, dtype=torch.float64))
    _close(value, expected.numpy())
    grad = jax.grad(lambda z: jaxloss.js_divergence_loss(z, t, from_logits=False))(p)
    assert np.all(np.isfinite(np.asarray(grad)))


# ---------------------------------------------------------- noise-robust losses


def _gce_torch(z, y, q, from_logits, index):
    # Zhang & Sabuncu 2018, eq. 6 (authors' code: Yg = softmax(logits).gather(1, targets);
    # loss = (1 - Yg ** q) / q); probability targets weight each class's term.
    p = F.softmax(z, -1) if from_logits else z
    if index:
        return (1 - torch.gather(p, -1, y[..., None])[..., 0] ** q) / q
    return (y * (1 - p**q) / q).sum(-1)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("q", [0.7, 0.1, 1.0])
@pytest.mark.parametrize("index", [True, False])
def test_generalized_cross_entropy_matches_formula(shape, reduction, q, index):
    rng = np.random.default_rng(7)
    x = _logits(rng, shape)
    if index:
        y = rng.integers(0, shape[-1], size=shape[:-1]).astype(np.int32)
        yt = torch.tensor(y, dtype=torch.int64)
    else:
        y = _probabilities(rng, shape)
        yt = torch.tensor(y, dtype=torch.float64)
    _check(lambda z: jaxloss.generalized_cross_entropy_loss(z, y, q=q, reduction=reduction),
           lambda z: _reduce_torch(_gce_torch(z, yt, q, True, index), reduction), x, reduction)


def test_generalized_cross_entropy_probabilities_matches_formula():
    rng = np.random.default_rng(8)
    probs = _probabilities(rng, (6, 4))
    y = rng.integers(0, 4, size=(6,)).astype(np.int32)
    _check(lambda z: jaxloss.generalized_cross_entropy_loss(z, y, q=0.4, from_logits=False,
                                                            reduction="none"),
           lambda z: _gce_torch(z, torch.tensor(y, dtype=torch.int64), 0.4, False, True),
           probs, "none")


def _sce_torch(z, y, alpha, beta, from_logits, index):
    # Wang et al. 2019, authors' code (SCELoss): ce = cross_entropy(pred, labels);
    # pred = clamp(softmax(pred), 1e-7, 1); label_one_hot = clamp(one_hot, 1e-4, 1);
    # rce = -sum(pred * log(label_one_hot), 1); loss = alpha * ce + beta * rce.
    log_p = F.log_softmax(z, -1) if from_logits else torch.log(z)
    t = F.one_hot(y, z.shape[-1]).to(z.dtype) if index else y
    ce = -(t * log_p).sum(-1)
    p = torch.clamp(log_p.exp(), 1e-7, 1.0)
    rce = -(p * torch.log(torch.clamp(t, 1e-4, 1.0))).sum(-1)
    return alpha * ce + beta * rce


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("alpha", "beta"), [(0.1, 1.0), (1.0, 0.5), (0.0, 2.0)])
@pytest.mark.parametrize("index", [True, False])
def test_symmetric_cross_entropy_matches_authors_formula(shape, reduction, alpha, beta, index):
    # Logits of scale 2 over <= 6 classes keep every probability far above the authors'
    # 1e-7 clamp of p (which jaxloss omits, see its docstring), so the clamp is inactive.
    rng = np.random.default_rng(9)
    x = _logits(rng, shape)
    if index:
        y = rng.integers(0, shape[-1], size=shape[:-1]).astype(np.int32)
        yt = torch.tensor(y, dtype=torch.int64)
    else:
        y = _probabilities(rng, shape)
        yt = torch.tensor(y, dtype=torch.float64)
    assert F.softmax(torch.tensor(x, dtype=torch.float64), -1).min() > 1e-6
    # The reverse term is scaled by beta * |log 1e-4| (up to 18): float32 rounding of O(1)
    # probabilities scales with it, so atol does too.
    _check(lambda z: jaxloss.symmetric_cross_entropy_loss(z, y, alpha=alpha, beta=beta,
                                                          reduction=reduction),
           lambda z: _reduce_torch(_sce_torch(z, yt, alpha, beta, True, index), reduction),
           x, reduction, atol=1e-6 * (1 + beta * 9.22))


def test_symmetric_cross_entropy_probabilities_matches_authors_formula():
    rng = np.random.default_rng(10)
    probs = _probabilities(rng, (6, 4))
    y = rng.integers(0, 4, size=(6,)).astype(np.int32)
    _check(lambda z: jaxloss.symmetric_cross_entropy_loss(z, y, from_logits=False,
                                                          reduction="none"),
           lambda z: _sce_torch(z, torch.tensor(y, dtype=torch.int64), 0.1, 1.0, False, True),
           probs, "none")

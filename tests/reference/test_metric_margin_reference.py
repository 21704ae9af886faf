"""Margin-softmax losses against pytorch-metric-learning 2.9, value and gradient.

References: pytorch_metric_learning.losses ArcFaceLoss, CosFaceLoss,
SphereFaceLoss and SubCenterArcFaceLoss (PML 2.9.0, torch 2.13), with their
``W`` set to our kernel (the same ``(d, C)`` layout). PML computes in the
inputs' dtype, here float64; jaxloss runs in float32 (rtol 1e-5, atol 1e-6 on
values; gradients are compared at the gradient's scale, atol 1e-5 * max|g|,
because the logits carry a factor ``scale = 64``). Per-row values come from
PML with ``DoNothingReducer``; the default (``MeanReducer``) gives the mean.
Gradients with respect to ``margin`` and ``scale`` (plain Python numbers in
PML) are checked against central finite differences of PML's float64 loss.
"""

from __future__ import annotations

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from pytorch_metric_learning import losses, reducers

import jaxloss

SHAPES = [(6, 8, 5), (9, 16, 11), (4, 3, 2), (12, 32, 40)]  # (N, d, C)


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _close_at_scale(actual, expected, rtol=1e-5):
    expected = np.asarray(expected, np.float64)
    _close(actual, expected, rtol=rtol, atol=rtol * max(float(np.max(np.abs(expected))), 1e-12))


def _pml(name: str, num_classes: int, d: int, *, subcenters: int = 3, reducer=None,
         **kw):
    """The PML loss object for ``name`` with jaxloss-style keyword arguments (margin in
    radians for the ArcFace variants)."""
    if reducer is not None:
        kw["reducer"] = reducer
    if name == "arcface_loss":
        kw["margin"] = math.degrees(kw.pop("margin", math.radians(28.6)))
        return losses.ArcFaceLoss(num_classes, d, **kw)
    if name == "subcenter_arcface_loss":
        kw["margin"] = math.degrees(kw.pop("margin", math.radians(28.6)))
        return losses.SubCenterArcFaceLoss(num_classes=num_classes, embedding_size=d,
                                           sub_centers=subcenters, **kw)
    if name == "cosface_loss":
        return losses.CosFaceLoss(num_classes, d, **kw)
    return losses.SphereFaceLoss(num_classes, d, **kw)


def _reference(name, x, labels, kernel, *, num_classes, subcenters=3, **kw):
    """PML's mean loss, its per-row losses, and the gradients of the mean w.r.t.
    embeddings and W, all in float64."""
    d = x.shape[1]
    fn = _pml(name, num_classes, d, subcenters=subcenters, **kw)
    fn.W.data = torch.tensor(kernel, dtype=torch.float64)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt = torch.tensor(labels, dtype=torch.int64)
    mean = fn(xt, yt)
    mean.backward()
    rows = _pml(name, num_classes, d, subcenters=subcenters,
                reducer=reducers.DoNothingReducer(), **kw)
    rows.W.data = torch.tensor(kernel, dtype=torch.float64)
    per_row = rows(torch.tensor(x, dtype=torch.float64), yt)["loss"]["losses"]
    return (mean.item(), per_row.detach().numpy(), xt.grad.numpy(),
            fn.W.grad.numpy())


def _inputs(rng, n, d, c, columns=None):
    x = rng.normal(size=(n, d)).astype(np.float32)
    labels = rng.integers(0, c, size=n).astype(np.int32)
    kernel = rng.normal(size=(d, columns or c)).astype(np.float32)
    return x, labels, kernel


NAMES = ["arcface_loss", "cosface_loss", "sphereface_loss"]
SETTINGS = {
    "arcface_loss": [{}, {"scale": 16.0, "margin": 0.3}, {"scale": 30.0, "margin": 1.2}],
    "cosface_loss": [{}, {"scale": 10.0, "margin": 0.1}, {"scale": 30.0, "margin": 0.6}],
    "sphereface_loss": [{}, {"margin": 1}, {"margin": 2, "scale": 3.0}, {"margin": 3}],
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_against_pml(name, shape):
    n, d, c = shape
    rng = np.random.default_rng(sum(shape))
    x, labels, kernel = _inputs(rng, n, d, c)
    if name == "sphereface_loss":
        x = x * rng.uniform(0.2, 3.0, size=(n, 1)).astype(np.float32)  # norms matter here
    ours = _jitted(getattr(jaxloss, name), labels)
    for kw in SETTINGS[name]:
        mean, per_row, gx, gw = _reference(name, x, labels, kernel, num_classes=c, **kw)
        (value, rows), (got_x, got_w) = ours(jnp.asarray(x), jnp.asarray(kernel), **kw)
        _close(value, mean)
        _close(rows, per_row)
        _close_at_scale(got_x, gx)
        _close_at_scale(got_w, gw)


def _jitted(fn, labels, **static):
    """``(mean, per-row), (grad_x, grad_kernel)`` of ``fn``, jitted with ``scale`` and an
    additive ``margin`` traced (one compilation per shape); integer margins are static."""
    labels = jnp.asarray(labels)

    def both(x, kernel, scale, margin, int_margin):
        kw = dict(static, scale=scale)
        kw["margin"] = int_margin if margin is None else margin
        mean = fn(x, labels, kernel, **kw)
        return mean, fn(x, labels, kernel, **kw, reduction="none")

    compiled = jax.jit(jax.value_and_grad(both, argnums=(0, 1), has_aux=True),
                       static_argnums=(4,))

    def call(x, kernel, **kw):
        margin = kw.get("margin")
        integer = isinstance(margin, int)
        defaults = {p: q.default for p, q in inspect.signature(fn).parameters.items()}
        scale = jnp.float32(kw.get("scale", defaults["scale"]))
        if integer or (margin is None and isinstance(defaults["margin"], int)):
            int_margin = margin if integer else defaults["margin"]
            (mean, rows), grads = compiled(x, kernel, scale, None, int_margin)
        else:
            margin = defaults["margin"] if margin is None else margin
            (mean, rows), grads = compiled(x, kernel, scale, jnp.float32(margin), 0)
        return (mean, rows), grads

    return call


@pytest.mark.parametrize("subcenters", [1, 2, 3])
@pytest.mark.parametrize("shape", SHAPES)
def test_subcenter_against_pml(shape, subcenters):
    n, d, c = shape
    rng = np.random.default_rng(sum(shape) + subcenters)
    x, labels, kernel = _inputs(rng, n, d, c, columns=c * subcenters)
    ours = _jitted(jaxloss.subcenter_arcface_loss, labels, num_subcenters=subcenters)
    for kw in ({}, {"scale": 20.0, "margin": 0.4}):
        mean, per_row, gx, gw = _reference("subcenter_arcface_loss", x, labels, kernel,
                                           num_classes=c, subcenters=subcenters, **kw)
        (value, rows), (got_x, got_w) = ours(jnp.asarray(x), jnp.asarray(kernel), **kw)
        _close(value, mean)
        _close(rows, per_row)
        _close_at_scale(got_x, gx)
        _close_at_scale(got_w, gw)


def test_arcface_fallback_branch_past_pi_minus_m():
    """Targets at an angle beyond pi - m take PML's cos(theta) - m sin(m) branch."""
    rng = np.random.default_rng(3)
    d, c = 4, 3
    kernel = rng.normal(size=(d, c)).astype(np.float32)
    labels = np.array([0, 1, 2, 0], np.int32)
    # Embeddings pointing away from their own class weight: theta close to pi.
    x = (-kernel[:, labels].T + 0.05 * rng.normal(size=(4, d))).astype(np.float32)
    for margin in (0.5, 1.0):
        mean, per_row, gx, gw = _reference("arcface_loss", x, labels, kernel, num_classes=c,
                                           margin=margin, scale=8.0)
        _close(jaxloss.arcface_loss(x, labels, kernel, margin=margin, scale=8.0,
                                    reduction="none"), per_row)
        value, (got_x, got_w) = jax.value_and_grad(
            lambda a, w, m=margin: jaxloss.arcface_loss(a, labels, w, margin=m, scale=8.0),
            argnums=(0, 1))(jnp.asarray(x), jnp.asarray(kernel))
        _close(value, mean)
        _close_at_scale(got_x, gx)
        _close_at_scale(got_w, gw)


def _pml_value(name, x, labels, kernel, *, num_classes, **kw) -> float:
    fn = _pml(name, num_classes, x.shape[1], **kw)
    fn.W.data = torch.tensor(kernel, dtype=torch.float64)
    return fn(torch.tensor(x, dtype=torch.float64),
              torch.tensor(labels, dtype=torch.int64)).item()


@pytest.mark.parametrize("name", ["arcface_loss", "cosface_loss", "subcenter_arcface_loss",
                                  "sphereface_loss"])
def test_hyperparameter_gradients_against_pml_finite_differences(name):
    rng = np.random.default_rng(11)
    n, d, c = 8, 6, 5
    k = 2 if name == "subcenter_arcface_loss" else 1
    x, labels, kernel = _inputs(rng, n, d, c, columns=c * k)
    extra = {"num_subcenters": k} if k > 1 else {}
    pml_extra = {"subcenters": k} if k > 1 else {}
    fn = getattr(jaxloss, name)
    params = {"scale": 12.0} if name == "sphereface_loss" else {"scale": 12.0, "margin": 0.4}
    h = 1e-5
    for param in params:
        def pml_at(v, param=param):
            kw = dict(params, **{param: v})
            return _pml_value(name, x, labels, kernel, num_classes=c, **kw, **pml_extra)

        expected = (pml_at(params[param] + h) - pml_at(params[param] - h)) / (2 * h)

        def ours(v, param=param):
            return fn(x, labels, kernel, **dict(params, **{param: v}), **extra)

        got = jax.grad(ours)(jnp.float32(params[param]))
        _close(got, expected, rtol=1e-4, atol=1e-5)  # finite differences: ~1e-7 accurate


def test_pml_arcface_gradient_is_not_finite_on_the_class_weight_ours_is():
    """An embedding exactly on its class weight: cos(theta) = 1 exactly. PML's arccos
    has an infinite derivative there and its gradient is NaN; ours stays finite."""
    kernel = np.eye(3, 4, dtype=np.float32)
    x = np.array([[2.0, 0.0, 0.0], [0.3, -1.0, 0.2]], np.float32)
    labels = np.array([0, 2], np.int32)
    fn = _pml("arcface_loss", 4, 3)
    fn.W.data = torch.tensor(kernel)
    xt = torch.tensor(x, requires_grad=True)
    fn(xt, torch.tensor(labels, dtype=torch.int64)).backward()
    assert not np.all(np.isfinite(xt.grad.numpy())), "PML's gradient became finite"
    assert not np.all(np.isfinite(fn.W.grad.numpy()))

    for name in ("arcface_loss", "subcenter_arcface_loss"):
        extra = {"num_subcenters": 1} if name == "subcenter_arcface_loss" else {}
        value, grads = jax.value_and_grad(
            lambda a, w, name=name, extra=extra: getattr(jaxloss, name)(a, labels, w, **extra),
            argnums=(0, 1))(jnp.asarray(x), jnp.asarray(kernel))
        assert np.isfinite(float(value))
        assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
        # The value still equals PML's (only the gradient there differs).
        _close(value, _pml_value("arcface_loss", x, labels, kernel, num_classes=4))

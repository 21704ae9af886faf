"""Proxy losses against pytorch-metric-learning 2.9, value and gradient.

References: pytorch_metric_learning.losses ProxyAnchorLoss, ProxyNCALoss,
SoftTripleLoss and NormalizedSoftmaxLoss (PML 2.9, torch 2.13) with their class
matrices set to ours (``proxies = ours.T``; ``W`` and ``fc`` in our ``(d, C)``
layout). PML computes in float64 here, jaxloss in float32: values to rtol 1e-5,
gradients at their own scale (atol 1e-5 * max|g|: the logits carry factors of 20-32).
The chunked path (``block_size``) is checked against the same reference.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch
from pytorch_metric_learning import losses

import jaxloss

SHAPES = [(6, 8, 5, 2), (12, 16, 11, 3)]  # (N, d, C, block_size)


def _close(actual, expected, rtol=1e-5):
    expected = np.asarray(expected, np.float64)
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol,
                               atol=rtol * max(float(np.max(np.abs(expected))), 1e-6))


def _pml(name, c, d, k, kw):
    if name == "proxy_anchor_loss":
        return losses.ProxyAnchorLoss(c, d, **kw), "proxies", True
    if name == "proxy_nca_loss":
        return losses.ProxyNCALoss(c, d, **kw), "proxies", True
    if name == "soft_triple_loss":
        kw = dict(kw)
        kw["centers_per_class"] = kw.pop("centers_per_class", k)
        return losses.SoftTripleLoss(c, d, **kw), "fc", False
    return losses.NormalizedSoftmaxLoss(c, d, **kw), "W", False


def _reference(name, x, labels, matrix, c, k, kw):
    """PML's loss and its gradients w.r.t. the embeddings and our (d, C[*K]) matrix."""
    fn, attr, transposed = _pml(name, c, x.shape[1], k, kw)
    param = torch.tensor(matrix.T if transposed else matrix, dtype=torch.float64,
                         requires_grad=True)
    setattr(fn, attr, torch.nn.Parameter(param))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    loss = fn(xt, torch.tensor(labels, dtype=torch.int64))
    loss.backward()
    grad = getattr(fn, attr).grad.numpy()
    return loss.item(), xt.grad.numpy(), grad.T if transposed else grad


CASES = [
    ("proxy_anchor_loss", {}, {}),
    ("proxy_anchor_loss", {"margin": 0.3, "alpha": 8.0}, {"margin": 0.3, "alpha": 8.0}),
    ("proxy_nca_loss", {"softmax_scale": 4.0}, {"softmax_scale": 4.0}),
    ("normalized_softmax_loss", {}, {}),
    ("soft_triple_loss", {"centers_per_class": 3}, {"centers_per_class": 3}),
    ("soft_triple_loss", {"centers_per_class": 2, "la": 5.0, "gamma": 0.5, "margin": 0.2},
     {"centers_per_class": 2, "la": 5.0, "gamma": 0.5, "margin": 0.2}),
]

_PROGRAMS = {}


def _program(name, kw, block_size):
    key = (name, tuple(sorted(kw.items())), block_size)
    if key not in _PROGRAMS:
        fn = getattr(jaxloss, name)
        _PROGRAMS[key] = jax.jit(jax.value_and_grad(
            lambda x, y, w: fn(x, y, w, block_size=block_size, **kw), argnums=(0, 2)))
    return _PROGRAMS[key]


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES)
def test_against_pml(name, ours, theirs):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    k = ours.get("centers_per_class", 1)
    for n, d, c, block in SHAPES:
        x = rng.normal(size=(n, d)).astype(np.float32)
        labels = rng.integers(0, c, size=n).astype(np.int32)
        if name == "proxy_anchor_loss" and n > c:
            labels[:c] = np.arange(c)  # also proxies with positives in every class
        matrix = rng.normal(size=(d, c * k)).astype(np.float32)
        value, grad_x, grad_w = _reference(name, x, labels, matrix, c, k, theirs)
        for block_size in (None, block):
            got, (gx, gw) = _program(name, ours, block_size)(x, labels, matrix)
            _close(got, value)
            _close(gx, grad_x)
            _close(gw, grad_w)


def test_proxy_anchor_with_absent_classes_and_where():
    """Classes without positives (PML's |P+| < C) and ``where`` (= slicing the batch)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 6)).astype(np.float32)
    labels = np.array([0, 0, 2, 2, 2, 4, 0, 4], np.int32)
    proxies = rng.normal(size=(6, 7)).astype(np.float32)
    keep = np.array([1, 1, 1, 0, 1, 1, 0, 1], bool)
    value, grad_x, grad_w = _reference("proxy_anchor_loss", x[keep], labels[keep], proxies,
                                       7, 1, {})
    got, (gx, gw) = jax.value_and_grad(
        lambda a, w: jaxloss.proxy_anchor_loss(a, labels, w, where=keep, block_size=3),
        argnums=(0, 1))(x, proxies)
    _close(got, value)
    _close(np.asarray(gx)[keep], grad_x)
    assert np.all(np.asarray(gx)[~keep] == 0)
    _close(gw, grad_w)

"""Explicit pair/triplet losses and the center loss against pytorch-metric-learning (2.9)
and torch.

Expected values and gradients come from the reference libraries on the same
random inputs (torch 2.13 CPU, float32).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import distances, losses

import jaxloss


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _grad_close(actual, expected):
    # Summation orders differ (cdist/matmul, reductions): compare at the gradient's scale.
    expected = np.asarray(expected, np.float64)
    scale = max(float(np.max(np.abs(expected))), 1e-12)
    _close(actual, expected, rtol=1e-5, atol=1e-5 * scale)


def _torch_value_and_grad(fn, *arrays):
    tensors = [torch.tensor(np.asarray(a), requires_grad=True) for a in arrays]
    value = fn(*tensors)
    value.backward()
    return value.detach().numpy(), [t.grad.numpy() if t.grad is not None else
                                    np.zeros(t.shape, np.float32) for t in tensors]


def _embeddings(rng, n, d, scale=1.0):
    return (scale * rng.normal(size=(n, d))).astype(np.float32)


def _labels(rng, n, classes):
    return rng.integers(0, classes, size=n).astype(np.int64)


# --------------------------------------------------------------------------------------
# contrastive_loss
# --------------------------------------------------------------------------------------


def _pml_contrastive(x1, x2, similar, *, pos_margin, neg_margin, normalize, distance):
    n = x1.shape[0]
    idx = torch.arange(n)
    sim = torch.as_tensor(similar)
    indices = (idx[sim], idx[sim] + n, idx[~sim], idx[~sim] + n)
    if distance == "cosine":
        dist = distances.CosineSimilarity()
    else:
        dist = distances.LpDistance(normalize_embeddings=normalize,
                                    power=2 if distance == "squared" else 1)
    loss = losses.ContrastiveLoss(pos_margin=pos_margin, neg_margin=neg_margin, distance=dist)
    return lambda a, b: loss(torch.cat([a, b]), None, indices)


@pytest.mark.parametrize("n,d", [(9, 4), (20, 16)])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("distance", ["euclidean", "squared", "cosine"])
def test_contrastive_avg_non_zero_matches_pml(n, d, normalize, distance):
    rng = np.random.default_rng(n + d)
    x1, x2 = _embeddings(rng, n, d), _embeddings(rng, n, d)
    x2[: n // 3] = x1[: n // 3] + 0.1 * _embeddings(rng, n // 3, d)  # some close pairs
    similar = rng.random(n) < 0.5
    similar[:2] = [True, False]
    margin, pos_margin = (1.2, 0.3) if normalize or distance == "cosine" else (4.0, 1.0)
    if distance == "squared" and not normalize:
        margin, pos_margin = 12.0, 2.0
    if distance == "cosine":
        torch_margins = dict(pos_margin=1 - pos_margin, neg_margin=1 - margin / 2)
        margin = margin / 2
    else:
        torch_margins = dict(pos_margin=pos_margin, neg_margin=margin)
    ref = _pml_contrastive(x1, x2, similar, normalize=normalize, distance=distance,
                           **torch_margins)
    want, want_grads = _torch_value_and_grad(ref, x1, x2)

    def ours(a, b):
        return jaxloss.contrastive_loss(a, b, jnp.asarray(similar), margin=margin,
                                        pos_margin=pos_margin, distance=distance,
                                        normalize=normalize, reduction="avg_non_zero")

    got, got_grads = jax.value_and_grad(ours, argnums=(0, 1))(x1, x2)
    _close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        _grad_close(g, w)


def test_contrastive_mean_and_squared_against_torch_formula():
    rng = np.random.default_rng(3)
    x1, x2 = _embeddings(rng, 12, 5), _embeddings(rng, 12, 5)
    similar = rng.random(12) < 0.5

    def ref(a, b):
        d = F.pairwise_distance(a, b, eps=0.0)
        sim = torch.as_tensor(similar)
        hinge = torch.where(sim, d, F.relu(3.0 - d))
        return torch.mean(0.5 * hinge**2)

    want, want_grads = _torch_value_and_grad(ref, x1, x2)
    got, got_grads = jax.value_and_grad(
        lambda a, b: jaxloss.contrastive_loss(a, b, jnp.asarray(similar), margin=3.0,
                                              squared=True, normalize=False),
        argnums=(0, 1))(x1, x2)
    _close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        _grad_close(g, w)


# --------------------------------------------------------------------------------------
# triplet_margin_loss
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, 0.5])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("shape", [(7, 3), (16, 10), (2, 3, 5)])
def test_triplet_margin_matches_torch(p, swap, shape):
    rng = np.random.default_rng(int(p * 10) + len(shape))
    a, pos, neg = (rng.normal(size=shape).astype(np.float32) for _ in range(3))
    margin = 0.7
    for reduction in ("mean", "sum", "none"):
        def ref(x, y, z, reduction=reduction):
            out = F.triplet_margin_loss(x, y, z, margin=margin, p=p, swap=swap,
                                        reduction=reduction)
            return out if reduction != "none" else out.pow(2).sum()

        def ours(x, y, z, reduction=reduction):
            out = jaxloss.triplet_margin_loss(x, y, z, margin=margin, p=p, swap=swap,
                                              reduction=reduction)
            return out if reduction != "none" else jnp.sum(jnp.square(out))

        if len(shape) == 3 and reduction == "none":
            continue  # torch's triplet_margin_loss takes 1-D or 2-D inputs only
        if len(shape) == 3:
            flat = [t.reshape(-1, shape[-1]) for t in (a, pos, neg)]
            want, want_grads = _torch_value_and_grad(ref, *flat)
            want_grads = [g.reshape(shape) for g in want_grads]
        else:
            want, want_grads = _torch_value_and_grad(ref, a, pos, neg)
        got, got_grads = jax.value_and_grad(ours, argnums=(0, 1, 2))(a, pos, neg)
        _close(got, want)
        for g, w in zip(got_grads, want_grads, strict=True):
            _grad_close(g, w)


def test_triplet_margin_eps_inside_difference_and_zero_gradient():
    # a - p + eps == 0 exactly: torch's norm has gradient 0 there; ours is finite and equal.
    a = np.zeros((2, 3), np.float32)
    pos = np.full((2, 3), 0.5, np.float32)
    a[:] = pos - np.float32(0.5)          # a - pos = -0.5
    eps = 0.5
    neg = np.ones((2, 3), np.float32)
    want, want_grads = _torch_value_and_grad(
        lambda x, y, z: F.triplet_margin_loss(x, y, z, margin=2.0, eps=eps), a, pos, neg)
    got, got_grads = jax.value_and_grad(
        lambda x, y, z: jaxloss.triplet_margin_loss(x, y, z, margin=2.0, eps=eps),
        argnums=(0, 1, 2))(a, pos, neg)
    _close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        assert np.all(np.isfinite(np.asarray(g)))
        _grad_close(g, w)


# --------------------------------------------------------------------------------------
# center_loss
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,d,classes", [(8, 3, 4), (40, 12, 10)])
def test_center_loss_matches_torch_formula_and_center_gradient(n, d, classes):
    rng = np.random.default_rng(n)
    x = _embeddings(rng, n, d)
    centers = _embeddings(rng, classes, d)
    labels = _labels(rng, n, classes)

    def ref(e, c):
        own = c[torch.as_tensor(labels)]
        return torch.mean(0.5 * torch.sum((e - own) ** 2, dim=1))

    want, want_grads = _torch_value_and_grad(ref, x, centers)
    got, got_grads = jax.value_and_grad(
        lambda e, c: jaxloss.center_loss(e, jnp.asarray(labels), c), argnums=(0, 1))(x, centers)
    _close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        _grad_close(g, w)
    # The centre gradient is sum over the class's samples of (c_j - x_i) / N.
    expected = np.zeros_like(centers)
    np.add.at(expected, labels, (centers[labels] - x) / n)
    _grad_close(got_grads[1], expected)

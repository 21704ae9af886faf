"""Explicit pair and triplet losses and the center loss: semantics beyond the reference.

Brute-force NumPy computations are the independent reference for the
reductions and weights; the PML/torch comparison is in
tests/reference/test_metric_pairs_reference.py. The batch-wide losses are in
tests/test_metric_batch.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _batch(seed, n=12, d=5, classes=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    labels = rng.integers(0, classes, size=n).astype(np.int32)
    return x, labels


def _normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def test_contrastive_avg_non_zero_brute_force_with_weights_and_where():
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(2, 10, 4)).astype(np.float32)
    x2[0] = x1[0]                           # a similar pair with loss exactly 0
    similar = np.array([1, 1, 0, 0, 1, 0, 1, 0, 0, 1])
    w = rng.uniform(0.5, 2, size=10).astype(np.float32)
    keep = np.ones(10, bool)
    keep[3] = False
    d = np.linalg.norm(_normalize(x1) - _normalize(x2), axis=-1)
    loss = np.where(similar == 1, d, np.maximum(1.7 - d, 0))
    assert np.sum((loss > 0) & (similar == 0)) >= 2
    want = 0.0
    for group in (similar == 1, similar == 0):
        sel = group & keep
        want += np.sum((w * loss)[sel]) / np.sum((w * (loss > 0))[sel])
    got = jaxloss.contrastive_loss(x1, x2, similar, margin=1.7, weights=w, where=keep,
                                   reduction="avg_non_zero")
    _close(got, want)
    _close(jaxloss.contrastive_loss(x1, x2, similar, margin=1.7, reduction="none"), loss)
    # No non-zero term in a group: that group contributes 0 (PML), not NaN.
    far = jaxloss.contrastive_loss(x1, x2, similar, margin=0.0, reduction="avg_non_zero")
    _close(far, np.sum(loss * (similar == 1)) / np.sum((loss > 0) & (similar == 1)))


def test_triplet_margin_finite_gradient_where_torch_is_not():
    # p < 1 with a zero component of the difference: torch's norm backward gives NaN.
    a = jnp.array([[0.0, 1.0, 2.0]])
    pos = jnp.array([[0.0, 0.0, 0.0]])
    neg = jnp.array([[1.0, 1.0, 1.0]])
    for p in (0.5, 1.0, 1.5, 2.0, 3.0):
        grads = jax.grad(lambda x, y, p=p: jaxloss.triplet_margin_loss(
            x, y, neg, p=p, eps=0.0, margin=5.0), argnums=(0, 1))(a, pos)
        assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)


def test_center_loss_centres_learn():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(30, 4)).astype(np.float32))
    labels = jnp.asarray(np.arange(30) % 3)
    centers = jnp.zeros((3, 4))
    grad_fn = jax.jit(jax.grad(lambda c: jaxloss.center_loss(x, labels, c, reduction="sum")))
    for _ in range(50):
        centers = centers - 0.05 * grad_fn(centers)
    means = np.stack([np.asarray(x)[np.arange(30) % 3 == c].mean(0) for c in range(3)])
    _close(centers, means, rtol=1e-4, atol=1e-4)


def test_errors():
    x, labels = _batch(0)
    with pytest.raises(ValueError, match="is_similar"):
        jaxloss.contrastive_loss(x, x, labels[:, None] == 0)
    with pytest.raises(ValueError, match="margin"):
        jaxloss.triplet_margin_loss(x, x, x, margin=0.0)
    with pytest.raises(ValueError, match="p must"):
        jaxloss.triplet_margin_loss(x, x, x, p=0.0)
    with pytest.raises(TypeError, match="p must"):
        jaxloss.triplet_margin_loss(x, x, x, p=jnp.float32(2.0))
    with pytest.raises(ValueError, match="centers"):
        jaxloss.center_loss(x, labels, np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="labels"):
        jaxloss.center_loss(x, labels, np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="centers"):
        jaxloss.center_loss(x, labels, np.zeros((3, 5), np.int32))


def test_center_loss_out_of_range_labels_are_nan_under_jit():
    """The conventions page, guarantee 5: a label outside [0, C) raises eagerly; under
    jit its row is NaN (not the distance to a clipped centre) and the other rows keep
    their values."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(4, 3)).astype(np.float32))
    centers = jnp.asarray(rng.normal(size=(5, 3)).astype(np.float32))
    bad = jnp.array([1, 7, -2, 0])
    good_rows = np.array([True, False, False, True])
    rows = np.asarray(jax.jit(lambda e, y: jaxloss.center_loss(e, y, centers,
                                                                reduction="none"))(x, bad))
    assert np.all(np.isnan(rows[~good_rows])) and np.all(np.isfinite(rows[good_rows]))
    valid = jnp.where(jnp.asarray(good_rows), bad, 0)
    _close(rows[good_rows], np.asarray(jaxloss.center_loss(x, valid, centers,
                                                           reduction="none"))[good_rows])
    assert np.isnan(float(jax.jit(lambda e, y: jaxloss.center_loss(e, y, centers))(x, bad)))
    masked = jax.jit(lambda e, y: jaxloss.center_loss(e, y, centers, where=good_rows))(x, bad)
    _close(masked, jaxloss.center_loss(x[good_rows], bad[good_rows], centers))
    with pytest.raises(ValueError, match="labels"):
        jaxloss.center_loss(x, bad, centers)

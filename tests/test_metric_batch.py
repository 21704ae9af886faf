"""Batch-wide pair losses (mined triplets, N-pair, circle, multi-similarity): semantics
beyond the reference comparison.

Brute-force NumPy loops over the triplets/pairs are the independent reference
for the reductions and weights; the PML comparison is in
tests/reference/test_metric_batch_reference.py.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss
from tests.test_metric_pairs import _batch, _close, _normalize

BATCH_LOSSES = {
    "batch_triplet_all": (jaxloss.batch_triplet_loss, {"mining": "all", "margin": 0.3}),
    "batch_triplet_hard": (jaxloss.batch_triplet_loss, {"mining": "hard", "margin": 0.3}),
    "batch_triplet_semihard": (jaxloss.batch_triplet_loss,
                               {"mining": "semihard", "margin": 0.5}),
    "npair": (jaxloss.npair_loss, {}),
    "circle": (jaxloss.circle_loss, {"gamma": 16.0}),
    "multi_similarity": (jaxloss.multi_similarity_loss, {"beta": 10.0}),
}


def _brute_triplets(x, labels, margin, mining):
    """Per-anchor (sum, count, nonzero) by explicit loops over (a, p, n)."""
    x = _normalize(x.astype(np.float64))
    n = len(x)
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    sums, counts, nonzero = np.zeros(n), np.zeros(n), np.zeros(n)
    for a in range(n):
        pos = [p for p in range(n) if p != a and labels[p] == labels[a]]
        neg = [m for m in range(n) if labels[m] != labels[a]]
        if mining == "hard":
            if not pos or not neg:
                continue
            candidates = [(max(pos, key=lambda p: d[a, p]), min(neg, key=lambda m: d[a, m]))]
        else:
            candidates = list(itertools.product(pos, neg))
        for p, m in candidates:
            gap = d[a, m] - d[a, p]
            if mining == "semihard" and not (0 < gap <= margin):
                continue
            loss = max(d[a, p] - d[a, m] + margin, 0.0)
            sums[a] += loss
            counts[a] += 1
            nonzero[a] += loss > 0
    return sums, counts, nonzero


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 14), classes=st.integers(1, 5),
       mining=st.sampled_from(["all", "hard", "semihard"]),
       margin=st.floats(0.0, 1.0))
def test_batch_triplet_equals_brute_force(seed, n, classes, mining, margin):
    x, labels = _batch(seed, n=n, classes=classes)
    rng = np.random.default_rng(seed + 1)
    w = rng.uniform(0.1, 2.0, size=n).astype(np.float32)
    sums, counts, nonzero = _brute_triplets(x, labels, margin, mining)
    kw = dict(mining=mining, margin=margin, weights=w)
    none = jaxloss.batch_triplet_loss(x, labels, reduction="none", **kw)
    _close(none, w * sums, rtol=1e-4, atol=1e-5)
    total = np.sum(w * sums)
    _close(jaxloss.batch_triplet_loss(x, labels, reduction="sum", **kw), total,
           rtol=1e-4, atol=1e-5)
    for reduction, denominator in (("mean", counts), ("avg_non_zero", nonzero)):
        den = np.sum(w * denominator)
        want = total / den if den > 0 else 0.0
        _close(jaxloss.batch_triplet_loss(x, labels, reduction=reduction, **kw), want,
               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(BATCH_LOSSES))
@pytest.mark.parametrize("seed", [0, 1])
def test_where_equals_slicing_and_blocks_nan(name, seed):
    fn, kwargs = BATCH_LOSSES[name]
    x, labels = _batch(seed)
    keep = np.random.default_rng(seed + 7).random(len(x)) < 0.6
    keep[:2] = [True, False]
    reductions = ["mean", "sum"]
    if fn in (jaxloss.batch_triplet_loss, jaxloss.circle_loss):
        reductions.append("avg_non_zero")
    for reduction in reductions:
        _close(fn(x, labels, where=keep, reduction=reduction, **kwargs),
               fn(x[keep], labels[keep], reduction=reduction, **kwargs))
    _close(fn(x, labels, where=keep, reduction="none", **kwargs)[keep],
           fn(x[keep], labels[keep], reduction="none", **kwargs))
    poisoned = jnp.asarray(x).at[~keep].set(jnp.nan)
    value, grad = jax.value_and_grad(lambda e: fn(e, labels, where=keep, **kwargs))(poisoned)
    want, want_grad = jax.value_and_grad(lambda e: fn(e, labels[keep], **kwargs))(x[keep])
    _close(value, want)
    assert np.all(np.isfinite(np.asarray(grad)))
    assert np.all(np.asarray(grad)[~keep] == 0)
    _close(np.asarray(grad)[keep], want_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(BATCH_LOSSES))
def test_weights_scale_each_anchor(name):
    fn, kwargs = BATCH_LOSSES[name]
    x, labels = _batch(3)
    w = np.random.default_rng(0).uniform(0.0, 2.0, size=len(x)).astype(np.float32)
    none = fn(x, labels, reduction="none", **kwargs)
    _close(fn(x, labels, weights=w, reduction="none", **kwargs), w * np.asarray(none))
    _close(fn(x, labels, weights=w, reduction="sum", **kwargs), np.sum(w * np.asarray(none)),
           rtol=1e-5, atol=1e-5)


def test_multi_similarity_mean_is_over_all_rows_and_npair_over_anchors():
    x, labels = _batch(4)
    labels[0] = 7  # a singleton
    ms = jaxloss.multi_similarity_loss(x, labels, reduction="none")
    _close(jaxloss.multi_similarity_loss(x, labels), np.mean(ms))
    npair = np.asarray(jaxloss.npair_loss(x, labels, reduction="none"))
    anchors = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)
               if np.sum(labels == c) >= 2]
    assert set(np.flatnonzero(npair != 0)) <= set(anchors)
    _close(jaxloss.npair_loss(x, labels), np.sum(npair) / len(anchors))


def test_npair_brute_force_pairing():
    x, labels = _batch(5, n=10, classes=3)
    xn = _normalize(x.astype(np.float64))
    anchors, positives = [], []
    for c in sorted(set(labels)):
        rows = np.flatnonzero(labels == c)
        if len(rows) >= 2:
            anchors.append(rows[0])
            positives.append(rows[1])
    logits = xn[anchors] @ xn[positives].T
    lse = np.log(np.sum(np.exp(logits), axis=1))
    want = np.mean(lse - np.diag(logits))
    _close(jaxloss.npair_loss(x, labels), want)


def test_circle_and_multi_similarity_brute_force():
    x, labels = _batch(6, n=9)
    xn = _normalize(x.astype(np.float64))
    s = xn @ xn.T
    m, gamma = 0.3, 12.0
    alpha, beta, base = 2.0, 9.0, 0.4
    circle, ms, valid = [], [], []
    for i in range(len(x)):
        pos = [j for j in range(len(x)) if j != i and labels[j] == labels[i]]
        neg = [j for j in range(len(x)) if labels[j] != labels[i]]
        ms.append(np.log1p(sum(np.exp(-alpha * (s[i, j] - base)) for j in pos)) / alpha
                  + np.log1p(sum(np.exp(beta * (s[i, j] - base)) for j in neg)) / beta)
        if pos and neg:
            lp = sum(np.exp(-gamma * max(1 + m - s[i, j], 0) * (s[i, j] - 1 + m)) for j in pos)
            ln = sum(np.exp(gamma * max(s[i, j] + m, 0) * (s[i, j] - m)) for j in neg)
            circle.append(np.log1p(lp * ln))
            valid.append(True)
        else:
            circle.append(0.0)
            valid.append(False)
    _close(jaxloss.circle_loss(x, labels, margin=m, gamma=gamma, reduction="none"), circle)
    _close(jaxloss.circle_loss(x, labels, margin=m, gamma=gamma),
           np.sum(circle) / np.sum(valid))
    _close(jaxloss.multi_similarity_loss(x, labels, alpha=alpha, beta=beta, base=base,
                                         reduction="none"), ms)


def test_traced_hyperparameters_under_jit_and_their_gradients():
    x, labels = _batch(8)

    @jax.jit
    def losses(margin, gamma, alpha):
        return (jaxloss.batch_triplet_loss(x, labels, margin=margin, mining="semihard")
                + jaxloss.circle_loss(x, labels, margin=margin, gamma=gamma)
                + jaxloss.multi_similarity_loss(x, labels, alpha=alpha)
                + jaxloss.contrastive_loss(x, x[::-1], labels == labels[::-1], margin=margin)
                + jaxloss.triplet_margin_loss(x, x[::-1], x[1:].repeat(2, 0)[:12],
                                              margin=margin))

    eager = (jaxloss.batch_triplet_loss(x, labels, margin=0.4, mining="semihard")
             + jaxloss.circle_loss(x, labels, margin=0.4, gamma=20.0)
             + jaxloss.multi_similarity_loss(x, labels, alpha=3.0)
             + jaxloss.contrastive_loss(x, x[::-1], labels == labels[::-1], margin=0.4)
             + jaxloss.triplet_margin_loss(x, x[::-1], x[1:].repeat(2, 0)[:12], margin=0.4))
    _close(losses(jnp.float32(0.4), jnp.float32(20.0), jnp.float32(3.0)), eager)
    grads = jax.grad(losses, argnums=(0, 1, 2))(jnp.float32(0.4), jnp.float32(20.0),
                                                jnp.float32(3.0))
    assert all(np.isfinite(float(g)) for g in grads)


def test_errors():
    x, labels = _batch(0)
    with pytest.raises(ValueError, match="mining"):
        jaxloss.batch_triplet_loss(x, labels, mining="easy")
    with pytest.raises(ValueError, match="distance"):
        jaxloss.batch_triplet_loss(x, labels, distance="manhattan")
    with pytest.raises(ValueError, match="reduction"):
        jaxloss.batch_triplet_loss(x, labels, reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        jaxloss.npair_loss(x, labels, reduction="avg_non_zero")
    with pytest.raises(TypeError, match="labels"):
        jaxloss.circle_loss(x, labels.astype(np.float32))
    with pytest.raises(ValueError, match="labels"):
        jaxloss.multi_similarity_loss(x, labels[:-1])
    with pytest.raises(ValueError, match="gamma"):
        jaxloss.circle_loss(x, labels, gamma=0.0)
    with pytest.raises(ValueError, match="margin"):
        jaxloss.batch_triplet_loss(x, labels, margin=-0.1)


@pytest.mark.parametrize("mining", ["all", "semihard"])
@pytest.mark.parametrize("block_elements", [1, 7 * 13 * 13, 5 * 13 * 13])
def test_blocked_triplet_mining_equals_dense(monkeypatch, mining, block_elements):
    """Large batches go through checkpointed anchor blocks; small ones do not."""
    from jaxloss.metric import batch

    x, labels = _batch(9, n=13, classes=3)
    keep = np.arange(13) != 4

    def loss(e):
        return jaxloss.batch_triplet_loss(e, labels, mining=mining, margin=0.5, where=keep,
                                          reduction="avg_non_zero")

    dense_value, dense_grad = jax.value_and_grad(loss)(x)
    monkeypatch.setattr(batch, "_TRIPLET_BLOCK_ELEMENTS", block_elements)
    value, grad = jax.value_and_grad(loss)(x)
    _close(value, dense_value)
    _close(grad, dense_grad, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(dense_grad))))

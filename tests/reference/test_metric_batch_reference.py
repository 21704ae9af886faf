"""Batch-wide pair losses (mined triplets, N-pair, circle, multi-similarity) against
pytorch-metric-learning (2.9).

Expected values and gradients come from the reference libraries on the same
random inputs (torch 2.13 CPU, float32).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from pytorch_metric_learning import distances, losses, miners, reducers

import jaxloss
from tests.reference.test_metric_pairs_reference import (
    _close,
    _embeddings,
    _grad_close,
    _labels,
    _torch_value_and_grad,
)

# --------------------------------------------------------------------------------------
# batch_triplet_loss
# --------------------------------------------------------------------------------------


def _pml_triplet(mining, margin, distance, normalize, reducer=None):
    if distance == "cosine":
        dist = distances.CosineSimilarity()
    else:
        dist = distances.LpDistance(normalize_embeddings=normalize,
                                    power=2 if distance == "squared" else 1)
    kwargs = {} if reducer is None else {"reducer": reducer}
    loss = losses.TripletMarginLoss(margin=margin, distance=dist, **kwargs)
    if mining == "all":
        return lambda x, labels: loss(x, labels)
    if mining == "hard":
        miner = miners.BatchHardMiner(distance=dist)
    else:
        miner = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard",
                                          distance=dist)
    return lambda x, labels: loss(x, labels, miner(x, labels))


@pytest.mark.parametrize("mining", ["all", "hard", "semihard"])
@pytest.mark.parametrize("distance,normalize", [("euclidean", True), ("euclidean", False),
                                                ("squared", True), ("cosine", True)])
@pytest.mark.parametrize("n,d,classes", [(12, 6, 3), (31, 8, 5)])
def test_batch_triplet_matches_pml(mining, distance, normalize, n, d, classes):
    rng = np.random.default_rng(n * 7 + d)
    x = _embeddings(rng, n, d)
    labels = _labels(rng, n, classes)
    labels[-1] = classes + 3  # a row without positives
    margin = 0.2 if normalize or distance == "cosine" else 1.0
    # avg_non_zero is PML's default reducer; "mean" its MeanReducer (mean over the mined
    # triplets; for "hard" over the anchors that have a positive and a negative).
    for reduction, reducer in (("avg_non_zero", None), ("mean", reducers.MeanReducer())):
        ref = _pml_triplet(mining, margin, distance, normalize, reducer)
        want, (want_grad,) = _torch_value_and_grad(
            lambda t, ref=ref: ref(t, torch.as_tensor(labels)), x)

        def ours(e, reduction=reduction):
            return jaxloss.batch_triplet_loss(e, jnp.asarray(labels), margin=margin,
                                              mining=mining, distance=distance,
                                              normalize=normalize, reduction=reduction)

        got, got_grad = jax.value_and_grad(ours)(x)
        assert float(want) > 0
        _close(got, want)
        _grad_close(got_grad, want_grad)


@pytest.mark.parametrize("mining", ["all", "hard", "semihard"])
def test_batch_triplet_sum_and_none_against_pml_triplets(mining):
    # PML's SumReducer over the per-triplet losses equals reduction="sum".
    rng = np.random.default_rng(11)
    x = _embeddings(rng, 16, 5)
    labels = _labels(rng, 16, 4)
    margin = 0.3
    ref = _pml_triplet(mining, margin, "euclidean", True, reducers.SumReducer())
    want, (want_grad,) = _torch_value_and_grad(
        lambda t: ref(t, torch.as_tensor(labels)), x)
    got, got_grad = jax.value_and_grad(
        lambda e: jaxloss.batch_triplet_loss(e, jnp.asarray(labels), margin=margin,
                                             mining=mining, reduction="sum"))(x)
    _close(got, want)
    _grad_close(got_grad, want_grad)
    none = jaxloss.batch_triplet_loss(x, jnp.asarray(labels), margin=margin, mining=mining,
                                      reduction="none")
    _close(jnp.sum(none), want)


def test_batch_triplet_no_triplets_gives_zero():
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 3])
    for mining in ("all", "hard", "semihard"):
        want = losses.TripletMarginLoss()(torch.tensor(x), torch.tensor(labels))
        value, grad = jax.value_and_grad(
            lambda e, m=mining: jaxloss.batch_triplet_loss(e, labels, mining=m))(x)
        assert float(want) == 0.0 == float(value)
        assert np.all(np.asarray(grad) == 0)


# --------------------------------------------------------------------------------------
# npair_loss, circle_loss, multi_similarity_loss
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,d,classes", [(10, 4, 3), (33, 16, 6)])
@pytest.mark.parametrize("normalize", [True, False])
def test_npair_matches_pml(n, d, classes, normalize):
    rng = np.random.default_rng(n + classes)
    x = _embeddings(rng, n, d, scale=0.5)
    labels = _labels(rng, n, classes)
    labels[0] = classes + 1  # a singleton label
    loss = losses.NPairsLoss(distance=distances.DotProductSimilarity(
        normalize_embeddings=normalize))
    want, (want_grad,) = _torch_value_and_grad(
        lambda t: loss(t, torch.as_tensor(labels)), x)
    got, got_grad = jax.value_and_grad(
        lambda e: jaxloss.npair_loss(e, jnp.asarray(labels), normalize=normalize))(x)
    _close(got, want)
    _grad_close(got_grad, want_grad)


@pytest.mark.parametrize("n,d,classes", [(10, 4, 3), (33, 16, 6)])
@pytest.mark.parametrize("margin,gamma", [(0.4, 80.0), (0.25, 256.0), (0.1, 5.0)])
def test_circle_matches_pml(n, d, classes, margin, gamma):
    rng = np.random.default_rng(n * 3 + classes)
    x = _embeddings(rng, n, d)
    labels = _labels(rng, n, classes)
    labels[1] = classes + 2  # an anchor without positives
    loss = losses.CircleLoss(m=margin, gamma=gamma)
    want, (want_grad,) = _torch_value_and_grad(
        lambda t: loss(t, torch.as_tensor(labels)), x)
    for reduction in ("avg_non_zero", "mean"):
        got, got_grad = jax.value_and_grad(
            lambda e, r=reduction: jaxloss.circle_loss(e, jnp.asarray(labels), margin=margin,
                                                       gamma=gamma, reduction=r))(x)
        _close(got, want)
        _grad_close(got_grad, want_grad)


@pytest.mark.parametrize("n,d,classes", [(10, 4, 3), (33, 16, 6)])
@pytest.mark.parametrize("alpha,beta,base", [(2.0, 50.0, 0.5), (1.0, 10.0, 0.0),
                                             (5.0, 40.0, 0.8)])
def test_multi_similarity_matches_pml(n, d, classes, alpha, beta, base):
    rng = np.random.default_rng(n * 5 + classes)
    x = _embeddings(rng, n, d)
    labels = _labels(rng, n, classes)
    labels[2] = classes + 2
    loss = losses.MultiSimilarityLoss(alpha=alpha, beta=beta, base=base)
    want, (want_grad,) = _torch_value_and_grad(
        lambda t: loss(t, torch.as_tensor(labels)), x)
    got, got_grad = jax.value_and_grad(
        lambda e: jaxloss.multi_similarity_loss(e, jnp.asarray(labels), alpha=alpha,
                                                beta=beta, base=base))(x)
    _close(got, want)
    _grad_close(got_grad, want_grad)

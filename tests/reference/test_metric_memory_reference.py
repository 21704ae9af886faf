"""Ranking losses, reference sets and the cross-batch memory against pytorch-metric-learning.

References (PML 2.9, torch 2.13, float64; jaxloss in float32, rtol 1e-5, gradients at
their own scale): ``LiftedStructureLoss`` and ``FastAPLoss`` on random batches;
``TripletMarginLoss``, ``MultiSimilarityLoss``, ``CircleLoss``, ``NTXentLoss`` and
``SupConLoss`` called with ``ref_emb``/``ref_labels``; and ``CrossBatchMemory`` wrapped
around each of them, its memory set to the same contents as ours (a partly filled
memory and a full one that wraps around), value and gradient of the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from pytorch_metric_learning import losses

import jaxloss


def _close(actual, expected, rtol=1e-5):
    expected = np.asarray(expected, np.float64)
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol,
                               atol=rtol * max(float(np.max(np.abs(expected))), 1e-6))


def _torch_value_and_grad(loss_fn, x, *args, **kwargs):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    value = loss_fn(xt, *args, **kwargs)
    value.backward()
    return value.item(), xt.grad.numpy()


def _t(a, dtype=torch.float64):
    return torch.tensor(np.asarray(a), dtype=dtype)


# ------------------------------------------------------------------ lifted structure, FastAP

RANKING = [
    ("lifted_structure_loss", {}, lambda: losses.LiftedStructureLoss()),
    ("lifted_structure_loss", {"pos_margin": 0.2, "neg_margin": 0.5},
     lambda: losses.LiftedStructureLoss(neg_margin=0.5, pos_margin=0.2)),
    ("fast_ap_loss", {}, lambda: losses.FastAPLoss()),
    ("fast_ap_loss", {"num_bins": 4}, lambda: losses.FastAPLoss(num_bins=4)),
]


@pytest.mark.parametrize(("name", "kw", "pml"), RANKING)
def test_ranking_against_pml(name, kw, pml):
    rng = np.random.default_rng(7)
    fn = jax.jit(jax.value_and_grad(lambda x, y: getattr(jaxloss, name)(x, y, **kw)))
    for n, d, classes in [(8, 4, 3), (12, 6, 4)]:
        x = rng.normal(size=(n, d)).astype(np.float32)
        labels = rng.integers(0, classes, size=n).astype(np.int32)
        value, grad = _torch_value_and_grad(pml(), x, _t(labels, torch.int64))
        got, g = fn(x, labels)
        _close(got, value)
        _close(g, grad)


# ------------------------------------------------------------------ reference sets, memory

PAIR_LOSSES = [
    ("batch_triplet_loss", {"margin": 0.2, "reduction": "avg_non_zero"},
     lambda: losses.TripletMarginLoss(margin=0.2)),
    ("multi_similarity_loss", {}, lambda: losses.MultiSimilarityLoss()),
    ("circle_loss", {"gamma": 16.0, "reduction": "avg_non_zero"},
     lambda: losses.CircleLoss(gamma=16.0)),
    ("ntxent_loss", {"temperature": 0.2}, lambda: losses.NTXentLoss(temperature=0.2)),
    ("ntxent_loss", {"temperature": 0.2, "block_size": 3},
     lambda: losses.NTXentLoss(temperature=0.2)),
    ("supcon_loss", {"temperature": 0.2}, lambda: losses.SupConLoss(temperature=0.2)),
    ("supcon_loss", {"temperature": 0.2, "block_size": 4},
     lambda: losses.SupConLoss(temperature=0.2)),
]
_IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(PAIR_LOSSES)]


# the chunked (block_size) variants are exercised by the memory test below
@pytest.mark.parametrize(("name", "kw", "pml"),
                         [case for case in PAIR_LOSSES if "block_size" not in case[1]])
def test_ref_embeddings_against_pml(name, kw, pml):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(6, 5)).astype(np.float32)
    labels = rng.integers(0, 3, size=6).astype(np.int32)
    ref = rng.normal(size=(9, 5)).astype(np.float32)
    ref_labels = rng.integers(0, 3, size=9).astype(np.int32)
    value, grad = _torch_value_and_grad(pml(), x, _t(labels, torch.int64), ref_emb=_t(ref),
                                        ref_labels=_t(ref_labels, torch.int64))
    got, g = jax.value_and_grad(lambda a: getattr(jaxloss, name)(
        a, labels, ref_embeddings=ref, ref_labels=ref_labels, **kw))(x)
    _close(got, value)
    _close(g, grad)


def _pml_memory(pml_loss, contents, labels, position, filled_all, size, d):
    xbm = losses.CrossBatchMemory(pml_loss, d, memory_size=size)
    xbm.embedding_memory = _t(contents)
    xbm.label_memory = _t(labels, torch.int64)
    xbm.queue_idx = position
    xbm.has_been_filled = filled_all
    return xbm


@pytest.mark.parametrize(("name", "kw", "pml"), PAIR_LOSSES, ids=_IDS)
def test_cross_batch_memory_against_pml(name, kw, pml):
    rng = np.random.default_rng(5)
    size, d, n = 10, 4, 4
    contents = rng.normal(size=(size, d)).astype(np.float32)
    memory_labels = rng.integers(0, 3, size=size).astype(np.int32)
    fn = getattr(jaxloss, name)

    @jax.jit
    def ours(memory, x, labels):
        def loss(a):
            updated = memory.update(a, labels)
            return fn(a, labels, **updated.references(n), **kw), updated

        return jax.value_and_grad(loss, has_aux=True)(x)

    # a partly filled memory (5 of 10 slots), then a full one whose write wraps around
    for position, filled_all in [(5, False), (8, True)]:
        x = rng.normal(size=(n, d)).astype(np.float32)
        labels = rng.integers(0, 3, size=n).astype(np.int32)
        xbm = _pml_memory(pml(), contents, memory_labels, position, filled_all, size, d)
        value, grad = _torch_value_and_grad(xbm, x, _t(labels, torch.int64))
        memory = jaxloss.CrossBatchMemory(
            jnp.asarray(contents), jnp.asarray(memory_labels),
            jnp.asarray(np.arange(size) < (size if filled_all else position)),
            jnp.full((size,), -1, jnp.int32), jnp.asarray(position, jnp.int32))
        (got, updated), g = ours(memory, x, labels)
        _close(got, value)
        _close(g, grad)
        # the same memory contents afterwards
        _close(updated.embeddings, xbm.embedding_memory.numpy())
        np.testing.assert_array_equal(updated.labels, xbm.label_memory.numpy())
        assert int(updated.position) == xbm.queue_idx

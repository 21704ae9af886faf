"""Proxy losses, ranking losses, reference sets and the cross-batch memory: errors, NaN
under jit for bad labels, ``ref_where`` semantics and the memory carried by a jitted step.
(Values and gradients against PML: tests/reference/test_metric_proxies_reference.py and
test_metric_memory_reference.py.)"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 4)).astype(np.float32)
LABELS = np.array([0, 1, 2, 0, 1, 2], np.int32)
PROXIES = RNG.normal(size=(4, 3)).astype(np.float32)
REF = RNG.normal(size=(5, 4)).astype(np.float32)
REF_LABELS = np.array([0, 1, 1, 2, 0], np.int32)


@pytest.mark.parametrize("name", ["proxy_anchor_loss", "proxy_nca_loss",
                                  "normalized_softmax_loss"])
def test_proxies_in_the_wrong_layout(name):
    with pytest.raises(ValueError, match=r"\(d, classes\).*\.T"):
        getattr(jaxloss, name)(X, LABELS, PROXIES.T)


def test_bad_inputs():
    with pytest.raises(ValueError, match="centers_per_class"):
        jaxloss.soft_triple_loss(X, LABELS, PROXIES, centers_per_class=2)
    with pytest.raises(ValueError, match="alpha"):
        jaxloss.proxy_anchor_loss(X, LABELS, PROXIES, alpha=0.0)
    with pytest.raises(ValueError, match="labels"):
        jaxloss.proxy_nca_loss(X, LABELS + 1, PROXIES)  # label 3 with C = 3
    with pytest.raises(TypeError, match="num_bins"):
        jaxloss.fast_ap_loss(X, LABELS, num_bins=2.5)
    with pytest.raises(ValueError, match="ref_labels"):
        jaxloss.supcon_loss(X, LABELS, ref_embeddings=REF)
    with pytest.raises(ValueError, match="ref_where"):
        jaxloss.circle_loss(X, LABELS, ref_embeddings=REF, ref_labels=REF_LABELS,
                            ref_where=np.ones((6, 4), bool))
    with pytest.raises(ValueError, match="ref_embeddings"):
        jaxloss.batch_triplet_loss(X, LABELS, ref_embeddings=REF[:, :3], ref_labels=REF_LABELS)
    with pytest.raises(ValueError, match="two-view"):
        jaxloss.ntxent_loss(X, X, ref_embeddings=REF, ref_labels=REF_LABELS)
    memory = jaxloss.CrossBatchMemory.init(4, 4)
    with pytest.raises(ValueError, match="does not fit"):
        memory.update(X, LABELS)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        jaxloss.CrossBatchMemory.init(8, 4).update(X[:, :3], LABELS)


def test_out_of_range_label_is_nan_under_jit():
    bad = LABELS.copy()
    bad[2] = 3
    for name in ("proxy_anchor_loss", "proxy_nca_loss", "soft_triple_loss",
                 "normalized_softmax_loss"):
        kw = {"centers_per_class": 1} if name == "soft_triple_loss" else {}
        fn = getattr(jaxloss, name)
        rows = jax.jit(lambda x, y, w, fn=fn, kw=kw: fn(x, y, w, reduction="none", **kw))(
            X, bad, PROXIES)
        assert np.isnan(rows[2]) and np.all(np.isfinite(np.delete(np.asarray(rows), 2))), name


def test_ref_where_of_the_references_equals_slicing_them():
    use = np.array([True, False, True, True, False])
    for name in ("multi_similarity_loss", "supcon_loss"):
        fn = getattr(jaxloss, name)
        masked, sliced = jax.jit(lambda fn=fn: (
            fn(X, LABELS, ref_embeddings=REF, ref_labels=REF_LABELS, ref_where=use),
            fn(X, LABELS, ref_embeddings=REF[use], ref_labels=REF_LABELS[use])))()
        np.testing.assert_allclose(masked, sliced, rtol=1e-6, err_msg=name)


def test_memory_carried_by_a_jitted_step():
    """A scan of train steps carries the memory: the ring buffer wraps, ``where`` rows are
    not enqueued, gradients reach the batch only, and the loss is finite from step 0."""
    memory = jaxloss.CrossBatchMemory.init(7, 4)
    batches = RNG.normal(size=(5, 3, 4)).astype(np.float32)
    labels = RNG.integers(0, 2, size=(5, 3)).astype(np.int32)
    enqueue = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1], [0, 0, 1], [1, 1, 1]], bool)

    def step(memory, batch):
        x, y, keep = batch

        def loss(x):
            updated = memory.update(x, y, where=keep)
            return jaxloss.supcon_loss(x, y, **updated.references(3)), updated

        (value, updated), grad = jax.value_and_grad(loss, has_aux=True)(x)
        return updated, (value, grad)

    final, (values, grads) = jax.jit(lambda m, b: jax.lax.scan(step, m, b))(
        memory, (batches, labels, enqueue))
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(grads))
    assert int(final.position) == int(enqueue.sum()) % 7
    assert bool(jnp.all(final.filled))
    # the last 7 enqueued rows, in ring order
    rows = batches[enqueue]
    slots = np.arange(len(rows)) % 7
    expected = np.zeros((7, 4), np.float32)
    expected[slots] = rows  # later writes win
    np.testing.assert_array_equal(final.embeddings, expected)
    source = np.full(7, -1)
    source[slots[-3:]] = [0, 1, 2]  # the last batch enqueued all its rows
    np.testing.assert_array_equal(final.source, source)

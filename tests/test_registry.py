"""The registry: lookup, families, user registration with the shared reduction path."""

from __future__ import annotations

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss


def test_names_sorted_and_filtered():
    everything = jaxloss.names()
    assert everything == sorted(everything)
    regression = jaxloss.names(family="regression")
    assert "mse_loss" in regression and "mse_loss" in everything
    assert all(jaxloss.registry.family_of(n) == "regression" for n in regression)
    with pytest.raises(ValueError, match="family"):
        jaxloss.names(family="nonsense")


def test_get_binds_hyperparameters_and_rejects_unknown():
    fn = jaxloss.get("mse_loss", reduction="sum")
    assert float(fn(jnp.array([1.0, 2.0]), jnp.zeros(2))) == 5.0
    with pytest.raises(TypeError, match="nonsense"):
        jaxloss.get("mse_loss", nonsense=1.0)
    with pytest.raises(KeyError, match="mse_loss"):
        jaxloss.get("mse_los")


def test_register_gives_reduction_where_weights():
    @jaxloss.register(name="test_l4_loss", overwrite=True)
    def l4(predictions, targets, *, scale=1.0):
        return scale * (predictions - targets) ** 4

    try:
        p = jnp.array([[1.0, 2.0], [0.0, 3.0]])
        t = jnp.zeros((2, 2))
        expected = np.array([[1.0, 16.0], [0.0, 81.0]])
        np.testing.assert_allclose(l4(p, t, reduction="none"), expected)
        np.testing.assert_allclose(l4(p, t, reduction="sum"), expected.sum())
        np.testing.assert_allclose(l4(p, t), expected.mean())
        mask = jnp.array([[True, False], [True, True]])
        np.testing.assert_allclose(l4(p, t, where=mask), (1 + 0 + 81) / 3)
        w = jnp.array([[2.0, 1.0], [1.0, 0.0]])
        np.testing.assert_allclose(l4(p, t, weights=w), (2 + 16 + 0 + 0) / 4)
        assert float(l4(p, t, where=jnp.zeros((2, 2), bool))) == 0.0
        assert "test_l4_loss" in jaxloss.names(family="custom")
        assert float(jaxloss.get("test_l4_loss", scale=2.0)(p, t, reduction="sum")) == 196.0
        grad = jax.jit(jax.grad(lambda x: l4(x, t, where=mask)))(p)
        np.testing.assert_allclose(grad, 4 * p**3 * mask.astype(jnp.float32) / 3, rtol=1e-6)
        with pytest.raises(ValueError, match="reduction"):
            l4(p, t, reduction="avg")
    finally:
        jaxloss.unregister("test_l4_loss")
    assert "test_l4_loss" not in jaxloss.names()


def test_register_refuses_builtin_and_duplicate_names():
    with pytest.raises(ValueError, match="built-in"):
        jaxloss.register(lambda p, t: p - t, name="mse_loss")
    jaxloss.register(lambda p, t: p - t, name="test_dup_loss")
    try:
        with pytest.raises(ValueError, match="already registered"):
            jaxloss.register(lambda p, t: p - t, name="test_dup_loss")
    finally:
        jaxloss.unregister("test_dup_loss")
    with pytest.raises(ValueError, match="built-in"):
        jaxloss.unregister("mse_loss")


# ----------------------------------------------------------------------------- families


def test_families_include_the_designed_ones_and_builtin_rejects_others():
    assert {"keypoint", "geometry"} <= set(jaxloss.registry.FAMILIES)
    with pytest.raises(ValueError, match="family must be one of"):
        jaxloss.registry._builtin("keypoints")


# ----------------------------------------------------------------------------- user shapes


def test_register_refuses_silent_broadcasting_of_predictions_and_targets():
    @jaxloss.register(name="test_sq_loss", overwrite=True)
    def squared(predictions, targets, *, scale=1.0):
        return scale * (predictions - targets) ** 2

    try:
        p, t = jnp.arange(4.0), jnp.zeros((4, 1))
        message = r"test_sq_loss.*same shape; got \(4,\) and \(4, 1\).*elementwise=False"
        with pytest.raises(ValueError, match=message):
            squared(p, t)
        with pytest.raises(ValueError, match="same shape"):
            jax.jit(squared)(p, t)  # at trace time
        with pytest.raises(ValueError, match="same shape"):
            squared(p, targets=t)  # targets by keyword
        with pytest.raises(ValueError, match="same shape"):
            jaxloss.get("test_sq_loss", scale=2.0)(p, t)
        # equal shapes and scalar targets are fine
        assert float(squared(p, jnp.zeros(4), reduction="sum")) == 14.0
        assert float(squared(p, 0.0, reduction="sum")) == 14.0
    finally:
        jaxloss.unregister("test_sq_loss")


def test_register_elementwise_false_takes_arrays_of_different_shapes():
    @jaxloss.register(name="test_nll_loss", elementwise=False, overwrite=True)
    def nll(logits, labels):
        log_probs = jax.nn.log_softmax(logits)
        return -jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]

    try:
        logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
        labels = jnp.array([0, 1])
        expected = -jax.nn.log_softmax(logits)[jnp.arange(2), labels]
        chex.assert_trees_all_close(nll(logits, labels, reduction="none"), expected)
        chex.assert_trees_all_close(nll(logits, labels), jnp.mean(expected))
    finally:
        jaxloss.unregister("test_nll_loss")
    with pytest.raises(TypeError, match="elementwise must be a bool"):
        jaxloss.register(lambda p, t: p - t, name="test_bad_loss", elementwise="yes")


# ----------------------------------------------------------------------------- PyTorch keywords


TORCH_KEYWORDS = [
    ("cross_entropy_loss", {"weight": jnp.ones(3)}, r"weights=.*class_weights="),
    ("mse_loss", {"weight": 2.0}, r"weight= is PyTorch's spelling: jaxloss takes weights="),
    ("arcface_loss", {"weight": 1.0}, r"weights=.*class matrix is the positional argument kernel"),
    ("cross_entropy_loss", {"target": 0}, r"pass the targets positionally, as the second "
                                          r"array, targets"),
    ("mse_loss", {"input": 0}, r"pass the predictions positionally, as the first array, "
                               r"predictions"),
    ("mse_loss", {"size_average": True}, r"deprecated PyTorch argument; use reduction="),
    ("huber_loss", {"reduce": False}, r"deprecated PyTorch argument; use reduction="),
    ("mse_loss", {"ignore_index": -100}, r"no ignore_index=.*where="),
    ("cross_entropy_loss", {"dim": 1}, r"dim= is PyTorch's spelling of axis="),
    ("mse_loss", {"sample_weight": 1.0}, r"Keras's spelling of weights="),
    ("huber_loss", {"detla": 1.0}, r"Did you mean delta="),
]


@pytest.mark.parametrize(("name", "keywords", "match"), TORCH_KEYWORDS)
def test_pytorch_keywords_name_the_jaxloss_spelling(name, keywords, match):
    fn = getattr(jaxloss, name)
    with pytest.raises(TypeError, match=match) as raised:
        fn(jnp.zeros((2, 3)), jnp.zeros((2, 3)), **keywords)  # raised before the loss runs
    assert f"{name}() got unexpected keyword argument(s) {sorted(keywords)}" in str(raised.value)
    with pytest.raises(TypeError, match=match):
        jaxloss.get(name, **keywords)


def test_batchmean_is_spelled_mean():
    p = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match=r"kl_divergence_loss's reduction=\"mean\" already is "
                                         "batchmean"):
        jaxloss.kl_divergence_loss(p, jax.nn.softmax(p), reduction="batchmean")
    with pytest.raises(ValueError, match="already is batchmean"):
        jaxloss.get("kl_divergence_loss", reduction="batchmean")
    with pytest.raises(ValueError, match=r"use reduction=\"mean\""):
        jaxloss.mse_loss(p, p, reduction="batchmean")
    with pytest.raises(ValueError, match="Keras's spelling of \"mean\""):
        jaxloss.mse_loss(p, p, reduction="sum_over_batch_size")
    jaxloss.register(lambda p, t: p - t, name="test_batchmean_loss", overwrite=True)
    try:
        with pytest.raises(ValueError, match=r"use reduction=\"mean\""):
            jaxloss.get("test_batchmean_loss")(p, p, reduction="batchmean")
    finally:
        jaxloss.unregister("test_batchmean_loss")


@pytest.mark.parametrize("name", sorted(jaxloss.registry._BUILTIN))
def test_builtin_wrapper_keeps_the_signature_and_accepts_every_parameter(name):
    fn = jaxloss.get(name)
    assert fn is getattr(jaxloss, name)
    original = inspect.unwrap(fn)
    assert original is not fn and inspect.signature(fn) == inspect.signature(original)
    assert fn.__name__ == name and fn.__doc__  # (metric sets two docstrings on the wrapper)
    params = inspect.signature(original).parameters
    jaxloss.registry._KEYWORD_CHECKS[name]({n: None for n in params})  # no false positive

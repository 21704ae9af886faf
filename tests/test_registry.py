"""The registry: lookup, families, user registration with the shared reduction path."""

from __future__ import annotations

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

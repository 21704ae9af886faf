"""The shared reduction path and validation helpers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jaxloss import _checks, _numerics
from jaxloss._reduce import mask_inputs, reduce_loss

_values = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                     elements=st.floats(-1e3, 1e3, width=32))


@settings(max_examples=50, deadline=None)
@given(_values, st.data())
def test_weighted_mean_over_selected(values, data):
    mask = data.draw(hnp.arrays(np.bool_, values.shape))
    weights = data.draw(hnp.arrays(np.float32, values.shape, elements=st.floats(0, 10, width=32)))
    got = reduce_loss(jnp.asarray(values), reduction="mean", where=mask, weights=weights)
    num = np.sum(values.astype(np.float64) * weights * mask)
    den = np.sum(weights.astype(np.float64) * mask)
    expected = num / den if den > 0 else 0.0
    np.testing.assert_allclose(float(got), expected, rtol=1e-4, atol=1e-3)
    total = reduce_loss(jnp.asarray(values), reduction="sum", where=mask, weights=weights)
    np.testing.assert_allclose(float(total), num, rtol=1e-4, atol=1e-2)
    none = reduce_loss(jnp.asarray(values), reduction="none", where=mask, weights=weights)
    np.testing.assert_allclose(np.asarray(none), values * weights * mask, rtol=1e-6, atol=1e-30)


@settings(max_examples=30, deadline=None)
@given(_values)
def test_masking_equals_slicing(values):
    mask = np.zeros(values.shape, bool)
    mask.flat[::2] = True
    got = reduce_loss(jnp.asarray(values), reduction="mean", where=mask)
    np.testing.assert_allclose(float(got), values[mask].astype(np.float64).mean(), rtol=1e-5,
                               atol=1e-4)


def test_empty_selection_is_zero_with_zero_gradient():
    x = jnp.array([1.0, 2.0, 3.0])
    mask = jnp.zeros(3, bool)
    value, grad = jax.value_and_grad(lambda v: reduce_loss(v**2, reduction="mean", where=mask))(x)
    assert float(value) == 0.0
    assert np.all(np.asarray(grad) == 0)
    # With the inputs sanitised first (the double-where), an inf there cannot leak either.
    poisoned = jnp.array([1.0, jnp.inf, 3.0])
    mask = jnp.array([True, False, True])

    def loss(v):
        (v,) = mask_inputs(mask, v)
        return reduce_loss(v**2, reduction="mean", where=mask)

    value, grad = jax.value_and_grad(loss)(poisoned)
    assert float(value) == 5.0
    np.testing.assert_array_equal(np.asarray(grad), [1.0, 0.0, 3.0])
    assert float(reduce_loss(jnp.zeros((0,)), reduction="mean")) == 0.0


def test_normalizer_divides_mean():
    values = jnp.array([1.0, 2.0, 3.0])
    got = reduce_loss(values, reduction="mean", normalizer=jnp.array([1.0, 2.0, 1.0]))
    assert float(got) == pytest.approx(6.0 / 4.0)


def test_half_dtype_returned():
    out = reduce_loss(jnp.ones(4, jnp.float32), reduction="mean", dtype=jnp.bfloat16)
    assert out.dtype == jnp.bfloat16


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="reduction"):
        reduce_loss(jnp.ones(3), reduction="avg")
    with pytest.raises(ValueError, match="where"):
        reduce_loss(jnp.ones((2, 3)), reduction="mean", where=jnp.ones((3, 2), bool))
    with pytest.raises(ValueError, match="weights"):
        reduce_loss(jnp.ones((2, 3)), reduction="mean", weights=jnp.ones((2, 3, 1)))
    with pytest.raises(TypeError, match="predictions"):
        _checks.float_input(jnp.ones(3, jnp.int32), "predictions")
    with pytest.raises(ValueError, match=r"targets has shape \(3, 1\)"):
        _checks.elementwise_pair(jnp.ones(3), jnp.ones((3, 1)))
    with pytest.raises(ValueError, match="gamma"):
        _checks.check_range(-1.0, "gamma", low=0.0)
    with pytest.raises(ValueError, match=r"label_smoothing must lie in \[0"):
        _checks.check_range(1.5, "label_smoothing", low=0.0, high=1.0)


def test_range_check_skips_traced_values():
    def f(g):
        _checks.check_range(g, "gamma", low=0.0)
        return g * 2

    assert float(jax.jit(f)(-1.0)) == -2.0


def test_safe_helpers_have_finite_gradients():
    zero = jnp.zeros(())
    for fn in (_numerics.safe_sqrt, lambda x: _numerics.safe_pow(x, 0.5),
               lambda x: _numerics.safe_log(x, -100.0), lambda x: _numerics.xlogy(x, x),
               lambda x: _numerics.safe_div(x, x)):
        value, grad = jax.value_and_grad(fn)(zero)
        assert np.isfinite(float(value)) and np.isfinite(float(grad))
    assert float(_numerics.x_times(zero, jnp.asarray(-jnp.inf))) == 0.0
    np.testing.assert_array_equal(
        _numerics.one_hot(jnp.array([0, 2, 5]), 3, jnp.float32),
        np.array([[1, 0, 0], [0, 0, 1], [0, 0, 0]], np.float32))


def test_compute_dtype_promotes_mixed_floats_under_strict_promotion():
    f32, bf16, f16 = (jnp.ones(2, d) for d in (jnp.float32, jnp.bfloat16, jnp.float16))
    assert _checks.compute_dtype(f32, bf16) == (jnp.float32, jnp.float32)
    assert _checks.compute_dtype(bf16, f16) == (jnp.float32, jnp.float32)
    assert _checks.compute_dtype(bf16, bf16) == (jnp.float32, jnp.bfloat16)

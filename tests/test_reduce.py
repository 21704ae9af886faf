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
from jaxloss._reduce import mask_inputs, mask_rows, reduce_loss, rows_kept

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


def test_safe_sqrt_keeps_nan_and_zeroes_roundoff_negatives():
    x = jnp.array([jnp.nan, -1e-12, 0.0, 4.0])
    out = _numerics.safe_sqrt(x)
    # a NaN argument is not a small square: it must not become a plausible 0
    assert bool(jnp.isnan(out[0]))
    np.testing.assert_array_equal(np.asarray(out[1:]), [0.0, 0.0, 2.0])
    grads = jax.grad(lambda v: _numerics.safe_sqrt(v).sum())(x[1:])
    np.testing.assert_array_equal(np.asarray(grads), [0.0, 0.0, 0.25])


def test_compute_dtype_promotes_mixed_floats_under_strict_promotion():
    f32, bf16, f16 = (jnp.ones(2, d) for d in (jnp.float32, jnp.bfloat16, jnp.float16))
    assert _checks.compute_dtype(f32, bf16) == (jnp.float32, jnp.float32)
    assert _checks.compute_dtype(bf16, f16) == (jnp.float32, jnp.float32)
    assert _checks.compute_dtype(bf16, bf16) == (jnp.float32, jnp.bfloat16)


# --------------------------------------------------------------------------------------
# Leading-axis masks, axis_name and avg_non_zero: one path for every family.
# --------------------------------------------------------------------------------------


def test_leading_where_masks_whole_rows():
    values = jnp.arange(24.0).reshape(2, 3, 4)
    rows = jnp.array([True, False])
    got = reduce_loss(values, reduction="mean", where=rows, align="leading")
    np.testing.assert_allclose(float(got), float(jnp.mean(values[0])))
    per_instance = jnp.array([[True, False, True], [False, False, True]])
    got = reduce_loss(values, reduction="sum", where=per_instance, align="leading")
    kept = jnp.where(per_instance[..., None], values, 0.0)
    np.testing.assert_allclose(float(got), float(jnp.sum(kept)))
    # The same (2,) mask under trailing alignment cannot broadcast to (2, 3, 4).
    with pytest.raises(ValueError, match="does not broadcast"):
        reduce_loss(values, reduction="mean", where=rows)


def test_mask_rows_is_a_double_where():
    x = jnp.array([[1.0, 2.0], [jnp.nan, jnp.inf]])
    keep = jnp.array([True, False])

    def loss(x):
        (clean,) = mask_rows(keep, x)
        return reduce_loss(jnp.sqrt(clean) * 3, reduction="mean", where=keep, align="leading")

    value, grad = jax.value_and_grad(loss)(x)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_array_equal(np.asarray(grad)[1], 0.0)


def test_rows_kept_combines_where_and_nonzero_weights():
    kept = rows_kept(jnp.array([True, True, False]), jnp.array([1.0, 0.0, 2.0]), (3,))
    np.testing.assert_array_equal(np.asarray(kept), [True, False, False])
    assert rows_kept(None, None, (3,)) is None


def test_avg_non_zero_is_a_normaliser_of_the_same_path():
    values = jnp.array([0.0, 2.0, 0.0, 4.0, 3.0])
    keep = jnp.array([True, True, True, True, False])
    got = reduce_loss(values, reduction="avg_non_zero", where=keep,
                      reductions=_checks.NON_ZERO_REDUCTIONS)
    np.testing.assert_allclose(float(got), 3.0)  # (2 + 4) / 2 positive, selected entries
    zeros = reduce_loss(jnp.zeros(3), reduction="avg_non_zero",
                        reductions=_checks.NON_ZERO_REDUCTIONS)
    assert float(zeros) == 0.0
    # A loss that does not offer it rejects it like any unknown reduction.
    with pytest.raises(ValueError, match="avg_non_zero"):
        reduce_loss(values, reduction="avg_non_zero")


def test_pytorch_reduction_names_get_the_jaxloss_spelling():
    with pytest.raises(ValueError, match=r'batchmean.*reduction="mean"'):
        reduce_loss(jnp.ones(3), reduction="batchmean")


def test_axis_name_psums_sum_and_count():
    values = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    where = jnp.array([[True, True, False], [True, False, False]])

    def per_device(v, w):
        return reduce_loss(v, reduction="mean", where=w, axis_name="d")

    got = jax.vmap(per_device, axis_name="d")(values, where)
    expected = float(jnp.sum(jnp.where(where, values, 0.0))) / float(jnp.sum(where))
    np.testing.assert_allclose(np.asarray(got), [expected, expected], rtol=1e-6)
    total = jax.vmap(lambda v: reduce_loss(v, reduction="sum", axis_name="d"),
                     axis_name="d")(values)
    np.testing.assert_allclose(np.asarray(total), [21.0, 21.0])

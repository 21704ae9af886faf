"""Properties and error messages of the hinge, divergence and noise-robust losses.

Agreement with the reference libraries is in
tests/reference/test_classification_robust_reference.py; the shared battery
(tests/test_battery.py) covers jit/vmap/dtypes/extremes/where/weights.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss

SETTINGS = settings(max_examples=25, deadline=None)
LOG_RCE = math.log(1e-4)


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _draw(seed: int, rows: int = 6, classes: int = 5, scale: float = 3.0):
    rng = np.random.default_rng(seed)
    logits = (scale * rng.normal(size=(rows, classes))).astype(np.float32)
    labels = rng.integers(0, classes, size=(rows,)).astype(np.int32)
    return logits, labels


seeds = st.integers(0, 2**31 - 1)
scales = st.sampled_from([0.1, 1.0, 5.0, 30.0])


# ------------------------------------------------------------------------ hinge


@SETTINGS
@given(seed=seeds, scale=scales)
def test_hinge_label_encodings_agree_and_square(seed, scale):
    rng = np.random.default_rng(seed)
    y = (scale * rng.normal(size=(4, 3))).astype(np.float32)
    t01 = rng.integers(0, 2, size=(4, 3))
    signed = (2 * t01 - 1).astype(np.float32)
    expected = np.maximum(0.0, 1.0 - signed * y)
    for t in (t01.astype(np.int32), t01.astype(bool), t01.astype(np.float32), signed):
        _close(jaxloss.hinge_loss(y, t, reduction="none"), expected)
        _close(jaxloss.squared_hinge_loss(y, t, reduction="none"), expected**2, rtol=2e-5)


def test_hinge_gradient_zero_at_kink_and_beyond():
    y = jnp.array([1.0, 2.0, -1.0, 0.5])
    t = jnp.array([1.0, 1.0, -1.0, 1.0])
    grad = jax.grad(lambda z: jaxloss.hinge_loss(z, t, reduction="sum"))(y)
    _close(grad, [0.0, 0.0, 0.0, -1.0])
    grad = jax.grad(lambda z: jaxloss.squared_hinge_loss(z, t, reduction="sum"))(y)
    _close(grad, [0.0, 0.0, 0.0, -1.0])


@pytest.mark.parametrize("loss", [jaxloss.hinge_loss, jaxloss.squared_hinge_loss])
def test_hinge_errors(loss):
    y = jnp.zeros((3,))
    with pytest.raises(ValueError, match="targets"):
        loss(y, jnp.array([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="targets"):
        loss(y, jnp.array([0.5, 1.0, 0.0]))
    with pytest.raises(ValueError, match="targets"):
        loss(y, jnp.ones((3, 1)))
    with pytest.raises(TypeError, match="predictions"):
        loss(jnp.zeros((3,), jnp.int32), jnp.ones((3,)))
    # Under jit the values are unknown and not checked; legal values still work.
    _close(jax.jit(loss)(y, jnp.array([1, 0, 1])), 1.0)


# ------------------------------------------------------------- multiclass hinge


@SETTINGS
@given(seed=seeds, scale=scales, p=st.sampled_from([1, 2]))
def test_multiclass_hinge_moveaxis_and_matches_loop_formula(seed, scale, p):
    logits, labels = _draw(seed, scale=scale)
    expected = np.zeros(len(labels))
    for i, (row, y) in enumerate(zip(logits.astype(np.float64), labels, strict=True)):
        for j in range(row.size):
            if j != y:
                expected[i] += max(0.0, 0.8 - row[y] + row[j]) ** p / row.size
    _close(jaxloss.multiclass_hinge_loss(logits, labels, margin=0.8, p=p, reduction="none"),
           expected, rtol=1e-5, atol=1e-5 * scale**p)
    _close(jaxloss.multiclass_hinge_loss(logits.T, labels, margin=0.8, p=p, axis=0,
                                         reduction="none"),
           jaxloss.multiclass_hinge_loss(logits, labels, margin=0.8, p=p, reduction="none"))


def test_multiclass_hinge_zero_when_target_leads_by_margin():
    logits = jnp.array([[3.0, 1.0, 0.5], [0.0, 2.0, 1.0]])
    _close(jaxloss.multiclass_hinge_loss(logits, jnp.array([0, 1]), reduction="none"), [0, 0])


def test_multiclass_hinge_traced_margin():
    logits, labels = _draw(1)
    loss = jax.jit(lambda m: jaxloss.multiclass_hinge_loss(logits, labels, margin=m))
    _close(loss(0.5), jaxloss.multiclass_hinge_loss(logits, labels, margin=0.5))
    assert np.isfinite(float(jax.grad(loss)(0.5)))


def test_multiclass_hinge_errors():
    logits, labels = _draw(2)
    with pytest.raises(TypeError, match="targets"):
        jaxloss.multiclass_hinge_loss(logits, jax.nn.one_hot(labels, 5))
    with pytest.raises(TypeError, match="targets"):
        jaxloss.multiclass_hinge_loss(logits, labels.astype(np.float32))
    with pytest.raises(ValueError, match="p"):
        jaxloss.multiclass_hinge_loss(logits, labels, p=3)
    with pytest.raises(ValueError, match="margin"):
        jaxloss.multiclass_hinge_loss(logits, labels, margin=-1.0)
    with pytest.raises(ValueError, match="class_weights"):
        jaxloss.multiclass_hinge_loss(logits, labels, class_weights=jnp.ones((4,)))
    with pytest.raises(ValueError, match="targets"):
        jaxloss.multiclass_hinge_loss(logits, np.where(np.arange(6) == 0, 5, labels))
    with pytest.raises(ValueError, match="targets"):
        jaxloss.multiclass_hinge_loss(logits, labels[:5])
    with pytest.raises(TypeError, match="logits"):
        jaxloss.multiclass_hinge_loss(logits.astype(np.int32), labels)


# ------------------------------------------------------------------ divergences


def _softmax(x):
    return np.asarray(jax.nn.softmax(jnp.asarray(x, jnp.float32), axis=-1))


@SETTINGS
@given(seed=seeds, scale=scales)
def test_kl_properties(seed, scale):
    logits, _ = _draw(seed, scale=scale)
    targets, _ = _draw(seed + 1, scale=scale)
    t = _softmax(targets)
    kl = jaxloss.kl_divergence_loss(logits, t, reduction="none")
    assert np.all(np.asarray(kl) >= -1e-5)
    # From probabilities (not floored at these scales' probabilities) equals from logits.
    q = _softmax(logits)
    if q.min() > 1e-30:
        _close(jaxloss.kl_divergence_loss(q, t, from_logits=False, reduction="none"), kl,
               rtol=1e-4, atol=1e-4)
    # Zero at the target distribution (log 0 = -inf logits are legal: masked classes).
    with np.errstate(divide="ignore"):
        log_t = np.log(t)
    _close(jaxloss.kl_divergence_loss(log_t, t, reduction="none"), np.zeros(6), atol=2e-5)


@SETTINGS
@given(seed=seeds, scale=scales)
def test_js_properties(seed, scale):
    a, _ = _draw(seed, scale=scale)
    b, _ = _draw(seed + 1, scale=scale)
    p, t = _softmax(a), _softmax(b)
    js = jaxloss.js_divergence_loss(p, t, from_logits=False, reduction="none")
    _close(js, jaxloss.js_divergence_loss(t, p, from_logits=False, reduction="none"), atol=1e-6)
    assert np.all(np.asarray(js) >= -1e-6) and np.all(np.asarray(js) <= math.log(2) + 1e-6)
    _close(jaxloss.js_divergence_loss(a, t, reduction="none"),
           jaxloss.js_divergence_loss(_softmax(a), t, from_logits=False, reduction="none"),
           rtol=1e-4, atol=1e-5)
    _close(jaxloss.js_divergence_loss(p, p, from_logits=False, reduction="none"),
           np.zeros(6), atol=1e-6)


def test_js_disjoint_is_log2_with_finite_gradient():
    logits = jnp.array([[1e4, -1e4, -jnp.inf], [-1e4, 1e4, 0.0]])
    t = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    value, grad = jax.value_and_grad(lambda z: jaxloss.js_divergence_loss(z, t))(logits)
    _close(value, math.log(2))
    assert np.all(np.isfinite(np.asarray(grad)))


def test_kl_floor_gives_finite_value_for_impossible_targets():
    q = jnp.array([[1.0, 0.0]])
    t = jnp.array([[0.5, 0.5]])
    value, grad = jax.value_and_grad(
        lambda z: jaxloss.kl_divergence_loss(z, t, from_logits=False))(q)
    _close(value, 0.5 * math.log(0.5) * 2 + 0.5 * 100.0)
    assert np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize("loss", [jaxloss.kl_divergence_loss, jaxloss.js_divergence_loss])
def test_divergence_errors(loss):
    logits, labels = _draw(3)
    with pytest.raises(TypeError, match="targets"):
        loss(logits, labels)
    with pytest.raises(TypeError, match="targets"):
        loss(logits, np.ones((6, 5), np.int32))
    with pytest.raises(ValueError, match="targets"):
        loss(logits, np.ones((6, 4), np.float32))
    with pytest.raises(TypeError, match="predictions"):
        loss(logits.astype(np.int32), _softmax(logits))


# ------------------------------------------------------------ noise-robust losses


@SETTINGS
@given(seed=seeds, scale=scales)
def test_gce_limits_and_target_forms(seed, scale):
    logits, labels = _draw(seed, scale=scale)
    log_p_y = np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)), labels[:, None], 1)[:, 0]
    # q = 1 is the MAE 1 - p_y; q -> 0 tends to the cross-entropy -log p_y.
    _close(jaxloss.generalized_cross_entropy_loss(logits, labels, q=1.0, reduction="none"),
           -np.expm1(log_p_y), atol=1e-6)
    q = 1e-4
    _close(jaxloss.generalized_cross_entropy_loss(logits, labels, q=q, reduction="none"),
           -log_p_y, rtol=q * np.abs(log_p_y).max() + 1e-5, atol=1e-5)
    _close(jaxloss.generalized_cross_entropy_loss(logits, labels, reduction="none"),
           jaxloss.generalized_cross_entropy_loss(logits, np.eye(5, dtype=np.float32)[labels],
                                                  reduction="none"), atol=1e-6)


def test_gce_traced_q_has_finite_gradient():
    logits, labels = _draw(4, scale=30.0)
    loss = jax.jit(lambda q: jaxloss.generalized_cross_entropy_loss(logits, labels, q=q))
    _close(loss(0.3), jaxloss.generalized_cross_entropy_loss(logits, labels, q=0.3))
    assert np.isfinite(float(jax.grad(loss)(0.3)))


@SETTINGS
@given(seed=seeds, scale=scales)
def test_sce_decomposes(seed, scale):
    logits, labels = _draw(seed, scale=scale)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    _close(jaxloss.symmetric_cross_entropy_loss(logits, labels, alpha=0.7, beta=0.0,
                                                reduction="none"),
           0.7 * ce, rtol=1e-5, atol=1e-5)
    # Reference 1 - p_y in float64 from the logits: expm1 of optax's float32 cross-entropy
    # loses the digits when p_y is near 1 (scale 30), which the loss itself keeps.
    z = np.asarray(logits, np.float64)
    p64 = np.exp(z - z.max(-1, keepdims=True))
    p64 /= p64.sum(-1, keepdims=True)
    one_minus_p_y = 1.0 - p64[np.arange(len(labels)), np.asarray(labels)]
    _close(jaxloss.symmetric_cross_entropy_loss(logits, labels, alpha=0.0, beta=1.0,
                                                reduction="none"),
           -LOG_RCE * one_minus_p_y, rtol=1e-5, atol=1e-5)
    _close(jaxloss.symmetric_cross_entropy_loss(logits, labels, reduction="none"),
           jaxloss.symmetric_cross_entropy_loss(logits, np.eye(5, dtype=np.float32)[labels],
                                                reduction="none"), rtol=1e-5, atol=1e-5)


def test_sce_reverse_term_keeps_precision_near_one():
    # p_y = 1 - 1e-7 is not representable in float32 (nor is its log-sum-exp): the reverse
    # term must come from the other classes' probabilities.
    logits = jnp.array([[0.0, -math.log(2e7), -math.log(2e7)]])
    value = jaxloss.symmetric_cross_entropy_loss(logits, jnp.array([0]), alpha=0.0,
                                                 reduction="none")
    p = np.exp(np.array([0.0, -math.log(2e7), -math.log(2e7)]))
    p /= p.sum()
    _close(value, [-LOG_RCE * (p[1] + p[2])], rtol=1e-5)


@pytest.mark.parametrize("q", [0.0, -0.5, 1.5, float("nan")])
def test_gce_errors(q):
    logits, labels = _draw(5)
    with pytest.raises(ValueError, match="q"):
        jaxloss.generalized_cross_entropy_loss(logits, labels, q=q)


def test_sce_and_gce_errors():
    logits, labels = _draw(6)
    with pytest.raises(ValueError, match="alpha"):
        jaxloss.symmetric_cross_entropy_loss(logits, labels, alpha=-0.1)
    with pytest.raises(ValueError, match="beta"):
        jaxloss.symmetric_cross_entropy_loss(logits, labels, beta=-1.0)
    for loss in (jaxloss.symmetric_cross_entropy_loss, jaxloss.generalized_cross_entropy_loss):
        with pytest.raises(ValueError, match="targets"):
            loss(logits, np.full((6,), 7, np.int32))
        with pytest.raises(ValueError, match="targets"):
            loss(logits, np.ones((6, 4), np.float32))
        with pytest.raises(TypeError, match="logits"):
            loss(logits.astype(np.int32), labels)


@pytest.mark.parametrize("name", ["kl_divergence_loss", "js_divergence_loss",
                                  "generalized_cross_entropy_loss",
                                  "symmetric_cross_entropy_loss", "multiclass_hinge_loss"])
def test_class_axis_moveaxis(name):
    fn = jaxloss.get(name)
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    if name.startswith(("kl", "js")):
        targets = _softmax(rng.normal(size=(2, 3, 4, 5)))
        moved = np.moveaxis(targets, -1, 1)
    else:
        targets = rng.integers(0, 5, size=(2, 3, 4)).astype(np.int32)
        moved = targets
    _close(fn(np.moveaxis(logits, -1, 1), moved, axis=1, reduction="none"),
           fn(logits, targets, reduction="none"), atol=1e-6)


def test_js_probabilities_subnormal_against_zero_is_finite():
    # Found by hypothesis (seed 275924462, scale 30): a subnormal probability against a zero
    # target made 0.5 (p + t) underflow to 0 and the p log(p / m) term +inf.
    p = jnp.array([[1.0 - 1e-7, 1e-7, 1.4e-45]], jnp.float32)
    t = jnp.array([[1.0, 0.0, 0.0]], jnp.float32)
    value, grad = jax.value_and_grad(
        lambda q: jaxloss.js_divergence_loss(q, t, from_logits=False))(p)
    assert 0.0 <= float(value) <= math.log(2)
    assert np.all(np.isfinite(np.asarray(grad)))
    _close(jaxloss.js_divergence_loss(p, t, from_logits=False),
           jaxloss.js_divergence_loss(p.at[0, 2].set(0.0), t, from_logits=False), atol=1e-7)

"""Properties, edge cases and errors of jaxloss.classification.cross_entropy.

Agreement with torch / kornia / optax is in tests/reference/test_cross_entropy_reference.py;
here: the conventions docs/conventions.rst fixes (all-ignored gives 0, masked -inf classes,
saturated focal gradients), argument errors, and hypothesis properties.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jaxloss

SOFTMAX_LOSSES = [jaxloss.cross_entropy_loss, jaxloss.focal_loss,
                  jaxloss.poly1_cross_entropy_loss]
ELEMENTWISE_LOSSES = [jaxloss.binary_cross_entropy_loss, jaxloss.sigmoid_focal_loss]


def _finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree.leaves(tree))


# ------------------------------------------------------------------------------ ignore_index

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("class_weights", [None, np.array([1.0, 2.0, 0.5], np.float32)])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_all_ignored_gives_zero_and_zero_gradient(reduction, class_weights, smoothing):
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
    labels = jnp.full((4,), -100, jnp.int32)

    def loss(z):
        return jnp.sum(jaxloss.cross_entropy_loss(z, labels, class_weights=class_weights,
                                                  label_smoothing=smoothing,
                                                  reduction=reduction))

    value, grad = jax.value_and_grad(loss)(logits)
    assert float(value) == 0.0
    assert np.all(np.asarray(grad) == 0.0)
    value, grad = jax.jit(jax.value_and_grad(loss))(logits)
    assert float(value) == 0.0 and np.all(np.asarray(grad) == 0.0)


def test_custom_ignore_index_and_none():
    logits = jnp.asarray(np.random.default_rng(1).normal(size=(5, 4)), jnp.float32)
    labels = jnp.array([0, 3, 3, 1, 2], jnp.int32)
    out = jaxloss.cross_entropy_loss(logits, labels, ignore_index=3, reduction="none")
    assert out.shape == (5,)
    assert float(out[1]) == 0.0 and float(out[2]) == 0.0
    # ignore_index=None: -100 is then an out-of-range label.
    with pytest.raises(ValueError, match="targets"):
        jaxloss.cross_entropy_loss(logits, labels.at[0].set(-100), ignore_index=None)
    full = jaxloss.cross_entropy_loss(logits, labels, ignore_index=None, reduction="none")
    assert float(full[1]) > 0.0


def test_class_weighted_mean_with_where_and_weights():
    rng = np.random.default_rng(2)
    logits = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    labels = jnp.array([0, 1, 2, 3, -100, 1], jnp.int32)
    cw = jnp.array([0.5, 2.0, 1.0, 3.0], jnp.float32)
    w = jnp.array([1.0, 0.5, 2.0, 1.0, 1.0, 3.0], jnp.float32)
    where = jnp.array([True, True, False, True, True, True])
    none = jaxloss.cross_entropy_loss(logits, labels, class_weights=cw, reduction="none")
    mean = jaxloss.cross_entropy_loss(logits, labels, class_weights=cw, weights=w, where=where)
    valid = np.asarray(where) & (np.asarray(labels) != -100)
    w_y = np.asarray(cw)[np.clip(np.asarray(labels), 0, 3)]
    expected = (np.sum(np.asarray(none) * np.asarray(w) * valid)
                / np.sum(np.asarray(w) * w_y * valid))
    np.testing.assert_allclose(mean, expected, rtol=1e-6)


# ---------------------------------------------------------------------- masked (-inf) classes

@pytest.mark.parametrize("fn", SOFTMAX_LOSSES)
@pytest.mark.parametrize("index", [True, False])
def test_minus_inf_masked_class_finite_grad_and_jacfwd(fn, index):
    rng = np.random.default_rng(3)
    logits = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32).at[:, 2].set(-jnp.inf)
    logits = logits.at[0, 0].set(-jnp.inf)
    labels = jnp.array([1, 0, 3, 1, 3], jnp.int32)
    targets = labels if index else jax.nn.one_hot(labels, 4, dtype=jnp.float32)

    def loss(z):
        return fn(z, targets)

    value = loss(logits)
    assert np.isfinite(float(value))
    assert _finite(jax.grad(loss)(logits))
    assert _finite(jax.jacfwd(loss)(logits))
    # The masked class behaves like an absent class.
    finite_logits = jnp.where(jnp.isinf(logits), -1e30, logits)
    np.testing.assert_allclose(value, loss(finite_logits), rtol=1e-6)


def test_minus_inf_class_with_label_smoothing_is_infinite():
    logits = jnp.array([[1.0, -jnp.inf, 0.0]], jnp.float32)
    labels = jnp.array([0], jnp.int32)
    assert np.isposinf(float(jaxloss.cross_entropy_loss(logits, labels, label_smoothing=0.1)))
    # ... matching torch, which is infinite as well.
    expected = F.cross_entropy(torch.tensor(np.asarray(logits)), torch.tensor([0]),
                               label_smoothing=0.1)
    assert np.isposinf(expected.item())
    # A zero class weight on the masked class keeps it finite.
    cw = jnp.array([1.0, 0.0, 1.0], jnp.float32)
    value = jaxloss.cross_entropy_loss(logits, labels, label_smoothing=0.1, class_weights=cw)
    assert np.isfinite(float(value))
    assert _finite(jax.grad(lambda z: jaxloss.cross_entropy_loss(
        z, labels, label_smoothing=0.1, class_weights=cw))(logits))


# ---------------------------------------------------------------------- saturated focal losses

@pytest.mark.parametrize("gamma", [0.1, 0.5, 0.99, 2.0])
@pytest.mark.parametrize("index", [True, False])
def test_focal_finite_gradient_at_saturated_logits(gamma, index):
    logits = jnp.array([[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4], [0.0, 0.0, 1e4]], jnp.float32)
    labels = jnp.array([0, 0, 2], jnp.int32)          # right, wrong, right
    targets = labels if index else jax.nn.one_hot(labels, 3, dtype=jnp.float32)
    value, grad = jax.value_and_grad(
        lambda z: jaxloss.focal_loss(z, targets, gamma=gamma, alpha=0.25))(logits)
    assert np.isfinite(float(value)) and _finite(grad)
    # Saturated right answers: no loss, no gradient (the exact limit).
    np.testing.assert_array_equal(np.asarray(grad)[[0, 2]], 0.0)
    assert np.any(np.asarray(grad)[1] != 0.0)
    # gamma is differentiable (learnable) and finite there too.
    dgamma = jax.grad(lambda g: jaxloss.focal_loss(logits, targets, gamma=g))(gamma)
    assert np.isfinite(float(dgamma))


@pytest.mark.parametrize("gamma", [0.1, 0.5, 2.0])
def test_sigmoid_focal_finite_gradient_at_saturated_logits(gamma):
    x = jnp.array([1e4, -1e4, 1e4, -1e4, 90.0, -90.0, 30.0], jnp.float32)
    t = jnp.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0], jnp.float32)
    value, grad = jax.value_and_grad(
        lambda z: jaxloss.sigmoid_focal_loss(z, t, gamma=gamma))(x)
    assert np.isfinite(float(value)) and _finite(grad)
    assert _finite(jax.jacfwd(lambda z: jaxloss.sigmoid_focal_loss(z, t, gamma=gamma))(x))


@pytest.mark.parametrize("fn", ELEMENTWISE_LOSSES)
def test_elementwise_finite_at_extremes_under_jacfwd(fn):
    x = jnp.array([1e4, -1e4, 0.0, 1e4], jnp.float32)
    t = jnp.array([1.0, 1.0, 0.5, 0.0], jnp.float32)
    assert _finite(jax.jacfwd(lambda z: fn(z, t))(x))
    # Smooth away from the extremes: the Hessian exists and is finite.
    assert _finite(jax.hessian(lambda z: fn(z, t))(jnp.array([0.3, -2.0, 5.0, -7.0],
                                                             jnp.float32)))


def test_bce_probability_gradient_finite_at_0_and_1():
    p = jnp.array([0.0, 1.0, 0.0, 1.0], jnp.float32)
    t = jnp.array([0.0, 1.0, 1.0, 0.0], jnp.float32)
    value, grad = jax.value_and_grad(
        lambda z: jaxloss.binary_cross_entropy_loss(z, t, from_logits=False))(p)
    np.testing.assert_allclose(value, 50.0, rtol=1e-6)            # (0 + 0 + 100 + 100) / 4
    assert _finite(grad)


# ------------------------------------------------------------------- traced hyperparameters

def test_hyperparameters_traced_under_jit():
    rng = np.random.default_rng(4)
    logits = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 5, size=(6,)), jnp.int32)
    x = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
    t = jnp.asarray(rng.uniform(size=(6, 5)) < 0.5, jnp.float32)

    @jax.jit
    def losses(s, g, a, e, pw):
        return jnp.stack([
            jaxloss.cross_entropy_loss(logits, labels, label_smoothing=s),
            jaxloss.focal_loss(logits, labels, gamma=g, alpha=a),
            jaxloss.poly1_cross_entropy_loss(logits, labels, epsilon=e),
            jaxloss.binary_cross_entropy_loss(x, t, label_smoothing=s, pos_weight=pw),
            jaxloss.sigmoid_focal_loss(x, t, gamma=g, alpha=a),
        ])

    args = (0.1, 1.5, 0.3, 2.0, 2.0)
    eager = jnp.stack([
        jaxloss.cross_entropy_loss(logits, labels, label_smoothing=0.1),
        jaxloss.focal_loss(logits, labels, gamma=1.5, alpha=0.3),
        jaxloss.poly1_cross_entropy_loss(logits, labels, epsilon=2.0),
        jaxloss.binary_cross_entropy_loss(x, t, label_smoothing=0.1, pos_weight=2.0),
        jaxloss.sigmoid_focal_loss(x, t, gamma=1.5, alpha=0.3),
    ])
    np.testing.assert_allclose(losses(*[jnp.float32(a) for a in args]), eager, rtol=1e-6)
    grads = jax.grad(lambda *a: jnp.sum(losses(*a)), argnums=(0, 1, 2, 3, 4))(
        *[jnp.float32(a) for a in args])
    assert _finite(grads)
    # Traced label_smoothing = 0 with a -inf class stays finite (0 * inf is not NaN).
    masked = logits.at[:, 4].set(-jnp.inf)
    safe_labels = jnp.clip(labels, 0, 3)
    value = jax.jit(lambda s: jaxloss.cross_entropy_loss(masked, safe_labels,
                                                         label_smoothing=s))(jnp.float32(0))
    np.testing.assert_allclose(value, jaxloss.cross_entropy_loss(masked, safe_labels), rtol=1e-6)


def test_out_of_range_labels_eager_raise_jit_nan():
    logits = jnp.asarray(np.random.default_rng(5).normal(size=(3, 4)), jnp.float32)
    bad = jnp.array([0, 4, 1], jnp.int32)
    for fn in SOFTMAX_LOSSES:
        with pytest.raises(ValueError, match="targets"):
            fn(logits, bad)
    # The contract changed in round two (never a plausible wrong number): under jit the
    # labels cannot be checked, and the bad label's position is NaN, not a clipped loss.
    jitted = jax.jit(lambda y: jaxloss.cross_entropy_loss(logits, y, reduction="none"))(bad)
    clipped = jaxloss.cross_entropy_loss(logits, jnp.array([0, 3, 1], jnp.int32),
                                         reduction="none")
    assert np.isnan(np.asarray(jitted)[1])
    np.testing.assert_allclose(np.asarray(jitted)[[0, 2]], np.asarray(clipped)[[0, 2]],
                               rtol=1e-6)


@pytest.mark.parametrize("fn", SOFTMAX_LOSSES)
def test_axis_argument_equals_moveaxis(fn):
    rng = np.random.default_rng(6)
    logits = jnp.asarray(rng.normal(size=(2, 5, 3, 4)), jnp.float32)      # classes on axis 1
    labels = jnp.asarray(rng.integers(0, 5, size=(2, 3, 4)), jnp.int32)
    np.testing.assert_allclose(
        fn(logits, labels, axis=1, reduction="none"),
        fn(jnp.moveaxis(logits, 1, -1), labels, reduction="none"), rtol=1e-6)
    soft = jax.nn.softmax(jnp.asarray(rng.normal(size=(2, 5, 3, 4)), jnp.float32), axis=1)
    np.testing.assert_allclose(
        fn(logits, soft, axis=1, reduction="none"),
        fn(jnp.moveaxis(logits, 1, -1), jnp.moveaxis(soft, 1, -1), reduction="none"), rtol=1e-6)


def test_registered_in_classification_family():
    names = jaxloss.names(family="classification")
    for name in ("binary_cross_entropy_loss", "cross_entropy_loss", "focal_loss",
                 "sigmoid_focal_loss", "poly1_cross_entropy_loss"):
        assert name in names
        assert jaxloss.registry.family_of(name) == "classification"


# ------------------------------------------------------------------------------------- errors

def test_errors_name_the_argument():
    logits = jnp.zeros((4, 3), jnp.float32)
    labels = jnp.array([0, 1, 2, 0], jnp.int32)
    x = jnp.zeros((4, 3), jnp.float32)
    for s in (-0.1, 1.5):
        with pytest.raises(ValueError, match="label_smoothing"):
            jaxloss.cross_entropy_loss(logits, labels, label_smoothing=s)
        with pytest.raises(ValueError, match="label_smoothing"):
            jaxloss.binary_cross_entropy_loss(x, x, label_smoothing=s)
    with pytest.raises(ValueError, match="gamma"):
        jaxloss.focal_loss(logits, labels, gamma=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        jaxloss.sigmoid_focal_loss(x, x, gamma=-0.5)
    with pytest.raises(ValueError, match="alpha"):
        jaxloss.focal_loss(logits, labels, alpha=1.5)
    with pytest.raises(ValueError, match="alpha"):
        jaxloss.focal_loss(logits, labels, alpha=jnp.ones((4,)))
    with pytest.raises(ValueError, match="alpha"):
        jaxloss.sigmoid_focal_loss(x, x, alpha=-0.2)
    for fn in SOFTMAX_LOSSES:
        with pytest.raises(ValueError, match="targets"):
            fn(logits, labels[:, None])                     # wrong rank
        with pytest.raises(ValueError, match="targets"):
            fn(logits, labels[:3])                          # wrong shape
        with pytest.raises(TypeError, match="logits"):
            fn(jnp.zeros((4, 3), jnp.int32), labels)        # integer logits
        with pytest.raises(ValueError, match="reduction"):
            fn(logits, labels, reduction="batchmean")
    with pytest.raises(ValueError, match="class_weights"):
        jaxloss.cross_entropy_loss(logits, labels, class_weights=jnp.ones((4,)))
    with pytest.raises(ValueError, match="class_weights"):
        jaxloss.cross_entropy_loss(logits, labels, class_weights=jnp.ones((3, 1)))
    with pytest.raises(ValueError, match="class_weights"):
        jaxloss.cross_entropy_loss(logits, labels, class_weights=[1.0, -1.0, 1.0])
    with pytest.raises(TypeError, match="ignore_index"):
        jaxloss.cross_entropy_loss(logits, labels, ignore_index=-100.0)
    with pytest.raises(ValueError, match="pos_weight"):
        jaxloss.binary_cross_entropy_loss(x, x, pos_weight=jnp.ones((4,)))
    with pytest.raises(ValueError, match="pos_weight"):
        jaxloss.binary_cross_entropy_loss(x, x, pos_weight=-1.0)
    with pytest.raises(ValueError, match="pos_weight"):
        jaxloss.binary_cross_entropy_loss(x, x, pos_weight=2.0, from_logits=False)
    with pytest.raises(TypeError, match="predictions"):
        jaxloss.binary_cross_entropy_loss(jnp.zeros((4, 3), jnp.int32), x)
    with pytest.raises(ValueError, match="targets"):
        jaxloss.binary_cross_entropy_loss(x, x[:, :2])


def test_bce_accepts_integer_and_boolean_targets():
    x = jnp.asarray(np.random.default_rng(7).normal(size=(5, 2)), jnp.float32)
    t = np.random.default_rng(8).uniform(size=(5, 2)) < 0.5
    expected = jaxloss.binary_cross_entropy_loss(x, jnp.asarray(t, jnp.float32))
    np.testing.assert_allclose(jaxloss.binary_cross_entropy_loss(x, jnp.asarray(t)), expected)
    np.testing.assert_allclose(
        jaxloss.binary_cross_entropy_loss(x, jnp.asarray(t, jnp.int32)), expected)


# --------------------------------------------------------------------------------- hypothesis
# A few fixed shapes and jitted bodies: each shape compiles once, then the
# examples vary only the values.

_logits = st.sampled_from([(1, 2), (4, 3), (6, 5)]).flatmap(
    lambda shape: hnp.arrays(np.float32, shape, elements=st.floats(-30, 30, width=32)))


def _value_and_grad(fn, logits, targets):
    return jax.value_and_grad(lambda z: fn(z, targets))(logits)


_INDEX_VS_ONE_HOT = {
    fn.__name__: jax.jit(lambda z, y, f=fn: (
        _value_and_grad(f, z, y),
        _value_and_grad(f, z, jax.nn.one_hot(y, z.shape[-1], dtype=jnp.float32))))
    for fn in SOFTMAX_LOSSES
}


@settings(max_examples=30, deadline=None)
@given(logits=_logits, seed=st.integers(0, 2**16))
def test_index_targets_equal_one_hot_targets(logits, seed):
    labels = np.random.default_rng(seed).integers(0, logits.shape[1], size=logits.shape[0])
    labels = jnp.asarray(labels, jnp.int32)
    for compare in _INDEX_VS_ONE_HOT.values():
        by_index, by_one_hot = compare(jnp.asarray(logits), labels)
        np.testing.assert_allclose(by_index[0], by_one_hot[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(by_index[1], by_one_hot[1], rtol=1e-5, atol=1e-6)


@jax.jit
def _focal_and_ce(z, labels):
    return (jaxloss.focal_loss(z, labels, gamma=0.0, reduction="none"),
            jaxloss.cross_entropy_loss(z, labels, reduction="none"),
            jax.grad(lambda v: jaxloss.focal_loss(v, labels, gamma=0.0))(z),
            jax.grad(lambda v: jaxloss.cross_entropy_loss(v, labels))(z))


@settings(max_examples=30, deadline=None)
@given(logits=_logits, seed=st.integers(0, 2**16))
def test_focal_gamma_zero_equals_cross_entropy(logits, seed):
    labels = np.random.default_rng(seed).integers(0, logits.shape[1], size=logits.shape[0])
    focal, ce, g_focal, g_ce = _focal_and_ce(jnp.asarray(logits), jnp.asarray(labels, jnp.int32))
    np.testing.assert_allclose(focal, ce, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(g_focal, g_ce, rtol=1e-5, atol=1e-7)


def _vector(low, high):
    return st.sampled_from([1, 7, 20]).flatmap(
        lambda n: hnp.arrays(np.float32, n, elements=st.floats(low, high, width=32)))


@jax.jit
def _bce_both_ways(z, t):
    def from_probs(v):
        return jaxloss.binary_cross_entropy_loss(jax.nn.sigmoid(v), t, from_logits=False)

    return (jaxloss.binary_cross_entropy_loss(z, t, reduction="none"),
            jaxloss.binary_cross_entropy_loss(jax.nn.sigmoid(z), t, from_logits=False,
                                              reduction="none"),
            jax.grad(lambda v: jaxloss.binary_cross_entropy_loss(v, t))(z),
            jax.grad(from_probs)(z))


@settings(max_examples=30, deadline=None)
@given(x=_vector(-8, 8), seed=st.integers(0, 2**16))
def test_bce_from_logits_equals_bce_from_probabilities(x, seed):
    t = jnp.asarray(np.random.default_rng(seed).uniform(size=x.shape), jnp.float32)
    from_logits, from_probs, g_logits, g_probs = _bce_both_ways(jnp.asarray(x), t)
    # |x| <= 8: sigmoid(x) carries float32 rounding into the log, which is
    # relative to the (small) loss near a matching target, hence rtol 1e-4.
    np.testing.assert_allclose(from_logits, from_probs, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g_logits, g_probs, rtol=1e-4, atol=1e-5)


@jax.jit
def _sigmoid_focal_and_bce(z, t):
    return (jaxloss.sigmoid_focal_loss(z, t, gamma=0.0, alpha=None, reduction="none"),
            jaxloss.binary_cross_entropy_loss(z, t, reduction="none"))


@settings(max_examples=25, deadline=None)
@given(x=_vector(-50, 50), seed=st.integers(0, 2**16))
def test_sigmoid_focal_gamma_zero_no_alpha_is_bce(x, seed):
    t = jnp.asarray(np.random.default_rng(seed).uniform(size=x.shape), jnp.float32)
    focal, bce = _sigmoid_focal_and_bce(jnp.asarray(x), t)
    np.testing.assert_allclose(focal, bce, rtol=1e-6, atol=1e-7)

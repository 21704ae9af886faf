"""Margin-softmax losses: chunked path, memory, extremes, properties and errors.

Reference agreement with pytorch-metric-learning is in
tests/reference/test_metric_margin_reference.py; here the chunked path is held
to the dense one, the dense one to optax's cross-entropy at margin 0, and the
compiled memory of a million-class ArcFace to its budget.
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
from tests.cases_metric_margin import extreme_inputs

NAMES = ["arcface_loss", "cosface_loss", "sphereface_loss", "subcenter_arcface_loss"]
K = 3  # sub-centres in the sub-centre tests


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _close_at_scale(actual, expected, rtol=1e-5):
    # Summation order differs between blocks: compare at the scale of the gradient.
    expected = np.asarray(expected, np.float64)
    _close(actual, expected, rtol=rtol, atol=rtol * max(float(np.max(np.abs(expected))), 1e-12))


def _inputs(name, n=7, d=6, c=11, seed=0):
    rng = np.random.default_rng(seed)
    columns = c * K if name == "subcenter_arcface_loss" else c
    x = jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, c, size=n), jnp.int32)
    kernel = jnp.asarray(rng.normal(size=(d, columns)), jnp.float32)
    return x, labels, kernel


def _loss(name, block_size, reduction="mean"):
    """``loss(x, kernel, scale, margin)`` with every numeric hyperparameter an argument."""
    fn = getattr(jaxloss, name)

    def loss(x, labels, kernel, scale, margin):
        if name == "sphereface_loss":  # integer margin: static; scale only
            return fn(x, labels, kernel, scale=scale, margin=3, block_size=block_size,
                      reduction=reduction)
        extra = {"num_subcenters": K} if name == "subcenter_arcface_loss" else {}
        return fn(x, labels, kernel, scale=scale, margin=margin, block_size=block_size,
                  reduction=reduction, **extra)

    return loss


def _value_rows_and_grads(name, block_size):
    """Jitted ``(mean, per-row values), grads`` w.r.t. embeddings, kernel, scale, margin."""
    loss, rows = _loss(name, block_size), _loss(name, block_size, "none")

    def both(x, labels, kernel, scale, margin):
        args = (x, labels, kernel, scale, margin)
        return loss(*args), rows(*args)

    return jax.jit(jax.value_and_grad(both, argnums=(0, 2, 3, 4), has_aux=True))


@pytest.mark.parametrize("name", NAMES)
def test_chunked_equals_dense_in_value_and_gradient(name):
    x, labels, kernel = _inputs(name)  # 11 classes
    args = (x, labels, kernel, jnp.float32(20.0), jnp.float32(0.4))
    (want_value, want_rows), want_grads = _value_rows_and_grads(name, None)(*args)
    for block_size in (1, 4, 16):  # 4 does not divide 11; 16 exceeds it
        (value, rows), grads = _value_rows_and_grads(name, block_size)(*args)
        _close(value, want_value)
        _close(rows, want_rows)
        for got, want in zip(grads, want_grads, strict=True):
            _close_at_scale(got, want)


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 9), c=st.integers(1, 13), block_size=st.integers(1, 15),
       seed=st.integers(0, 2**16), name=st.sampled_from(NAMES))
def test_chunked_equals_dense_property(n, c, block_size, seed, name):
    x, labels, kernel = _inputs(name, n=n, d=5, c=c, seed=seed)
    dense, chunked = _loss(name, None), _loss(name, block_size)

    @jax.jit
    def both(x, kernel):
        args = (x, labels, kernel, jnp.float32(16.0), jnp.float32(0.3))
        return [jax.value_and_grad(f, argnums=(0, 2))(*args) for f in (dense, chunked)]

    (want, want_grads), (got, got_grads) = both(x, kernel)
    _close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        _close_at_scale(g, w)


def test_million_class_arcface_compiles_within_200_mib_of_temp_memory():
    """value_and_grad w.r.t. embeddings and kernel of ArcFace with 10^6 classes, N = 1024,
    d = 512: the dense logits alone are 4 GiB (N x C float32), the kernel and its
    gradient 1.9 GiB each (arguments and outputs, not temporaries). The chunked path
    (block_size=8192, 123 blocks, the last one overlapping) needs ~131 MiB of XLA
    temp memory on CPU (jax 0.10.2): the (N, 8192) logit block and its backward
    (4096: ~67 MiB; 16384: ~258 MiB)."""
    n, d, c = 1024, 512, 1_000_000
    x = jax.ShapeDtypeStruct((n, d), jnp.float32)
    labels = jax.ShapeDtypeStruct((n,), jnp.int32)
    kernel = jax.ShapeDtypeStruct((d, c), jnp.float32)

    def loss(x, kernel, labels):
        return jaxloss.arcface_loss(x, labels, kernel, block_size=8192)

    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(
        x, kernel, labels).compile()
    memory = compiled.memory_analysis()
    assert memory.temp_size_in_bytes <= 200 * 2**20, memory.temp_size_in_bytes / 2**20
    # Neither a transposed nor a padded copy of the kernel is made.
    assert memory.temp_size_in_bytes < d * c * 4 / 8


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("block_size", [None, 2])
def test_finite_value_and_gradients_at_the_extremes(name, block_size):
    """Value and gradient w.r.t. embeddings, kernel, scale and margin stay finite with
    embeddings on (and opposite) their class weight, zero-norm embeddings and kernel
    columns, huge norms, one class, and huge or tiny scales."""
    subcenters = K if name == "subcenter_arcface_loss" else 1
    fn = getattr(jaxloss, name)
    extra = {"num_subcenters": K} if subcenters > 1 else {}
    if name == "sphereface_loss":
        def loss(x, labels, kernel, scale, margin):
            return fn(x, labels, kernel, scale=scale, block_size=block_size)
    else:
        def loss(x, labels, kernel, scale, margin):
            return fn(x, labels, kernel, scale=scale, margin=margin, block_size=block_size,
                      **extra)
    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 2, 3, 4)))
    for args, label in extreme_inputs(subcenters):
        x, labels, kernel = (jnp.asarray(a) for a in args)
        for scale in (64.0, 1e4, 1e-6):
            value, grads = value_and_grad(x, labels, kernel, jnp.float32(scale),
                                          jnp.float32(0.5))
            assert np.isfinite(float(value)), (label, scale)
            for g in grads:
                assert np.all(np.isfinite(np.asarray(g))), (label, scale)


def test_embedding_on_its_class_weight_values():
    """cos(theta) = 1 exactly: ArcFace's target logit is s cos(m), CosFace's s (1 - m),
    SphereFace's s ||x|| (T_m(1) = 1, k = 0); the other logits are 0 (orthogonal)."""
    kernel = jnp.eye(4, 3)
    x = 2.0 * jnp.eye(3, 4)
    labels = jnp.arange(3)

    def ce(target_logit):  # one target logit against two logits of 0
        return math.log1p(2 * math.exp(-target_logit))

    _close(jaxloss.arcface_loss(x, labels, kernel, scale=3.0, margin=0.5),
           ce(3.0 * math.cos(0.5)))
    _close(jaxloss.cosface_loss(x, labels, kernel, scale=3.0, margin=0.5), ce(3.0 * 0.5))
    _close(jaxloss.sphereface_loss(x, labels, kernel, scale=3.0, margin=4), ce(3.0 * 2.0))
    grad = jax.grad(lambda e: jaxloss.arcface_loss(e, labels, kernel))(x)
    assert np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize("name", ["arcface_loss", "cosface_loss", "subcenter_arcface_loss"])
def test_zero_margin_is_scaled_cosine_softmax_cross_entropy(name):
    """At margin 0 every margin loss is optax's softmax cross-entropy of s * cos."""
    x, labels, kernel = _inputs(name)
    extra = {"num_subcenters": K} if name == "subcenter_arcface_loss" else {}
    got = getattr(jaxloss, name)(x, labels, kernel, scale=7.0, margin=0.0,
                                 reduction="none", **extra)
    x_hat = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    w_hat = kernel / jnp.linalg.norm(kernel, axis=0, keepdims=True)
    cos = x_hat @ w_hat
    if extra:
        cos = jnp.max(cos.reshape(cos.shape[0], -1, K), axis=-1)
    _close(got, optax.softmax_cross_entropy_with_integer_labels(7.0 * cos, labels), rtol=2e-5)


def test_sphereface_margin_one_is_norm_scaled_softmax():
    x, labels, kernel = _inputs("sphereface_loss")
    got = jaxloss.sphereface_loss(x, labels, kernel, scale=2.0, margin=1, reduction="none")
    # ||x|| cos(x, w) = x . w / ||w||: T_1(c) = c and k = 0 away from theta = pi.
    logits = 2.0 * (x @ (kernel / jnp.linalg.norm(kernel, axis=0, keepdims=True)))
    _close(got, optax.softmax_cross_entropy_with_integer_labels(logits, labels), rtol=2e-5)


def test_one_subcenter_is_arcface():
    x, labels, kernel = _inputs("arcface_loss")
    for block_size in (None, 4):
        _close(jaxloss.subcenter_arcface_loss(x, labels, kernel, num_subcenters=1,
                                              block_size=block_size),
               jaxloss.arcface_loss(x, labels, kernel))


def test_subcenter_column_layout():
    """Column c * K + k is sub-centre k of class c: moving a class's best sub-centre to
    another slot of the same class leaves the loss unchanged, to another class does not."""
    x, labels, kernel = _inputs("subcenter_arcface_loss")
    same = kernel.reshape(kernel.shape[0], -1, K)[:, :, ::-1].reshape(kernel.shape)
    _close(jaxloss.subcenter_arcface_loss(x, labels, same),
           jaxloss.subcenter_arcface_loss(x, labels, kernel))
    rolled = jnp.roll(kernel, 1, axis=1)  # every sub-centre shifted one slot across classes
    assert not np.isclose(float(jaxloss.subcenter_arcface_loss(x, labels, rolled)),
                          float(jaxloss.subcenter_arcface_loss(x, labels, kernel)))


@pytest.mark.parametrize("block_size", [None, 3])
def test_where_equals_slicing_with_nan_rows_chunked(block_size):
    x, labels, kernel = _inputs("arcface_loss")
    keep = np.arange(x.shape[0]) % 3 != 1
    poisoned = x.at[~keep].set(jnp.nan)

    def loss(e, where=None):
        return jaxloss.arcface_loss(e, labels, kernel, block_size=block_size, where=where)

    value, grad = jax.value_and_grad(lambda e: loss(e, jnp.asarray(keep)))(poisoned)
    _close(value, jaxloss.arcface_loss(x[keep], labels[keep], kernel, block_size=block_size))
    assert np.all(np.isfinite(np.asarray(grad)))
    assert np.all(np.asarray(grad)[~keep] == 0)


def test_traced_hyperparameters_do_not_recompile():
    x, labels, kernel = _inputs("arcface_loss")
    traces = []

    @jax.jit
    def loss(scale, margin):
        traces.append(1)
        return jaxloss.arcface_loss(x, labels, kernel, scale=scale, margin=margin,
                                    block_size=4)

    a = loss(jnp.float32(30.0), jnp.float32(0.2))
    b = loss(jnp.float32(64.0), jnp.float32(0.5))
    assert len(traces) == 1
    _close(a, jaxloss.arcface_loss(x, labels, kernel, scale=30.0, margin=0.2))
    _close(b, jaxloss.arcface_loss(x, labels, kernel, scale=64.0, margin=0.5))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_chunked(dtype):
    x, labels, kernel = _inputs("cosface_loss")
    out = jaxloss.cosface_loss(x.astype(dtype), labels, kernel.astype(dtype), block_size=4)
    assert out.dtype == dtype
    want = jaxloss.cosface_loss(x.astype(dtype).astype(jnp.float32), labels,
                                kernel.astype(dtype).astype(jnp.float32))
    _close(out.astype(jnp.float32), want, rtol=2e-2, atol=2e-2)


def test_defaults_follow_pml():
    import inspect

    def defaults(fn):
        return {k: p.default for k, p in inspect.signature(fn).parameters.items()
                if p.default is not inspect.Parameter.empty}

    assert defaults(jaxloss.arcface_loss)["scale"] == 64.0
    assert defaults(jaxloss.arcface_loss)["margin"] == pytest.approx(math.radians(28.6))
    assert defaults(jaxloss.cosface_loss)["margin"] == 0.35
    assert defaults(jaxloss.sphereface_loss)["margin"] == 4
    assert defaults(jaxloss.sphereface_loss)["scale"] == 1.0
    assert defaults(jaxloss.subcenter_arcface_loss)["num_subcenters"] == 3


def test_errors():
    x, labels, kernel = _inputs("arcface_loss")
    with pytest.raises(ValueError, match=r"kernel\.T"):
        jaxloss.arcface_loss(x, labels, kernel.T)
    with pytest.raises(TypeError, match="kernel"):
        jaxloss.arcface_loss(x, labels, jnp.ones(kernel.shape, jnp.int32))
    with pytest.raises(ValueError, match="kernel"):
        jaxloss.arcface_loss(x, labels, kernel[None])
    with pytest.raises(ValueError, match="num_subcenters"):
        jaxloss.subcenter_arcface_loss(x, labels, kernel, num_subcenters=3)  # 11 columns
    with pytest.raises(ValueError, match="labels"):
        jaxloss.arcface_loss(x, labels.at[0].set(11), kernel)
    with pytest.raises(ValueError, match="labels"):
        jaxloss.arcface_loss(x, labels[:-1], kernel)
    with pytest.raises(TypeError, match="labels"):
        jaxloss.arcface_loss(x, labels.astype(jnp.float32), kernel)
    with pytest.raises(ValueError, match="scale"):
        jaxloss.cosface_loss(x, labels, kernel, scale=0.0)
    with pytest.raises(ValueError, match="margin"):
        jaxloss.arcface_loss(x, labels, kernel, margin=math.pi)
    with pytest.raises(ValueError, match="margin"):
        jaxloss.cosface_loss(x, labels, kernel, margin=-0.1)
    with pytest.raises(TypeError, match="margin"):
        jaxloss.sphereface_loss(x, labels, kernel, margin=2.5)
    with pytest.raises(ValueError, match="margin"):
        jaxloss.sphereface_loss(x, labels, kernel, margin=0)
    with pytest.raises(ValueError, match="block_size"):
        jaxloss.arcface_loss(x, labels, kernel, block_size=0)
    with pytest.raises(TypeError, match="block_size"):
        jaxloss.arcface_loss(x, labels, kernel, block_size=2.0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("block_size", [None, 4])
def test_out_of_range_labels_are_nan_under_jit(name, block_size):
    """The conventions page, guarantee 5: the labels index the kernel's C classes. A
    label outside [0, C) raises eagerly; under jit its row is NaN (never the loss of a
    clipped label), the other rows keep their values and a ``where`` that drops the bad
    rows gives the loss of the rest."""
    x, labels, kernel = _inputs(name, n=4)  # 11 classes
    extra = {"num_subcenters": K} if name == "subcenter_arcface_loss" else {}
    fn = getattr(jaxloss, name)
    bad = labels.at[1].set(11).at[2].set(-1)
    good_rows = np.array([True, False, False, True])

    def loss(labels, reduction="mean", where=None):
        return fn(x, labels, kernel, block_size=block_size, reduction=reduction, where=where,
                  **extra)

    rows = np.asarray(jax.jit(lambda y: loss(y, "none"))(bad))
    assert np.all(np.isnan(rows[~good_rows])), rows
    assert np.all(np.isfinite(rows[good_rows])), rows
    _close(rows[good_rows], np.asarray(loss(labels, "none"))[good_rows])
    assert np.isnan(float(jax.jit(loss)(bad)))
    masked = jax.jit(lambda y: loss(y, where=jnp.asarray(good_rows)))(bad)
    _close(masked, loss(labels, where=jnp.asarray(good_rows)))
    grad = jax.jit(jax.grad(lambda e, y: fn(e, y, kernel, block_size=block_size,
                                            where=jnp.asarray(good_rows), **extra)))(x, bad)
    assert np.all(np.isfinite(np.asarray(grad)))
    with pytest.raises(ValueError, match=r"outside \[0, 11\)"):
        loss(bad)

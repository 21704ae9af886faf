"""jaxloss.metric.contrastive: chunked equals dense, masking, invariances, memory.

Reference agreement (PML, optax, torch) is in
tests/reference/test_metric_contrastive_reference.py; sharding in
tests/test_sharding_metric_self_supervised.py.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss

N, D = 13, 6


def _data(seed=0, n=N, d=D, classes=4):
    rng = np.random.default_rng(seed)
    a = jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, classes, size=(n,)), jnp.int32)
    keep = jnp.asarray(np.arange(n) % 5 != 2)
    return a, b, labels, keep


ALL_PAIRS = [
    ("ntxent_loss", {"temperature": 0.1}, "labels"),
    ("info_nce_loss", {"temperature": 0.2}, "view"),
    ("supcon_loss", {"temperature": 0.1}, "labels"),
    ("clip_loss", {"temperature": 0.07}, "view"),
    ("siglip_loss", {"scale": 5.0, "bias": -3.0}, "view"),
]


def _close_at_scale(actual, expected, rtol=1e-5):
    expected = np.asarray(expected, np.float64)
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol,
                               atol=rtol * scale)


def _loss(name, kwargs, where, block_size, reduction="mean"):
    def loss(x, y):
        return jaxloss.get(name)(x, y, **kwargs, block_size=block_size, where=where,
                                 reduction=reduction)

    return loss


@functools.cache
def _dense(index: int, masked: bool):
    """Dense value, gradient and unreduced values of ALL_PAIRS[index] (computed once)."""
    a, b, labels, keep = _data()
    name, kwargs, kind = ALL_PAIRS[index]
    second = labels if kind == "labels" else b
    where = keep if masked else None
    argnums = (0,) if kind == "labels" else (0, 1)
    value, grads = jax.jit(jax.value_and_grad(_loss(name, kwargs, where, None),
                                              argnums=argnums))(a, second)
    none = jax.jit(_loss(name, kwargs, where, None, "none"))(a, second)
    return value, grads, none


@pytest.mark.parametrize("block_size", [1, 4, 20])  # 4 does not divide N = 13; 20 > N
def test_chunked_equals_dense_in_value_and_gradient(block_size):
    a, b, labels, keep = _data()
    for index, (name, kwargs, kind) in enumerate(ALL_PAIRS):
        second = labels if kind == "labels" else b
        argnums = (0,) if kind == "labels" else (0, 1)
        for masked in (False, True):
            where = keep if masked else None
            value, grads, none = _dense(index, masked)
            got_value, got_grads = jax.jit(jax.value_and_grad(
                _loss(name, kwargs, where, block_size), argnums=argnums))(a, second)
            np.testing.assert_allclose(got_value, value, rtol=1e-5, err_msg=name)
            for g, w in zip(got_grads, grads, strict=True):
                _close_at_scale(g, w)
            got_none = jax.jit(_loss(name, kwargs, where, block_size, "none"))(a, second)
            _close_at_scale(got_none, none)


def test_chunked_gradient_of_the_learned_hyperparameters():
    a, b, labels, _ = _data(1)
    cases = [
        ("ntxent_loss", labels, ("temperature",)),
        ("supcon_loss", labels, ("temperature",)),
        ("clip_loss", b, ("temperature",)),
        ("siglip_loss", b, ("scale", "bias")),
    ]
    for name, second, params in cases:
        values = tuple(jnp.float32(0.3 if p == "temperature" else 2.0) for p in params)

        def loss(hp, bs, name=name, second=second, params=params):
            return jaxloss.get(name)(a, second, **dict(zip(params, hp, strict=True)),
                                     block_size=bs)

        dense = jax.grad(lambda hp, f=loss: f(hp, None))(values)
        chunked = jax.grad(lambda hp, f=loss: f(hp, 5))(values)
        for g, w in zip(chunked, dense, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-5, err_msg=name)
            assert float(w) != 0.0


@pytest.mark.parametrize("block_size", [None, 3])
def test_zero_norm_embeddings_are_finite(block_size):
    a, b, labels, _ = _data(2)
    a = a.at[::3].set(0.0)
    b = b.at[1::4].set(0.0)
    for name, kwargs, kind in ALL_PAIRS:
        second = labels if kind == "labels" else b
        value, grad = jax.value_and_grad(
            lambda x, n=name, s=second, k=kwargs: jaxloss.get(n)(x, s, **k,
                                                                 block_size=block_size))(a)
        assert np.isfinite(float(value)), name
        assert np.all(np.isfinite(np.asarray(grad))), name


def test_two_view_equals_labelled_form_on_the_concatenated_views():
    a, b, _, _ = _data(4)
    pair = jnp.concatenate([jnp.arange(N), jnp.arange(N)]).astype(jnp.int32)
    both = jnp.concatenate([a, b])
    np.testing.assert_allclose(jaxloss.info_nce_loss(a, b, temperature=0.3),
                               jaxloss.ntxent_loss(both, pair, temperature=0.3), rtol=1e-6)
    # The unreduced two-view loss is the mean of each pair's two anchors' terms.
    per_anchor = jaxloss.ntxent_loss(both, pair, temperature=0.3, reduction="none")
    np.testing.assert_allclose(jaxloss.info_nce_loss(a, b, temperature=0.3, reduction="none"),
                               0.5 * (per_anchor[:N] + per_anchor[N:]), rtol=1e-6)


def test_ntxent_mean_is_per_positive_pair():
    a, _, labels, _ = _data(5)
    none = jaxloss.ntxent_loss(a, labels, reduction="none")
    same = np.asarray(labels)[:, None] == np.asarray(labels)[None, :]
    pairs = same.sum() - N
    np.testing.assert_allclose(jaxloss.ntxent_loss(a, labels), float(jnp.sum(none)) / pairs,
                               rtol=1e-6)


def test_zero_weight_removes_the_row_and_traced_hyperparameters_jit():
    a, b, labels, _ = _data(6)
    w = jnp.ones((N,)).at[4].set(0.0)
    mask = jnp.ones((N,), bool).at[4].set(False)
    for name, kwargs, kind in ALL_PAIRS:
        second = labels if kind == "labels" else b
        fn = jaxloss.get(name, **kwargs)
        np.testing.assert_allclose(fn(a, second, weights=w), fn(a, second, where=mask),
                                   rtol=1e-6)
    jitted = jax.jit(lambda t: jaxloss.clip_loss(a, b, temperature=t))
    np.testing.assert_allclose(jitted(jnp.float32(0.5)),
                               jaxloss.clip_loss(a, b, temperature=0.5), rtol=1e-6)


def test_errors():
    a, b, labels, _ = _data(7)
    with pytest.raises(ValueError, match="block_size"):
        jaxloss.ntxent_loss(a, labels, block_size=0)
    with pytest.raises(TypeError, match="block_size"):
        jaxloss.clip_loss(a, b, block_size=2.5)
    with pytest.raises(ValueError, match="temperature"):
        jaxloss.supcon_loss(a, labels, temperature=0.0)
    with pytest.raises(ValueError, match="labels"):
        jaxloss.ntxent_loss(a, labels[:-1])
    with pytest.raises(ValueError, match="labels"):
        jaxloss.info_nce_loss(a, b[:, :-1])
    with pytest.raises(ValueError, match="text"):
        jaxloss.siglip_loss(a, b[:-1])
    with pytest.raises(ValueError, match="weights"):
        jaxloss.ntxent_loss(a, labels, weights=jnp.ones((N, 2)))


_JITTED = {fn.__name__: jax.jit(fn) for fn in (jaxloss.ntxent_loss, jaxloss.supcon_loss,
                                                jaxloss.info_nce_loss, jaxloss.clip_loss)}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.sampled_from([2, 7]), scale=st.floats(1e-3, 1e3),
       temperature=st.floats(0.02, 2.0))
def test_invariant_to_row_order_and_embedding_scale(seed, n, scale, temperature):
    """The cosine-based losses ignore the embeddings' norms and the order of the batch."""
    rng = np.random.default_rng(seed)
    a = jnp.asarray(rng.normal(size=(n, 3)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(n, 3)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 3, size=(n,)), jnp.int32)
    perm = jnp.asarray(rng.permutation(n))
    s = jnp.float32(scale)
    t = jnp.float32(temperature)
    for name, second in (("ntxent_loss", labels), ("supcon_loss", labels),
                         ("info_nce_loss", b), ("clip_loss", b)):
        fn = _JITTED[name]
        base = fn(a, second, temperature=t)
        assert np.isfinite(float(base))
        np.testing.assert_allclose(fn(s * a[perm], second[perm], temperature=t),
                                   base, rtol=2e-5, atol=1e-6)


# --------------------------------------------------------------------------------------
# Compiled memory of the chunked path (lowered on shapes only, nothing allocated).
# --------------------------------------------------------------------------------------

MIB = 2**20


def _temp_mib(fn, n, d=128):
    x = jax.ShapeDtypeStruct((n, d), jnp.float32)
    labels = jax.ShapeDtypeStruct((n,), jnp.int32)
    compiled = jax.jit(jax.value_and_grad(fn)).lower(x, labels).compile()
    return compiled.memory_analysis().temp_size_in_bytes / MIB


def test_chunked_ntxent_memory_is_linear_in_n():
    # Recorded (jax 0.10.2, CPU): at N = 4096, d = 128: dense 256 MiB, block_size=256
    # 26.5 MiB, optax.losses.ntxent 16.4 GiB (it broadcasts an (N, N, d) array);
    # at N = 16384: block_size=256 109 MiB (the dense path would need ~4 GiB).
    def chunked(x, labels):
        return jaxloss.ntxent_loss(x, labels, block_size=256)

    small = _temp_mib(chunked, 4096)
    large = _temp_mib(chunked, 16384)
    dense = _temp_mib(jaxloss.ntxent_loss, 4096)
    print(f"ntxent value_and_grad temp memory: dense N=4096 {dense:.1f} MiB; "
          f"block_size=256 N=4096 {small:.1f} MiB, N=16384 {large:.1f} MiB")
    assert large <= 200, large
    assert small < dense / 4, (small, dense)
    assert large < 6 * small, (small, large)  # x4 rows: linear, not x16


def test_optax_ntxent_memory_for_the_record():
    with jax.numpy_dtype_promotion("standard"):
        optax_mib = _temp_mib(lambda x, labels: optax.losses.ntxent(x, labels), 4096)
    print(f"optax.losses.ntxent value_and_grad temp memory at N=4096: {optax_mib:.1f} MiB")
    assert optax_mib > _temp_mib(lambda x, labels: jaxloss.ntxent_loss(x, labels,
                                                                       block_size=256), 4096)

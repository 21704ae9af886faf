"""``jaxloss.aggregate.surgery``: PCGrad and GradDrop against their reference code."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxloss import aggregate as agg
from jaxloss.aggregate import surgery
from tests.aggregate._references import (
    ATOL,
    RTOL,
    random_jacobian,
    ref_graddrop,
    ref_pcgrad,
    run,
)


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pcgrad_matches_reference_with_its_orders(K, seed):
    J = random_jacobian(K, seed=seed)
    key = jax.random.key(seed)
    _, sub = jax.random.split(key)
    orders = np.asarray(surgery._pcgrad_orders(sub, K))
    assert all(sorted(row) == list(range(K)) for row in orders.tolist())
    np.testing.assert_allclose(run("pcgrad", J, key=key), ref_pcgrad(J, orders),
                               rtol=RTOL, atol=ATOL)


def test_pcgrad_orders_differ_between_tasks_and_steps():
    tx = agg.pcgrad(key=3)
    state = tx.init(None)
    J = jnp.asarray(random_jacobian(6))
    _, state2 = tx.update(J, state)
    assert not np.array_equal(jax.random.key_data(state.key), jax.random.key_data(state2.key))
    orders = np.asarray(surgery._pcgrad_orders(jax.random.key(0), 6))
    assert len({tuple(row) for row in orders.tolist()}) > 1


@given(st.integers(2, 5), st.integers(0, 10_000))
@settings(max_examples=25, deadline=None)
def test_pcgrad_leaves_non_conflicting_gradients_unchanged(K, seed):
    # nonnegative entries: every pairwise inner product is >= 0, nothing is projected
    J = np.abs(random_jacobian(K, seed=seed))
    np.testing.assert_allclose(run("pcgrad", J, key=seed), J.sum(0), rtol=1e-6, atol=1e-6)


def test_pcgrad_removes_conflict_k2():
    J = np.array([[1.0, 0.0], [-1.0, 1.0]], np.float32)
    # g1^PC = g1 - (-1/2) g2 = [0.5, 0.5]; g2^PC = g2 - (-1/1) g1 = [0, 1]
    np.testing.assert_allclose(run("pcgrad", J), [0.5, 1.5], rtol=1e-6)


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("leak", [0.0, 0.3, "vector"])
def test_graddrop_matches_torchjd(K, leak):
    J = random_jacobian(K, P=40, seed=K)
    leak_value = np.linspace(0.0, 0.5, K).astype(np.float32) if leak == "vector" else leak
    _, sub = jax.random.split(jax.random.key(11))
    U = np.asarray(jax.random.uniform(jax.random.fold_in(sub, 0), (40,), jnp.float32))
    leak_vec = np.broadcast_to(np.asarray(leak_value, np.float64), (K,))
    np.testing.assert_allclose(run("graddrop", J, leak=leak_value, key=11),
                               ref_graddrop(J, U, leak_vec), rtol=1e-5, atol=1e-6)


def test_graddrop_keeps_agreeing_signs_and_leak_one_is_sum():
    J = np.array([[1.0, -2.0, 0.5], [3.0, -1.0, -0.5]], np.float32)
    np.testing.assert_allclose(run("graddrop", J, leak=1.0), J.sum(0), rtol=1e-6)
    out = run("graddrop", J)
    np.testing.assert_allclose(out[:2], [4.0, -3.0])
    assert out[2] in (0.5, -0.5)  # purity 1/2: one sign survives

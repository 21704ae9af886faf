"""``jaxloss.aggregate.min_norm``: MGDA, MGDA-UB and UPGrad against brute force and torchjd."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxloss import aggregate as agg
from tests.aggregate._references import (
    ATOL,
    RTOL,
    _mgda_weights,
    _upgrad_weights,
    random_jacobian,
    ref_dualproj,
    ref_min_norm_weights,
    ref_upgrad,
    run,
)


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mgda_is_the_min_norm_point(K, seed):
    J = random_jacobian(K, P=5, seed=seed)
    w = np.asarray(_mgda_weights(jnp.asarray(J)), np.float64)
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-6
    d = run("mgda", J)
    d_ref = ref_min_norm_weights(J) @ J.astype(np.float64)
    # reg_eps = 1e-6 on the trace-normalised Gram matrix moves the point by ~1e-6 relative
    np.testing.assert_allclose(d, d_ref, rtol=1e-4, atol=1e-5 * np.abs(J).max())
    # optimality: g_i . d >= |d|^2 for every task (equality on the support)
    assert np.all(J @ d >= d @ d - 1e-4 * np.abs(J).max() ** 2)


def test_mgda_matches_grid_search_on_simplex_k3():
    J = random_jacobian(3, P=4, seed=7).astype(np.float64)
    J[2] = -0.5 * J[0] + 0.3 * J[1]  # a hull that does not contain 0 in general
    grid = np.linspace(0.0, 1.0, 401)
    best, best_w = np.inf, None
    for a in grid:
        b = grid[grid <= 1.0 - a + 1e-12]
        w = np.stack([np.full_like(b, a), b, 1.0 - a - b], axis=1)
        norms = np.sum((w @ J) ** 2, axis=1)
        if norms.min() < best:
            best, best_w = norms.min(), w[norms.argmin()]
    d = run("mgda", J.astype(np.float32))
    # the grid has step 1/400: the brute-force point is within ~1e-3 of the exact one, and
    # the exact minimum norm is no larger than the grid's
    assert d @ d <= best + 1e-6
    np.testing.assert_allclose(d, best_w @ J, atol=5e-3 * np.abs(J).max())


def test_exact_min_norm_weights_k2_closed_form():
    # |t g1 + (1 - t) g2|^2 is minimised at t = g2.(g2 - g1) / |g1 - g2|^2, clipped to [0, 1]
    for seed in range(5):
        J = random_jacobian(2, seed=seed).astype(np.float64)
        g1, g2 = J
        t = np.clip(g2 @ (g2 - g1) / ((g1 - g2) @ (g1 - g2)), 0, 1)
        w = np.asarray(_mgda_weights(jnp.asarray(J, jnp.float32)))
        np.testing.assert_allclose(w, [t, 1 - t], atol=1e-4)


def test_mgda_ub_weights_from_the_representation_through_chain():
    rng = np.random.default_rng(0)
    jz = jnp.asarray(rng.normal(size=(3, 4, 5)), jnp.float32)   # dL_i / dz, z of shape (4, 5)
    jac = {"w": jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)}
    w = ref_min_norm_weights(np.asarray(jz).reshape(3, -1))
    tx = optax.chain(agg.mgda_ub(), optax.scale(-1.0))
    out, _ = tx.update(jac, tx.init({"w": jnp.zeros(6)}), representation_jacobian=jz)
    np.testing.assert_allclose(-np.asarray(out["w"]), w @ np.asarray(jac["w"], np.float64),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_upgrad_matches_torchjd_algorithm(K, seed):
    J = random_jacobian(K, seed=seed)
    np.testing.assert_allclose(run("upgrad", J), ref_upgrad(J), rtol=RTOL,
                               atol=ATOL * np.abs(J).max())


@given(st.integers(2, 5), st.integers(0, 10_000))
@settings(max_examples=30, deadline=None)
def test_upgrad_has_nonnegative_inner_product_with_every_task(K, seed):
    rng = np.random.default_rng(seed)
    # task gradients of very different norms (a factor up to ~e^6 apart)
    J = (random_jacobian(K, P=6, seed=seed) * np.exp(2 * rng.normal(size=(K, 1))))
    J = J.astype(np.float32)
    d = run("upgrad", J)
    J64 = J.astype(np.float64)
    # The exact projection gives J d >= 0. With torchjd's ridge reg_eps = 1e-4 on the
    # trace-normalised Gram matrix the KKT conditions read (G / tr G + reg_eps I) w >= 0 for the
    # summed weights w, i.e. g_j . d >= -reg_eps tr(G) w_j: that is the bound checked, plus
    # float32 noise. (torchjd has the same ridge, so the same slack.)
    gram = J64 @ J64.T
    w = np.asarray(_upgrad_weights(jnp.asarray(gram, jnp.float32)), np.float64)
    noise = 1e-5 * np.linalg.norm(J64, axis=1) * np.linalg.norm(d)
    assert np.all(J64 @ d >= -1e-4 * np.trace(gram) * np.abs(w) - noise)


@pytest.mark.parametrize("K", [2, 4])
def test_dualproj_matches_torchjd_algorithm_and_is_in_the_dual_cone(K):
    for seed in range(3):
        J = random_jacobian(K, seed=seed) * np.float32(1 + seed)
        d = run("dualproj", J)
        np.testing.assert_allclose(d, ref_dualproj(J), rtol=RTOL, atol=ATOL * np.abs(J).max())
        # reg_eps = 1e-4 on the trace-normalised Gram matrix: g_j . d >= -1e-4 tr(G) w_j (see
        # the UPGrad property test); w <= 1 here
        J64 = J.astype(np.float64)
        assert np.all(J64 @ d >= -2e-4 * np.trace(J64 @ J64.T))
        # no conflict with the mean: the mean itself
        positive = np.abs(J)
        np.testing.assert_allclose(run("dualproj", positive), positive.mean(0), rtol=1e-3)

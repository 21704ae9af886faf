"""``jaxloss.aggregate.balance``: CAGrad, IMTL-G, Aligned-MTL, Nash-MTL vs LibMTL and the paper."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxloss import aggregate as agg
from jaxloss.aggregate import balance
from tests.aggregate._references import (
    random_jacobian,
    ref_aligned_mtl,
    ref_cagrad,
    ref_fairgrad,
    ref_imtl_g,
    ref_nash_alpha,
    run,
)


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cagrad_matches_libmtl(K, seed):
    J = random_jacobian(K, seed=seed)
    for c in (0.4, 0.8):
        # two iterative solvers (SLSQP vs 100 projected-gradient steps): 1e-3 relative
        np.testing.assert_allclose(run("cagrad", J, c=c), ref_cagrad(J, c), rtol=1e-3,
                                   atol=1e-3 * np.abs(J).max())
    np.testing.assert_allclose(run("cagrad", J, c=0.0, rescale=0), J.mean(0), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(run("cagrad", J, c=0.5, rescale=2),
                               ref_cagrad(J, 0.5, rescale=2), rtol=1e-3, atol=1e-3)


def test_cagrad_takes_a_traced_c():
    J = jnp.asarray(random_jacobian(3))
    f = jax.jit(lambda c: agg.cagrad(c=c).update(J, optax.EmptyState())[0])
    np.testing.assert_allclose(f(jnp.float32(0.4)), ref_cagrad(np.asarray(J), 0.4), rtol=1e-3,
                               atol=1e-3)


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_imtl_g_matches_libmtl(K, seed):
    J = random_jacobian(K, seed=seed)
    d = run("imtl_g", J)
    np.testing.assert_allclose(d, ref_imtl_g(J), rtol=1e-3, atol=1e-4)
    # the defining property: equal projections on every task's unit gradient
    unit = J / np.linalg.norm(J, axis=1, keepdims=True)
    proj = unit @ d
    np.testing.assert_allclose(proj, np.full(K, proj[0]), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aligned_mtl_matches_libmtl(K, seed):
    J = random_jacobian(K, seed=seed)
    np.testing.assert_allclose(run("aligned_mtl", J), ref_aligned_mtl(J), rtol=1e-4,
                               atol=1e-5)


def test_aligned_mtl_drops_null_directions():
    J = random_jacobian(3).astype(np.float64)
    J[2] = J[0] + J[1]  # rank 2
    np.testing.assert_allclose(run("aligned_mtl", J.astype(np.float32)),
                               ref_aligned_mtl(J), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nash_mtl_solves_the_bargaining_equations(K, seed):
    J = random_jacobian(K, seed=seed) * np.float32(3.0)
    alpha = ref_nash_alpha(J)
    d = run("nash_mtl", J)
    np.testing.assert_allclose(d, alpha @ J.astype(np.float64), rtol=1e-3, atol=1e-4)
    # alpha_i (g_i . d) = 1: every task gets the same "utility" log(alpha_i) + log(g_i . d)
    np.testing.assert_allclose(alpha * (J @ d), np.ones(K), rtol=2e-3)


# alpha traced: one compilation per K for every alpha
_fair_weights = jax.jit(lambda gram, alpha: balance._fair_from_gram(gram, alpha, 20, 1e-6))


@pytest.mark.parametrize("K", [2, 4])
def test_fairgrad_matches_libmtl_and_solves_its_equations(K):
    J = random_jacobian(K, seed=K) * np.float32(2.0)
    gram = jnp.asarray(J.astype(np.float64) @ J.T.astype(np.float64), jnp.float32)
    for alpha in (0.5, 1.0, 3.0):
        d = np.asarray(_fair_weights(gram, jnp.float32(alpha)), np.float64) @ J
        np.testing.assert_allclose(d, ref_fairgrad(J, alpha), rtol=1e-3, atol=1e-4)
    # the transformation, at the default alpha = 1: Nash-MTL's bargaining equation
    np.testing.assert_allclose(run("fairgrad", J), ref_fairgrad(J, 1.0), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(run("fairgrad", J), run("nash_mtl", J), rtol=1e-6, atol=1e-6)

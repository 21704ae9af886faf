"""``jaxloss.aggregate._common``: the nonnegative QP solver."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np

from tests.aggregate._references import (
    _nonnegative_qp,
)


def test_nonnegative_qp_solver_matches_exhaustive_kkt():
    # the active-set solver against enumeration of all supports (exact for small K)
    rng = np.random.default_rng(3)
    for _ in range(10):
        A = rng.normal(size=(5, 7))
        Q = A @ A.T / 7 + 1e-3 * np.eye(5)
        c = rng.normal(size=5)
        best, best_x = np.inf, None
        for r in range(6):
            for support in itertools.combinations(range(5), r):
                x = np.zeros(5)
                if support:
                    s = list(support)
                    x[s] = np.linalg.solve(Q[np.ix_(s, s)], -c[s])
                if np.all(x >= -1e-12):
                    value = 0.5 * x @ Q @ x + c @ x
                    if value < best:
                        best, best_x = value, x
        got = np.asarray(_nonnegative_qp(jnp.asarray(Q, jnp.float32),
                                             jnp.asarray(c, jnp.float32), 25))
        np.testing.assert_allclose(got, best_x, rtol=1e-3, atol=1e-4)

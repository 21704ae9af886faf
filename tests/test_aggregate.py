"""Gradient aggregators against NumPy references of each paper's algorithm.

LibMTL and torchjd cannot be installed here; each reference below is written in
NumPy/SciPy (float64) from the published algorithm and names the code it
follows. The aggregators run in float32 on the K x K Gram matrix; the
references work on the full (K, P) vectors, so they also check the Gram-space
rewriting.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxloss import aggregate as agg
from jaxloss.aggregate import _common, min_norm, surgery

# ----------------------------------------------------------------------------- references


def ref_pcgrad(J, orders):
    """LibMTL ``weighting/PCGrad.py`` (Yu et al. 2020, Alg. 1): per task i, in order orders[i],
    project off the *original* g_j when the current g_i^PC . g_j < 0; return the sum."""
    J = np.asarray(J, np.float64)
    pc = J.copy()
    for i in range(len(J)):
        for j in orders[i]:
            dot = pc[i] @ J[j]
            if dot < 0:
                pc[i] -= dot * J[j] / (J[j] @ J[j])
    return pc.sum(0)


def ref_min_norm_weights(J, starts=8, seed=0):
    """Brute-force min-norm point of the convex hull: SLSQP on the simplex from several starts."""
    J = np.asarray(J, np.float64)
    K = len(J)
    G = J @ J.T
    rng = np.random.default_rng(seed)
    best = None
    for s in range(starts):
        x0 = np.full(K, 1.0 / K) if s == 0 else rng.dirichlet(np.ones(K))
        res = scipy.optimize.minimize(
            lambda w: w @ G @ w, x0, jac=lambda w: 2 * G @ w, bounds=[(0, 1)] * K,
            constraints={"type": "eq", "fun": lambda w: w.sum() - 1}, method="SLSQP",
            options={"ftol": 1e-15, "maxiter": 500})
        if best is None or res.fun < best.fun:
            best = res
    return best.x


def ref_upgrad(J, reg_eps=1e-4):
    """torchjd ``UPGradWeighting`` + ``project_weights``: G normalised by its trace plus
    reg_eps I; for u_i = e_i / K solve min_{v >= u_i} v^T G v (torchjd: quadprog; here
    exactly, as the NNLS min_{l>=0} |L^T (u + l)|^2 with G = L L^T); weights = sum_i v_i."""
    J = np.asarray(J, np.float64)
    K = len(J)
    G = J @ J.T
    trace = np.trace(G)
    G = (G / trace if trace >= 1e-4 else np.zeros_like(G)) + reg_eps * np.eye(K)
    L = np.linalg.cholesky(G)
    weights = np.zeros(K)
    for i in range(K):
        u = np.eye(K)[i] / K
        lam, _ = scipy.optimize.nnls(L.T, -L.T @ u)
        weights += u + lam
    return weights @ J


def ref_cagrad(J, calpha=0.4, rescale=1):
    """LibMTL ``weighting/CAGrad.py`` (the official code): SLSQP on the dual."""
    grads = np.asarray(J, np.float64)
    K = len(grads)
    GG = grads @ grads.T
    g0_norm = np.sqrt(GG.mean() + 1e-8)
    x_start = np.ones(K) / K
    A, b, c = GG, x_start.copy(), calpha * g0_norm + 1e-8

    def objfn(x):
        return x @ A @ b + c * np.sqrt(x @ A @ x + 1e-8)

    res = scipy.optimize.minimize(objfn, x_start, bounds=[(0, 1)] * K,
                                  constraints={"type": "eq", "fun": lambda x: 1 - x.sum()},
                                  options={"ftol": 1e-14, "maxiter": 1000})
    gw = res.x @ grads
    lmbda = c / (np.linalg.norm(gw) + 1e-8)
    g = grads.mean(0) + lmbda * gw
    return g / {0: 1.0, 1: 1 + calpha**2, 2: 1 + calpha}[rescale]


def ref_imtl_g(J):
    """LibMTL ``weighting/IMTL.py`` (gradient part, IMTL-G of Liu et al. 2021)."""
    grads = np.asarray(J, np.float64)
    unit = grads / np.linalg.norm(grads, axis=-1, keepdims=True)
    D = grads[0:1] - grads[1:]
    U = unit[0:1] - unit[1:]
    alpha = (grads[0] @ U.T) @ np.linalg.inv(D @ U.T)
    alpha = np.concatenate([[1 - alpha.sum()], alpha])
    return alpha @ grads


def ref_aligned_mtl(J):
    """LibMTL ``weighting/Aligned_MTL.py`` (Senushkin et al. 2023)."""
    grads = np.asarray(J, np.float64)
    M = grads @ grads.T
    lmbda, V = np.linalg.eigh(M)
    tol = lmbda.max() * max(M.shape) * np.finfo(np.float32).eps
    rank = int((lmbda > tol).sum())
    order = np.argsort(-lmbda)
    lmbda, V = lmbda[order][:rank], V[:, order][:, :rank]
    B = np.sqrt(lmbda[-1]) * (V @ np.diag(1 / np.sqrt(lmbda))) @ V.T
    return B.sum(0) @ grads


def ref_nash_alpha(J):
    """Navon et al. 2022, Thm 5.1: the bargaining weights solve alpha_i (G alpha)_i = 1, alpha > 0
    (the fixed point the official CVXPY/CCP solver iterates to). Solved here with SciPy's BFGS on
    s = log(alpha), whose stationarity condition alpha * (G alpha) = 1 is exactly that system."""
    G = np.asarray(J, np.float64) @ np.asarray(J, np.float64).T

    def objective(s):
        alpha = np.exp(s)
        return 0.5 * alpha @ G @ alpha - s.sum(), alpha * (G @ alpha) - 1.0

    start = -0.5 * np.log(np.diag(G))
    sol = scipy.optimize.minimize(objective, start, jac=True, method="BFGS",
                                  options={"gtol": 1e-12, "maxiter": 10_000})
    alpha = np.exp(sol.x)
    np.testing.assert_allclose(alpha * (G @ alpha), 1.0, rtol=1e-8)
    return alpha


def ref_graddrop(J, U, leak):
    """torchjd ``aggregation.GradDrop`` (lines 10-15 of Alg. 1 of Chen et al. 2020)."""
    matrix = np.asarray(J, np.float64)
    abs_sum = np.abs(matrix).sum(0)
    P = 0.5 * (1.0 + np.divide(matrix.sum(0), abs_sum, out=np.zeros_like(abs_sum),
                               where=abs_sum != 0))
    vector = np.zeros(matrix.shape[1])
    for i in range(len(matrix)):
        M_i = (P > U) * (matrix[i] > 0) + (P < U) * (matrix[i] < 0)
        vector += (leak[i] + (1 - leak[i]) * M_i) * matrix[i]
    return vector


# ----------------------------------------------------------------------------- inputs


def random_jacobian(K, P=8, seed=0):
    return np.random.default_rng(seed).normal(size=(K, P)).astype(np.float32)


def special_jacobians(K, P=6):
    rng = np.random.default_rng(K)
    g = rng.normal(size=P)
    conflicting = np.stack([g if i % 2 == 0 else -g + 0.1 * rng.normal(size=P)
                            for i in range(K)])
    aligned = np.stack([(i + 1) * g for i in range(K)])
    opposite = np.stack([g if i % 2 == 0 else -g for i in range(K)])
    zero = np.zeros((K, P))
    one_zero = rng.normal(size=(K, P))
    one_zero[0] = 0.0
    return {"conflicting": conflicting, "aligned": aligned, "opposite": opposite,
            "zero": zero, "one_zero": one_zero}


_JITTED = {}
_upgrad_weights = jax.jit(lambda gram: min_norm._upgrad_from_gram(gram, None, 1e-4))
_mgda_weights = jax.jit(agg.mgda_weights)
_nonnegative_qp = jax.jit(_common.nonnegative_qp, static_argnums=2)


def _hashable(value):
    return tuple(np.ravel(value).tolist()) if isinstance(value, np.ndarray) else value


def run(name, J, *, key=None, **kwargs):
    """The aggregator ``name`` applied (jitted) to J, as float64 NumPy.

    One jitted update per configuration, reused across calls (the PRNG key lives in the
    state, an argument), so the suite compiles each solver only a few times."""
    cache_key = (name, tuple(sorted((k, _hashable(v)) for k, v in kwargs.items())))
    if cache_key not in _JITTED:
        _JITTED[cache_key] = jax.jit(ALL[name](**kwargs).update)
    state = ALL[name](**kwargs, **({} if key is None else {"key": key})).init(None)
    out, _ = _JITTED[cache_key](jnp.asarray(J, jnp.float32), state)
    return np.asarray(out, np.float64)


# float32 solves on a normalised K x K Gram matrix against float64 references:
# rtol 1e-4 leaves room for the float32 Gram matrix (sums over P) and linear solves.
RTOL, ATOL = 1e-4, 1e-5

ALL = {
    "mean": agg.mean, "sum": agg.sum, "pcgrad": agg.pcgrad, "mgda": agg.mgda,
    "cagrad": agg.cagrad, "imtl_g": agg.imtl_g, "aligned_mtl": agg.aligned_mtl,
    "nash_mtl": agg.nash_mtl, "upgrad": agg.upgrad, "graddrop": agg.graddrop,
}

# public names with tests of their own rather than the shared ones over ALL
SEPARATELY_TESTED = {
    "mgda_ub": "test_mgda_ub_weights_from_the_representation_through_chain",
    "mgda_weights": "test_exact_min_norm_weights_k2_closed_form",
}


def test_every_public_aggregator_is_tested():
    # driven by the package's __all__: a new aggregator fails here until it joins ALL
    # (and with it every shared test) or has a dedicated test named in SEPARATELY_TESTED
    assert set(agg.__all__) == set(ALL) | set(SEPARATELY_TESTED)
    assert all(name in globals() for name in SEPARATELY_TESTED.values())
    for name in agg.__all__:
        assert getattr(agg, name).__module__.startswith("jaxloss.aggregate."), name


# ----------------------------------------------------------------------------- value tests


@pytest.mark.parametrize("K", [2, 3, 4])
def test_mean_and_sum(K):
    J = random_jacobian(K)
    np.testing.assert_allclose(run("mean", J), J.mean(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(run("sum", J), J.sum(0), rtol=1e-6, atol=1e-6)


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


# ----------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("K", [2, 3, 4])
def test_special_jacobians_give_finite_outputs(name, K):
    for label, J in special_jacobians(K).items():
        out = run(name, J.astype(np.float32))
        assert np.all(np.isfinite(out)), (name, label, out)
        if label == "zero":
            np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize("K", [2, 3])
def test_aligned_gradients(K):
    J = special_jacobians(K)["aligned"].astype(np.float32)
    g = J[0].astype(np.float64)
    # every g_i is a positive multiple of g: no conflict, no projection
    np.testing.assert_allclose(run("pcgrad", J), J.sum(0), rtol=1e-5)
    np.testing.assert_allclose(run("upgrad", J), ref_upgrad(J), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(run("mgda", J), g, rtol=1e-3, atol=1e-4)  # the shortest


def test_opposite_gradients_are_pareto_stationary_for_mgda():
    J = special_jacobians(2)["opposite"].astype(np.float32)
    np.testing.assert_allclose(run("mgda", J), 0.0, atol=1e-3 * np.abs(J).max())
    np.testing.assert_allclose(run("pcgrad", J), 0.0, atol=1e-5)
    np.testing.assert_allclose(run("upgrad", J), 0.0, atol=1e-3 * np.abs(J).max())


# ----------------------------------------------------------------------------- pytrees, dtypes


@pytest.mark.parametrize("name", sorted(ALL))
def test_pytree_updates_equal_flattened_matrix(name):
    K = 3
    J = random_jacobian(K, P=2 * 3 + 4 + 1, seed=5)
    tree = {"w": jnp.asarray(J[:, :6].reshape(K, 2, 3)), "b": jnp.asarray(J[:, 6:10]),
            "s": jnp.asarray(J[:, 10])}
    tx = ALL[name]()
    out_tree, _ = jax.jit(tx.update)(tree, tx.init(None))
    if name == "graddrop":  # per-leaf random draws: compare with the reference per leaf
        _, sub = jax.random.split(jax.random.key(0))
        for index, leaf in enumerate(jax.tree_util.tree_leaves(tree)):
            flat = np.asarray(leaf).reshape(K, -1)
            U = np.asarray(jax.random.uniform(jax.random.fold_in(sub, index), leaf.shape[1:],
                                              jnp.float32)).reshape(-1)
            got = np.asarray(out_tree[sorted(tree)[index]]).reshape(-1)
            np.testing.assert_allclose(got, ref_graddrop(flat, U, np.zeros(K)), rtol=1e-5,
                                       atol=1e-6)
        return
    flat_out = run(name, J)
    got = np.concatenate([np.asarray(out_tree["w"]).reshape(-1), np.asarray(out_tree["b"]),
                          np.asarray(out_tree["s"]).reshape(-1)])
    # the Gram matrix is accumulated leaf by leaf vs in one product: float32 rounding, which
    # CAGrad's iterative dual solve amplifies to ~2e-4 relative
    rtol = 1e-3 if name == "cagrad" else 1e-4
    np.testing.assert_allclose(got, flat_out, rtol=rtol, atol=1e-5)
    assert out_tree["w"].shape == (2, 3) and out_tree["s"].shape == ()


@pytest.mark.parametrize("name", sorted(ALL))
def test_half_precision_leaves_keep_their_dtype(name):
    J = random_jacobian(3)
    tree = {"a": jnp.asarray(J[:, :4], jnp.bfloat16), "b": jnp.asarray(J[:, 4:], jnp.float32)}
    tx = ALL[name]()
    out, _ = jax.jit(tx.update)(tree, tx.init(None))
    assert out["a"].dtype == jnp.bfloat16 and out["b"].dtype == jnp.float32
    assert all(np.all(np.isfinite(np.asarray(leaf, np.float32)))
               for leaf in jax.tree_util.tree_leaves(out))


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="same leading task axis"):
        agg.mgda().update({"a": jnp.zeros((2, 3)), "b": jnp.zeros((3, 3))}, optax.EmptyState())
    with pytest.raises(ValueError, match="leading task axis"):
        agg.upgrad().update({"a": jnp.zeros(())}, optax.EmptyState())
    with pytest.raises(ValueError, match="empty"):
        agg.pcgrad().update({}, agg.pcgrad().init(None))
    with pytest.raises(ValueError, match="c must lie"):
        agg.cagrad(c=-1.0)
    with pytest.raises(ValueError, match="rescale"):
        agg.cagrad(rescale=3)
    with pytest.raises(ValueError, match="leak"):
        agg.graddrop(leak=1.5)
    with pytest.raises(ValueError, match="representation_jacobian"):
        agg.mgda_ub().update(jnp.zeros((2, 3)), optax.EmptyState())
    with pytest.raises(ValueError, match="tasks"):
        agg.mgda_ub().update(jnp.zeros((2, 3)), optax.EmptyState(),
                             representation_jacobian=jnp.zeros((3, 4)))


def test_mgda_ub_weights_from_the_representation_through_chain():
    rng = np.random.default_rng(0)
    jz = jnp.asarray(rng.normal(size=(3, 4, 5)), jnp.float32)   # dL_i / dz, z of shape (4, 5)
    jac = {"w": jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)}
    w = ref_min_norm_weights(np.asarray(jz).reshape(3, -1))
    tx = optax.chain(agg.mgda_ub(), optax.scale(-1.0))
    out, _ = tx.update(jac, tx.init({"w": jnp.zeros(6)}), representation_jacobian=jz)
    np.testing.assert_allclose(-np.asarray(out["w"]), w @ np.asarray(jac["w"], np.float64),
                               rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- training


def test_every_aggregator_trains_a_flax_nnx_multi_head_model():
    from flax import nnx

    K = 3

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.trunk = nnx.Linear(4, 16, rngs=rngs)
            self.heads = nnx.List([nnx.Linear(16, 1, rngs=rngs) for _ in range(K)]) \
                if hasattr(nnx, "List") else [nnx.Linear(16, 1, rngs=rngs) for _ in range(K)]

        def __call__(self, x):
            h = jax.nn.relu(self.trunk(x))
            return jnp.concatenate([head(h) for head in self.heads], axis=-1)  # [N, K]

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(32, 4)), jnp.float32)
    targets = jnp.asarray(np.stack([np.sin(np.asarray(x) @ rng.normal(size=4))
                                    for _ in range(K)], axis=-1), jnp.float32)
    graphdef, params0 = nnx.split(Model(nnx.Rngs(0)), nnx.Param)

    def task_losses(params):
        preds = nnx.merge(graphdef, params)(x)
        return jnp.mean((preds - targets) ** 2, axis=0)        # [K]

    factories = dict(ALL, mgda_ub=agg.mgda_ub)
    # optax.adam mixes weakly-typed Python scalars with float32 in ways the suite's strict
    # promotion rejects; the aggregators themselves run under strict promotion elsewhere.
    with jax.numpy_dtype_promotion("standard"):
        for name, factory in factories.items():
            tx = optax.chain(factory(), optax.adam(1e-2))

            @jax.jit
            def step(params, state, tx=tx, name=name):
                losses, jac = task_losses(params), jax.jacrev(task_losses)(params)
                extra = {}
                if name == "mgda_ub":  # Jacobian w.r.t. the shared trunk features
                    model = nnx.merge(graphdef, params)
                    z = jax.nn.relu(model.trunk(x))
                    def head_losses(z):
                        preds = jnp.concatenate([h(z) for h in model.heads], axis=-1)
                        return jnp.mean((preds - targets) ** 2, axis=0)
                    extra["representation_jacobian"] = jax.jacrev(head_losses)(z)
                updates, state = tx.update(jac, state, params, **extra)
                return optax.apply_updates(params, updates), state, losses

            params, state = params0, tx.init(params0)
            first = None
            for _ in range(40):
                params, state, losses = step(params, state)
                first = losses if first is None else first
            final = task_losses(params)
            assert np.all(np.isfinite(np.asarray(final))), name
            assert float(jnp.sum(final)) < 0.9 * float(jnp.sum(first)), (name, first, final)


def test_exact_min_norm_weights_k2_closed_form():
    # |t g1 + (1 - t) g2|^2 is minimised at t = g2.(g2 - g1) / |g1 - g2|^2, clipped to [0, 1]
    for seed in range(5):
        J = random_jacobian(2, seed=seed).astype(np.float64)
        g1, g2 = J
        t = np.clip(g2 @ (g2 - g1) / ((g1 - g2) @ (g1 - g2)), 0, 1)
        w = np.asarray(_mgda_weights(jnp.asarray(J, jnp.float32)))
        np.testing.assert_allclose(w, [t, 1 - t], atol=1e-4)


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

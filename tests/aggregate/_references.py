"""Gradient aggregators against NumPy references of each paper's algorithm.

Each reference below is written in NumPy/SciPy (float64) from the published
algorithm and names the code it follows (LibMTL does not install here; torchjd
does, and ``test_conflict.py`` also checks the newer aggregators against it
directly when it is installed). The aggregators run in float32 on the K x K Gram matrix; the
references work on the full (K, P) vectors, so they also check the Gram-space
rewriting.

Shared by the tests of ``tests/aggregate/``: the references, the inputs and ``run``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from jaxloss import aggregate as agg
from jaxloss.aggregate import _common, min_norm


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


def _ref_dual_cone_weights(J, prefs, reg_eps):
    """torchjd's ``QuadprogProjector``: G normalised by its trace plus reg_eps I; for every row u
    of prefs, min_{v >= u} v^T G v (torchjd: quadprog; here exactly, as the NNLS
    min_{l>=0} |L^T (u + l)|^2 with G = L L^T). Returns the v, one row per u."""
    J = np.asarray(J, np.float64)
    K = len(J)
    G = J @ J.T
    trace = np.trace(G)
    G = (G / trace if trace >= 1e-4 else np.zeros_like(G)) + reg_eps * np.eye(K)
    L = np.linalg.cholesky(G)
    return np.stack([u + scipy.optimize.nnls(L.T, -L.T @ u)[0] for u in prefs])


def ref_upgrad(J, reg_eps=1e-4):
    """torchjd ``UPGradWeighting`` + ``project_weights``: every u_i = e_i / K projected; the
    weights are sum_i v_i."""
    K = len(J)
    return _ref_dual_cone_weights(J, np.eye(K) / K, reg_eps).sum(0) @ np.asarray(J, np.float64)


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


def ref_gradvac(J, targets, orders, beta=0.5, eps=1e-8):
    """torchjd ``GradVacWeighting.forward`` / LibMTL ``weighting/GradVac.py`` (whole model) on the
    full vectors, with given orders (row i: the other tasks in the order task i meets them); the
    target is updated at every visit (torchjd, the paper). Returns (d, new targets)."""
    J = np.asarray(J, np.float64)
    targets = np.array(targets, np.float64)
    pc = J.copy()
    for i in range(len(J)):
        for j in orders[i]:
            norm_i, norm_j = np.linalg.norm(pc[i]), np.linalg.norm(J[j])
            phi = pc[i] @ J[j] / (norm_i * norm_j + eps)
            hat = targets[i, j]
            if phi < hat:
                w = norm_i * (hat * np.sqrt(max(1 - phi**2, 0.0))
                              - phi * np.sqrt(max(1 - hat**2, 0.0)))
                pc[i] = pc[i] + J[j] * w / (norm_j * np.sqrt(max(1 - hat**2, 0.0)) + eps)
            targets[i, j] = (1 - beta) * hat + beta * phi
    return pc.sum(0), targets


def ref_config(J):
    """torchjd ``aggregation.ConFIG`` (Liu et al. 2024, eq. 2; tum-pbs/ConFIG): unit rows
    (zero rows stay 0), v = pinv(U) 1 normalised, d = (sum_i g_i . v) v."""
    J = np.asarray(J, np.float64)
    norms = np.linalg.norm(J, axis=1, keepdims=True)
    units = np.divide(J, norms, out=np.zeros_like(J), where=norms > 0)
    best = np.linalg.pinv(units, rcond=1e-6) @ np.ones(len(J))
    size = np.linalg.norm(best)
    v = best / size if size > 1e-12 else np.zeros_like(best)
    return np.sum(J @ v) * v


def ref_dualproj(J, reg_eps=1e-4):
    """torchjd ``DualProjWeighting`` + ``QuadprogProjector``: the mean weights u = 1 / K
    projected."""
    K = len(J)
    return _ref_dual_cone_weights(J, np.full((1, K), 1.0 / K), reg_eps)[0] @ np.asarray(
        J, np.float64)


def ref_fairgrad(J, alpha):
    """LibMTL ``weighting/FairGrad.py`` / torchjd ``FairGradWeighting`` (Ban & Ji 2024, eq. 4):
    SciPy ``least_squares`` on G w - w^(-1/alpha) = 0, w >= 0, from w = 1 / K (tolerances
    tightened to float64 here)."""
    J = np.asarray(J, np.float64)
    G = J @ J.T
    K = len(J)
    res = scipy.optimize.least_squares(lambda w: G @ w - np.power(w, -1.0 / alpha),
                                       np.ones(K) / K, bounds=(0, np.inf), xtol=1e-15,
                                       ftol=1e-15, gtol=1e-15)
    np.testing.assert_allclose(G @ res.x, res.x ** (-1.0 / alpha), rtol=1e-7)
    return res.x @ J


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
    if name in NEEDS_NUM_TASKS:
        kwargs = {"num_tasks": len(J), **kwargs}
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
    # GradVac's state holds (K, K) targets: built for K = 3 unless run() passes num_tasks
    "gradvac": functools.partial(agg.gradvac, num_tasks=3), "config": agg.config,
    "dualproj": agg.dualproj, "fairgrad": agg.fairgrad,
}

# aggregators whose factory needs the task count (run() passes num_tasks=K)
NEEDS_NUM_TASKS = {"gradvac"}

"""Conflict-aware aggregators: GradVac's cosine targets and ConFIG's conflict-free direction."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._numerics import safe_div, safe_sqrt
from jaxloss.aggregate._common import (
    F32,
    as_key,
    combine_tasks,
    gram_matrix,
    gram_weighted,
    task_leaves,
)

__all__ = ["GradVacState", "config", "gradvac"]


class GradVacState(NamedTuple):
    """GradVac's state: the running cosine targets and the PRNG key of the task orders.

    Example:
      >>> import jaxloss.aggregate as agg
      >>> state = agg.gradvac(num_tasks=3).init(None)
      >>> state.targets.shape, float(state.targets.sum())
      ((3, 3), 0.0)

    References:
      See :func:`gradvac`.
    """

    key: Array  # the PRNG key of the next update's task orders
    targets: Array  # (K, K) float32: the EMA target cosine phi_hat[i, j] of task i towards j


def _gradvac_orders(key: Array, k: int) -> Array:
    """Row i: the K - 1 other tasks in a uniformly random order, ``[K, K - 1]``."""
    draws = jax.random.uniform(key, (k, k))
    draws = jnp.where(jnp.eye(k, dtype=bool), 2.0, draws)  # task i itself sorts last
    return jnp.argsort(draws, axis=1)[:, : k - 1]


def _gradvac_from_gram(gram: Array, targets: Array, orders: Array, beta: Array,
                       eps: float) -> tuple[Array, Array]:
    # g_i^PC = sum_m C[i, m] g_m: every inner product is read off the Gram matrix
    # (||g_i^PC||^2 = C_i G C_i^T, g_i^PC . g_j = (C G)[i, j]); the K tasks i run their own
    # order in parallel, one fori_loop step per position s of the orders.
    k = gram.shape[0]
    if k == 1:  # no pair to correct
        return jnp.ones((1,), gram.dtype), targets
    norms = safe_sqrt(jnp.diagonal(gram))
    rows = jnp.arange(k)

    def step(s: int, carry: tuple[Array, Array]) -> tuple[Array, Array]:
        coeffs, targets = carry
        j = orders[:, s]                                      # [K] the task i meets now
        cg = coeffs @ gram                                    # [K, K] g_i^PC . g_m
        norm_i = safe_sqrt(jnp.maximum(jnp.sum(cg * coeffs, axis=1), 0.0))
        norm_j = norms[j]
        phi = cg[rows, j] / (norm_i * norm_j + eps)
        phi_hat = targets[rows, j]
        root_phi = jnp.sqrt(jnp.maximum(1.0 - phi * phi, 0.0))
        root_hat = jnp.sqrt(jnp.maximum(1.0 - phi_hat * phi_hat, 0.0))
        w = norm_i * (phi_hat * root_phi - phi * root_hat) / (norm_j * root_hat + eps)
        w = jnp.where(phi < phi_hat, w, 0.0)
        coeffs = coeffs.at[rows, j].add(w)
        targets = targets.at[rows, j].set((1.0 - beta) * phi_hat + beta * phi)
        return coeffs, targets

    coeffs, targets = jax.lax.fori_loop(0, k - 1, step, (jnp.eye(k, dtype=gram.dtype), targets))
    return jnp.sum(coeffs, axis=0), targets


def gradvac(*, num_tasks: int, beta: ArrayLike = 0.5, eps: float = 1e-8,
            key: ArrayLike | int = 0) -> optax.GradientTransformation:
    r"""GradVac: raises each pair's gradient cosine to a running target, then sums.

    For every task ``i``, in a random order of the other tasks ``j`` (a fresh
    order per task and per step), with
    :math:`\phi_{ij} = \cos(g_i^{PC}, g_j)` and the target
    :math:`\hat\phi_{ij}` (an exponential moving average kept in the state,
    initially 0):

    .. math::
        \text{if } \phi_{ij} < \hat\phi_{ij}:\quad
        g_i^{PC} \mathrel{+}= \frac{\|g_i^{PC}\|\big(\hat\phi_{ij}\sqrt{1-\phi_{ij}^2}
        - \phi_{ij}\sqrt{1-\hat\phi_{ij}^2}\big)}{\|g_j\|\sqrt{1-\hat\phi_{ij}^2}}\, g_j,
        \qquad \hat\phi_{ij} \leftarrow (1-\beta)\hat\phi_{ij} + \beta\phi_{ij},

    and :math:`d = \sum_i g_i^{PC}`. The correction makes the cosine of the
    pair exactly :math:`\hat\phi_{ij}`; with targets at 0 it is PCGrad's
    projection. Denominators get ``eps`` as in the reference code. The
    targets are over the whole flattened gradient (LibMTL's
    ``GradVac_group_type=0``); the target is updated at every visit, as the
    paper and torchjd (LibMTL updates it only when the correction applies).
    The projections run on the ``K x K`` Gram matrix, vectorised over tasks.

    Args:
      num_tasks: ``K``, static: the shape of the targets in the state.
      beta: the EMA rate :math:`\beta` in [0, 1] (default 0.5, LibMTL's and
        torchjd's); a float or a JAX scalar.
      eps: added to the denominators.
      key: PRNG key or integer seed of the task orders, kept in the state
        (:class:`GradVacState`) and split at every update.

    Returns:
      An ``optax.GradientTransformation`` over task Jacobians with a
      :class:`GradVacState`.

    Raises:
      ValueError: the updates' task axis differs from ``num_tasks``.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.gradvac(num_tasks=2)
      >>> jac = jnp.array([[1.0, 0.0], [-1.0, 1.0]])   # cosine -0.707 < target 0
      >>> out, state = tx.update(jac, tx.init(None))
      >>> out.round(4).tolist()   # targets 0: PCGrad's [0.5, 0.5] + [0, 1]
      [0.5, 1.5]
      >>> state.targets.round(4).tolist()   # 0.5 * 0 + 0.5 * (-0.7071)
      [[0.0, -0.3536], [-0.3536, 0.0]]

    References:
      Wang et al., `Gradient Vaccine: Investigating and Improving Multi-task
      Optimization in Massively Multilingual Models
      <https://arxiv.org/abs/2010.05874>`_, ICLR 2021 (Algorithm 1). LibMTL
      ``weighting.GradVac``; torchjd ``aggregation.GradVac(beta=0.5)``.
    """
    k = _checks.static_int(num_tasks, "num_tasks", low=1)
    _checks.check_range(beta, "beta", low=0.0, high=1.0)
    _checks.check_range(eps, "eps", low=0.0)
    key0 = as_key(key)

    def init_fn(params: Any) -> GradVacState:
        del params
        return GradVacState(key=key0, targets=jnp.zeros((k, k), F32))

    def update_fn(updates: Any, state: GradVacState,
                  params: Any = None) -> tuple[Any, GradVacState]:
        del params
        leaves, treedef, tasks = task_leaves(updates)
        if tasks != k:
            raise ValueError(f"gradvac was built with num_tasks={k} but the updates have "
                             f"{tasks} tasks on their leading axis.")
        next_key, sub = jax.random.split(state.key)
        gram = jax.lax.stop_gradient(gram_matrix(leaves))
        weights, targets = _gradvac_from_gram(
            gram, jax.lax.stop_gradient(state.targets), _gradvac_orders(sub, k),
            _checks.hyperparameter(beta, "beta", F32), eps)
        return combine_tasks(weights, leaves, treedef), GradVacState(key=next_key,
                                                                     targets=targets)

    return optax.GradientTransformation(init_fn, update_fn)


def _config_from_gram(gram: Array) -> Array:
    # ConFIG's direction is pinv(U) 1 with U = D^{-1} J the unit gradients (D their norms):
    # J^T c with c = D^{-1} (U U^T)^+ 1, U U^T the cosine matrix. The output is
    # (sum_i g_i . v) v with v the unit direction: weights (1^T G c) / (c^T G c) c.
    k = gram.shape[0]
    inv_norm = safe_div(jnp.ones((k,), gram.dtype), safe_sqrt(jnp.diagonal(gram)))
    cosine = gram * inv_norm[:, None] * inv_norm[None, :]
    lam, vec = jnp.linalg.eigh(cosine)
    tol = jnp.max(lam) * k * jnp.finfo(gram.dtype).eps * 10.0
    inv = jnp.where(lam > tol, 1.0 / jnp.where(lam > tol, lam, 1.0), 0.0)
    c = inv_norm * ((vec * inv[None, :]) @ (vec.T @ jnp.ones((k,), gram.dtype)))
    gc = gram @ c
    return safe_div(jnp.sum(gc), jnp.dot(c, gc)) * c


def config() -> optax.GradientTransformation:
    r"""ConFIG: the direction with equal cosine to every task gradient, at the summed length.

    With the unit gradients :math:`u_i = g_i/\|g_i\|` (rows of ``U``; a zero
    gradient gives a zero row):

    .. math::
        v = \frac{U^+ \mathbf 1}{\|U^+ \mathbf 1\|}, \qquad
        d = \Big(\sum_i g_i \cdot v\Big)\, v

    :math:`U^+\mathbf 1` is the least-norm vector with :math:`u_i \cdot x = 1`
    for every task, so ``v`` makes the same angle with every task gradient
    (when the gradients are independent), and the length is that of the sum
    projected on ``v``. Computed on the ``K x K`` cosine matrix
    (pseudo-inverse by eigendecomposition, eigenvalues below
    :math:`10\,K\,\epsilon_{f32}\lambda_{max}` dropped). Where no direction
    is positive for every task (e.g. exactly opposite gradients) ``d`` is 0.

    Returns:
      An ``optax.GradientTransformation`` over task Jacobians.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.config()
      >>> out, _ = tx.update(jnp.array([[2.0, 0.0], [0.0, 1.0]]), tx.init(None))
      >>> out.round(4).tolist()   # v = (1, 1) / sqrt 2, length (2 + 1) / sqrt 2
      [1.5, 1.5]

    References:
      Liu, Chu and Thuerey, `ConFIG: Towards Conflict-free Training of
      Physics Informed Neural Networks <https://arxiv.org/abs/2408.11104>`_,
      ICLR 2025, eq. 2. torchjd ``aggregation.ConFIG``; the authors'
      ``tum-pbs/ConFIG``.
    """
    return gram_weighted(_config_from_gram)

"""Minimum-norm and dual-cone aggregators: MGDA, MGDA-UB, UPGrad and DualProj."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax import Array

from jaxloss import _checks
from jaxloss.aggregate._common import (
    F32,
    combine_tasks,
    default_iterations,
    gram_matrix,
    gram_weighted,
    nonnegative_qp,
    normalized_gram,
    task_leaves,
)

__all__ = ["dualproj", "mgda", "mgda_ub", "mgda_weights", "upgrad"]


def _mgda_from_gram(gram: Array, iterations: int | None, reg_eps: float) -> Array:
    # min_{w in simplex} w^T G w via the nonnegative problem min_{x>=0} 1/2 x^T G x - 1^T x,
    # whose solution is x* = w* / |g_w*|^2 (KKT: (G x)_k >= 1, equality on the support).
    k = gram.shape[0]
    q = normalized_gram(gram, reg_eps)
    x = nonnegative_qp(q, -jnp.ones((k,), q.dtype), default_iterations(iterations, k))
    return x / jnp.sum(x)  # sum(x) > 0: the first active-set step always adds a task


def _upgrad_from_gram(gram: Array, iterations: int | None, reg_eps: float) -> Array:
    # weights of the projection of J^T u_i (u_i = e_i / K) onto the dual cone {x: J x >= 0}:
    # v_i = argmin_{v >= u_i} v^T G v  (Quinton & Rey, Prop. 1), v_i = u_i + lambda_i with
    # lambda_i = argmin_{l >= 0} 1/2 l^T G l + (G u_i)^T l. The update is J^T sum_i v_i.
    k = gram.shape[0]
    prefs = jnp.eye(k, dtype=F32) / k
    return jnp.sum(_dual_cone_weights(gram, prefs, iterations, reg_eps), axis=0)


def _dualproj_from_gram(gram: Array, iterations: int | None, reg_eps: float) -> Array:
    # the projection of the mean gradient J^T u (u = 1 / K) onto the dual cone
    k = gram.shape[0]
    return _dual_cone_weights(gram, jnp.full((1, k), 1.0 / k, F32), iterations, reg_eps)[0]


def _dual_cone_weights(gram: Array, prefs: Array, iterations: int | None,
                       reg_eps: float) -> Array:
    """Weights ``v`` of the projections of ``J^T u`` (rows ``u`` of ``prefs``) onto the dual cone
    ``{x: J x >= 0}``: ``v = argmin_{v >= u} v^T G v`` on the normalised Gram matrix."""
    q = normalized_gram(gram, reg_eps)
    steps = default_iterations(iterations, gram.shape[0])
    lambdas = jax.vmap(lambda u: nonnegative_qp(q, q @ u, steps))(prefs.astype(q.dtype))
    return prefs + lambdas


def mgda_weights(jacobian: Any, *, iterations: int | None = None,
                 reg_eps: float = 1e-6) -> Array:
    r"""MGDA's weights: the convex combination of the task gradients with the least norm.

    .. math::
        w = \arg\min_{w \ge 0,\ \sum_i w_i = 1} \Big\|\sum_i w_i g_i\Big\|^2

    Solved exactly (up to float32) on the ``K x K`` Gram matrix: the simplex
    problem is rewritten as the nonnegative problem
    :math:`\min_{x\ge0} \tfrac12 x^T G x - 1^T x` (whose solution is
    :math:`w / \|g_w\|^2`), solved by Lawson-Hanson's active-set method,
    and normalised. The paper's Frank-Wolfe iteration converges to the same
    point.

    This is also the entry point of **MGDA-UB**: pass the Jacobian of the task
    losses with respect to the *shared representation* (e.g.
    ``jax.jacrev(lambda z: task_losses(heads, z))(features)``, leaves
    ``(K, *features.shape)``), then apply the weights to the losses
    (``jax.grad(lambda p: w @ task_losses(p))``) or to the parameter Jacobian
    (:func:`mgda_ub`).

    Args:
      jacobian: pytree whose leaves have a leading task axis ``K``.
      iterations: most active-set steps (static); default ``3 K + 10``.
      reg_eps: added to the diagonal of the trace-normalised Gram matrix so
        that the problem stays well posed when 0 lies in the hull.

    Returns:
      ``(K,)`` float32 weights, nonnegative, summing to 1.

    Raises:
      ValueError: leaves without a common leading task axis.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> w = agg.mgda_weights(jnp.array([[1.0, 0.0], [-1.0, 1.0]]))
      >>> w.round(3).tolist()   # min over t of |t g1 + (1 - t) g2|^2: t = 0.6
      [0.6, 0.4]

    References:
      Sener & Koltun, `Multi-Task Learning as Multi-Objective Optimization
      <https://arxiv.org/abs/1810.04650>`_, 2018 (MGDA and MGDA-UB).
      LibMTL ``weighting.MGDA`` (``rep_grad=True`` for UB); torchjd
      ``aggregation.MGDA``.
    """
    leaves, _, _ = task_leaves(jacobian, "jacobian")
    _checks.check_range(reg_eps, "reg_eps", low=0.0, low_inclusive=False)
    return _mgda_from_gram(jax.lax.stop_gradient(gram_matrix(leaves)), iterations, reg_eps)


def mgda(*, iterations: int | None = None, reg_eps: float = 1e-6) -> optax.GradientTransformation:
    r"""MGDA: the minimum-norm point of the convex hull of the task gradients.

    .. math::
        d = \sum_i w_i g_i, \quad w = \arg\min_{w \in \Delta_K} \Big\|\sum_i w_i g_i\Big\|^2

    ``d`` is a common descent direction for every task (``g_i . d >= |d|^2``)
    and 0 at a Pareto-stationary point. See :func:`mgda_weights` for the
    solver (exact active set, not the paper's Frank-Wolfe iterations) and
    :func:`mgda_ub` for the shared-representation variant.

    Args:
      iterations: most active-set steps (static); default ``3 K + 10``.
      reg_eps: ridge on the trace-normalised Gram matrix (see :func:`mgda_weights`).

    Returns:
      An ``optax.GradientTransformation`` over task Jacobians.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.mgda()
      >>> out, _ = tx.update(jnp.array([[1.0, 0.0], [-1.0, 1.0]]), tx.init(None))
      >>> out.round(3).tolist()   # 0.6 g1 + 0.4 g2
      [0.2, 0.4]

    References:
      Sener & Koltun, `Multi-Task Learning as Multi-Objective Optimization
      <https://arxiv.org/abs/1810.04650>`_, 2018; Désidéri, MGDA, 2012.
      LibMTL ``weighting.MGDA``; torchjd ``aggregation.MGDA``.
    """
    _checks.check_range(reg_eps, "reg_eps", low=0.0, low_inclusive=False)
    return gram_weighted(lambda gram: _mgda_from_gram(gram, iterations, reg_eps))


def mgda_ub(*, iterations: int | None = None,
            reg_eps: float = 1e-6) -> optax.GradientTransformationExtraArgs:
    r"""MGDA-UB: MGDA weights from the shared representation, applied to the parameter Jacobian.

    The weights come from the Jacobian of the task losses with respect to the
    shared features ``z`` (:func:`mgda_weights`), an upper bound on the
    parameter-space problem that needs one backward pass through the heads
    only; they multiply the task Jacobian passed as ``updates``. Pass the
    representation Jacobian as the extra argument ``representation_jacobian``
    (``optax.chain`` forwards extra arguments)::

        jz = jax.jacrev(lambda z: head_losses(params, z))(features)   # (K, *z.shape)
        updates, state = tx.update(jac, state, params, representation_jacobian=jz)

    To avoid the parameter Jacobian altogether, use ``mgda_weights(jz)`` and
    differentiate ``weights @ task_losses`` directly.

    Args:
      iterations: most active-set steps (static); default ``3 K + 10``.
      reg_eps: ridge on the trace-normalised Gram matrix.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; ``update`` requires the
      keyword ``representation_jacobian``.

    Raises:
      ValueError: ``representation_jacobian`` missing, or its task axis differs
        from the updates'.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.mgda_ub()
      >>> jz = jnp.array([[1.0, 0.0], [-1.0, 1.0]])    # dL_i/dz: weights 0.6, 0.4
      >>> jac = jnp.array([[1.0, 1.0], [0.0, 1.0]])    # dL_i/dtheta
      >>> out, _ = tx.update(jac, tx.init(None), representation_jacobian=jz)
      >>> out.round(3).tolist()
      [0.6, 1.0]

    References:
      Sener & Koltun, `Multi-Task Learning as Multi-Objective Optimization
      <https://arxiv.org/abs/1810.04650>`_, 2018, Section 3.3. LibMTL
      ``weighting.MGDA`` with ``rep_grad=True``.
    """
    _checks.check_range(reg_eps, "reg_eps", low=0.0, low_inclusive=False)

    def init_fn(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: Any, state: Any, params: Any = None, *,
                  representation_jacobian: Any = None, **extra_args: Any) -> tuple[Any, Any]:
        del params, extra_args
        if representation_jacobian is None:
            raise ValueError(
                "mgda_ub needs the Jacobian of the task losses with respect to the shared "
                "representation: tx.update(jac, state, params, representation_jacobian=jz)."
            )
        leaves, treedef, k = task_leaves(updates)
        _, _, kz = task_leaves(representation_jacobian, "representation_jacobian")
        if kz != k:
            raise ValueError(
                f"representation_jacobian has {kz} tasks but updates have {k}; both need the "
                "same leading task axis."
            )
        weights = mgda_weights(representation_jacobian, iterations=iterations, reg_eps=reg_eps)
        return combine_tasks(weights, leaves, treedef), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def upgrad(*, iterations: int | None = None, reg_eps: float = 1e-4) -> optax.GradientTransformation:
    r"""UPGrad: projects every task gradient onto the dual cone of all of them, then averages.

    .. math::
        d = \frac1K\sum_i \pi_J(g_i), \qquad
        \pi_J(x) = \arg\min_{y:\ J y \ge 0} \|y - x\|^2

    so :math:`g_j \cdot d \ge 0` for every task ``j``: no task's loss
    increases to first order. Each projection is the QP
    :math:`\min_{v \ge e_i/K} v^T G v` on the Gram matrix (``G`` trace-normalised
    plus ``reg_eps I``, as torchjd), solved exactly by Lawson-Hanson's
    active-set method (torchjd uses quadprog); the ``K`` problems are vmapped.

    Args:
      iterations: most active-set steps per projection (static); default ``3 K + 10``.
      reg_eps: torchjd's ``reg_eps`` (default the same, 1e-4).

    Returns:
      An ``optax.GradientTransformation`` over task Jacobians.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.upgrad()
      >>> out, _ = tx.update(jnp.array([[1.0, 0.0], [-1.0, 1.0]]), tx.init(None))
      >>> out.round(3).tolist()   # ([0.5, 0.5] + [0, 1]) / 2
      [0.25, 0.75]

    References:
      Quinton & Rey, `Jacobian Descent for Multi-Objective Optimization
      <https://arxiv.org/abs/2406.16232>`_, 2024. torchjd ``aggregation.UPGrad``;
      LibMTL ``weighting.UPGrad``.
    """
    _checks.check_range(reg_eps, "reg_eps", low=0.0, low_inclusive=False)
    return gram_weighted(lambda gram: _upgrad_from_gram(gram, iterations, reg_eps))


def dualproj(*, iterations: int | None = None,
             reg_eps: float = 1e-4) -> optax.GradientTransformation:
    r"""DualProj: the mean gradient projected onto the dual cone of the task gradients.

    .. math::
        d = \pi_J\Big(\frac1K\sum_i g_i\Big), \qquad
        \pi_J(x) = \arg\min_{y:\ J y \ge 0} \|y - x\|^2

    so :math:`g_j \cdot d \ge 0` for every task ``j`` (GEM's projection,
    eq. 11 of Lopez-Paz & Ranzato, with the mean as the vector projected).
    The projection is the QP :math:`\min_{v \ge \mathbf 1/K} v^T G v` on
    the Gram matrix (trace-normalised plus ``reg_eps I``, as torchjd), solved
    exactly by the active-set method :func:`upgrad` uses; UPGrad projects
    every task gradient and averages, DualProj projects the average once.

    Args:
      iterations: most active-set steps (static); default ``3 K + 10``.
      reg_eps: torchjd's ``reg_eps`` (default the same, 1e-4).

    Returns:
      An ``optax.GradientTransformation`` over task Jacobians.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.dualproj()
      >>> out, _ = tx.update(jnp.array([[1.0, 0.0], [-2.0, 1.0]]), tx.init(None))
      >>> out.round(3).tolist()   # the mean (-0.5, 0.5) conflicts with g1: projected
      [0.0, 0.5]

    References:
      Lopez-Paz & Ranzato, `Gradient Episodic Memory for Continual Learning
      <https://arxiv.org/abs/1706.08840>`_, NeurIPS 2017, eq. 11; Quinton &
      Rey, `Jacobian Descent for Multi-Objective Optimization
      <https://arxiv.org/abs/2406.16232>`_, 2024. torchjd ``aggregation.DualProj``.
    """
    _checks.check_range(reg_eps, "reg_eps", low=0.0, low_inclusive=False)
    return gram_weighted(lambda gram: _dualproj_from_gram(gram, iterations, reg_eps))

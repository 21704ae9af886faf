"""Gradient surgery: PCGrad's projections and GradDrop's sign dropout."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._numerics import safe_div
from jaxloss.aggregate._common import (
    F32,
    KeyState,
    as_key,
    combine_tasks,
    gram_matrix,
    task_leaves,
    work_dtype,
)

__all__ = ["graddrop", "pcgrad"]


def _pcgrad_from_gram(gram: Array, orders: Array) -> Array:
    # PCGrad's projected gradients are linear combinations of the originals,
    # g_i^PC = sum_m C[i, m] g_m, so every inner product the paper needs is
    # (C G)[i, j]: the K projection steps run on the K x K coefficient matrix,
    # vectorised over the tasks i (one step projects every task at once).
    k = gram.shape[0]
    squared_norms = jnp.diagonal(gram)

    def step(s: int, coeffs: Array) -> Array:
        j = orders[:, s]                                  # [K] task projected on, per task
        dots = jnp.sum(coeffs * gram[j], axis=1)          # g_i^PC . g_j
        factor = jnp.where(dots < 0.0, safe_div(dots, squared_norms[j]), 0.0)
        return coeffs - factor[:, None] * (jnp.arange(k)[None, :] == j[:, None]).astype(gram.dtype)

    coeffs = jax.lax.fori_loop(0, k, step, jnp.eye(k, dtype=gram.dtype))
    return jnp.sum(coeffs, axis=0)


def _pcgrad_orders(key: Array, k: int) -> Array:
    """The random order (a permutation of the K tasks) each task is projected in, ``[K, K]``."""
    # one sort of a [K, K] uniform draw: row i is a uniformly random permutation
    return jnp.argsort(jax.random.uniform(key, (k, k)), axis=1)


def pcgrad(*, key: ArrayLike | int = 0) -> optax.GradientTransformation:
    r"""PCGrad: projects each task gradient off the gradients it conflicts with, then sums.

    For every task ``i``, in a random order of the tasks ``j`` (a fresh order
    per task and per step, as in the paper's code),

    .. math::
        g_i^{PC} \leftarrow g_i^{PC} - \frac{\min(0, g_i^{PC} \cdot g_j)}{\|g_j\|^2} g_j,
        \qquad d = \sum_i g_i^{PC},

    with the original ``g_j``. Gradients that conflict with no other pass
    unchanged (then ``d`` is the plain sum). The projections run on the
    ``K x K`` Gram matrix (each ``g_i^{PC}`` is a combination of the ``g_j``),
    one ``fori_loop`` step per position of the order, vectorised over tasks.

    Args:
      key: PRNG key or integer seed of the task orders; it is kept in the
        state (:class:`KeyState`) and split at every update.

    Returns:
      An ``optax.GradientTransformation`` over task Jacobians.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.pcgrad()
      >>> jac = jnp.array([[1.0, 0.0], [-1.0, 1.0]])   # g1 . g2 = -1: they conflict
      >>> out, _ = tx.update(jac, tx.init(None))
      >>> out.round(4).tolist()   # [0.5, 0.5] + [0, 1]
      [0.5, 1.5]

    References:
      Yu et al., `Gradient Surgery for Multi-Task Learning
      <https://arxiv.org/abs/2001.06782>`_, 2020 (Algorithm 1). LibMTL
      ``weighting.PCGrad``; torchjd ``aggregation.PCGrad`` (fixed order).
    """
    key0 = as_key(key)

    def init_fn(params: Any) -> KeyState:
        del params
        return KeyState(key=key0)

    def update_fn(updates: Any, state: KeyState, params: Any = None) -> tuple[Any, KeyState]:
        del params
        leaves, treedef, k = task_leaves(updates)
        next_key, sub = jax.random.split(state.key)
        gram = jax.lax.stop_gradient(gram_matrix(leaves))
        weights = _pcgrad_from_gram(gram, _pcgrad_orders(sub, k))
        return combine_tasks(weights, leaves, treedef), KeyState(key=next_key)

    return optax.GradientTransformation(init_fn, update_fn)


def _graddrop_leaf(leaf: Array, uniform: Array, leak: Array) -> Array:
    dtype = work_dtype(leaf)
    j = leaf.astype(dtype)                                       # [K, ...]
    purity = 0.5 * (1.0 + safe_div(jnp.sum(j, axis=0), jnp.sum(jnp.abs(j), axis=0)))
    keep = (((purity > uniform)[None] & (j > 0)) | ((purity < uniform)[None] & (j < 0)))
    leak = leak.astype(dtype).reshape((-1,) + (1,) * (j.ndim - 1))
    factor = leak + (1.0 - leak) * keep.astype(dtype)
    return jnp.sum(factor * j, axis=0).astype(leaf.dtype)


def graddrop(*, leak: ArrayLike = 0.0, key: ArrayLike | int = 0) -> optax.GradientTransformation:
    r"""GradDrop: keeps, per coordinate, only the gradients of one randomly chosen sign.

    Per parameter coordinate, with the sign purity
    :math:`P = \frac12\big(1 + \frac{\sum_i g_i}{\sum_i |g_i|}\big)` and
    :math:`U \sim \mathcal U(0, 1)`, task ``i``'s entry is kept if
    :math:`P > U` and :math:`g_i > 0`, or :math:`P < U` and :math:`g_i < 0`:

    .. math::
        d = \sum_i \big(\ell_i + (1 - \ell_i) M_i\big)\, g_i

    (:math:`P = 1/2` where every gradient is 0). Applied elementwise to the
    parameter Jacobian, as torchjd; the paper and LibMTL apply it to
    gradients with respect to activations, summed over the batch.

    Args:
      leak: scalar or ``(K,)`` leak :math:`\ell` in [0, 1]; 0 is the paper's default.
      key: PRNG key or integer seed of ``U``, kept in the state and split at
        every update.

    Returns:
      An ``optax.GradientTransformation`` over task Jacobians.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.graddrop()
      >>> jac = jnp.array([[1.0, -2.0], [3.0, -1.0]])  # signs agree per coordinate: all kept
      >>> out, _ = tx.update(jac, tx.init(None))
      >>> out.tolist()
      [4.0, -3.0]

    References:
      Chen et al., `Just Pick a Sign: Optimizing Deep Multitask Models with
      Gradient Sign Dropout <https://arxiv.org/abs/2010.06808>`_, NeurIPS 2020.
      LibMTL ``weighting.GradDrop``; torchjd ``aggregation.GradDrop``.
    """
    _checks.check_range(leak, "leak", low=0.0, high=1.0)
    key0 = as_key(key)

    def init_fn(params: Any) -> KeyState:
        del params
        return KeyState(key=key0)

    def update_fn(updates: Any, state: KeyState, params: Any = None) -> tuple[Any, KeyState]:
        del params
        leaves, treedef, k = task_leaves(updates)
        leak_array = jnp.asarray(leak)
        if leak_array.ndim not in (0, 1) or (leak_array.ndim == 1 and leak_array.shape[0] != k):
            raise ValueError(f"leak must be a scalar or of shape ({k},); got {leak_array.shape}.")
        leak_array = jnp.broadcast_to(leak_array.astype(F32), (k,))
        next_key, sub = jax.random.split(state.key)
        out = []
        for index, leaf in enumerate(leaves):  # static loop over the pytree's leaves
            uniform = jax.random.uniform(jax.random.fold_in(sub, index), leaf.shape[1:],
                                         work_dtype(leaf))
            out.append(_graddrop_leaf(jax.lax.stop_gradient(leaf), uniform, leak_array))
        return jax.tree_util.tree_unflatten(treedef, out), KeyState(key=next_key)

    return optax.GradientTransformation(init_fn, update_fn)

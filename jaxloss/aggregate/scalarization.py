"""Linear scalarisation: the mean and the sum of the task gradients."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax

from jaxloss.aggregate._common import (
    F32,
    combine_tasks,
    task_leaves,
)

__all__ = ["mean", "sum"]


def mean() -> optax.GradientTransformation:
    r"""Averages the task gradients: :math:`d = \frac{1}{K}\sum_i g_i`.

    Returns:
      An ``optax.GradientTransformation`` taking updates whose leaves have a
      leading task axis ``K`` and returning their mean over it.

    Example:
      >>> import jax.numpy as jnp, optax, jaxloss.aggregate as agg
      >>> tx = agg.mean()
      >>> jac = {"w": jnp.array([[1.0, 0.0], [0.0, 1.0]])}
      >>> out, _ = tx.update(jac, tx.init({"w": jnp.zeros(2)}))
      >>> out["w"].tolist()
      [0.5, 0.5]

    References:
      Linear scalarisation; LibMTL ``EW`` (up to the factor K), torchjd
      ``aggregation.Mean``.
    """

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params
        leaves, treedef, k = task_leaves(updates)
        # a contraction with constant weights (a dot), which XLA:CPU runs faster than a
        # reduction over the leading axis
        return combine_tasks(jnp.full((k,), 1.0 / k, F32), leaves, treedef), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def sum() -> optax.GradientTransformation:
    r"""Sums the task gradients: :math:`d = \sum_i g_i` (the gradient of the summed loss).

    Returns:
      An ``optax.GradientTransformation`` taking updates whose leaves have a
      leading task axis ``K`` and returning their sum over it.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.sum()
      >>> out, _ = tx.update(jnp.array([[1.0, 2.0], [3.0, -1.0]]), tx.init(None))
      >>> out.tolist()
      [4.0, 1.0]

    References:
      Linear scalarisation; LibMTL ``EW``, torchjd ``aggregation.Sum``.
    """

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params
        leaves, treedef, k = task_leaves(updates)
        return combine_tasks(jnp.ones((k,), F32), leaves, treedef), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)

"""Per-element regression and robust losses.

Conventions: ``predictions`` and ``targets`` are floating arrays of exactly
the same shape (no silent broadcasting); the unreduced loss
(``reduction="none"``) has that shape; ``reduction="mean"`` is the mean over
all elements, or the weighted mean over the entries ``where`` selects.
Half-precision inputs are computed in float32 and returned in their dtype.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss.registry import _builtin

__all__ = [
    "mae_loss",
    "mse_loss",
]


@_builtin("regression")
def mse_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Mean squared error.

    .. math:: \ell_i = (p_i - t_i)^2

    Args:
      predictions: floating array of any shape.
      targets: floating array of the same shape.
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, or ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.mse_loss(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0])))
      2.5

    References:
      Equivalent to ``torch.nn.functional.mse_loss(input, target)``.
    """
    _checks.check_reduction(reduction)
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    p, t = _reduce.mask_inputs(where, p, t)
    values = jnp.square(p - t)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("regression")
def mae_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Mean absolute error (L1 loss).

    .. math:: \ell_i = |p_i - t_i|

    The gradient at ``p == t`` is 0, as in torch.

    Args:
      predictions: floating array of any shape.
      targets: floating array of the same shape.
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, or ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.mae_loss(jnp.array([1.0, -2.0]), jnp.array([0.0, 0.0])))
      1.5

    References:
      Equivalent to ``torch.nn.functional.l1_loss(input, target)``.
    """
    _checks.check_reduction(reduction)
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    p, t = _reduce.mask_inputs(where, p, t)
    values = jnp.abs(p - t)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)

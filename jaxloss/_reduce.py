"""The one reduction path: ``reduction=``, ``where=`` and ``weights=`` for every loss.

Conventions (DESIGN.md): ``"none"`` returns the loss's unreduced values with
masked entries set to 0 and weights applied; ``"sum"`` sums those; ``"mean"``
is the weighted mean over the selected entries, and 0 (never NaN) when
nothing is selected.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._numerics import safe_div


def mask_inputs(where: ArrayLike | None, *arrays: Array, fill: float = 0.0) -> tuple[Array, ...]:
    """Replaces the masked-out entries of ``arrays`` by ``fill`` before the loss is computed.

    This is the first half of the double-``where`` pattern: a NaN or inf in an
    entry that ``where`` excludes then cannot reach the value or the gradient.
    ``where`` must broadcast to each array.
    """
    if where is None:
        return arrays
    out = []
    for array in arrays:
        mask = _checks.broadcast_mask(where, array.shape, "where")
        out.append(jnp.where(mask, array, jnp.asarray(fill, array.dtype)))
    return tuple(out)


def expand_class_mask(where: ArrayLike | None, position_shape: tuple[int, ...], axis: int,
                      ) -> Array | None:
    """A per-position ``where`` (no class axis) broadcast to positions, plus a class axis.

    Used by class-based losses to sanitise their logits at masked positions.
    """
    if where is None:
        return None
    mask = _checks.broadcast_mask(where, position_shape, "where")
    return jnp.expand_dims(mask, axis)


def reduce_loss(
    values: Array,
    *,
    reduction: str,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    normalizer: Array | None = None,
    dtype: jnp.dtype | None = None,
) -> Array:
    """Reduces unreduced loss ``values`` the way every jaxloss loss does.

    Args:
      values: the unreduced loss.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      where: boolean mask broadcastable to ``values.shape``; False entries
        contribute neither value nor gradient.
      weights: per-entry weights broadcastable to ``values.shape``.
      normalizer: per-entry weights of the mean's denominator when they are not
        1 (torch's class-weighted cross-entropy divides by the sum of the
        targets' class weights). Same shape as ``values``.
      dtype: dtype of the result (the input dtype of the loss); default
        ``values.dtype``.

    Returns:
      ``values`` reduced; for ``"none"``, ``values`` with masked entries set to
      0 and multiplied by ``weights``.
    """
    _checks.check_reduction(reduction)
    dtype = values.dtype if dtype is None else dtype
    mask = _checks.broadcast_mask(where, values.shape, "where")
    weight = _checks.broadcast_mask(weights, values.shape, "weights")
    if mask is not None and mask.dtype != jnp.bool_:
        mask = mask.astype(jnp.bool_)
    if weight is not None:
        weight = weight.astype(values.dtype)

    weighted = values if weight is None else values * weight
    if mask is not None:
        weighted = jnp.where(mask, weighted, jnp.zeros_like(weighted))

    if reduction == "none":
        return weighted.astype(dtype)
    total = jnp.sum(weighted)
    if reduction == "sum":
        return total.astype(dtype)

    # reduction == "mean"
    if values.size == 0:
        return jnp.zeros((), dtype)
    if mask is None and weight is None and normalizer is None:
        return jnp.mean(values).astype(dtype)
    count = jnp.ones_like(values) if normalizer is None else normalizer.astype(values.dtype)
    if weight is not None:
        count = count * weight
    if mask is not None:
        count = jnp.where(mask, count, jnp.zeros_like(count))
    return safe_div(total, jnp.sum(count)).astype(dtype)

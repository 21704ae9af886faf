"""The one reduction path: ``reduction=``, ``where=``, ``weights=``, ``axis_name=``.

Conventions: ``"none"`` returns the loss's unreduced values with
masked entries set to 0 and weights applied; ``"sum"`` sums those; ``"mean"``
is the weighted mean over the selected entries, and 0 (never NaN) when
nothing is selected. Losses that opt in also accept PML's
``"avg_non_zero"``: the weighted mean over the selected entries whose loss is
positive (the same path, with ``values > 0`` as the mean's denominator).

Masks come in two alignments:

* ``align="trailing"`` (the default): NumPy broadcasting, trailing axes
  aligned, as for any elementwise loss;
* ``align="leading"``: a mask whose shape is a prefix of the values' shape
  (``(N,)`` or ``(N, K)`` against ``(N, ...)``) selects whole rows, images
  or instances. Any other shape falls back to trailing broadcasting.

With ``axis_name`` (inside ``shard_map``/``pmap``) the weighted sum and the
weighted count are ``psum``-ed, so that a sharded ``"mean"`` equals the
single-device mean over the global batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, overload

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._numerics import safe_div

Alignment = Literal["trailing", "leading"]


@overload
def align_mask(mask: None, shape: tuple[int, ...], name: str, *,
               align: Alignment = "trailing") -> None: ...
@overload
def align_mask(mask: ArrayLike, shape: tuple[int, ...], name: str, *,
               align: Alignment = "trailing") -> Array: ...
@overload
def align_mask(mask: ArrayLike | None, shape: tuple[int, ...], name: str, *,
               align: Alignment = "trailing") -> Array | None: ...
def align_mask(mask: ArrayLike | None, shape: tuple[int, ...], name: str, *,
               align: Alignment = "trailing") -> Array | None:
    """``mask`` (a ``where=`` or ``weights=``) broadcast to ``shape``.

    With ``align="leading"`` a mask whose shape is a proper prefix of ``shape``
    is aligned with the leading axes (one entry per row, image or instance);
    otherwise the usual trailing broadcasting applies. Raises a ValueError
    naming ``name`` when the mask fits neither way.
    """
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    shape = tuple(shape)
    if align == "leading" and 0 < mask.ndim < len(shape) and mask.shape == shape[:mask.ndim]:
        mask = mask.reshape(mask.shape + (1,) * (len(shape) - mask.ndim))
    elif align not in ("leading", "trailing"):
        raise ValueError(f"align must be 'leading' or 'trailing'; got {align!r}.")
    return _checks.broadcast_mask(mask, shape, name)


def mask_inputs(where: ArrayLike | None, *arrays: Array, fill: float = 0.0,
                align: Alignment = "trailing") -> tuple[Array, ...]:
    """Replaces the masked-out entries of ``arrays`` by ``fill`` before the loss is computed.

    This is the first half of the double-``where`` pattern: a NaN or inf in an
    entry that ``where`` excludes then cannot reach the value or the gradient.
    ``where`` must broadcast to each array (``align="leading"``: or be a prefix
    of its shape, masking whole rows).
    """
    if where is None:
        return arrays
    out = []
    for array in arrays:
        mask = align_mask(where, array.shape, "where", align=align)
        out.append(jnp.where(mask, array, jnp.asarray(fill, array.dtype)))
    return tuple(out)


def mask_rows(where: ArrayLike | None, *arrays: Array, fill: float = 0.0) -> tuple[Array, ...]:
    """``mask_inputs`` with leading alignment: ``where`` ``(N,)`` or ``(N, K)`` masks whole
    rows of arrays ``(N, ...)`` / ``(N, K, ...)``."""
    return mask_inputs(where, *arrays, fill=fill, align="leading")


@overload
def rows_kept(where: ArrayLike, weights: ArrayLike | None, shape: tuple[int, ...]) -> Array: ...
@overload
def rows_kept(where: ArrayLike | None, weights: ArrayLike | None,
              shape: tuple[int, ...]) -> Array | None: ...
def rows_kept(where: ArrayLike | None, weights: ArrayLike | None,
              shape: tuple[int, ...]) -> Array | None:
    """Boolean ``shape`` (per row): selected by ``where`` and with a nonzero weight; None if
    neither is given. Batch-wide losses drop such rows from the batch itself."""
    kept = align_mask(where, shape, "where", align="leading")
    if kept is not None:
        kept = kept.astype(jnp.bool_)
    if weights is not None:
        nonzero = align_mask(weights, shape, "weights", align="leading") != 0
        kept = nonzero if kept is None else kept & nonzero
    return kept


def reduce_loss(
    values: Array,
    *,
    reduction: str,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    normalizer: Array | None = None,
    dtype: jnp.dtype | None = None,
    axis_name: str | None = None,
    align: Alignment = "trailing",
    reductions: Sequence[str] = _checks.REDUCTIONS,
) -> Array:
    """Reduces unreduced loss ``values`` the way every jaxloss loss does.

    Args:
      values: the unreduced loss.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (or another name in
        ``reductions``, e.g. ``"avg_non_zero"``).
      where: boolean mask broadcastable to ``values.shape`` (see ``align``);
        False entries contribute neither value nor gradient, and a NaN there
        does not leak into the result.
      weights: per-entry weights broadcastable to ``values.shape``.
      normalizer: per-entry weights of the mean's denominator when they are not
        1 (torch's class-weighted cross-entropy divides by the sum of the
        targets' class weights; PML divides by the number of triplets). Same
        shape as ``values``.
      dtype: dtype of the result (the input dtype of the loss); default
        ``values.dtype``.
      axis_name: ``psum`` the weighted sum and the weighted count across this
        mapped axis (``"none"`` stays per device).
      align: ``"trailing"`` (NumPy broadcasting) or ``"leading"`` (a ``where``
        or ``weights`` of shape ``(N,)``/``(N, K)`` selects whole rows).
      reductions: the reductions this loss accepts (checked by ``_checks``).

    Returns:
      ``values`` reduced; for ``"none"``, ``values`` with masked entries set to
      0 and multiplied by ``weights``.
    """
    _checks.check_reduction(reduction, reductions)
    dtype = values.dtype if dtype is None else dtype
    mask = align_mask(where, values.shape, "where", align=align)
    weight = align_mask(weights, values.shape, "weights", align=align)
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
    if axis_name is not None:
        total = jax.lax.psum(total, axis_name)
    if reduction == "sum":
        return total.astype(dtype)

    # "mean" and "avg_non_zero": a weighted mean with a count per entry.
    if reduction == "avg_non_zero":
        nonzero = (values > 0).astype(values.dtype)
        normalizer = nonzero if normalizer is None else normalizer * nonzero
    if values.size == 0:
        return jnp.zeros((), dtype)
    if mask is None and weight is None and normalizer is None and axis_name is None:
        return jnp.mean(values).astype(dtype)
    count = jnp.ones_like(values) if normalizer is None else normalizer.astype(values.dtype)
    if weight is not None:
        count = count * weight
    if mask is not None:
        count = jnp.where(mask, count, jnp.zeros_like(count))
    count = jnp.sum(count)
    if axis_name is not None:
        count = jax.lax.psum(count, axis_name)
    return safe_div(total, count).astype(dtype)

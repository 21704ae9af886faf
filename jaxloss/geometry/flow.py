"""Optical-flow losses: the endpoint error.

Conventions: flow fields are channels-last, ``(N, H, W, 2)`` (``(u, v)`` in
pixels) or any ``(..., 2)``; the unreduced loss has the field's shape without
the last axis, ``(N, H, W)``, so ``where`` marks valid pixels (RAFT's
``valid``). RAFT's sequence loss over the refinement iterations is
``jaxloss.compose.deep_supervision`` with weights ``gamma^(n - 1 - i)`` (see
:func:`endpoint_error_loss`).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import sqrt_at_zero
from jaxloss.registry import _builtin

__all__ = ["endpoint_error_loss"]


def _epe_values(p: Array, t: Array) -> Array:
    diff = p - t
    return sqrt_at_zero(jnp.sum(diff * diff, axis=-1))


@_builtin("geometry")
def endpoint_error_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Endpoint error: the Euclidean distance between predicted and true flow vectors.

    .. math:: \ell_{nij} = \sqrt{(u_{nij} - u^*_{nij})^2 + (v_{nij} - v^*_{nij})^2}

    Its ``"mean"`` is the average endpoint error (AEPE); with ``where`` the
    mean over the valid pixels.

    Convention: where the prediction equals the target the gradient is 0
    (the norm's subgradient; torch's is NaN there). RAFT trains with the L1
    distance of the iterates, summed over ``n`` iterations with weights
    ``gamma^(n - 1 - i)``; as a jaxloss objective that is
    ``deep_supervision(endpoint_error_loss, weights=[gamma ** (n - 1 - i) for
    i in range(n)])`` over the list of iterates (all at full resolution),
    which normalises the weights to sum 1 (multiply by their sum for RAFT's
    scale), or the same with ``l1_loss`` for RAFT's exact distance.

    Args:
      predictions: floating flow ``(..., 2)``, e.g. ``(N, H, W, 2)``.
      targets: floating flow of the same shape.
      where: boolean mask of the valid pixels, broadcastable to ``(N, H, W)``.
      weights: per-pixel weights broadcastable to ``(N, H, W)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the error per pixel, the
      input's shape without its last axis, ``(N, H, W)``.

    Raises:
      ValueError: shapes differ, the last axis is not 2, rank below 2, an
        unknown ``reduction``.
      TypeError: integer predictions.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> flow = jnp.zeros((1, 2, 2, 2))
      >>> float(jaxloss.endpoint_error_loss(flow.at[0, 0, 0].set(jnp.array([3.0, 4.0])), flow))
      1.25

    References:
      Baker et al., `A Database and Evaluation Methodology for Optical Flow
      <https://doi.org/10.1007/s11263-010-0390-2>`_, 2011; Teed and Deng,
      `RAFT <https://arxiv.org/abs/2003.12039>`_, 2020.
      kornia: ``kornia.metrics.aepe(predictions, targets, reduction)`` (also
      channels-last).
    """
    _checks.check_reduction(reduction)
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    _checks.check_rank(p, "predictions", min_rank=2)
    if p.shape[-1] != 2:
        raise ValueError(
                f"predictions must be flow fields (N, H, W, 2), channels-last, with (u, v) on the "
                f"last axis; got shape {p.shape}. For NCHW flow use jnp.moveaxis(flow, 1, -1).")
    if where is not None:
        keep = _reduce.align_mask(where, p.shape[:-1], "where")[..., None]
        p, t = _reduce.mask_inputs(keep, p, t)
    values = _epe_values(p, t)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)

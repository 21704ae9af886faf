"""The SIoU loss of matched box pairs (YOLOv6), with the IoU family's conventions.

Boxes are floating ``(..., 4)`` in ``xyxy`` unless ``box_format=`` says
``"xywh"`` or ``"cxcywh"``; the unreduced loss has the boxes' shape without
the last axis; an inverted target box raises eagerly and gives NaN under
``jit`` (see ``iou_losses``). Every ratio goes through the double ``where``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss._checks import Reduction
from jaxloss._numerics import abs_zero_grad, safe_div
from jaxloss.detection._common import (
    BoxFormat,
    Coords,
    enclosing_wh,
    inter_union,
    iou_ratio,
    unstack,
)
from jaxloss.detection.iou_losses import _finish, _iou_loss_inputs
from jaxloss.registry import _builtin

__all__ = ["siou_loss"]


def _siou_values(p: Array | Coords, t: Array | Coords, e: Array) -> Array:
    """``1 - clip(SIoU, -1, 1)`` of xyxy pairs, mmdet's eps placement."""
    p, t = unstack(p), unstack(t)
    inter, union = inter_union(p, t)
    iou = iou_ratio(inter, union, e)
    cw, ch = enclosing_wh(p, t)
    cw, ch = jnp.maximum(cw, e), jnp.maximum(ch, e)
    x1, y1, x2, y2 = unstack(p)
    x1g, y1g, x2g, y2g = unstack(t)
    w1, h1 = x2 - x1, y2 - y1 + e
    w2, h2 = x2g - x1g, y2g - y1g + e
    s_cw = (x1g + x2g - x1 - x2) * 0.5 + e                 # centre offsets
    s_ch = (y1g + y2g - y1 - y2) * 0.5 + e
    # Angle cost cos(2 arcsin(sin_alpha) - pi/2) with sin_alpha the smaller of |s_cw|/sigma
    # and |s_ch|/sigma (mmdet's threshold at sqrt(2)/2): sin(2 arcsin s) = 2 s sqrt(1 - s^2)
    # = 2 |s_cw s_ch| / sigma^2, without arcsin's infinite slope at 1.
    angle = safe_div(2 * abs_zero_grad(s_cw * s_ch), s_cw * s_cw + s_ch * s_ch)
    gamma = angle - 2                                      # the paper's sign (neg_gamma)
    rho_x = jnp.square(safe_div(s_cw, cw))
    rho_y = jnp.square(safe_div(s_ch, ch))
    distance = 2 - jnp.exp(gamma * rho_x) - jnp.exp(gamma * rho_y)
    omega_w = safe_div(abs_zero_grad(w1 - w2), jnp.maximum(w1, w2))
    omega_h = safe_div(abs_zero_grad(h1 - h2), jnp.maximum(h1, h2))
    shape = (jnp.power(-jnp.expm1(-omega_w), 4) + jnp.power(-jnp.expm1(-omega_h), 4))
    siou = iou - 0.5 * (distance + shape)
    return 1 - jnp.clip(siou, -1.0, 1.0)


@_builtin("detection")
def siou_loss(
    boxes1: ArrayLike,
    boxes2: ArrayLike,
    *,
    box_format: BoxFormat = "xyxy",
    eps: ArrayLike = 1e-7,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""SIoU loss of matched box pairs: IoU with angle-aware distance and shape costs.

    .. math::
        \ell = 1 - \operatorname{clip}\Big(\mathrm{IoU} - \frac{\Delta + \Omega}{2},
        -1, 1\Big), \quad
        \Delta = \sum_{t \in \{x, y\}} \big(1 - e^{-(2 - \Lambda)\rho_t}\big), \quad
        \Omega = \sum_{t \in \{w, h\}} \big(1 - e^{-\omega_t}\big)^4

    with :math:`\Lambda = \sin 2\alpha` the angle cost (:math:`\alpha` the
    smaller angle between the centre offset and an axis),
    :math:`\rho_x = (\Delta c_x / c_w)^2` the centre offset over the
    enclosing box, and :math:`\omega_w = |w_1 - w_2| / \max(w_1, w_2)`.

    Convention: the paper's sign of the distance exponent (mmdet's
    ``neg_gamma=True``) and mmdet's eps placement (added to the union, the
    heights, the centre offsets, and the floor of the enclosing box's sides);
    zero-size and identical boxes give a finite value and gradient (a 0/0
    ratio is 0). The angle cost is computed as :math:`2|\Delta c_x \Delta c_y|
    / (\Delta c_x^2 + \Delta c_y^2)`, equal to mmdet's
    ``cos(2 arcsin(sin_alpha) - pi/2)``.

    Args:
      boxes1: floating ``(..., 4)`` predicted boxes.
      boxes2: floating ``(..., 4)`` ground-truth boxes, the same shape, not
        inverted (``x1 <= x2``, ``y1 <= y2``).
      box_format: ``"xyxy"`` (default), ``"xywh"`` or ``"cxcywh"``.
      eps: ``>= 0``, a Python float or traced scalar; see the convention.
      where: boolean mask broadcastable to the boxes' shape without the last
        axis.
      weights: per-pair weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the boxes' shape without the
      last axis. Values in ``[0, 2]``.

    Raises:
      ValueError: shapes differ, the last axis is not 4, unknown
        ``box_format`` or ``reduction``, negative ``eps``, an inverted
        ``boxes2`` box (when concrete; under ``jit`` its pair's loss is NaN).
      TypeError: integer boxes.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> t = jnp.array([[0.0, 0.0, 4.0, 2.0]])
      >>> float(jaxloss.siou_loss(p, t))
      0.5707...

    References:
      Gevorgyan, `SIoU Loss: More Powerful Learning for Bounding Box
      Regression <https://arxiv.org/abs/2205.12740>`_, 2022. mmdet
      ``siou_loss(pred, target, eps, neg_gamma=True)`` (``xyxy``).
    """
    p, t, e, bad, dtype = _iou_loss_inputs(boxes1, boxes2, box_format, eps, where, reduction,
                                           names=("boxes1", "boxes2"))
    return _finish(_siou_values(p, t, e), bad, where=where, weights=weights,
                   reduction=reduction, dtype=dtype)

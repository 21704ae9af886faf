"""The IoU loss family on matched box pairs: IoU, GIoU, DIoU, CIoU and EIoU losses.

Conventions: predictions and targets are floating ``(..., 4)`` boxes of the same
shape, ``xyxy`` unless ``box_format=`` says ``"xywh"`` or ``"cxcywh"``; the
unreduced loss has the boxes' shape without the last axis. torchvision's
intersection (0 unless both overlaps are positive) and eps placement. Every
ratio goes through the double ``where``, so zero-area, identical, disjoint and
far-apart boxes give a finite value and gradient.

Inverted target boxes (``x2 < x1`` or ``y2 < y1`` after conversion to
``xyxy``; a negative width or height in the other formats) have no IoU: an
eager call raises a ValueError naming ``targets``, and under a transformation
(``jit``, ``vmap``, ``grad`` with respect to the targets) the loss of that
pair is NaN, so that it cannot pass for the loss of a pair of disjoint boxes,
which is what the clipped intersection would otherwise give. Zero-area target
boxes (``x2 == x1``) are legal. Predicted boxes are not checked: a network's
inverted box is scored as it is, as torchvision does.

Each public loss validates and masks once (``_iou_loss_inputs``), calls a
private kernel that returns the unreduced values, and reduces once
(``_finish``). GIoU's kernel (``_giou.py``) carries an analytic derivative (a ``custom_jvp``):
forward and reverse mode both work, and the gradient is one fused pass.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._classes import poison
from jaxloss._numerics import safe_div
from jaxloss.detection._common import (
    BoxFormat,
    Coords,
    as_boxes,
    aspect_angle,
    center_distance_sq,
    check_format,
    convert,
    enclosing_wh,
    inter_union,
    iou_ratio,
    unstack,
)
from jaxloss.detection._giou import giou_values as _giou_values
from jaxloss.registry import _builtin

__all__ = ["ciou_loss", "diou_loss", "eiou_loss", "giou_loss", "iou_loss"]


# --------------------------------------------------------------------------------------
# The public layer: validation, masking, the inverted-target check, one reduction.
# --------------------------------------------------------------------------------------


def _inverted(boxes: Array) -> Array:
    """Boolean ``boxes.shape[:-1]``: ``xyxy`` boxes with ``x2 < x1`` or ``y2 < y1``."""
    x1, y1, x2, y2 = unstack(boxes)
    return (x2 < x1) | (y2 < y1)


def _check_targets_not_inverted(targets: Array, box_format: str, name: str = "targets"
                                ) -> Array | None:
    """Raises for a concrete inverted target box; returns the traced mask of them, or None.

    Only concrete (eager) targets can be checked at trace time; under a
    transformation the returned mask marks the pairs whose loss turns NaN.
    """
    sides = "x2 < x1 or y2 < y1" if box_format == "xyxy" else "a negative width or height"
    return _checks.refuse_concrete(_inverted(targets), lambda index: (
        f"{name} holds an inverted box at index {index} ({sides} in box_format="
        f"{box_format!r}): its IoU is undefined. Give target boxes with x1 <= x2 and "
        "y1 <= y2 (or the right box_format)."))


def _box_pair(predictions: ArrayLike, targets: ArrayLike,
              names: tuple[str, str] = ("predictions", "targets"),
              ) -> tuple[Array, Array, jnp.dtype]:
    """Validated matched box pairs ``(..., 4)`` in the compute dtype, and the result dtype."""
    p, t, dtype = _checks.elementwise_pair(predictions, targets, predictions_name=names[0],
                                           targets_name=names[1])
    as_boxes(p, names[0])
    return p, t, dtype


def _iou_loss_inputs(
    predictions: ArrayLike,
    targets: ArrayLike,
    box_format: str,
    eps: ArrayLike,
    where: ArrayLike | None,
    reduction: str,
    names: tuple[str, str] = ("predictions", "targets"),
) -> tuple[Array, Array, Array, Array | None, jnp.dtype]:
    """Checks the common arguments of the IoU losses.

    Returns xyxy predictions and targets, eps, the traced mask of inverted
    targets (None when there is nothing to mark) and the result dtype. Boxes at
    positions ``where`` masks out are replaced by zeros first (double ``where``),
    so they are never inverted.
    """
    _checks.check_reduction(reduction)
    check_format(box_format, "box_format")
    p, t, dtype = _box_pair(predictions, targets, names)
    _checks.check_range(eps, "eps", low=0.0)
    e = _checks.hyperparameter(eps, "eps", p.dtype)
    if where is not None:
        mask = _checks.broadcast_mask(where, p.shape[:-1], "where")
        p, t = _reduce.mask_inputs(mask[..., None], p, t)
    p, t = convert(p, box_format, "xyxy"), convert(t, box_format, "xyxy")
    bad = _check_targets_not_inverted(t, box_format, names[1])
    return p, t, e, bad, dtype


def _finish(values: Array, bad: Array | None, *, where: ArrayLike | None,
            weights: ArrayLike | None, reduction: str, dtype: jnp.dtype) -> Array:
    """NaN at the pairs with an inverted target, then the one reduction."""
    if bad is not None:
        values = poison(values, bad)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


# --------------------------------------------------------------------------------------
# Kernels: validated xyxy boxes in, unreduced values out.
# --------------------------------------------------------------------------------------


def _iou_values(p: Array | Coords, t: Array | Coords, e: Array) -> Array:
    p, t = unstack(p), unstack(t)
    inter, union = inter_union(p, t)
    return 1 - iou_ratio(inter, union, e)


def _diou_terms(p: Array | Coords, t: Array | Coords, e: Array
                ) -> tuple[Array, Array, Array, Array]:
    """IoU, the normalised centre distance, and the enclosing box's width and height."""
    p, t = unstack(p), unstack(t)
    inter, union = inter_union(p, t)
    iou = iou_ratio(inter, union, e)
    cw, ch = enclosing_wh(p, t)
    distance = safe_div(center_distance_sq(p, t), cw * cw + ch * ch + e)
    return iou, distance, cw, ch


def _diou_values(p: Array | Coords, t: Array | Coords, e: Array) -> Array:
    p, t = unstack(p), unstack(t)
    iou, distance, _, _ = _diou_terms(p, t, e)
    return 1 - iou + distance


def _ciou_values(p: Array | Coords, t: Array | Coords, e: Array) -> Array:
    p, t = unstack(p), unstack(t)
    iou, distance, _, _ = _diou_terms(p, t, e)
    x1, y1, x2, y2 = unstack(p)
    x1g, y1g, x2g, y2g = unstack(t)
    angle = aspect_angle(x2g - x1g, y2g - y1g) - aspect_angle(x2 - x1, y2 - y1)
    v = (4 / math.pi**2) * angle * angle
    alpha = jax.lax.stop_gradient(safe_div(v, 1 - iou + v + e))
    return 1 - iou + distance + alpha * v


def _eiou_values(p: Array | Coords, t: Array | Coords, e: Array) -> Array:
    p, t = unstack(p), unstack(t)
    iou, distance, cw, ch = _diou_terms(p, t, e)
    x1, y1, x2, y2 = unstack(p)
    x1g, y1g, x2g, y2g = unstack(t)
    dw = (x2 - x1) - (x2g - x1g)
    dh = (y2 - y1) - (y2g - y1g)
    return (1 - iou + distance + safe_div(dw * dw, cw * cw + e)
            + safe_div(dh * dh, ch * ch + e))


# --------------------------------------------------------------------------------------
# Public losses.
# --------------------------------------------------------------------------------------


@_builtin("detection")
def iou_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    box_format: BoxFormat = "xyxy",
    eps: ArrayLike = 1e-7,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""IoU loss of matched box pairs, one minus their intersection over union.

    .. math:: \ell = 1 - \frac{|p \cap t|}{|p \cup t| + \epsilon}

    Convention: torchvision's intersection (0 unless both overlaps are
    positive) and eps placement, as in its ``*_box_iou_loss``; a zero
    denominator (``eps = 0`` and two zero-area boxes) gives IoU 0, loss 1.

    Args:
      predictions: floating ``(..., 4)`` predicted boxes.
      targets: floating ``(..., 4)`` ground-truth boxes, the same shape, not
        inverted (``x1 <= x2``, ``y1 <= y2``; zero-area boxes are legal).
      box_format: ``"xyxy"`` (default), ``"xywh"`` or ``"cxcywh"``; the
        gradient is taken with respect to the boxes in this format.
      eps: ``>= 0``, a Python float or traced scalar; see the convention.
      where: boolean mask broadcastable to the boxes' shape without the last
        axis (one entry per box pair).
      weights: per-pair weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the boxes' shape without the
      last axis.

    Raises:
      ValueError: shapes differ, the last axis is not 4, unknown
        ``box_format`` or ``reduction``, negative ``eps``, an inverted target
        box (when concrete; under ``jit`` its pair's loss is NaN).
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> t = jnp.array([[0.0, 0.0, 4.0, 2.0]])
      >>> float(jaxloss.iou_loss(p, t))  # 1 - 4 / 8
      0.5

    References:
      Yu et al., `UnitBox: An Advanced Object Detection Network
      <https://arxiv.org/abs/1608.01471>`_, 2016 (as ``1 - IoU``). The IoU
      term of ``torchvision.ops.generalized_box_iou_loss`` (torchvision has
      no plain IoU loss).
    """
    p, t, e, bad, dtype = _iou_loss_inputs(predictions, targets, box_format, eps, where,
                                           reduction)
    return _finish(_iou_values(p, t, e), bad, where=where, weights=weights,
                   reduction=reduction, dtype=dtype)


@_builtin("detection")
def giou_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    box_format: BoxFormat = "xyxy",
    eps: ArrayLike = 1e-7,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Generalized IoU loss of matched box pairs.

    .. math::
        \ell = 1 - \frac{|p \cap t|}{|p \cup t| + \epsilon}
               + \frac{|C| - |p \cup t|}{|C| + \epsilon}

    with :math:`C` the smallest box enclosing both. Values in ``[0, 2]``.
    Convention: torchvision's ``generalized_box_iou_loss`` (its eps placement);
    zero denominators (``eps = 0``) give 0 terms with zero gradients.

    Args:
      predictions: floating ``(..., 4)`` predicted boxes.
      targets: floating ``(..., 4)`` ground-truth boxes, the same shape, not
        inverted (``x1 <= x2``, ``y1 <= y2``; zero-area boxes are legal).
      box_format: ``"xyxy"`` (default), ``"xywh"`` or ``"cxcywh"``; the
        gradient is taken with respect to the boxes in this format.
      eps: ``>= 0``, a Python float or traced scalar; see the convention.
      where: boolean mask broadcastable to the boxes' shape without the last
        axis (one entry per box pair).
      weights: per-pair weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the boxes' shape without the
      last axis.

    Raises:
      ValueError: shapes differ, the last axis is not 4, unknown
        ``box_format`` or ``reduction``, negative ``eps``, an inverted target
        box (when concrete; under ``jit`` its pair's loss is NaN).
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> t = jnp.array([[1.0, 1.0, 3.0, 3.0]])
      >>> float(jaxloss.giou_loss(p, t))  # 1 - 1/7 + 2/9
      1.079365...

    References:
      Rezatofighi et al., `Generalized Intersection over Union: A Metric and
      A Loss for Bounding Box Regression <https://arxiv.org/abs/1902.09630>`_,
      2019. Equivalent to ``torchvision.ops.generalized_box_iou_loss(
      predictions, targets, reduction, eps)`` and MONAI
      ``BoxGIoULoss(reduction)`` (MONAI's eps is float32's 1.19e-7).
    """
    p, t, e, bad, dtype = _iou_loss_inputs(predictions, targets, box_format, eps, where,
                                           reduction)
    return _finish(_giou_values(p, t, e), bad, where=where, weights=weights,
                   reduction=reduction, dtype=dtype)


@_builtin("detection")
def diou_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    box_format: BoxFormat = "xyxy",
    eps: ArrayLike = 1e-7,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Distance-IoU loss: IoU loss plus squared centre distance over the enclosing diagonal.

    .. math::
        \ell = 1 - \frac{|p \cap t|}{|p \cup t| + \epsilon}
               + \frac{\rho^2(c_p, c_t)}{c_w^2 + c_h^2 + \epsilon}

    with :math:`\rho` the distance between the centres and :math:`c_w, c_h`
    the width and height of the smallest enclosing box. Convention:
    torchvision's ``distance_box_iou_loss`` (eps in both denominators).

    Args:
      predictions: floating ``(..., 4)`` predicted boxes.
      targets: floating ``(..., 4)`` ground-truth boxes, the same shape, not
        inverted (``x1 <= x2``, ``y1 <= y2``; zero-area boxes are legal).
      box_format: ``"xyxy"`` (default), ``"xywh"`` or ``"cxcywh"``; the
        gradient is taken with respect to the boxes in this format.
      eps: ``>= 0``, a Python float or traced scalar; see the convention.
      where: boolean mask broadcastable to the boxes' shape without the last
        axis (one entry per box pair).
      weights: per-pair weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the boxes' shape without the
      last axis.

    Raises:
      ValueError: shapes differ, the last axis is not 4, unknown
        ``box_format`` or ``reduction``, negative ``eps``, an inverted target
        box (when concrete; under ``jit`` its pair's loss is NaN).
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> t = jnp.array([[0.0, 0.0, 4.0, 2.0]])
      >>> float(jaxloss.diou_loss(p, t))  # 1 - 1/2 + 1/20
      0.55

    References:
      Zheng et al., `Distance-IoU Loss: Faster and Better Learning for
      Bounding Box Regression <https://arxiv.org/abs/1911.08287>`_, 2020.
      Equivalent to ``torchvision.ops.distance_box_iou_loss(predictions,
      targets, reduction, eps)``.
    """
    p, t, e, bad, dtype = _iou_loss_inputs(predictions, targets, box_format, eps, where,
                                           reduction)
    return _finish(_diou_values(p, t, e), bad, where=where, weights=weights,
                   reduction=reduction, dtype=dtype)


@_builtin("detection")
def ciou_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    box_format: BoxFormat = "xyxy",
    eps: ArrayLike = 1e-7,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Complete-IoU loss: the DIoU loss plus an aspect-ratio consistency term.

    .. math::
        \ell = \ell_{\mathrm{DIoU}} + \alpha v, \qquad
        v = \frac{4}{\pi^2}\Big(\arctan\frac{w_t}{h_t} - \arctan\frac{w_p}{h_p}\Big)^2,
        \qquad \alpha = \operatorname{sg}\Big[\frac{v}{1 - \mathrm{IoU} + v + \epsilon}\Big]

    Convention: torchvision's ``complete_box_iou_loss``; the trade-off
    :math:`\alpha` carries no gradient (``stop_gradient``; torchvision computes
    it under ``no_grad``). ``arctan(w / h)`` is evaluated as ``atan2`` so that
    a box of height 0 gives its limit ``pi/2`` with a finite gradient, and a
    point box (``w = h = 0``) the angle 0 with a zero gradient; torchvision's
    gradient is NaN on such boxes (and its value too for point boxes).
    ``eps`` is used in every denominator (torchvision passes only its default
    1e-7 to the DIoU part; the two agree at the default).

    Args:
      predictions: floating ``(..., 4)`` predicted boxes.
      targets: floating ``(..., 4)`` ground-truth boxes, the same shape, not
        inverted (``x1 <= x2``, ``y1 <= y2``; zero-area boxes are legal).
      box_format: ``"xyxy"`` (default), ``"xywh"`` or ``"cxcywh"``; the
        gradient is taken with respect to the boxes in this format.
      eps: ``>= 0``, a Python float or traced scalar; see the convention.
      where: boolean mask broadcastable to the boxes' shape without the last
        axis (one entry per box pair).
      weights: per-pair weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the boxes' shape without the
      last axis.

    Raises:
      ValueError: shapes differ, the last axis is not 4, unknown
        ``box_format`` or ``reduction``, negative ``eps``, an inverted target
        box (when concrete; under ``jit`` its pair's loss is NaN).
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> t = jnp.array([[0.0, 0.0, 4.0, 2.0]])
      >>> float(jaxloss.ciou_loss(p, t))  # 0.55 + alpha v, v = 4/pi^2 (atan 2 - atan 1)^2
      0.553248...

    References:
      Zheng et al., `Distance-IoU Loss: Faster and Better Learning for
      Bounding Box Regression <https://arxiv.org/abs/1911.08287>`_, 2020.
      Equivalent to ``torchvision.ops.complete_box_iou_loss(predictions,
      targets, reduction, eps)`` on boxes of positive height.
    """
    p, t, e, bad, dtype = _iou_loss_inputs(predictions, targets, box_format, eps, where,
                                           reduction)
    return _finish(_ciou_values(p, t, e), bad, where=where, weights=weights,
                   reduction=reduction, dtype=dtype)


@_builtin("detection")
def eiou_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    box_format: BoxFormat = "xyxy",
    eps: ArrayLike = 1e-7,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Efficient-IoU loss: the DIoU loss with separate width and height penalties.

    .. math::
        \ell = 1 - \mathrm{IoU} + \frac{\rho^2(c_p, c_t)}{c_w^2 + c_h^2 + \epsilon}
               + \frac{(w_p - w_t)^2}{c_w^2 + \epsilon}
               + \frac{(h_p - h_t)^2}{c_h^2 + \epsilon}

    with :math:`c_w, c_h` the width and height of the smallest enclosing box
    and the IoU as in :func:`iou_loss`. Convention: eps is added to every
    denominator, the way torchvision places it in the DIoU term.

    Args:
      predictions: floating ``(..., 4)`` predicted boxes.
      targets: floating ``(..., 4)`` ground-truth boxes, the same shape, not
        inverted (``x1 <= x2``, ``y1 <= y2``; zero-area boxes are legal).
      box_format: ``"xyxy"`` (default), ``"xywh"`` or ``"cxcywh"``; the
        gradient is taken with respect to the boxes in this format.
      eps: ``>= 0``, a Python float or traced scalar; see the convention.
      where: boolean mask broadcastable to the boxes' shape without the last
        axis (one entry per box pair).
      weights: per-pair weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the boxes' shape without the
      last axis.

    Raises:
      ValueError: shapes differ, the last axis is not 4, unknown
        ``box_format`` or ``reduction``, negative ``eps``, an inverted target
        box (when concrete; under ``jit`` its pair's loss is NaN).
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> t = jnp.array([[0.0, 0.0, 4.0, 2.0]])
      >>> float(jaxloss.eiou_loss(p, t))  # 1 - 1/2 + 1/20 + (2 - 4)^2/4^2 + 0
      0.8

    References:
      Zhang et al., `Focal and Efficient IOU Loss for Accurate Bounding Box
      Regression <https://arxiv.org/abs/2101.08158>`_, 2021 (the EIoU loss,
      without the focal weighting). No torchvision equivalent; its DIoU part
      is ``torchvision.ops.distance_box_iou_loss``.
    """
    p, t, e, bad, dtype = _iou_loss_inputs(predictions, targets, box_format, eps, where,
                                           reduction)
    return _finish(_eiou_values(p, t, e), bad, where=where, weights=weights,
                   reduction=reduction, dtype=dtype)



"""Detection: box utilities, the IoU loss family, SSD's multibox loss and Mask R-CNN's mask loss.

Conventions: boxes are floating arrays ``(..., 4)`` in ``xyxy`` =
``(x1, y1, x2, y2)`` with ``x1 <= x2`` and ``y1 <= y2`` unless
``box_format=`` says ``"xywh"`` (``(x1, y1, w, h)``) or ``"cxcywh"``
(``(cx, cy, w, h)``), torchvision's names. The IoU losses compare *matched*
pairs of boxes and their unreduced loss has the boxes' shape without the last
axis. Every ratio goes through the double-``where`` (``_numerics.safe_div``),
so zero-area, identical, disjoint and far-apart boxes give a finite value *and*
a finite gradient. Half-precision inputs are computed in float32 and returned
in their own dtype.

``box_convert``, ``box_area``, ``box_iou`` and ``generalized_box_iou`` are
utilities (not losses): they take no ``reduction``.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._classes import log_probability_of
from jaxloss._numerics import bce_with_logits, safe_div
from jaxloss.registry import _builtin
from jaxloss.regression import smooth_l1_loss

__all__ = [
    "box_area",
    "box_convert",
    "box_iou",
    "ciou_loss",
    "diou_loss",
    "eiou_loss",
    "generalized_box_iou",
    "giou_loss",
    "iou_loss",
    "mask_rcnn_mask_loss",
    "ssd_multibox_loss",
]

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
_FORMATS: tuple[str, ...] = ("xyxy", "xywh", "cxcywh")


# --------------------------------------------------------------------------------------
# Shared helpers (private).
# --------------------------------------------------------------------------------------


def _boxes(boxes: ArrayLike, name: str, *, min_rank: int = 1) -> Array:
    """``boxes`` as a floating array of shape ``(..., 4)`` (rank >= ``min_rank``)."""
    boxes = _checks.float_input(boxes, name)
    if boxes.ndim < min_rank or boxes.shape[-1] != 4:
        lead = "(..., " if min_rank <= 1 else "(..., N, "
        raise ValueError(
            f"{name} must have shape {lead}4) (the last axis holds the 4 box coordinates); "
            f"got shape {boxes.shape}."
        )
    return boxes


def _check_format(value: str, name: str) -> None:
    _checks.check_choice(value, name, _FORMATS)


def _unstack(boxes: Array) -> tuple[Array, Array, Array, Array]:
    return boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]


def _convert(boxes: Array, in_fmt: str, out_fmt: str) -> Array:
    """Conversion between the three formats (no validation), through ``xyxy`` as torchvision."""
    if in_fmt == out_fmt:
        return boxes
    a, b, c, d = _unstack(boxes)
    if in_fmt == "xywh":
        x1, y1, x2, y2 = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        x1, y1, x2, y2 = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    else:
        x1, y1, x2, y2 = a, b, c, d
    if out_fmt == "xywh":
        out = (x1, y1, x2 - x1, y2 - y1)
    elif out_fmt == "cxcywh":
        out = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    else:
        out = (x1, y1, x2, y2)
    return jnp.stack(out, axis=-1)


def _inter_union(b1: Array, b2: Array) -> tuple[Array, Array]:
    """Intersection and union areas of ``xyxy`` boxes of the same rank (size-1 axes broadcast).

    The intersection is 0 unless both overlaps are strictly positive (torchvision's
    ``_loss_inter_union``): no product of two negative overlaps, no gradient there.
    """
    x1, y1, x2, y2 = _unstack(b1)
    x1g, y1g, x2g, y2g = _unstack(b2)
    overlap_w = jnp.minimum(x2, x2g) - jnp.maximum(x1, x1g)
    overlap_h = jnp.minimum(y2, y2g) - jnp.maximum(y1, y1g)
    overlap = (overlap_w > 0) & (overlap_h > 0)
    product = overlap_w * overlap_h
    inter = jnp.where(overlap, product, jnp.zeros_like(product))
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    return inter, union


def _enclosing_wh(b1: Array, b2: Array) -> tuple[Array, Array]:
    """Width and height of the smallest box enclosing both ``xyxy`` boxes."""
    x1, y1, x2, y2 = _unstack(b1)
    x1g, y1g, x2g, y2g = _unstack(b2)
    return jnp.maximum(x2, x2g) - jnp.minimum(x1, x1g), jnp.maximum(y2, y2g) - jnp.minimum(y1, y1g)


def _center_distance_sq(b1: Array, b2: Array) -> Array:
    """Squared distance between the boxes' centres (torchvision's ``_diou_iou_loss`` form)."""
    x1, y1, x2, y2 = _unstack(b1)
    x1g, y1g, x2g, y2g = _unstack(b2)
    dx = (x2 + x1) / 2 - (x1g + x2g) / 2
    dy = (y2 + y1) / 2 - (y1g + y2g) / 2
    return dx * dx + dy * dy


def _aspect_angle(w: Array, h: Array) -> Array:
    """``atan(w / h)`` with a finite value and gradient everywhere.

    Written ``atan2(s w, s h)`` with ``s = sign(h)`` (1 at ``h = 0``), which equals
    ``atan(w / h)`` for every ``h != 0`` and its limit ``+-pi/2`` at ``h = 0, w != 0``,
    where torchvision's ``atan(w / h)`` has the right value but a NaN gradient. At
    ``w = h = 0`` (a point box) the angle is defined as 0 with a 0 gradient (double
    ``where``; torchvision gives NaN).
    """
    flip = h < 0
    num = jnp.where(flip, -w, w)
    den = jnp.where(flip, -h, h)
    point = (num == 0) & (den == 0)
    safe_num = jnp.where(point, jnp.ones_like(num), num)
    safe_den = jnp.where(point, jnp.ones_like(den), den)
    return jnp.where(point, jnp.zeros_like(num), jnp.arctan2(safe_num, safe_den))


def _box_pair(predictions: ArrayLike, targets: ArrayLike) -> tuple[Array, Array, jnp.dtype]:
    """Validated matched box pairs ``(..., 4)`` in the compute dtype, and the result dtype."""
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    _boxes(p, "predictions")
    return p, t, dtype


def _iou_loss_inputs(
    predictions: ArrayLike,
    targets: ArrayLike,
    box_format: str,
    eps: ArrayLike,
    where: ArrayLike | None,
    reduction: str,
) -> tuple[Array, Array, Array, jnp.dtype]:
    """Checks the common arguments of the IoU losses; returns xyxy boxes, eps and the dtype.

    Boxes at positions ``where`` masks out are replaced by zeros (double ``where``).
    """
    _checks.check_reduction(reduction)
    _check_format(box_format, "box_format")
    p, t, dtype = _box_pair(predictions, targets)
    _checks.check_range(eps, "eps", low=0.0)
    e = _checks.hyperparameter(eps, "eps", p.dtype)
    if where is not None:
        mask = _checks.broadcast_mask(where, p.shape[:-1], "where")
        p, t = _reduce.mask_inputs(mask[..., None], p, t)
    return _convert(p, box_format, "xyxy"), _convert(t, box_format, "xyxy"), e, dtype


def _iou(inter: Array, union: Array, eps: Array) -> Array:
    """``inter / (union + eps)``, torchvision's placement; 0 where the denominator is 0."""
    return safe_div(inter, union + eps)


# --------------------------------------------------------------------------------------
# Box utilities.
# --------------------------------------------------------------------------------------


def box_convert(boxes: ArrayLike, *, in_fmt: BoxFormat, out_fmt: BoxFormat) -> Array:
    r"""Converts boxes between ``xyxy``, ``xywh`` and ``cxcywh``.

    .. math::
        \text{xywh} \to \text{xyxy}: (x, y, x + w, y + h), \qquad
        \text{cxcywh} \to \text{xyxy}: (c_x - \tfrac w2, c_y - \tfrac h2,
        c_x + \tfrac w2, c_y + \tfrac h2)

    and back; ``xywh`` <-> ``cxcywh`` goes through ``xyxy``, as in torchvision.

    Args:
      boxes: floating ``(..., 4)``.
      in_fmt: the format of ``boxes``: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"``.
      out_fmt: the format to return.

    Returns:
      ``(..., 4)`` boxes in ``out_fmt``, the dtype of ``boxes``.

    Raises:
      ValueError: unknown format, or the last axis is not 4.
      TypeError: integer ``boxes``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> boxes = jnp.array([[10.0, 20.0, 30.0, 60.0]])
      >>> jaxloss.box_convert(boxes, in_fmt="xyxy", out_fmt="cxcywh").tolist()
      [[20.0, 40.0, 20.0, 40.0]]

    References:
      Equivalent to ``torchvision.ops.box_convert(boxes, in_fmt, out_fmt)``.
    """
    _check_format(in_fmt, "in_fmt")
    _check_format(out_fmt, "out_fmt")
    boxes = _boxes(boxes, "boxes")
    compute, dtype = _checks.compute_dtype(boxes)
    return _convert(boxes.astype(compute), in_fmt, out_fmt).astype(dtype)


def box_area(boxes: ArrayLike, *, box_format: BoxFormat = "xyxy") -> Array:
    r"""Area of boxes, :math:`(x_2 - x_1)(y_2 - y_1)`.

    Args:
      boxes: floating ``(..., 4)``.
      box_format: ``"xyxy"`` (default), ``"xywh"`` or ``"cxcywh"``.

    Returns:
      ``(...)`` areas, the dtype of ``boxes``.

    Raises:
      ValueError: unknown format, or the last axis is not 4.
      TypeError: integer ``boxes``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> jaxloss.box_area(jnp.array([[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 1.0, 5.0]])).tolist()
      [6.0, 0.0]

    References:
      Equivalent to ``torchvision.ops.box_area(boxes)`` (``xyxy``).
    """
    _check_format(box_format, "box_format")
    boxes = _boxes(boxes, "boxes")
    compute, dtype = _checks.compute_dtype(boxes)
    x1, y1, x2, y2 = _unstack(_convert(boxes.astype(compute), box_format, "xyxy"))
    return ((x2 - x1) * (y2 - y1)).astype(dtype)


def _pair_boxes(
    boxes1: ArrayLike, boxes2: ArrayLike, pairwise: bool, box_format: str, eps: ArrayLike
) -> tuple[Array, Array, Array, jnp.dtype]:
    """Validated xyxy boxes aligned for elementwise or all-pairs comparison."""
    _check_format(box_format, "box_format")
    if not isinstance(pairwise, bool):
        raise TypeError(f"pairwise must be a static Python bool; got {pairwise!r}.")
    b1 = _boxes(boxes1, "boxes1", min_rank=2 if pairwise else 1)
    b2 = _boxes(boxes2, "boxes2", min_rank=2 if pairwise else 1)
    if pairwise:
        if b1.shape[:-2] != b2.shape[:-2]:
            raise ValueError(
                f"boxes1 {b1.shape} and boxes2 {b2.shape} must have the same leading (batch) "
                "axes for pairwise=True: (..., N, 4) and (..., M, 4)."
            )
    else:
        _checks.check_same_shape(b2, "boxes2", b1, "boxes1")
    compute, dtype = _checks.compute_dtype(b1, b2)
    _checks.check_range(eps, "eps", low=0.0)
    e = _checks.hyperparameter(eps, "eps", compute)
    b1 = _convert(b1.astype(compute), box_format, "xyxy")
    b2 = _convert(b2.astype(compute), box_format, "xyxy")
    if pairwise:
        b1 = b1[..., :, None, :]                                        # [..., N, 1, 4]
        b2 = b2[..., None, :, :]                                        # [..., 1, M, 4]
    return b1, b2, e, dtype


def box_iou(
    boxes1: ArrayLike,
    boxes2: ArrayLike,
    *,
    pairwise: bool = True,
    box_format: BoxFormat = "xyxy",
    eps: ArrayLike = 0.0,
) -> Array:
    r"""Intersection over union of boxes: all pairs (a cost matrix) or matched pairs.

    .. math:: \mathrm{IoU}(a, b) = \frac{|a \cap b|}{|a \cup b| + \epsilon}

    Convention: with the default ``eps = 0`` this is torchvision's ``box_iou``
    wherever the union is positive; where it is 0 (two zero-area boxes) the
    IoU is 0 with a zero gradient (torchvision gives NaN).

    Args:
      boxes1: floating ``(..., N, 4)`` (``pairwise=True``) or ``(..., 4)``.
      boxes2: floating ``(..., M, 4)`` with the same leading axes
        (``pairwise=True``), or the shape of ``boxes1``.
      pairwise: all pairs (static); ``False`` compares ``boxes1[i]`` with
        ``boxes2[i]`` (scenic's ``all_pairs=False``).
      box_format: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"``.
      eps: ``>= 0`` added to the union.

    Returns:
      ``(..., N, M)`` for ``pairwise=True``; otherwise the boxes' shape
      without the last axis. Values in ``[0, 1]``.

    Raises:
      ValueError: wrong shapes, unknown format, negative ``eps``.
      TypeError: integer boxes.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> a = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> b = jnp.array([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0]])
      >>> jaxloss.box_iou(a, b)  # 1 / 7 and 1
      Array([[0.142857, 1.      ]], dtype=float32)
      >>> jaxloss.box_iou(b, b, pairwise=False)
      Array([1., 1.], dtype=float32)

    References:
      Equivalent to ``torchvision.ops.box_iou(boxes1, boxes2)`` (pairwise,
      ``xyxy``); MONAI ``box_iou`` / ``box_pair_giou``'s IoU.
    """
    b1, b2, e, dtype = _pair_boxes(boxes1, boxes2, pairwise, box_format, eps)
    inter, union = _inter_union(b1, b2)
    return _iou(inter, union, e).astype(dtype)


def generalized_box_iou(
    boxes1: ArrayLike,
    boxes2: ArrayLike,
    *,
    pairwise: bool = True,
    box_format: BoxFormat = "xyxy",
    eps: ArrayLike = 0.0,
) -> Array:
    r"""Generalized IoU: the IoU minus the share of the enclosing box the union leaves empty.

    .. math::
        \mathrm{GIoU}(a, b) = \mathrm{IoU}(a, b) - \frac{|C| - |a \cup b|}{|C| + \epsilon}

    with :math:`C` the smallest box enclosing both. Values in ``[-1, 1]``.
    Convention: with ``eps = 0`` this is torchvision's ``generalized_box_iou``
    wherever the areas are positive; zero denominators give 0 terms with zero
    gradients (torchvision gives NaN).

    Args:
      boxes1: floating ``(..., N, 4)`` (``pairwise=True``) or ``(..., 4)``.
      boxes2: floating ``(..., M, 4)`` with the same leading axes, or the
        shape of ``boxes1`` (``pairwise=False``).
      pairwise: all pairs (static) or matched pairs.
      box_format: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"``.
      eps: ``>= 0`` added to the union and to the enclosing area.

    Returns:
      ``(..., N, M)`` for ``pairwise=True``; otherwise the boxes' shape
      without the last axis.

    Raises:
      ValueError: wrong shapes, unknown format, negative ``eps``.
      TypeError: integer boxes.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> a = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> b = jnp.array([[1.0, 1.0, 3.0, 3.0]])
      >>> float(jaxloss.generalized_box_iou(a, b)[0, 0])  # 1/7 - 2/9
      -0.079365...

    References:
      Rezatofighi et al., `Generalized Intersection over Union
      <https://arxiv.org/abs/1902.09630>`_, 2019. Equivalent to
      ``torchvision.ops.generalized_box_iou(boxes1, boxes2)`` (pairwise) and
      MONAI ``box_pair_giou`` (matched pairs).
    """
    b1, b2, e, dtype = _pair_boxes(boxes1, boxes2, pairwise, box_format, eps)
    inter, union = _inter_union(b1, b2)
    cw, ch = _enclosing_wh(b1, b2)
    zero = jnp.zeros((), cw.dtype)
    area_c = jnp.maximum(cw, zero) * jnp.maximum(ch, zero)
    giou = _iou(inter, union, e) - safe_div(area_c - union, area_c + e)
    return giou.astype(dtype)


# --------------------------------------------------------------------------------------
# IoU losses on matched pairs.
# --------------------------------------------------------------------------------------

_IOU_ARGS_DOC = """
    Args:
      predictions: floating ``(..., 4)`` predicted boxes.
      targets: floating ``(..., 4)`` ground-truth boxes, the same shape.
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
        ``box_format`` or ``reduction``, negative ``eps``.
      TypeError: integer ``predictions``.

"""


def _doc(fn):
    fn.__doc__ = fn.__doc__.replace("    {args}\n", _IOU_ARGS_DOC.lstrip("\n"))
    return fn


@_builtin("detection")
@_doc
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

    {args}
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
    p, t, e, dtype = _iou_loss_inputs(predictions, targets, box_format, eps, where, reduction)
    inter, union = _inter_union(p, t)
    values = 1 - _iou(inter, union, e)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("detection")
@_doc
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

    {args}
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
    p, t, e, dtype = _iou_loss_inputs(predictions, targets, box_format, eps, where, reduction)
    inter, union = _inter_union(p, t)
    cw, ch = _enclosing_wh(p, t)
    area_c = cw * ch
    values = 1 - _iou(inter, union, e) + safe_div(area_c - union, area_c + e)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


def _diou_terms(p: Array, t: Array, e: Array) -> tuple[Array, Array, Array, Array]:
    """IoU, the normalised centre distance, and the enclosing box's width and height."""
    inter, union = _inter_union(p, t)
    iou = _iou(inter, union, e)
    cw, ch = _enclosing_wh(p, t)
    distance = safe_div(_center_distance_sq(p, t), cw * cw + ch * ch + e)
    return iou, distance, cw, ch


@_builtin("detection")
@_doc
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

    {args}
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
    p, t, e, dtype = _iou_loss_inputs(predictions, targets, box_format, eps, where, reduction)
    iou, distance, _, _ = _diou_terms(p, t, e)
    values = 1 - iou + distance
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("detection")
@_doc
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

    {args}
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
    p, t, e, dtype = _iou_loss_inputs(predictions, targets, box_format, eps, where, reduction)
    iou, distance, _, _ = _diou_terms(p, t, e)
    x1, y1, x2, y2 = _unstack(p)
    x1g, y1g, x2g, y2g = _unstack(t)
    angle = _aspect_angle(x2g - x1g, y2g - y1g) - _aspect_angle(x2 - x1, y2 - y1)
    v = (4 / math.pi**2) * angle * angle
    alpha = jax.lax.stop_gradient(safe_div(v, 1 - iou + v + e))
    values = 1 - iou + distance + alpha * v
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("detection")
@_doc
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

    {args}
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
    p, t, e, dtype = _iou_loss_inputs(predictions, targets, box_format, eps, where, reduction)
    iou, distance, cw, ch = _diou_terms(p, t, e)
    x1, y1, x2, y2 = _unstack(p)
    x1g, y1g, x2g, y2g = _unstack(t)
    dw = (x2 - x1) - (x2g - x1g)
    dh = (y2 - y1) - (y2g - y1g)
    values = (1 - iou + distance + safe_div(dw * dw, cw * cw + e)
              + safe_div(dh * dh, ch * ch + e))
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


# --------------------------------------------------------------------------------------
# Detector losses.
# --------------------------------------------------------------------------------------


def _int_array(value: ArrayLike, name: str, shape: tuple[int, ...]) -> Array:
    array = jnp.asarray(value)
    if not jnp.issubdtype(array.dtype, jnp.integer):
        raise TypeError(f"{name} must hold integer class indices; got dtype {array.dtype}.")
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}; got {array.shape}.")
    return array


def _leading_mask(mask: ArrayLike | None, shape: tuple[int, ...], name: str) -> Array | None:
    """A ``where``/``weights`` of shape ``(shape[0],)`` (one per leading entry) broadcast to
    ``shape``; any other shape broadcasts the usual (trailing) way."""
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if len(shape) > 1 and mask.shape == shape[:1]:
        mask = mask.reshape(shape[:1] + (1,) * (len(shape) - 1))
    return _checks.broadcast_mask(mask, shape, name)


@_builtin("detection")
def ssd_multibox_loss(
    cls_logits: ArrayLike,
    box_regression: ArrayLike,
    cls_targets: ArrayLike,
    box_targets: ArrayLike,
    *,
    neg_pos_ratio: ArrayLike = 3,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""SSD's multibox loss: softmax CE with hard negative mining plus smooth L1 on positives.

    For image :math:`n` with positive anchors :math:`P_n` (``cls_targets > 0``)
    and :math:`H_n` the :math:`k_n = \lceil r\,|P_n| \rceil` negative anchors of
    largest cross-entropy (:math:`r` = ``neg_pos_ratio``; the negatives of rank
    below :math:`r |P_n|`, as torchvision compares; hard negatives are taken
    among the negatives only):

    .. math::
        \ell_n = \frac{1}{\max(1, |P_n|)}\Big[\sum_{a \in P_n} \sum_{j=1}^{4}
                 \mathrm{smoothL1}_{\beta=1}(b_{aj} - \hat b_{aj})
                 + \sum_{a \in P_n \cup H_n} \mathrm{CE}_a\Big]

    Mining is a rank from one ``argsort`` per image inside ``jit`` (static
    shapes, no loop over images); ties are broken by anchor index, which does
    not change the value. The mined set carries no gradient; the CE of the
    mined anchors does. An image without positives contributes 0.

    Convention (reduction): ``none`` is per image, ``(N,)``, each normalised
    by its own positives; ``mean`` is the mean over images (RetinaNet's and
    the SSD paper's per-image normalisation). torchvision's
    ``SSD.compute_loss`` instead divides the batch sums by the batch's total
    number of positives: that is ``reduction="sum"`` with
    ``weights = max(1, P_n) / max(1, sum_n P_n)``; the two agree for a batch
    of one image or equal positive counts. Where an image has fewer than
    :math:`k_n` negatives, torchvision's mask also re-counts some positives'
    CE; ours mines negatives only. ``box_targets`` are the encoded regression
    targets (torchvision's ``box_coder.encode_single``); their values at
    non-positive anchors are ignored (also NaN there).

    Args:
      cls_logits: floating ``(N, A, C)`` class logits per anchor; class 0 is
        the background.
      box_regression: floating ``(N, A, 4)`` predicted box offsets.
      cls_targets: int ``(N, A)`` matched classes in ``[0, C)``, 0 =
        background.
      box_targets: floating ``(N, A, 4)`` encoded target offsets.
      neg_pos_ratio: ``r >= 0`` negatives mined per positive (a Python
        number or traced scalar).
      where: boolean ``(N,)`` (or broadcastable) mask of images.
      weights: per-image weights ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an ``(N,)`` array.

    Raises:
      ValueError: shapes disagree, labels out of range (when concrete),
        negative ``neg_pos_ratio``, unknown ``reduction``.
      TypeError: integer ``cls_logits`` or ``box_regression``; non-integer
        ``cls_targets``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]]])
      >>> labels = jnp.array([[1, 0, 0, 0]])
      >>> boxes = jnp.array([[[0.5, 0.0, 0.0, 2.0]] + [[9.0, 9.0, 9.0, 9.0]] * 3])
      >>> targets = jnp.zeros((1, 4, 4))
      >>> # 1.625 (smooth L1) + CE of the positive (2.1269) + the hardest negative (3.0486)
      >>> float(jaxloss.ssd_multibox_loss(logits, boxes, labels, targets, neg_pos_ratio=1))
      6.80051...

    References:
      Liu et al., `SSD: Single Shot MultiBox Detector
      <https://arxiv.org/abs/1512.02325>`_, 2016. torchvision
      ``torchvision.models.detection.SSD.compute_loss`` (see the convention
      above for the batch normalisation).
    """
    _checks.check_reduction(reduction)
    logits = _checks.float_input(cls_logits, "cls_logits")
    _checks.check_rank(logits, "cls_logits", rank=3)
    n, a, c = logits.shape
    regression = _checks.float_input(box_regression, "box_regression")
    if regression.shape != (n, a, 4):
        raise ValueError(
            f"box_regression must have shape (N, A, 4) = {(n, a, 4)} to match cls_logits "
            f"{logits.shape}; got {regression.shape}."
        )
    labels = _int_array(cls_targets, "cls_targets", (n, a))
    _checks.check_labels_in_range(labels, c, "cls_targets")
    box_t = _checks.float_input(box_targets, "box_targets")
    _checks.check_same_shape(box_t, "box_targets", regression, "box_regression")
    compute, dtype = _checks.compute_dtype(logits, regression, box_t)
    logits, regression, box_t = (x.astype(compute) for x in (logits, regression, box_t))
    _checks.check_range(neg_pos_ratio, "neg_pos_ratio", low=0.0)
    ratio = _checks.hyperparameter(neg_pos_ratio, "neg_pos_ratio", compute)

    image_mask = _checks.broadcast_mask(where, (n,), "where")
    if image_mask is not None:
        image_mask = image_mask.astype(jnp.bool_)
        logits, regression, box_t = _reduce.mask_inputs(
            image_mask[:, None, None], logits, regression, box_t)
        labels = jnp.where(image_mask[:, None], labels, jnp.zeros_like(labels))

    positive = labels > 0                                                # [N, A]
    ce = -log_probability_of(logits, labels, from_logits=True)          # [N, A]
    num_pos = jnp.sum(positive, axis=1)                                  # [N]
    # Hard negative mining: rank the negatives by CE (positives last), keep rank < r |P|.
    score = jax.lax.stop_gradient(jnp.where(positive, -jnp.inf, ce))
    order = jnp.argsort(score, axis=1, descending=True, stable=True)    # [N, A]
    rank = jnp.argsort(order, axis=1)                                    # [N, A]
    quota = ratio * num_pos.astype(compute)                              # [N]
    mined = ~positive & (rank.astype(compute) < quota[:, None])
    cls_sum = jnp.sum(jnp.where(positive | mined, ce, jnp.zeros_like(ce)), axis=1)

    # Smooth L1 on positive anchors only; other anchors' inputs are zeroed (double where).
    keep = jnp.broadcast_to(positive[..., None], regression.shape)
    regression = jnp.where(keep, regression, jnp.zeros_like(regression))
    box_t = jnp.where(keep, box_t, jnp.zeros_like(box_t))
    box_sum = jnp.sum(smooth_l1_loss(regression, box_t, beta=1.0, reduction="none"), axis=(1, 2))

    values = (box_sum + cls_sum) / jnp.maximum(num_pos, 1).astype(compute)
    return _reduce.reduce_loss(values, reduction=reduction, where=image_mask, weights=weights,
                               dtype=dtype)


@_builtin("detection")
def mask_rcnn_mask_loss(
    mask_logits: ArrayLike,
    mask_targets: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Mask R-CNN's mask loss: per-pixel sigmoid BCE on the ground-truth class's mask only.

    .. math:: \ell_{rij} = \mathrm{BCE}(x_{r i j y_r}, t_{rij})

    with :math:`y_r` the class of RoI :math:`r`; the other :math:`K - 1`
    masks get no loss and no gradient. The BCE is
    :func:`binary_cross_entropy_loss`'s fused logits formula. ``mean`` is the
    mean over all ``R * M * M`` pixels (of the selected RoIs), as in
    torchvision.

    Convention: a 1-D ``where`` or ``weights`` of shape ``(R,)`` is per RoI
    (e.g. to drop padded RoIs) and is broadcast to ``(R, M, M)`` explicitly;
    any other shape broadcasts against ``(R, M, M)`` the usual way.

    Args:
      mask_logits: floating ``(R, M, M, K)``, channels last (a non-square
        ``(R, H, W, K)`` works the same way).
      mask_targets: ``(R, M, M)`` in ``[0, 1]`` (float, or int/bool 0-1).
      labels: int ``(R,)`` classes in ``[0, K)``.
      where: boolean ``(R,)`` or broadcastable to ``(R, M, M)``.
      weights: ``(R,)`` or broadcastable to ``(R, M, M)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an ``(R, M, M)`` array.

    Raises:
      ValueError: shapes disagree, labels out of range (when concrete),
        unknown ``reduction``.
      TypeError: integer ``mask_logits``, non-integer ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[[[0.0, 2.0], [1.0, -1.0]]]])   # (R, H, W, K) = (1, 1, 2, 2)
      >>> targets = jnp.array([[[1.0, 0.0]]])
      >>> # class 1: logits 2 and -1; (log(1 + e^-2) + log(1 + e^-1)) / 2
      >>> float(jaxloss.mask_rcnn_mask_loss(logits, targets, jnp.array([1])))
      0.22009...

    References:
      He et al., `Mask R-CNN <https://arxiv.org/abs/1703.06870>`_, 2017.
      Equivalent to torchvision's ``roi_heads.maskrcnn_loss`` after the
      projection of the masks: ``binary_cross_entropy_with_logits(
      mask_logits[arange(R), labels], mask_targets)`` with the class axis at
      dim 1.
    """
    _checks.check_reduction(reduction)
    x = _checks.float_input(mask_logits, "mask_logits")
    _checks.check_rank(x, "mask_logits", rank=4)
    r, _, _, k = x.shape
    t = jnp.asarray(mask_targets)
    if jnp.issubdtype(t.dtype, jnp.integer) or t.dtype == jnp.bool_:
        t = t.astype(x.dtype)
    t = _checks.float_input(t, "mask_targets")
    if t.shape != x.shape[:3]:
        raise ValueError(
            f"mask_targets must have the shape of mask_logits without the class axis, "
            f"{x.shape[:3]}; got {t.shape}."
        )
    y = _int_array(labels, "labels", (r,))
    _checks.check_labels_in_range(y, k, "labels")
    compute, dtype = _checks.compute_dtype(x, t)
    x, t = x.astype(compute), t.astype(compute)
    shape = t.shape
    mask = _leading_mask(where, shape, "where")
    weight = _leading_mask(weights, shape, "weights")
    if mask is not None:
        mask = mask.astype(jnp.bool_)
        (x,) = _reduce.mask_inputs(mask[..., None], x)
        (t,) = _reduce.mask_inputs(mask, t)
    index = jnp.clip(y, 0, k - 1).astype(jnp.int32).reshape(r, 1, 1, 1)
    logit = jnp.take_along_axis(x, index, axis=-1)[..., 0]              # [R, M, M]
    values = bce_with_logits(logit, t, None)
    return _reduce.reduce_loss(values, reduction=reduction, where=mask, weights=weight,
                               dtype=dtype)

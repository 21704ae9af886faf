"""Box utilities (not losses; no ``reduction``): conversion, area, IoU and GIoU.

Boxes are floating ``(..., 4)`` arrays in ``xyxy`` unless ``box_format=``
(or ``in_fmt``/``out_fmt``) says ``"xywh"`` or ``"cxcywh"``; ``pairwise=True``
gives the all-pairs cost matrix a matcher needs, ``pairwise=False`` matched
pairs (scenic's ``all_pairs``).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._numerics import safe_div
from jaxloss.detection._common import (
    BoxFormat,
    as_boxes,
    check_format,
    convert,
    enclosing_wh,
    inter_union,
    iou_ratio,
    unstack,
)

__all__ = ["box_area", "box_convert", "box_iou", "generalized_box_iou"]


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
    check_format(in_fmt, "in_fmt")
    check_format(out_fmt, "out_fmt")
    boxes = as_boxes(boxes, "boxes")
    compute, dtype = _checks.compute_dtype(boxes)
    return convert(boxes.astype(compute), in_fmt, out_fmt).astype(dtype)


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
    check_format(box_format, "box_format")
    boxes = as_boxes(boxes, "boxes")
    compute, dtype = _checks.compute_dtype(boxes)
    x1, y1, x2, y2 = unstack(convert(boxes.astype(compute), box_format, "xyxy"))
    return ((x2 - x1) * (y2 - y1)).astype(dtype)


def __pair_boxes(
    boxes1: ArrayLike, boxes2: ArrayLike, pairwise: bool, box_format: str, eps: ArrayLike
) -> tuple[Array, Array, Array, jnp.dtype]:
    """Validated xyxy boxes aligned for elementwise or all-pairs comparison."""
    check_format(box_format, "box_format")
    if not isinstance(pairwise, bool):
        raise TypeError(f"pairwise must be a static Python bool; got {pairwise!r}.")
    b1 = as_boxes(boxes1, "boxes1", min_rank=2 if pairwise else 1)
    b2 = as_boxes(boxes2, "boxes2", min_rank=2 if pairwise else 1)
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
    b1 = convert(b1.astype(compute), box_format, "xyxy")
    b2 = convert(b2.astype(compute), box_format, "xyxy")
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
    b1, b2, e, dtype = __pair_boxes(boxes1, boxes2, pairwise, box_format, eps)
    inter, union = inter_union(b1, b2)
    return iou_ratio(inter, union, e).astype(dtype)


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
    b1, b2, e, dtype = __pair_boxes(boxes1, boxes2, pairwise, box_format, eps)
    inter, union = inter_union(b1, b2)
    cw, ch = enclosing_wh(b1, b2)
    zero = jnp.zeros((), cw.dtype)
    area_c = jnp.maximum(cw, zero) * jnp.maximum(ch, zero)
    giou = iou_ratio(inter, union, e) - safe_div(area_c - union, area_c + e)
    return giou.astype(dtype)


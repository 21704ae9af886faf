"""The YOLOv8 detection criterion: task-aligned assignment, BCE, CIoU and DFL.

A composite criterion (like ``combine``): it returns ``(total, parts)`` with
the unweighted parts for logging and is not in the loss registry.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._numerics import bce_with_logits
from jaxloss.detection.assign import _assign, _check_assign_inputs
from jaxloss.detection.dense import _dfl_values
from jaxloss.detection.iou_losses import _ciou_values

__all__ = ["yolo_criterion"]


def yolo_criterion(
    cls_logits: ArrayLike,
    box_logits: ArrayLike,
    anchor_points: ArrayLike,
    strides: ArrayLike,
    gt_labels: ArrayLike,
    gt_boxes: ArrayLike,
    gt_mask: ArrayLike,
    *,
    reg_max: int = 16,
    box_weight: ArrayLike = 7.5,
    cls_weight: ArrayLike = 0.5,
    dfl_weight: ArrayLike = 1.5,
    top_k: int = 10,
    alpha: ArrayLike = 0.5,
    beta: ArrayLike = 6.0,
) -> tuple[Array, dict[str, Array]]:
    r"""The YOLOv8 detection loss of an anchor-free head with a distribution (DFL) box branch.

    Decodes each anchor's box from ``box_logits`` (the expectation of each
    side's softmax over ``reg_max`` bins, :func:`distribution_expectation`),
    assigns anchors to the ground truth with :func:`task_aligned_assign` (on
    the detached probabilities and boxes in pixels) and returns

    .. math::
        \mathrm{cls} = \frac{\sum \mathrm{BCE}(x, \hat s)}{S}, \quad
        \mathrm{box} = \frac{\sum_{fg} w\,(1 - \mathrm{CIoU})}{S}, \quad
        \mathrm{dfl} = \frac{\sum_{fg} w\,\overline{\mathrm{DFL}}}{S}

    with :math:`\hat s` the target scores, :math:`w` an anchor's target-score
    sum, :math:`S = \max(\sum \hat s, 1)` over the batch, the CIoU in stride
    units, and :math:`\overline{\mathrm{DFL}}` the distribution focal loss
    averaged over the four sides, whose targets (the distances from the
    anchor to the target box's sides, in stride units) are clipped to
    ``[0, reg_max - 1.01]``. ``total = box_weight box + cls_weight cls +
    dfl_weight dfl``.

    Convention: ultralytics' ``v8DetectionLoss`` without its final
    multiplication by the batch size (``total`` is the per-image scale that an
    optimizer's learning rate expects). An image without ground truth (all of
    ``gt_mask`` False) contributes only background BCE: the loss and its
    gradient are finite. ``parts`` are unweighted (as in ``combine``).

    Args:
      cls_logits: floating ``(N, A, C)`` class logits of all anchors (all
        levels concatenated).
      box_logits: floating ``(N, A, 4 reg_max)``: the bin logits of the
        distances to the left, top, right and bottom sides (side-major:
        ``reshape(N, A, 4, reg_max)``), in stride units.
      anchor_points: floating ``(A, 2)`` anchor centres in grid units (cell
        index + 0.5).
      strides: floating ``(A,)`` the stride of each anchor's level, in pixels.
      gt_labels: integer ``(N, M)`` classes of the padded ground truth.
      gt_boxes: floating ``(N, M, 4)`` ground-truth boxes, ``xyxy`` in pixels.
      gt_mask: boolean ``(N, M)``, True for real boxes.
      reg_max: number of bins per side (static, ``>= 2``).
      box_weight: gain of the CIoU part.
      cls_weight: gain of the classification part.
      dfl_weight: gain of the DFL part.
      top_k: positives per box in the assignment.
      alpha: exponent of the class score in the assignment metric.
      beta: exponent of the overlap in the assignment metric.

    Returns:
      ``(total, parts)``: the weighted scalar loss and a dict with the
      unweighted scalars ``"box"``, ``"cls"`` and ``"dfl"``, float32 (or the
      logits' dtype if wider).

    Raises:
      ValueError: shapes that do not fit together, ``reg_max < 2``.
      TypeError: integer logits or boxes, non-integer labels.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> ys, xs = jnp.meshgrid(jnp.arange(4.0), jnp.arange(4.0), indexing="ij")
      >>> anchors = jnp.stack([xs.ravel(), ys.ravel()], -1) + 0.5   # a 4 x 4 grid
      >>> strides = jnp.full((16,), 8.0)
      >>> cls_logits = jnp.zeros((1, 16, 3))
      >>> box_logits = jnp.zeros((1, 16, 4 * 16))
      >>> gt = jnp.array([[[4.0, 4.0, 20.0, 20.0]]])
      >>> total, parts = jaxloss.yolo_criterion(
      ...     cls_logits, box_logits, anchors, strides, jnp.array([[2]]), gt,
      ...     jnp.array([[True]]))
      >>> sorted(parts), bool(total > 0)
      (['box', 'cls', 'dfl'], True)

    References:
      Jocher et al., Ultralytics YOLOv8, 2023; Feng et al., TOOD, 2021; Li et
      al., Generalized Focal Loss, 2020. ultralytics ``v8DetectionLoss``
      (``utils/loss.py``) divided by the batch size.
    """
    reg_max = _checks.static_int(reg_max, "reg_max", low=2)
    x = _checks.float_input(cls_logits, "cls_logits")
    _checks.check_rank(x, "cls_logits", rank=3)
    n, a, _ = x.shape
    d = _checks.float_input(box_logits, "box_logits")
    if d.shape != (n, a, 4 * reg_max):
        raise ValueError(
            f"box_logits must have shape {(n, a, 4 * reg_max)} (images, anchors, 4 sides x "
            f"reg_max={reg_max} bins); got {d.shape}."
        )
    s = _checks.float_input(strides, "strides")
    if s.shape != (a,):
        raise ValueError(f"strides must have shape {(a,)} (one stride per anchor); got "
                         f"{s.shape}.")
    anchors = _checks.float_input(anchor_points, "anchor_points")
    # validates the ground truth's shapes against the anchors (pred_boxes checked below)
    dummy_boxes = jnp.zeros((n, a, 4), x.dtype)
    _check_assign_inputs(x, dummy_boxes, anchors, gt_labels, gt_boxes, gt_mask)
    compute, dtype = _checks.compute_dtype(x, d, s, anchors, jnp.asarray(gt_boxes))
    x, d, s, anchors = (v.astype(compute) for v in (x, d, s, anchors))
    gt = jnp.asarray(gt_boxes).astype(compute)
    gains = [_checks.hyperparameter(g, name, compute) for g, name in
             ((box_weight, "box_weight"), (cls_weight, "cls_weight"), (dfl_weight, "dfl_weight"))]

    top_k = _checks.static_int(top_k, "top_k", low=1)
    if top_k > a:
        raise ValueError(f"top_k must be at most the number of anchors, {a}; got {top_k}.")
    labels, mask = jnp.asarray(gt_labels), jnp.asarray(gt_mask).astype(jnp.bool_)
    if gt.shape[1] == 0:  # no ground-truth slots: one padded slot, all background
        labels = jnp.zeros((n, 1), labels.dtype)
        gt, mask = jnp.zeros((n, 1, 4), compute), jnp.zeros((n, 1), jnp.bool_)
    if not _checks.is_traced(labels) and not _checks.is_traced(mask):
        _checks.check_labels_in_range(labels[mask], x.shape[-1], "gt_labels")
    for value, name in ((alpha, "alpha"), (beta, "beta")):
        _checks.check_range(value, name, low=0.0)
    metric = tuple(_checks.hyperparameter(v, name, compute)
                   for v, name in ((alpha, "alpha"), (beta, "beta")))
    total, parts = _yolo(x, d, s, anchors, labels, gt, mask, tuple(gains), metric,
                         reg_max=reg_max, top_k=top_k)
    return total.astype(dtype), {name: part.astype(dtype) for name, part in parts.items()}


@partial(jax.jit, static_argnames=("reg_max", "top_k"))
def _yolo(x: Array, d: Array, s: Array, anchors: Array, labels: Array, gt: Array, mask: Array,
          gains: tuple[Array, Array, Array], metric: tuple[Array, Array], *, reg_max: int,
          top_k: int) -> tuple[Array, dict[str, Array]]:
    """The criterion on validated inputs in one compute dtype (one compiled program)."""
    n, a, _ = x.shape
    compute = x.dtype
    alpha, beta = metric
    bins = d.reshape(n, a, 4, reg_max)                            # [N, A, 4, R]
    k = jax.lax.broadcasted_iota(compute, (1, 1, 1, reg_max), 3)
    sides = jnp.sum(jax.nn.softmax(bins, axis=-1) * k, axis=-1)   # [N, A, 4] (l, t, r, b)
    points = anchors[None]                                        # [1, A, 2]
    pred_boxes = jnp.concatenate([points - sides[..., :2], points + sides[..., 2:]],
                                 axis=-1)                         # [N, A, 4] grid units
    scale = s[None, :, None]                                      # [1, A, 1]
    _, target_boxes, target_scores, fg = _assign(
        jax.nn.sigmoid(x), pred_boxes * scale, anchors * s[:, None], labels, gt, mask,
        top_k=top_k, alpha=alpha, beta=beta, eps=jnp.asarray(1e-9, compute))
    score_sum = jnp.maximum(jnp.sum(target_scores), 1.0)

    cls = jnp.sum(bce_with_logits(x, target_scores, None)) / score_sum
    weight = jnp.where(fg, jnp.sum(target_scores, axis=-1), 0)   # [N, A]
    target = jnp.where(fg[..., None], target_boxes / scale, 0)   # [N, A, 4] grid units
    pred = jnp.where(fg[..., None], pred_boxes, 0)               # background: 0 vs 0, finite
    ciou = _ciou_values(pred, target, jnp.asarray(1e-7, compute))
    box = jnp.sum(ciou * weight) / score_sum
    distances = jnp.concatenate([points - target[..., :2], target[..., 2:] - points], axis=-1)
    distances = jnp.clip(distances, 0, reg_max - 1 - 0.01)       # [N, A, 4]
    dfl = jnp.mean(_dfl_values(bins, distances), axis=-1)         # [N, A]
    dfl = jnp.sum(dfl * weight) / score_sum
    parts = {"box": box, "cls": cls, "dfl": dfl}
    total = gains[0] * box + gains[1] * cls + gains[2] * dfl
    return total, parts

"""DETR's set-prediction criterion: Hungarian matching, then class, L1 and GIoU losses.

``detr_criterion`` matches queries to padded targets with
:func:`~jaxloss.detection.matching.hungarian_match`'s cost (no gradient
through the matching) and returns ``(total, parts)`` like
:func:`jaxloss.compose.combine`, so per-part logging and
:func:`jaxloss.compose.deep_supervision` over decoder layers (DETR's auxiliary
losses) work unchanged. It is a composite criterion, not a registry loss.
The class term goes through the shared cross-entropy (``_classes``) or
sigmoid focal (``_numerics``) kernel, the box terms through the GIoU kernel,
and every sum through ``_reduce``.
"""

from __future__ import annotations

from functools import partial
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._classes import log_probability_of, out_of_range, poison
from jaxloss._numerics import abs_zero_grad, one_hot, sigmoid_focal_values
from jaxloss.detection._common import BoxFormat, convert, to_xyxy_linear
from jaxloss.detection._giou import giou_values
from jaxloss.detection.matching import match_queries, matching_cost, matching_inputs

__all__ = ["detr_criterion"]


def _class_term(logits: Array, classes: Array, matched: Array, *, focal: bool, eos_coef: Array,
                alpha: Array, gamma: Array | float, num_boxes: Array,
                axis_name: str | None) -> Array:
    """The class loss: CE weighted by the no-object weight (a weighted mean, torch's), or the
    sigmoid focal loss summed over queries and classes and divided by ``num_boxes``."""
    if focal:
        onehot = one_hot(classes, logits.shape[-1], logits.dtype)
        onehot = jnp.where(matched[..., None], onehot, jnp.zeros_like(onehot))  # [N, Q, K]
        values = sigmoid_focal_values(logits, onehot, gamma=gamma, alpha=alpha)
        return _reduce.reduce_loss(values, reduction="sum", axis_name=axis_name) / num_boxes
    weight = jnp.where(matched, jnp.ones_like(eos_coef), eos_coef)              # [N, Q]
    values = -log_probability_of(logits, classes, from_logits=True) * weight
    return _reduce.reduce_loss(values, reduction="mean", normalizer=weight, axis_name=axis_name)


def detr_criterion(
    pred_logits: ArrayLike,
    pred_boxes: ArrayLike,
    target_labels: ArrayLike,
    target_boxes: ArrayLike,
    target_mask: ArrayLike,
    *,
    class_weight: ArrayLike = 1.0,
    bbox_weight: ArrayLike = 5.0,
    giou_weight: ArrayLike = 2.0,
    eos_coef: ArrayLike = 0.1,
    class_cost: ArrayLike = 1.0,
    bbox_cost: ArrayLike = 5.0,
    giou_cost: ArrayLike = 2.0,
    focal: bool = False,
    alpha: ArrayLike = 0.25,
    gamma: ArrayLike = 2.0,
    box_format: BoxFormat = "cxcywh",
    axis_name: str | None = None,
) -> tuple[Array, dict[str, Array]]:
    r"""DETR's set criterion: Hungarian matching, then CE (or focal), L1 and GIoU losses.

    Queries are matched to the real targets of their image with
    :func:`hungarian_match` (costs ``class_cost``, ``bbox_cost``,
    ``giou_cost``; no gradient through the matching). With :math:`\sigma(q)`
    the target matched to query :math:`q` (:math:`\varnothing` if none) and
    :math:`B` the number of real target boxes in the (global) batch, at
    least 1:

    .. math::
        \mathcal{L}_{class} &= \frac{\sum_q w_q\,
            \mathrm{CE}(x_q, y_{\sigma(q)})}{\sum_q w_q},
            \quad w_q = 1 \text{ if matched else } \mathrm{eos\_coef}
            \\
        \mathcal{L}_{bbox} &= \frac1B \sum_{q \text{ matched}}
            \lVert b_q - b_{\sigma(q)} \rVert_1, \qquad
        \mathcal{L}_{giou} = \frac1B \sum_{q \text{ matched}}
            \big(1 - \mathrm{GIoU}(b_q, b_{\sigma(q)})\big)

    where an unmatched query's CE target is the last class ("no object").
    With ``focal=True`` (Deformable DETR) the class term is instead the sigmoid
    focal loss against the one-hot of the matched classes (all zeros for
    unmatched queries), summed over queries and classes and divided by
    :math:`B`. ``total = class_weight * class + bbox_weight * bbox +
    giou_weight * giou``.

    Convention: boxes are cxcywh (``box_format``), the L1 is on those
    coordinates and the GIoU on the boxes converted to xyxy; ``parts`` are
    unweighted. With ``axis_name`` (inside ``shard_map``/``pmap``) the sums and
    :math:`B` are ``psum``-ed, so every device gets the loss of the global
    batch (DETR all-reduces its ``num_boxes`` the same way). A batch with no
    target gives the no-object CE and zero box losses, finite with finite
    gradients. A real target's label outside ``[0, C)`` (or a target box with
    a negative width or height) raises eagerly; under ``jit`` it makes the
    loss NaN, and so does a non-finite prediction (it cannot be matched).
    DETR's auxiliary decoder losses:
    ``jaxloss.compose.deep_supervision(detr_criterion, weights="same")`` over a
    list of ``(pred_logits, pred_boxes)`` per layer, with the targets as a
    tuple ``(target_labels, target_boxes, target_mask)``; that averages the
    layers (DETR sums them: ``L`` times the value).

    Args:
      pred_logits: floating ``(N, Q, C + 1)`` logits, the last class "no
        object"; with ``focal=True``, ``(N, Q, C)`` sigmoid logits.
      pred_boxes: floating ``(N, Q, 4)`` predicted boxes.
      target_labels: int ``(N, M)`` classes in ``[0, C)``, padded to ``M``.
      target_boxes: floating ``(N, M, 4)`` target boxes, padded.
      target_mask: bool ``(N, M)``, True for real targets.
      class_weight: weight of the class term in ``total``.
      bbox_weight: weight of the L1 term.
      giou_weight: weight of the GIoU term.
      eos_coef: CE weight of the "no object" class (softmax only).
      class_cost: matcher's class cost weight.
      bbox_cost: matcher's L1 cost weight.
      giou_cost: matcher's −GIoU cost weight.
      focal: sigmoid focal class loss and focal matching cost (static).
      alpha: focal :math:`\alpha` (loss and cost).
      gamma: focal :math:`\gamma` (loss and cost).
      box_format: ``"cxcywh"`` (default), ``"xyxy"`` or ``"xywh"``.
      axis_name: the mapped axis to ``psum`` over.

    Returns:
      ``(total, parts)``: scalar total and ``{"class", "bbox", "giou"}`` of
      unweighted scalars, in the dtype of the predictions.

    Raises:
      ValueError: shapes disagree, labels out of range or inverted target
        boxes (eager), unknown ``box_format``, negative ``eos_coef``.
      TypeError: integer logits or boxes, non-integer labels, non-bool
        ``focal``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[[4.0, -4.0], [-4.0, 4.0]]])      # 1 class + no object
      >>> boxes = jnp.array([[[0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2]]])
      >>> t_boxes = jnp.array([[[0.3, 0.3, 0.2, 0.2]]])
      >>> total, parts = jaxloss.detr_criterion(logits, boxes, jnp.array([[0]]), t_boxes,
      ...                                       jnp.array([[True]]))
      >>> round(float(parts["class"]), 5), float(parts["bbox"]), float(parts["giou"])
      (0.00034, 0.0, 0.0)

    References:
      Carion et al., `End-to-End Object Detection with Transformers
      <https://arxiv.org/abs/2005.12872>`_, 2020, DETR ``models/detr.py``
      ``SetCriterion`` (``loss_labels``, ``loss_boxes``); Zhu et al.,
      `Deformable DETR <https://arxiv.org/abs/2010.04159>`_, 2021,
      ``models/deformable_detr.py`` ``SetCriterion`` (``focal=True``).
    """
    if not isinstance(focal, bool):
        raise TypeError(f"focal must be a static Python bool; got {focal!r}.")
    num_logits = jnp.shape(pred_logits)[-1] if jnp.ndim(pred_logits) else 0
    if not focal and num_logits < 2:
        raise ValueError(f"pred_logits must have C + 1 >= 2 classes (the last is 'no object'); "
                         f"got shape {jnp.shape(pred_logits)}.")
    num_classes = num_logits if focal else num_logits - 1
    logits, boxes, labels, t_boxes, mask, dtype = matching_inputs(
        pred_logits, pred_boxes, target_labels, target_boxes, target_mask,
        num_labels=num_classes, box_format=box_format)
    compute = logits.dtype
    _checks.check_range(eos_coef, "eos_coef", low=0.0)
    h = {name: _checks.hyperparameter(value, name, compute) for name, value in (
        ("class_weight", class_weight), ("bbox_weight", bbox_weight),
        ("giou_weight", giou_weight), ("eos_coef", eos_coef), ("class_cost", class_cost),
        ("bbox_cost", bbox_cost), ("giou_cost", giou_cost), ("alpha", alpha))}
    # A Python gamma stays static (an integer power in the focal kernel); a traced one is an
    # argument of the program.
    static_gamma = float(gamma) if isinstance(gamma, (int, float)) else None
    traced_gamma = None if static_gamma is not None else _checks.hyperparameter(
        gamma, "gamma", compute)
    host_boxes = _checks.host_copy(t_boxes)
    if host_boxes is not None:
        # convert only slices and adds: it works on the host copy
        xyxy = np.asarray(convert(cast(Array, host_boxes), box_format, "xyxy"))
        if np.any((xyxy[..., 2] < xyxy[..., 0]) | (xyxy[..., 3] < xyxy[..., 1])):
            raise ValueError(f"target_boxes holds a box with a negative width or height "
                             f"(box_format={box_format!r}); give boxes with x1 <= x2 and "
                             "y1 <= y2.")
    total, parts = _criterion(logits, boxes, labels, t_boxes, mask, h, traced_gamma,
                              focal=focal, box_format=box_format, axis_name=axis_name,
                              static_gamma=static_gamma)
    return total.astype(dtype), {name: part.astype(dtype) for name, part in parts.items()}


@partial(jax.jit, static_argnames=("focal", "box_format", "axis_name", "static_gamma"))
def _criterion(logits: Array, boxes: Array, labels: Array, t_boxes: Array, mask: Array,
               h: dict[str, Array], traced_gamma: Array | None, *, focal: bool,
               box_format: str, axis_name: str | None, static_gamma: float | None
               ) -> tuple[Array, dict[str, Array]]:
    """``detr_criterion`` after validation, one jitted program (an eager call compiles once
    instead of dispatching the matching loops op by op; inside ``jit`` it is inlined)."""
    compute = logits.dtype
    num_logits = logits.shape[-1]
    num_classes = num_logits if focal else num_logits - 1
    if static_gamma is not None:
        focal_gamma: Array | float = static_gamma
    else:  # detr_criterion passes one of the two
        assert traced_gamma is not None
        focal_gamma = traced_gamma
    t_xyxy = convert(t_boxes, box_format, "xyxy")
    inverted = (t_xyxy[..., 2] < t_xyxy[..., 0]) | (t_xyxy[..., 3] < t_xyxy[..., 1])
    bad = jnp.any(inverted | (mask & out_of_range(labels, num_classes)), axis=1)   # [N]
    cost = matching_cost(logits, boxes, labels, t_boxes, class_cost=h["class_cost"],
                         bbox_cost=h["bbox_cost"], giou_cost=h["giou_cost"], focal=focal,
                         alpha=h["alpha"], gamma=jnp.asarray(focal_gamma, compute),
                         box_format=box_format)
    match = match_queries(cost, mask)                                           # [N, Q]
    # A NaN or inf prediction cannot be matched: its image's loss is NaN, not that of an
    # image with every query unmatched.
    bad = bad | ~jnp.all(jnp.isfinite(cost), axis=(1, 2))
    matched = match >= 0
    index = jnp.maximum(match, 0)
    matched_labels = jnp.take_along_axis(labels, index, axis=1)                 # [N, Q]
    no_object = num_logits - 1 if not focal else 0
    classes = jnp.where(matched, matched_labels, no_object)
    num_boxes = jnp.sum(mask).astype(compute)
    if axis_name is not None:
        num_boxes = jax.lax.psum(num_boxes, axis_name)
    num_boxes = jnp.maximum(num_boxes, 1)

    class_loss = _class_term(poison(logits, bad), classes, matched, focal=focal,
                             eos_coef=h["eos_coef"], alpha=h["alpha"], gamma=focal_gamma,
                             num_boxes=num_boxes, axis_name=axis_name)
    # Matched pairs only; the other queries' boxes are replaced first (double where), so
    # they get no gradient from the box terms.
    keep = matched[..., None]                                                   # [N, Q, 1]
    target = jnp.take_along_axis(t_boxes, index[..., None], axis=1)             # [N, Q, 4]
    pred = jnp.where(keep, boxes, target)
    l1 = jnp.sum(abs_zero_grad(pred - target), axis=-1)                         # [N, Q]
    giou = giou_values(to_xyxy_linear(pred, box_format), convert(target, box_format, "xyxy"),
                       jnp.zeros((), compute))                                  # [N, Q]
    l1, giou = poison(l1, bad), poison(giou, bad)
    bbox_loss, giou_loss = (
        _reduce.reduce_loss(v, reduction="sum", where=matched, axis_name=axis_name) / num_boxes
        for v in (l1, giou))
    total = (h["class_weight"] * class_loss + h["bbox_weight"] * bbox_loss
             + h["giou_weight"] * giou_loss)
    return total, {"class": class_loss, "bbox": bbox_loss, "giou": giou_loss}

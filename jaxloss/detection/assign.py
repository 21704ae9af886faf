"""Task-aligned assignment (TOOD, YOLOv8): which anchors learn which ground-truth box.

A pure function under ``jit``: ground truth is padded to ``M`` boxes per image
with a boolean mask, and every step (in-box test, alignment metric, top-k per
box, resolution of anchors claimed by several boxes) is an array operation
over ``(N, M, A)``, without a Python loop over images or boxes. Not a loss:
it returns targets, and no gradient flows through it.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._numerics import one_hot
from jaxloss.detection._common import as_boxes
from jaxloss.detection.iou_losses import _ciou_values

__all__ = ["task_aligned_assign"]


def _check_assign_inputs(pred_scores: ArrayLike, pred_boxes: ArrayLike,
                         anchor_points: ArrayLike, gt_labels: ArrayLike, gt_boxes: ArrayLike,
                         gt_mask: ArrayLike) -> tuple[Array, ...]:
    scores = _checks.float_input(pred_scores, "pred_scores")
    _checks.check_rank(scores, "pred_scores", rank=3)
    n, a, _ = scores.shape
    boxes = as_boxes(pred_boxes, "pred_boxes")
    if boxes.shape != (n, a, 4):
        raise ValueError(f"pred_boxes must have shape {(n, a, 4)} (images, anchors, xyxy); "
                         f"got {boxes.shape}.")
    anchors = _checks.float_input(anchor_points, "anchor_points")
    if anchors.shape != (a, 2):
        raise ValueError(f"anchor_points must have shape {(a, 2)} (anchors, xy); got "
                         f"{anchors.shape}.")
    gt = as_boxes(gt_boxes, "gt_boxes")
    _checks.check_rank(gt, "gt_boxes", rank=3)
    if gt.shape[0] != n:
        raise ValueError(f"gt_boxes must have shape ({n}, M, 4) (images, padded boxes, xyxy); "
                         f"got {gt.shape}.")
    m = gt.shape[1]
    labels = jnp.asarray(gt_labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"gt_labels must hold integer class indices; got dtype {labels.dtype}.")
    if labels.shape != (n, m):
        raise ValueError(f"gt_labels must have shape {(n, m)}; got {labels.shape}.")
    mask = jnp.asarray(gt_mask)
    if mask.shape != (n, m):
        raise ValueError(f"gt_mask must have shape {(n, m)} (True for real boxes); got "
                         f"{mask.shape}.")
    return scores, boxes, anchors, labels, gt, mask.astype(jnp.bool_)


def _scatter_top_k(metric: Array, k: int) -> Array:
    """Boolean ``metric.shape``: the ``k`` largest entries of each row (ties: lower index)."""
    _, index = jax.lax.top_k(metric, k)                           # [N, M, k]
    a = metric.shape[-1]

    def row(idx: Array) -> Array:
        return jnp.zeros((a,), jnp.bool_).at[idx].set(True)

    return jax.vmap(jax.vmap(row))(index)                         # [N, M, A]


@partial(jax.jit, static_argnames=("top_k",))
def _assign(scores: Array, boxes: Array, anchors: Array, labels: Array, gt: Array,
            mask: Array, top_k: int, alpha: Array, beta: Array, eps: Array
            ) -> tuple[Array, Array, Array, Array]:
    """The assignment of validated inputs in one compute dtype (one compiled program also
    when called eagerly)."""
    scores, boxes, anchors, gt, alpha, beta, eps = (
        jax.lax.stop_gradient(v) for v in (scores, boxes, anchors, gt, alpha, beta, eps))
    c = scores.shape[-1]
    m = gt.shape[1]
    gt = jnp.where(mask[..., None], gt, jnp.zeros((), gt.dtype))    # padded boxes: zeros
    # anchors strictly inside each box (ultralytics' 1e-9 margin)
    lt, rb = gt[:, :, None, :2], gt[:, :, None, 2:]               # [N, M, 1, 2]
    points = anchors[None, None]                                  # [1, 1, A, 2]
    deltas = jnp.concatenate([points - lt, rb - points], axis=-1)  # [N, M, A, 4]
    valid = (jnp.min(deltas, axis=-1) > 1e-9) & mask[..., None]  # [N, M, A]
    cls = jnp.clip(labels, 0, c - 1)
    score = jnp.take_along_axis(jnp.swapaxes(scores, 1, 2), cls[..., None], axis=1)  # [N, M, A]
    score = jnp.where(valid, score, 0)
    ciou = 1 - _ciou_values(gt[:, :, None, :], boxes[:, None, :, :],
                            jnp.asarray(1e-7, boxes.dtype))        # [N, M, A]
    overlaps = jnp.where(valid, jnp.maximum(ciou, 0), 0)
    metric = jnp.power(score, alpha) * jnp.power(overlaps, beta)
    positive = _scatter_top_k(metric, top_k) & valid              # [N, M, A]
    # an anchor claimed by several boxes goes to the one it overlaps most
    multi = jnp.sum(positive, axis=1) > 1                         # [N, A]
    best = jnp.argmax(overlaps, axis=1)                           # [N, A]
    is_best = jnp.arange(m)[None, :, None] == best[:, None, :]    # [N, M, A]
    positive = jnp.where(multi[:, None, :], is_best, positive)
    foreground = jnp.any(positive, axis=1)                        # [N, A]
    gt_index = jnp.argmax(positive, axis=1)                       # [N, A] (0 for background)
    target_labels = jnp.take_along_axis(labels, gt_index, axis=1)
    target_boxes = jnp.take_along_axis(gt, gt_index[..., None], axis=1)  # [N, A, 4]
    # score = the anchor's metric over its box's best metric, times that box's best overlap
    metric = jnp.where(positive, metric, 0)
    best_metric = jnp.max(metric, axis=-1, keepdims=True)         # [N, M, 1]
    best_overlap = jnp.max(jnp.where(positive, overlaps, 0), axis=-1, keepdims=True)
    norm = jnp.max(metric * best_overlap / (best_metric + eps), axis=1)  # [N, A]
    target_scores = (one_hot(jnp.maximum(target_labels, 0), c, scores.dtype)
                     * jnp.where(foreground, norm, 0)[..., None])            # [N, A, C]
    # a real box with a label outside [0, C) poisons its anchors (never a plausible zero)
    bad = jnp.take_along_axis((labels < 0) | (labels >= c), gt_index, axis=1) & foreground
    target_scores = jnp.where(bad[..., None], jnp.nan, target_scores)
    return target_labels, target_boxes, target_scores, foreground


def task_aligned_assign(
    pred_scores: ArrayLike,
    pred_boxes: ArrayLike,
    anchor_points: ArrayLike,
    gt_labels: ArrayLike,
    gt_boxes: ArrayLike,
    gt_mask: ArrayLike,
    *,
    top_k: int = 10,
    alpha: ArrayLike = 0.5,
    beta: ArrayLike = 6.0,
    eps: ArrayLike = 1e-9,
) -> tuple[Array, Array, Array, Array]:
    r"""Task-aligned assignment of anchors to padded ground-truth boxes (TOOD, YOLOv8).

    For each real box, the candidates are the anchors strictly inside it; each
    is scored by the alignment metric

    .. math:: t = s^{\alpha}\, u^{\beta}

    with :math:`s` the predicted probability of the box's class and
    :math:`u = \max(\mathrm{CIoU}, 0)` of the predicted box with the ground
    truth. The ``top_k`` candidates of largest :math:`t` become its positives;
    an anchor claimed by several boxes goes to the one with the largest
    :math:`u`. A positive anchor's target score is 1 at its box's class times
    :math:`t / (\max t + \epsilon) \cdot \max u` (the maxima over that box's
    positives); every other anchor's is 0.

    Convention: ultralytics' ``TaskAlignedAssigner`` (its CIoU, its 1e-9
    in-box margin, its resolution of multiply-claimed anchors, which may move
    an anchor to a box whose top-k it was not in). Ties in the top-k go to
    the lower anchor index (``lax.top_k``; torch's order is unspecified).
    Where ``foreground`` is False, ``target_labels`` and ``target_boxes`` hold
    those of box 0 of the image (zeros when it is padding), as in ultralytics:
    use them only where ``foreground``. Everything is computed under
    ``stop_gradient``. A real box whose label is outside ``[0, C)`` raises
    eagerly and gives NaN target scores at its anchors under ``jit``.

    Args:
      pred_scores: floating ``(N, A, C)`` predicted class probabilities
        (``sigmoid`` of the logits).
      pred_boxes: floating ``(N, A, 4)`` predicted boxes, ``xyxy``.
      anchor_points: floating ``(A, 2)`` anchor centres ``(x, y)``, in the
        unit of the boxes.
      gt_labels: integer ``(N, M)`` class of each ground-truth box (any value
        at padding).
      gt_boxes: floating ``(N, M, 4)`` ground-truth boxes, ``xyxy``, padded to
        ``M`` per image.
      gt_mask: boolean ``(N, M)``, True for real boxes.
      top_k: positives per box, a static int in ``[1, A]``.
      alpha: exponent of the class score in the metric.
      beta: exponent of the overlap in the metric.
      eps: added to the metric's maximum in the normalisation.

    Returns:
      ``(target_labels, target_boxes, target_scores, foreground)``: int
      ``(N, A)``, ``(N, A, 4)`` in the dtype of ``gt_boxes``, ``(N, A, C)`` in
      the dtype of ``pred_scores``, bool ``(N, A)``.

    Raises:
      ValueError: shapes that do not fit together, ``top_k`` outside
        ``[1, A]``, a real box's label outside ``[0, C)`` (when concrete).
      TypeError: integer scores or boxes, non-integer labels.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> anchors = jnp.array([[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [3.5, 0.5]])
      >>> scores = jnp.full((1, 4, 2), 0.5)
      >>> boxes = jnp.array([[[0.0, 0.0, 2.0, 1.0]] * 4])
      >>> gt = jnp.array([[[0.0, 0.0, 2.0, 1.0]]])
      >>> labels, _, target_scores, fg = jaxloss.task_aligned_assign(
      ...     scores, boxes, anchors, jnp.array([[1]]), gt, jnp.array([[True]]), top_k=2)
      >>> fg.tolist(), target_scores[0, :, 1].tolist()
      ([[True, True, False, False]], [1.0, 1.0, 0.0, 0.0])

    References:
      Feng et al., `TOOD: Task-aligned One-stage Object Detection
      <https://arxiv.org/abs/2108.07755>`_, 2021. ultralytics
      ``TaskAlignedAssigner(topk=top_k, num_classes=C, alpha, beta, eps)(
      pred_scores, pred_boxes, anchor_points, gt_labels[..., None], gt_boxes,
      gt_mask[..., None])`` (``utils/tal.py``).
    """
    scores, boxes, anchors, labels, gt, mask = _check_assign_inputs(
        pred_scores, pred_boxes, anchor_points, gt_labels, gt_boxes, gt_mask)
    n, a, c = scores.shape
    m = gt.shape[1]
    top_k = _checks.static_int(top_k, "top_k", low=1)
    if top_k > a:
        raise ValueError(f"top_k must be at most the number of anchors, {a}; got {top_k}.")
    score_dtype = scores.dtype
    box_dtype = gt.dtype
    compute, _ = _checks.compute_dtype(scores, boxes, anchors, gt)
    if m == 0:
        return (jnp.full((n, a), c, labels.dtype), jnp.zeros((n, a, 4), box_dtype),
                jnp.zeros((n, a, c), score_dtype), jnp.zeros((n, a), jnp.bool_))
    if not _checks.is_traced(labels) and not _checks.is_traced(mask):
        _checks.check_labels_in_range(labels[mask], c, "gt_labels")
    for value, name in ((alpha, "alpha"), (beta, "beta"), (eps, "eps")):
        _checks.check_range(value, name, low=0.0)
    scores, boxes, anchors, gt = (x.astype(compute) for x in (scores, boxes, anchors, gt))
    alpha_, beta_, eps_ = (_checks.hyperparameter(v, name, compute)
                           for v, name in ((alpha, "alpha"), (beta, "beta"), (eps, "eps")))
    labels_out, boxes_out, scores_out, fg = _assign(scores, boxes, anchors, labels, gt, mask,
                                                    top_k=top_k, alpha=alpha_, beta=beta_,
                                                    eps=eps_)
    return labels_out, boxes_out.astype(box_dtype), scores_out.astype(score_dtype), fg

"""Detector losses: SSD's multibox loss and Mask R-CNN's mask loss.

Conventions: anchors or RoIs are the leading axes (``(N, A, ...)`` for SSD,
``(R, ...)`` for Mask R-CNN) and the class axis is last. A ``where`` or
``weights`` of shape ``(N,)`` (``(R,)``) is per image (per RoI). Class labels
outside ``[0, C)`` raise eagerly and make the loss of their image (RoI) NaN
under ``jit``, never the loss of a clipped label.

Each loss validates once, masks once, calls private kernels that return the
unreduced values (the cross-entropy through ``_classes.log_probability_of``,
the BCE through ``_numerics.bce_with_logits``, the smooth L1 through
``_numerics.smooth_l1``) and reduces once.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._classes import log_probability_of, out_of_range, poison
from jaxloss._numerics import bce_with_logits, smooth_l1
from jaxloss.detection._common import int_array
from jaxloss.registry import _builtin

__all__ = ["mask_rcnn_mask_loss", "ssd_multibox_loss"]

SsdNormalize = Literal["batch", "image"]
_SSD_NORMALIZE: tuple[str, ...] = ("batch", "image")


# --------------------------------------------------------------------------------------
# Kernels.
# --------------------------------------------------------------------------------------


def _ssd_image_sums(logits: Array, regression: Array, labels: Array, box_targets: Array,
                    ratio: Array) -> tuple[Array, Array]:
    """Per image, the smooth-L1 sum over positives plus the CE over positives and mined
    negatives, ``(N,)``, and the number of positives ``(N,)`` (compute dtype).

    Mining is a rank from one ``argsort`` per image (static shapes, no loop over
    images); the mined set carries no gradient, the CE of the mined anchors does.
    """
    positive = labels > 0                                                # [N, A]
    ce = -log_probability_of(logits, labels, from_logits=True)          # [N, A]
    num_pos = jnp.sum(positive, axis=1).astype(logits.dtype)            # [N]
    # Hard negative mining: rank the negatives by CE (positives last), keep rank < r |P|.
    score = jax.lax.stop_gradient(jnp.where(positive, -jnp.inf, ce))
    order = jnp.argsort(score, axis=1, descending=True, stable=True)    # [N, A]
    rank = jnp.argsort(order, axis=1)                                    # [N, A]
    mined = ~positive & (rank.astype(logits.dtype) < (ratio * num_pos)[:, None])
    cls_sum = jnp.sum(jnp.where(positive | mined, ce, jnp.zeros_like(ce)), axis=1)
    # Smooth L1 (beta = 1) on positive anchors only; other anchors' inputs are zeroed first
    # (double where: box targets may be NaN there).
    keep = positive[..., None]                                           # [N, A, 1]
    regression = jnp.where(keep, regression, jnp.zeros_like(regression))
    box_targets = jnp.where(keep, box_targets, jnp.zeros_like(box_targets))
    box = smooth_l1(regression - box_targets, jnp.ones((), regression.dtype))
    return jnp.sum(box, axis=(1, 2)) + cls_sum, num_pos


def _mask_bce(logits: Array, targets: Array, labels: Array) -> Array:
    """Per-pixel BCE of the labelled class's mask: ``(R, M, M, K)``, ``(R, M, M)``, ``(R,)``
    to ``(R, M, M)``."""
    num_classes = logits.shape[-1]
    # Out-of-range labels are clipped for the gather; the caller poisons their RoIs.
    index = jnp.clip(labels, 0, num_classes - 1).astype(jnp.int32)[:, None, None, None]
    logit = jnp.take_along_axis(logits, index, axis=-1)[..., 0]         # [R, M, M]
    return bce_with_logits(logit, targets, None)


# --------------------------------------------------------------------------------------
# Public losses.
# --------------------------------------------------------------------------------------


@_builtin("detection")
def ssd_multibox_loss(
    cls_logits: ArrayLike,
    box_regression: ArrayLike,
    cls_targets: ArrayLike,
    box_targets: ArrayLike,
    *,
    neg_pos_ratio: ArrayLike = 3,
    normalize: SsdNormalize = "batch",
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""SSD's multibox loss: softmax CE with hard negative mining plus smooth L1 on positives.

    For image :math:`n` with positive anchors :math:`P_n` (``cls_targets > 0``)
    and :math:`H_n` the :math:`k_n = \lceil r\,|P_n| \rceil` negative anchors of
    largest cross-entropy (:math:`r` = ``neg_pos_ratio``; the negatives of rank
    below :math:`r |P_n|`, as torchvision compares; hard negatives are taken
    among the negatives only), the image's sum is

    .. math::
        s_n = \sum_{a \in P_n} \sum_{j=1}^{4}
              \mathrm{smoothL1}_{\beta=1}(b_{aj} - \hat b_{aj})
              + \sum_{a \in P_n \cup H_n} \mathrm{CE}_a

    and the loss (``normalize="batch"``, the default) divides the batch's total
    by the batch's total number of positives, as the paper's :math:`N` and
    torchvision's ``SSD.compute_loss`` do:

    .. math:: \ell = \frac{\sum_n s_n}{\max(1, \sum_n |P_n|)}

    Mining is a rank from one ``argsort`` per image inside ``jit`` (static
    shapes, no loop over images); ties are broken by anchor index, which does
    not change the value. The mined set carries no gradient; the CE of the
    mined anchors does.

    Convention (normaliser and reduction):

    * ``normalize="batch"``: ``none`` is the per-image sums :math:`s_n`,
      ``(N,)``, *not* normalised; ``mean`` is their weighted mean with each
      image counted by its positives, :math:`\sum_n w_n s_n / \sum_n w_n
      |P_n|` (0 when there are no positives), i.e. torchvision's value for
      unit weights; ``sum`` is :math:`\sum_n w_n s_n`. ``where`` drops images
      from both sums. With ``axis_name`` (inside ``shard_map``/``pmap``) both
      sums are ``psum``-ed, so a sharded ``mean`` equals the loss of the global
      batch.
    * ``normalize="image"``: each image is normalised by its own positives,
      :math:`s_n / \max(1, |P_n|)`; ``none`` is that ``(N,)`` and ``mean`` the
      mean over images (RetinaNet-style; equal to ``"batch"`` for a batch of
      one image or equal positive counts).

    Where an image has fewer than :math:`k_n` negatives, torchvision's mask
    also re-counts some positives' CE; ours mines negatives only.
    ``box_targets`` are the encoded regression targets (torchvision's
    ``box_coder.encode_single``); their values at non-positive anchors are
    ignored (also NaN there). A ``cls_targets`` entry outside ``[0, C)``
    raises eagerly; under ``jit`` its image's loss is NaN (and so is any
    reduction over it).

    Args:
      cls_logits: floating ``(N, A, C)`` class logits per anchor; class 0 is
        the background.
      box_regression: floating ``(N, A, 4)`` predicted box offsets.
      cls_targets: int ``(N, A)`` matched classes in ``[0, C)``, 0 =
        background.
      box_targets: floating ``(N, A, 4)`` encoded target offsets.
      neg_pos_ratio: ``r >= 0`` negatives mined per positive (a Python
        number or traced scalar).
      normalize: ``"batch"`` (default) or ``"image"`` (static); see above.
      axis_name: the mapped axis to ``psum`` over (``normalize="batch"``).
      where: boolean ``(N,)`` (or broadcastable) mask of images.
      weights: per-image weights ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an ``(N,)`` array.

    Raises:
      ValueError: shapes disagree, labels out of range (when concrete),
        negative ``neg_pos_ratio``, unknown ``normalize`` or ``reduction``.
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
      <https://arxiv.org/abs/1512.02325>`_, 2016. Equivalent to torchvision
      ``torchvision.models.detection.SSD.compute_loss`` (after the anchor
      matching and box encoding) with ``reduction="mean"``.
    """
    _checks.check_reduction(reduction)
    _checks.check_choice(normalize, "normalize", _SSD_NORMALIZE)
    logits = _checks.float_input(cls_logits, "cls_logits")
    _checks.check_rank(logits, "cls_logits", rank=3)
    n, a, c = logits.shape
    regression = _checks.float_input(box_regression, "box_regression")
    if regression.shape != (n, a, 4):
        raise ValueError(
            f"box_regression must have shape (N, A, 4) = {(n, a, 4)} to match cls_logits "
            f"{logits.shape}; got {regression.shape}."
        )
    labels = int_array(cls_targets, "cls_targets", (n, a))
    _checks.check_labels_in_range(labels, c, "cls_targets")
    box_t = _checks.float_input(box_targets, "box_targets")
    _checks.check_same_shape(box_t, "box_targets", regression, "box_regression")
    compute, dtype = _checks.compute_dtype(logits, regression, box_t)
    logits, regression, box_t = (x.astype(compute) for x in (logits, regression, box_t))
    _checks.check_range(neg_pos_ratio, "neg_pos_ratio", low=0.0)
    ratio = _checks.hyperparameter(neg_pos_ratio, "neg_pos_ratio", compute)
    image_mask = _reduce.rows_kept(where, None, (n,))
    logits, regression, box_t, labels = _reduce.mask_rows(image_mask, logits, regression,
                                                          box_t, labels)

    sums, num_pos = _ssd_image_sums(logits, regression, labels, box_t, ratio)   # [N], [N]
    bad = jnp.any(out_of_range(labels, c), axis=1)                               # [N]
    if normalize == "image":
        values = poison(sums / jnp.maximum(num_pos, 1), bad)
        return _reduce.reduce_loss(values, reduction=reduction, where=image_mask,
                                   weights=weights, dtype=dtype, axis_name=axis_name)
    return _reduce.reduce_loss(poison(sums, bad), reduction=reduction, where=image_mask,
                               weights=weights, normalizer=num_pos, dtype=dtype,
                               axis_name=axis_name)


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

    Convention: a ``where`` or ``weights`` of shape ``(R,)`` (or ``(R, M)``)
    is per RoI (e.g. to drop padded RoIs), aligned with the leading axes
    (``_reduce.align_mask(align="leading")``); any other shape broadcasts
    against ``(R, M, M)`` the usual way. A label outside ``[0, K)`` raises
    eagerly; under ``jit`` its RoI's values are NaN (and so is any reduction
    over them), never the loss of a clipped class.

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
    y = int_array(labels, "labels", (r,))
    _checks.check_labels_in_range(y, k, "labels")
    compute, dtype = _checks.compute_dtype(x, t)
    x, t = x.astype(compute), t.astype(compute)
    mask = _reduce.align_mask(where, t.shape, "where", align="leading")       # [R, M, M]
    weight = _reduce.align_mask(weights, t.shape, "weights", align="leading")
    if mask is not None:
        mask = mask.astype(jnp.bool_)
        (x,) = _reduce.mask_inputs(mask[..., None], x)
        (t,) = _reduce.mask_inputs(mask, t)
        y = jnp.where(jnp.any(mask, axis=(1, 2)), y, jnp.zeros_like(y))
    values = poison(_mask_bce(x, t, y), out_of_range(y, k))                 # [R, M, M]
    return _reduce.reduce_loss(values, reduction=reduction, where=mask, weights=weight,
                               dtype=dtype)

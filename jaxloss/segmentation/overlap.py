"""Overlap losses on soft counts: Dice, Jaccard, Tversky, focal Tversky, generalized Dice.

Each public loss validates and masks once (:func:`_common.prepare`), computes
the soft counts ``TP = sum p t``, ``|P| = sum p``, ``|T| = sum t`` per image
and class (or pooled over the batch), calls its kernel (``_dice_values``,
``_jaccard_values``, ``_tversky_index``, ``_generalized_dice_values``) and
reduces once (:func:`_common.finish`).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import safe_div, safe_pow
from jaxloss.registry import _builtin
from jaxloss.segmentation._common import (
    Average,
    Mode,
    drop_background,
    finish,
    prepare,
    rows_of,
    scored_classes,
    soft_counts,
)

__all__ = [
    "dice_loss",
    "focal_tversky_loss",
    "generalized_dice_loss",
    "jaccard_loss",
    "tversky_loss",
]

_WEIGHT_TYPES = ("square", "simple", "uniform")


def _dice_values(tp: Array, size_p: Array, size_t: Array, *, smooth: Array,
                 eps: Array) -> Array:
    """``1 - (2 TP + smooth) / max(|P| + |T| + smooth, eps)``, elementwise on the counts."""
    return 1 - safe_div(2 * tp + smooth, jnp.maximum(size_p + size_t + smooth, eps))


def _jaccard_values(tp: Array, size_p: Array, size_t: Array, *, smooth: Array,
                    eps: Array) -> Array:
    """smp's IoU loss on the counts; a class without target pixels gives 0."""
    union = size_p + size_t - tp
    score = safe_div(tp + smooth, jnp.maximum(union + smooth, eps))
    # "absent" is written size_t <= 0 so that a NaN count (an out-of-range label) stays NaN.
    return jnp.where(size_t <= 0, jnp.zeros_like(score), 1 - score)


def _tversky_index(tp: Array, size_p: Array, size_t: Array, *, alpha: Array, beta: Array,
                   smooth: Array) -> Array:
    """``(TP + s) / (TP + alpha FP + beta FN + s)`` with ``FP = |P| - TP``, ``FN = |T| - TP``."""
    denominator = tp + alpha * (size_p - tp) + beta * (size_t - tp) + smooth
    return safe_div(tp + smooth, denominator)


def _generalized_dice_values(tp: Array, size_p: Array, size_t: Array, *, weight_type: str,
                             smooth: Array) -> Array:
    """Sudre's generalized Dice over the last (class) axis of the counts ``(..., C)``."""
    volume = jax.lax.stop_gradient(size_t)
    if weight_type == "uniform":
        class_weight = jnp.ones_like(volume)
    else:
        power = volume if weight_type == "simple" else jnp.square(volume)
        class_weight = safe_div(jnp.ones_like(power), power)
        largest = jnp.max(class_weight, axis=-1, keepdims=True)
        # MONAI: an absent class's infinite weight becomes the largest finite one.
        class_weight = jnp.where(power > 0, class_weight, jnp.broadcast_to(largest, power.shape))
    numerator = 2 * jnp.sum(class_weight * tp, axis=-1) + smooth
    denominator = jnp.sum(class_weight * (size_p + size_t), axis=-1) + smooth
    return 1 - safe_div(numerator, denominator)


def _counts(logits, targets, *, mode, from_logits, ignore_index, include_background, axis,
            per_image, average, squared, axis_name, where):
    """Validated, masked soft counts of one overlap loss and the result dtype."""
    _checks.check_choice(average, "average", ("macro", "micro"))
    classes = None if average == "micro" else scored_classes(logits, axis, include_background)
    keep = rows_of(where, logits, classes, per_image=per_image)
    inputs = prepare(logits, targets, mode=mode, from_logits=from_logits,
                     ignore_index=ignore_index, axis=axis, keep=keep)
    probs, onehot = drop_background(include_background, inputs.probs, inputs.onehot)
    counts = soft_counts(probs, onehot, per_image=per_image, average=average, squared=squared,
                         axis_name=axis_name)
    return counts, inputs.dtype


@_builtin("segmentation")
def dice_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    mode: Mode = "multiclass",
    from_logits: bool = True,
    smooth: ArrayLike = 1e-5,
    eps: ArrayLike = 0.0,
    per_image: bool = True,
    squared: bool = False,
    average: Average = "macro",
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    include_background: bool = True,
    axis: int = -1,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Soft Dice loss, per image and class (MONAI) or pooled over the batch (smp).

    .. math::
        \ell = 1 - \frac{2\,TP + \text{smooth}}
                        {\max(|P| + |T| + \text{smooth},\ \text{eps})}

    with :math:`|P| = \sum p^2`, :math:`|T| = \sum t^2` when ``squared``
    (V-Net). Conventions: a class absent from an image (or, pooled, from the
    batch) counts; an empty prediction against an empty target gives
    ``1 - smooth / smooth = 0`` when ``smooth > 0``, and ``1`` when
    ``smooth = 0`` (value and gradient finite either way: the division is
    safe). ``class_weights`` gives the weighted mean over classes
    (``sum_c w_c l_c / sum_c w_c``; MONAI's ``weight`` instead scales the
    per-class losses before an unweighted mean). MONAI's
    ``DiceLoss(smooth_nr=s, smooth_dr=s)`` is ``smooth=s, eps=0``; smp's
    ``DiceLoss(smooth=s, eps=e)`` is ``smooth=s, eps=e`` with
    ``per_image=False`` except that smp zeroes the loss of classes absent from
    the target (pass ``where=`` the present classes for that).

    Args:
      logits: floating ``(N, *spatial, C)`` (probabilities with
        ``from_logits=False``); the class axis is ``axis``.
      targets: ``(N, *spatial)`` int class indices, or ``(N, *spatial, C)``
        one-hot / probabilities (multiclass); the shape of ``logits`` for
        binary and multilabel modes (float, or int 0/1).
      mode: ``"multiclass"`` (softmax), ``"binary"`` (one sigmoid channel) or
        ``"multilabel"`` (a sigmoid per channel).
      from_logits: whether ``logits`` are logits.
      smooth: added to numerator and denominator (``>= 0``).
      eps: floor of the denominator (``>= 0``).
      per_image: one score per image and class (MONAI ``batch=False``), or
        pooled over the batch per class (MONAI ``batch=True``, smp).
      squared: squared sums in the denominator (MONAI ``squared_pred``).
      average: ``"macro"`` (one score per class) or ``"micro"`` (counts
        summed over classes first, kornia's ``average="micro"``).
      class_weights: ``(C,)`` non-negative weights of the mean over classes
        (after ``include_background`` drops class 0, ``(C - 1,)``).
      ignore_index: int target value whose pixels are dropped from P and T.
      include_background: keep channel 0.
      axis: the class axis of ``logits`` (static; ``1`` for channels-first).
      axis_name: mapped axis to pool counts over (``per_image=False``).
      where: boolean mask broadcastable to the unreduced shape (``(N,)``
        selects images).
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"``: ``(N, C)`` per image,
      ``(C,)`` pooled, ``(N,)`` / ``()`` with ``average="micro"``. Under
      ``jit``, an image with a label outside ``[0, C)`` (not ``ignore_index``)
      gives NaN (its pooled batch too).

    Raises:
      ValueError: wrong shapes, logits that look channels-first, labels out of
        range (eager), unknown mode/average/reduction, bad ``class_weights``,
        negative ``smooth``/``eps``.
      TypeError: integer logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])  # (1, 3, 2)
      >>> labels = jnp.array([[0, 1, 1]])
      >>> jaxloss.dice_loss(probs, labels, from_logits=False, smooth=0.0, reduction="none")
      Array([[0.333..., 0.272...]], dtype=float32)

    References:
      Milletari et al., `V-Net <https://arxiv.org/abs/1606.04797>`_, 2016.
      MONAI ``DiceLoss(softmax=True, to_onehot_y=True)``;
      segmentation_models_pytorch ``DiceLoss``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(smooth, "smooth", low=0.0)
    _checks.check_range(eps, "eps", low=0.0)
    if class_weights is not None and average == "micro":
        raise ValueError("class_weights has no meaning with average='micro'.")
    (tp, size_p, size_t), dtype = _counts(
        logits, targets, mode=mode, from_logits=from_logits, ignore_index=ignore_index,
        include_background=include_background, axis=axis, per_image=per_image,
        average=average, squared=squared, axis_name=axis_name, where=where)
    compute = tp.dtype
    values = _dice_values(tp, size_p, size_t,
                          smooth=_checks.hyperparameter(smooth, "smooth", compute),
                          eps=_checks.hyperparameter(eps, "eps", compute))
    if class_weights is not None:
        channels = values.shape[-1]
        w = _checks.hyperparameter(class_weights, "class_weights", compute, scalar=False)
        if w.shape != (channels,):
            raise ValueError(
                f"class_weights must have shape ({channels},), one per scored class (class 0 "
                f"is dropped when include_background=False); got {w.shape}."
            )
        _checks.check_range(class_weights, "class_weights", low=0.0)
        w = jnp.broadcast_to(w, values.shape)
        if weights is not None:
            w = w * _reduce.align_mask(weights, values.shape, "weights",
                                       align="leading").astype(compute)
        weights = w
    return finish(values, dtype=dtype, reduction=reduction, where=where, weights=weights)


@_builtin("segmentation")
def jaccard_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    mode: Mode = "multiclass",
    from_logits: bool = True,
    smooth: ArrayLike = 0.0,
    eps: ArrayLike = 1e-7,
    per_image: bool = False,
    ignore_index: int | None = None,
    include_background: bool = True,
    axis: int = -1,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Soft Jaccard (IoU) loss, following segmentation_models_pytorch.

    .. math::
        \ell_c = \Big(1 - \frac{TP + \text{smooth}}
                       {\max(|P| + |T| - TP + \text{smooth},\ \text{eps})}\Big)
                 \cdot [\,|T_c| > 0\,]

    Convention (smp ``JaccardLoss``): batch IoU (``per_image=False``),
    ``smooth=0``, ``eps=1e-7``, and a class with no target pixel in the
    pooled batch (or image, with ``per_image=True``) contributes 0; the mean
    still divides by the number of classes.

    Args:
      logits: floating ``(N, *spatial, C)``, class axis ``axis``.
      targets: as for :func:`dice_loss`.
      mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
      from_logits: whether ``logits`` are logits.
      smooth: added to numerator and denominator (``>= 0``).
      eps: floor of the denominator (``>= 0``).
      per_image: one score per image and class instead of batch IoU.
      ignore_index: int target value whose pixels are dropped.
      include_background: keep channel 0.
      axis: the class axis of ``logits`` (static).
      axis_name: mapped axis to pool counts over (``per_image=False``).
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(C,)`` pooled or ``(N, C)``
      per image (NaN under ``jit`` where a label is out of range).

    Raises:
      ValueError: wrong shapes, labels out of range (eager), unknown mode or
        reduction, negative ``smooth``.
      TypeError: integer logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> jaxloss.jaccard_loss(probs, jnp.array([[0, 1, 1]]), from_logits=False,
      ...                      reduction="none")
      Array([0.5..., 0.428...], dtype=float32)

    References:
      Rahman & Wang, `Optimizing Intersection-Over-Union in Deep Neural
      Networks for Image Segmentation
      <https://doi.org/10.1007/978-3-319-50835-1_22>`_, 2016.
      segmentation_models_pytorch ``JaccardLoss(mode, from_logits=True)``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(smooth, "smooth", low=0.0)
    _checks.check_range(eps, "eps", low=0.0)
    (tp, size_p, size_t), dtype = _counts(
        logits, targets, mode=mode, from_logits=from_logits, ignore_index=ignore_index,
        include_background=include_background, axis=axis, per_image=per_image,
        average="macro", squared=False, axis_name=axis_name, where=where)
    compute = tp.dtype
    values = _jaccard_values(tp, size_p, size_t,
                             smooth=_checks.hyperparameter(smooth, "smooth", compute),
                             eps=_checks.hyperparameter(eps, "eps", compute))
    return finish(values, dtype=dtype, reduction=reduction, where=where, weights=weights)


def _tversky(logits, targets, *, alpha, beta, smooth, mode, from_logits, per_image, average,
             ignore_index, include_background, axis, axis_name, where):
    _checks.check_range(alpha, "alpha", low=0.0)
    _checks.check_range(beta, "beta", low=0.0)
    _checks.check_range(smooth, "smooth", low=0.0)
    (tp, size_p, size_t), dtype = _counts(
        logits, targets, mode=mode, from_logits=from_logits, ignore_index=ignore_index,
        include_background=include_background, axis=axis, per_image=per_image,
        average=average, squared=False, axis_name=axis_name, where=where)
    compute = tp.dtype
    index = _tversky_index(tp, size_p, size_t,
                           alpha=_checks.hyperparameter(alpha, "alpha", compute),
                           beta=_checks.hyperparameter(beta, "beta", compute),
                           smooth=_checks.hyperparameter(smooth, "smooth", compute))
    return index, dtype


@_builtin("segmentation")
def tversky_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike = 0.5,
    beta: ArrayLike = 0.5,
    smooth: ArrayLike = 1e-5,
    mode: Mode = "multiclass",
    from_logits: bool = True,
    per_image: bool = True,
    average: Average = "macro",
    ignore_index: int | None = None,
    include_background: bool = True,
    axis: int = -1,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Tversky loss: 1 - TP / (TP + alpha FP + beta FN), soft counts per image and class.

    .. math::
        \ell = 1 - \frac{TP + \text{smooth}}
                        {TP + \alpha\,FP + \beta\,FN + \text{smooth}}

    Convention (MONAI): ``alpha`` weights false positives, ``beta`` false
    negatives; ``alpha = beta = 0.5`` is the Dice loss, ``alpha = beta = 1``
    the Jaccard loss. kornia's ``tversky_loss`` pools the classes
    (``average="micro"``) and adds its ``eps`` to the denominator only.

    Args:
      logits: floating ``(N, *spatial, C)``, class axis ``axis``.
      targets: as for :func:`dice_loss`.
      alpha: weight of false positives (``>= 0``).
      beta: weight of false negatives (``>= 0``).
      smooth: added to numerator and denominator (``>= 0``).
      mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
      from_logits: whether ``logits`` are logits.
      per_image: per image (MONAI ``batch=False``) or pooled over the batch.
      average: ``"macro"`` (per class) or ``"micro"`` (classes pooled).
      ignore_index: int target value whose pixels are dropped.
      include_background: keep channel 0.
      axis: the class axis of ``logits`` (static).
      axis_name: mapped axis to pool counts over (``per_image=False``).
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N, C)`` per image,
      ``(C,)`` pooled, ``(N,)`` / ``()`` with ``average="micro"`` (NaN under
      ``jit`` where a label is out of range).

    Raises:
      ValueError: wrong shapes, labels out of range (eager), unknown
        mode/average/reduction, negative ``alpha``/``beta``/``smooth``.
      TypeError: integer logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[[4.0, -4.0], [-4.0, 4.0]]])
      >>> round(float(jaxloss.tversky_loss(logits, jnp.array([[0, 1]]))), 5)
      0.00034

    References:
      Salehi et al., `Tversky loss function for image segmentation
      <https://arxiv.org/abs/1706.05721>`_, 2017. MONAI ``TverskyLoss``;
      kornia ``tversky_loss``.
    """
    _checks.check_reduction(reduction)
    index, dtype = _tversky(
        logits, targets, alpha=alpha, beta=beta, smooth=smooth, mode=mode,
        from_logits=from_logits, per_image=per_image, average=average,
        ignore_index=ignore_index, include_background=include_background, axis=axis,
        axis_name=axis_name, where=where)
    return finish(1 - index, dtype=dtype, reduction=reduction, where=where, weights=weights)


@_builtin("segmentation")
def focal_tversky_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    gamma: ArrayLike = 0.75,
    alpha: ArrayLike = 0.3,
    beta: ArrayLike = 0.7,
    smooth: ArrayLike = 1e-5,
    mode: Mode = "multiclass",
    from_logits: bool = True,
    per_image: bool = True,
    average: Average = "macro",
    ignore_index: int | None = None,
    include_background: bool = True,
    axis: int = -1,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Focal Tversky loss: the Tversky loss raised to ``gamma``, per image and class.

    .. math:: \ell = (1 - TI)^{\gamma}

    with :math:`TI` the Tversky index of :func:`tversky_loss`. Defaults follow
    Abraham & Khan (``alpha=0.3``, ``beta=0.7``, exponent ``1/γ' = 0.75``).
    The power has a zero gradient at ``TI = 1`` (a perfect prediction), so the
    gradient stays finite for ``gamma < 1``.

    Args:
      logits: floating ``(N, *spatial, C)``, class axis ``axis``.
      targets: as for :func:`dice_loss`.
      gamma: exponent (``> 0``).
      alpha: weight of false positives (``>= 0``).
      beta: weight of false negatives (``>= 0``).
      smooth: added to numerator and denominator (``>= 0``).
      mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
      from_logits: whether ``logits`` are logits.
      per_image: per image or pooled over the batch.
      average: ``"macro"`` or ``"micro"``.
      ignore_index: int target value whose pixels are dropped.
      include_background: keep channel 0.
      axis: the class axis of ``logits`` (static).
      axis_name: mapped axis to pool counts over (``per_image=False``).
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; unreduced shape as for :func:`tversky_loss`.

    Raises:
      ValueError: as :func:`tversky_loss`, and ``gamma <= 0``.
      TypeError: integer logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> jaxloss.focal_tversky_loss(probs, jnp.array([[0, 1, 1]]), from_logits=False,
      ...                            gamma=1.0, alpha=0.5, beta=0.5, smooth=0.0,
      ...                            reduction="none")
      Array([[0.333..., 0.272...]], dtype=float32)

    References:
      Abraham & Khan, `A Novel Focal Tversky loss function with improved
      Attention U-Net for lesion segmentation
      <https://arxiv.org/abs/1810.07842>`_, 2019.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(gamma, "gamma", low=0.0, low_inclusive=False)
    index, dtype = _tversky(
        logits, targets, alpha=alpha, beta=beta, smooth=smooth, mode=mode,
        from_logits=from_logits, per_image=per_image, average=average,
        ignore_index=ignore_index, include_background=include_background, axis=axis,
        axis_name=axis_name, where=where)
    gamma = _checks.hyperparameter(gamma, "gamma", index.dtype)
    values = safe_pow(jnp.maximum(1 - index, jnp.zeros_like(index)), gamma)
    # safe_pow maps a NaN base (an out-of-range label under jit) to 0: keep the NaN.
    values = jnp.where(jnp.isnan(index), index, values)
    return finish(values, dtype=dtype, reduction=reduction, where=where, weights=weights)


@_builtin("segmentation")
def generalized_dice_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    weight_type: Literal["square", "simple", "uniform"] = "square",
    mode: Mode = "multiclass",
    from_logits: bool = True,
    smooth: ArrayLike = 1e-5,
    per_image: bool = False,
    ignore_index: int | None = None,
    include_background: bool = True,
    axis: int = -1,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Generalized Dice loss: one Dice over all classes, each weighted by its target volume.

    .. math::
        \ell = 1 - \frac{2 \sum_c w_c\, TP_c + \text{smooth}}
                        {\sum_c w_c (|P_c| + |T_c|) + \text{smooth}},
        \qquad w_c = |T_c|^{-2}\ (\text{square}),\ |T_c|^{-1}\ (\text{simple}),
        \ 1\ (\text{uniform})

    Convention (MONAI): a class absent from the targets has an infinite
    weight, which is replaced by the largest finite weight (of the image, or
    of the pooled batch), so an absent class cannot take over the loss (as
    it does in an implementation that only adds an epsilon). The weights
    carry no gradient. Pooled over the batch by default (``per_image=False``,
    as in Sudre et al.); MONAI's default is per image.

    Args:
      logits: floating ``(N, *spatial, C)``, class axis ``axis``.
      targets: as for :func:`dice_loss`.
      weight_type: ``"square"``, ``"simple"`` or ``"uniform"``.
      mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
      from_logits: whether ``logits`` are logits.
      smooth: added to numerator and denominator (``>= 0``).
      per_image: one loss per image (MONAI ``batch=False``) instead of pooled.
      ignore_index: int target value whose pixels are dropped.
      include_background: keep channel 0.
      axis: the class axis of ``logits`` (static).
      axis_name: mapped axis to pool counts over (``per_image=False``).
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``()`` pooled, ``(N,)`` per
      image (NaN under ``jit`` where a label is out of range).

    Raises:
      ValueError: wrong shapes, labels out of range (eager), unknown
        ``weight_type``, mode or reduction.
      TypeError: integer logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> round(float(jaxloss.generalized_dice_loss(probs, jnp.array([[0, 1, 1]]),
      ...                                           from_logits=False, smooth=0.0)), 5)
      0.31915

    References:
      Sudre et al., `Generalised Dice overlap as a deep learning loss function
      for highly unbalanced segmentations <https://arxiv.org/abs/1707.03237>`_,
      2017. MONAI ``GeneralizedDiceLoss(softmax=True, to_onehot_y=True,
      batch=True)``.
    """
    _checks.check_reduction(reduction)
    _checks.check_choice(weight_type, "weight_type", _WEIGHT_TYPES)
    _checks.check_range(smooth, "smooth", low=0.0)
    keep = rows_of(where, logits, per_image=per_image)
    inputs = prepare(logits, targets, mode=mode, from_logits=from_logits,
                     ignore_index=ignore_index, axis=axis, keep=keep)
    probs, onehot = drop_background(include_background, inputs.probs, inputs.onehot)
    tp, size_p, size_t = soft_counts(probs, onehot, per_image=per_image, axis_name=axis_name)
    values = _generalized_dice_values(
        tp, size_p, size_t, weight_type=weight_type,
        smooth=_checks.hyperparameter(smooth, "smooth", tp.dtype))
    return finish(values, dtype=inputs.dtype, reduction=reduction, where=where,
                  weights=weights)

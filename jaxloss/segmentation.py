"""Segmentation losses: overlap (Dice, Jaccard, Tversky) losses on soft counts.

Conventions (DESIGN.md): logits are channels-last ``(N, *spatial, C)``; in
``mode="multiclass"`` they go through a softmax over ``C`` and targets are int
``(N, *spatial)`` class indices or a float one-hot ``(N, *spatial, C)``; in
``mode="binary"`` (``C == 1``) and ``mode="multilabel"`` each channel goes
through a sigmoid and targets have the shape of the logits (float, or int
0/1). ``from_logits=False`` takes probabilities as they are.

Soft counts per image and class: ``TP = sum p t``, ``|P| = sum p``,
``|T| = sum t``, so ``FP = |P| - TP`` and ``FN = |T| - TP``. With
``per_image=True`` the unreduced loss is ``(N, C)``; with ``per_image=False``
the batch is pooled per class (batch Dice) and it is ``(C,)``;
``average="micro"`` also pools the classes (``(N,)`` or ``()``).
``ignore_index`` drops a pixel from both P and T. Under ``shard_map``/
``pmap``, ``axis_name`` makes the pooled counts global, so a sharded batch
gives the single-device result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import one_hot, safe_div, safe_pow
from jaxloss.classification import cross_entropy_loss, sigmoid_focal_loss
from jaxloss.distance import distance_transform
from jaxloss.registry import _builtin

__all__ = [
    "boundary_loss",
    "cldice_loss",
    "dice_ce_loss",
    "dice_focal_loss",
    "dice_loss",
    "generalized_dice_loss",
    "hausdorff_dt_loss",
    "focal_tversky_loss",
    "jaccard_loss",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
    "tversky_loss",
]

Mode = Literal["multiclass", "binary", "multilabel"]
Average = Literal["macro", "micro"]
_MODES = ("multiclass", "binary", "multilabel")
_AVERAGES = ("macro", "micro")


def _probabilities_and_targets(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    mode: str,
    from_logits: bool,
    ignore_index: int | None,
    include_background: bool,
    keep_images: Array | None = None,
) -> tuple[Array, Array, jnp.dtype]:
    """Probabilities and one-hot targets, ``(N, S, C)`` each (spatial flattened), masked.

    ``keep_images`` (``(N,)`` bool) sanitises the logits and targets of images
    that ``where=`` drops entirely (double-``where``: no NaN from them leaks).
    """
    _checks.check_choice(mode, "mode", _MODES)
    logits = _checks.float_input(logits, "logits")
    _checks.check_rank(logits, "logits", min_rank=2)
    if ignore_index is not None:
        ignore_index = _checks.static_int(ignore_index, "ignore_index")
    num_classes = logits.shape[-1]
    targets = jnp.asarray(targets)
    if mode == "binary" and num_classes != 1:
        raise ValueError(
            f"mode='binary' needs logits with one channel, (N, *spatial, 1); got shape "
            f"{logits.shape}. Use mode='multilabel' for several sigmoid channels or "
            "mode='multiclass' for a softmax."
        )
    if mode == "multiclass":
        targets, is_index = _checks.class_targets(logits, targets, axis=logits.ndim - 1)
        if is_index:
            _checks.check_labels_in_range(targets, num_classes, "targets",
                                          ignore_index=ignore_index)
            compute, dtype = _checks.compute_dtype(logits)
        else:
            if ignore_index is not None:
                raise ValueError("ignore_index needs integer class-index targets.")
            compute, dtype = _checks.compute_dtype(logits, targets)
        scores = _sanitise(logits.astype(compute), keep_images)
        probs = jax.nn.softmax(scores, axis=-1) if from_logits else scores
        if is_index:
            valid = jnp.ones(targets.shape, bool) if ignore_index is None else (
                targets != ignore_index)
            labels = jnp.where(valid, targets, jnp.zeros_like(targets))
            onehot = one_hot(labels, num_classes, compute)
            valid = valid[..., None]
        else:
            onehot = targets.astype(compute)
            valid = None
    else:
        if jnp.issubdtype(targets.dtype, jnp.integer) or targets.dtype == jnp.bool_:
            valid = None if ignore_index is None else targets != ignore_index
            targets = targets.astype(logits.dtype)
        else:
            if ignore_index is not None:
                raise ValueError("ignore_index needs integer targets.")
            valid = None
        targets = _checks.float_input(targets, "targets")
        _checks.check_same_shape(targets, "targets", logits, "logits")
        compute, dtype = _checks.compute_dtype(logits, targets)
        scores = _sanitise(logits.astype(compute), keep_images)
        probs = jax.nn.sigmoid(scores) if from_logits else scores
        onehot = targets.astype(compute)
    if valid is not None:
        probs = jnp.where(valid, probs, jnp.zeros_like(probs))
        onehot = jnp.where(valid, onehot, jnp.zeros_like(onehot))
    if keep_images is not None:
        keep = keep_images.reshape((-1,) + (1,) * (probs.ndim - 1))
        probs = jnp.where(keep, probs, jnp.zeros_like(probs))
        onehot = jnp.where(keep, onehot, jnp.zeros_like(onehot))
    if not include_background:
        if num_classes == 1:
            raise ValueError(
                "include_background=False drops channel 0, but the logits have one channel."
            )
        probs, onehot = probs[..., 1:], onehot[..., 1:]
    batch = probs.shape[0]
    channels = probs.shape[-1]
    return probs.reshape(batch, -1, channels), onehot.reshape(batch, -1, channels), dtype


def _sanitise(scores: Array, keep_images: Array | None) -> Array:
    if keep_images is None:
        return scores
    keep = keep_images.reshape((-1,) + (1,) * (scores.ndim - 1))
    return jnp.where(keep, scores, jnp.zeros_like(scores))


def _images_kept(
    where: ArrayLike | None, logits: ArrayLike, *, per_image: bool, average: str,
    include_background: bool,
) -> Array | None:
    """``(N,)``: which images ``where=`` keeps at all (per-image losses only)."""
    if where is None or not per_image:
        return None
    shape = jnp.shape(logits)
    channels = shape[-1] - (0 if include_background else 1)
    unreduced = (shape[0], channels) if average == "macro" else (shape[0],)
    mask = _checks.broadcast_mask(where, unreduced, "where").astype(bool)
    return jnp.any(mask.reshape(shape[0], -1), axis=1)


def _soft_counts(
    probs: Array,
    onehot: Array,
    *,
    per_image: bool,
    average: str,
    squared: bool,
    axis_name: str | None,
) -> tuple[Array, Array, Array]:
    """``(TP, |P|, |T|)`` summed per image and class (or pooled), psum-ed across devices."""
    _checks.check_choice(average, "average", _AVERAGES)
    axes = (1,) if per_image else (0, 1)
    if average == "micro":
        axes = (*axes, 2)
    tp = jnp.sum(probs * onehot, axis=axes)
    size_p = jnp.sum(jnp.square(probs) if squared else probs, axis=axes)
    size_t = jnp.sum(jnp.square(onehot) if squared else onehot, axis=axes)
    if axis_name is not None and not per_image:
        tp, size_p, size_t = jax.lax.psum((tp, size_p, size_t), axis_name)
    return tp, size_p, size_t


def _finish(values: Array, *, dtype: jnp.dtype, reduction: str, where: ArrayLike | None,
            weights: ArrayLike | None) -> Array:
    if where is not None:
        # Masked classes/images: the value is replaced before reduction so a NaN
        # there (e.g. from poisoned logits of a dropped image) cannot leak.
        (values,) = _reduce.mask_inputs(where, values)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


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
        ``from_logits=False``).
      targets: ``(N, *spatial)`` int class indices, or ``(N, *spatial, C)``
        one-hot / probabilities (multiclass); the shape of ``logits`` for
        binary and multilabel modes.
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
      axis_name: mapped axis to pool counts over (``per_image=False``).
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"``: ``(N, C)`` per image,
      ``(C,)`` pooled, ``(N,)`` / ``()`` with ``average="micro"``.

    Raises:
      ValueError: wrong shapes, unknown mode/average/reduction, bad
        ``class_weights``, negative ``smooth``/``eps``.
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
    probs, onehot, dtype = _probabilities_and_targets(
        logits, targets, mode=mode, from_logits=from_logits, ignore_index=ignore_index,
        include_background=include_background,
        keep_images=_images_kept(where, logits, per_image=per_image, average=average,
                                 include_background=include_background))
    compute = probs.dtype
    tp, size_p, size_t = _soft_counts(probs, onehot, per_image=per_image, average=average,
                                      squared=squared, axis_name=axis_name)
    smooth = _checks.hyperparameter(smooth, "smooth", compute)
    eps = _checks.hyperparameter(eps, "eps", compute)
    denominator = jnp.maximum(size_p + size_t + smooth, eps)
    values = 1 - safe_div(2 * tp + smooth, denominator)
    if class_weights is not None:
        if average == "micro":
            raise ValueError("class_weights has no meaning with average='micro'.")
        channels = values.shape[-1]
        w = _checks.hyperparameter(class_weights, "class_weights", compute, scalar=False)
        if w.shape != (channels,):
            raise ValueError(
                f"class_weights must have shape ({channels},), one per scored class (class 0 "
                f"is dropped when include_background=False); got {w.shape}."
            )
        _checks.check_range(class_weights, "class_weights", low=0.0)
        w = jnp.broadcast_to(w, values.shape)
        weights = w if weights is None else w * jnp.broadcast_to(
            jnp.asarray(weights, compute), values.shape)
    return _finish(values, dtype=dtype, reduction=reduction, where=where, weights=weights)


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
      logits: floating ``(N, *spatial, C)``.
      targets: as for :func:`dice_loss`.
      mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
      from_logits: whether ``logits`` are logits.
      smooth: added to numerator and denominator (``>= 0``).
      eps: floor of the denominator (``>= 0``).
      per_image: one score per image and class instead of batch IoU.
      ignore_index: int target value whose pixels are dropped.
      include_background: keep channel 0.
      axis_name: mapped axis to pool counts over (``per_image=False``).
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(C,)`` pooled or ``(N, C)``
      per image.

    Raises:
      ValueError: wrong shapes, unknown mode or reduction, negative ``smooth``.
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
    probs, onehot, dtype = _probabilities_and_targets(
        logits, targets, mode=mode, from_logits=from_logits, ignore_index=ignore_index,
        include_background=include_background,
        keep_images=_images_kept(where, logits, per_image=per_image, average="macro",
                                 include_background=include_background))
    compute = probs.dtype
    tp, size_p, size_t = _soft_counts(probs, onehot, per_image=per_image, average="macro",
                                      squared=False, axis_name=axis_name)
    smooth = _checks.hyperparameter(smooth, "smooth", compute)
    eps = _checks.hyperparameter(eps, "eps", compute)
    union = size_p + size_t - tp
    score = safe_div(tp + smooth, jnp.maximum(union + smooth, eps))
    present = size_t > 0
    values = jnp.where(present, 1 - score, jnp.zeros_like(score))
    return _finish(values, dtype=dtype, reduction=reduction, where=where, weights=weights)


def _tversky_index(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike,
    beta: ArrayLike,
    smooth: ArrayLike,
    mode: str,
    from_logits: bool,
    per_image: bool,
    average: str,
    ignore_index: int | None,
    include_background: bool,
    axis_name: str | None,
    where: ArrayLike | None,
) -> tuple[Array, jnp.dtype]:
    _checks.check_range(alpha, "alpha", low=0.0)
    _checks.check_range(beta, "beta", low=0.0)
    _checks.check_range(smooth, "smooth", low=0.0)
    probs, onehot, dtype = _probabilities_and_targets(
        logits, targets, mode=mode, from_logits=from_logits, ignore_index=ignore_index,
        include_background=include_background,
        keep_images=_images_kept(where, logits, per_image=per_image, average=average,
                                 include_background=include_background))
    compute = probs.dtype
    tp, size_p, size_t = _soft_counts(probs, onehot, per_image=per_image, average=average,
                                      squared=False, axis_name=axis_name)
    alpha = _checks.hyperparameter(alpha, "alpha", compute)
    beta = _checks.hyperparameter(beta, "beta", compute)
    smooth = _checks.hyperparameter(smooth, "smooth", compute)
    false_positives = size_p - tp  # sum p (1 - t)
    false_negatives = size_t - tp  # sum (1 - p) t
    denominator = tp + alpha * false_positives + beta * false_negatives + smooth
    return safe_div(tp + smooth, denominator), dtype


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
      logits: floating ``(N, *spatial, C)``.
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
      axis_name: mapped axis to pool counts over (``per_image=False``).
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N, C)`` per image,
      ``(C,)`` pooled, ``(N,)`` / ``()`` with ``average="micro"``.

    Raises:
      ValueError: wrong shapes, unknown mode/average/reduction, negative
        ``alpha``/``beta``/``smooth``.
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
    index, dtype = _tversky_index(
        logits, targets, alpha=alpha, beta=beta, smooth=smooth, mode=mode,
        from_logits=from_logits, per_image=per_image, average=average,
        ignore_index=ignore_index, include_background=include_background, axis_name=axis_name,
        where=where)
    return _finish(1 - index, dtype=dtype, reduction=reduction, where=where, weights=weights)


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
      logits: floating ``(N, *spatial, C)``.
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
    index, dtype = _tversky_index(
        logits, targets, alpha=alpha, beta=beta, smooth=smooth, mode=mode,
        from_logits=from_logits, per_image=per_image, average=average,
        ignore_index=ignore_index, include_background=include_background, axis_name=axis_name,
        where=where)
    gamma = _checks.hyperparameter(gamma, "gamma", index.dtype)
    values = safe_pow(jnp.maximum(1 - index, jnp.zeros_like(index)), gamma)
    return _finish(values, dtype=dtype, reduction=reduction, where=where, weights=weights)


_WEIGHT_TYPES = ("square", "simple", "uniform")


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
      logits: floating ``(N, *spatial, C)``.
      targets: as for :func:`dice_loss`.
      weight_type: ``"square"``, ``"simple"`` or ``"uniform"``.
      mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
      from_logits: whether ``logits`` are logits.
      smooth: added to numerator and denominator (``>= 0``).
      per_image: one loss per image (MONAI ``batch=False``) instead of pooled.
      ignore_index: int target value whose pixels are dropped.
      include_background: keep channel 0.
      axis_name: mapped axis to pool counts over (``per_image=False``).
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``()`` pooled, ``(N,)`` per
      image.

    Raises:
      ValueError: wrong shapes, unknown ``weight_type``, mode or reduction.
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
    keep = None
    if where is not None and per_image:
        keep = _checks.broadcast_mask(where, (jnp.shape(logits)[0],), "where").astype(bool)
    probs, onehot, dtype = _probabilities_and_targets(
        logits, targets, mode=mode, from_logits=from_logits, ignore_index=ignore_index,
        include_background=include_background, keep_images=keep)
    compute = probs.dtype
    tp, size_p, size_t = _soft_counts(probs, onehot, per_image=per_image, average="macro",
                                      squared=False, axis_name=axis_name)
    volume = jax.lax.stop_gradient(size_t)  # [N, C] or [C]
    if weight_type == "uniform":
        class_weight = jnp.ones_like(volume)
    else:
        power = volume if weight_type == "simple" else jnp.square(volume)
        finite = power > 0
        class_weight = safe_div(jnp.ones_like(power), power)
        largest = jnp.max(class_weight, axis=-1, keepdims=True)
        class_weight = jnp.where(finite, class_weight, jnp.broadcast_to(largest, power.shape))
    smooth = _checks.hyperparameter(smooth, "smooth", compute)
    numerator = 2 * jnp.sum(class_weight * tp, axis=-1) + smooth
    denominator = jnp.sum(class_weight * (size_p + size_t), axis=-1) + smooth
    values = 1 - safe_div(numerator, denominator)
    return _finish(values, dtype=dtype, reduction=reduction, where=where, weights=weights)


def _lovasz_dot(key: Array, values: Array, foreground: Array, valid: Array | None) -> Array:
    """Lovasz extension of the Jaccard loss along the last axis, batched over the rest.

    Sorts ``key`` (the errors) in decreasing order (one batched sort; ignored
    entries last) and returns ``sum_i values_sorted[i] * g[i]`` with ``g`` the
    discrete gradient of the Jaccard loss along the sorted foreground.
    """
    if valid is not None:
        key = jnp.where(valid, key, jnp.full_like(key, -jnp.inf))
        values = jnp.where(valid, values, jnp.zeros_like(values))
        foreground = jnp.where(valid, foreground, jnp.zeros_like(foreground))
    order = jnp.argsort(-jax.lax.stop_gradient(key), axis=-1)        # [..., L]
    values_sorted = jnp.take_along_axis(values, order, axis=-1)
    fg_sorted = jnp.take_along_axis(foreground, order, axis=-1)
    total = jnp.sum(fg_sorted, axis=-1, keepdims=True)
    intersection = total - jnp.cumsum(fg_sorted, axis=-1)
    union = total + jnp.cumsum(1 - fg_sorted, axis=-1)                # >= 1 everywhere
    jaccard = 1 - intersection / union
    gradient = jnp.concatenate([jaccard[..., :1], jnp.diff(jaccard, axis=-1)], axis=-1)
    return jnp.sum(values_sorted * gradient, axis=-1)


@_builtin("segmentation")
def lovasz_hinge_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    per_image: bool = True,
    ignore_index: int | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Lovasz hinge loss: the Lovasz extension of the binary Jaccard loss on hinge errors.

    .. math::
        e_i = 1 - x_i (2 t_i - 1), \qquad
        \ell = \sum_i \max(e_{\pi(i)}, 0)\, g_i(t_\pi)

    with :math:`\pi` sorting the errors in decreasing order and :math:`g`
    the discrete gradient of the Jaccard loss along the sorted labels. One
    batched sort, no loop over images. The sort order carries no gradient
    (the loss is piecewise linear in the logits).

    Args:
      logits: floating ``(N, *spatial)`` binary logits (no channel axis).
      targets: the same shape, 0/1 (float, bool or int; int may hold
        ``ignore_index``).
      per_image: one loss per image (Berman's default, kornia) or one over
        the pooled batch (smp's ``LovaszLoss`` default).
      ignore_index: int target value whose pixels are dropped.
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N,)`` per image or ``()``
      pooled.

    Raises:
      ValueError: shapes differ, rank < 2, unknown reduction.
      TypeError: integer logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[2.0, -1.0, 0.5, -3.0]])
      >>> float(jaxloss.lovasz_hinge_loss(logits, jnp.array([[1.0, 0.0, 0.0, 0.0]])))
      0.75

    References:
      Berman et al., `The Lovasz-Softmax loss
      <https://arxiv.org/abs/1705.08790>`_, CVPR 2018. kornia
      ``lovasz_hinge_loss``; segmentation_models_pytorch ``LovaszLoss("binary")``.
    """
    _checks.check_reduction(reduction)
    logits = _checks.float_input(logits, "logits")
    _checks.check_rank(logits, "logits", min_rank=2)
    targets = jnp.asarray(targets)
    valid = None
    if jnp.issubdtype(targets.dtype, jnp.integer) or targets.dtype == jnp.bool_:
        if ignore_index is not None:
            valid = targets != _checks.static_int(ignore_index, "ignore_index")
        targets = targets.astype(logits.dtype)
    elif ignore_index is not None:
        raise ValueError("ignore_index needs integer targets.")
    targets = _checks.float_input(targets, "targets")
    _checks.check_same_shape(targets, "targets", logits, "logits")
    compute, dtype = _checks.compute_dtype(logits, targets)
    batch = logits.shape[0]
    x = logits.astype(compute).reshape(batch, -1)
    t = targets.astype(compute).reshape(batch, -1)
    if valid is not None:
        valid = valid.reshape(batch, -1)
        t = jnp.where(valid, t, jnp.zeros_like(t))
    if where is not None and per_image:
        keep = _checks.broadcast_mask(where, (batch,), "where").astype(bool)[:, None]
        x = jnp.where(keep, x, jnp.zeros_like(x))
        t = jnp.where(keep, t, jnp.zeros_like(t))
    if not per_image:
        x, t = x.reshape(1, -1), t.reshape(1, -1)
        valid = None if valid is None else valid.reshape(1, -1)
    errors = 1 - x * (2 * t - 1)
    values = _lovasz_dot(errors, jax.nn.relu(errors), t, valid)
    if not per_image:
        values = values[0]
    return _finish(values, dtype=dtype, reduction=reduction, where=where, weights=weights)


@_builtin("segmentation")
def lovasz_softmax_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    classes: Literal["present", "all"] = "present",
    per_image: bool = False,
    from_logits: bool = True,
    ignore_index: int | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Lovasz-Softmax loss: the Lovasz extension of the per-class Jaccard loss.

    .. math::
        e_{ic} = |[y_i = c] - p_{ic}|, \qquad
        \ell = \operatorname{mean}_{c} \sum_i e_{\pi_c(i) c}\, g_i([y = c]_{\pi_c})

    Convention: ``classes="present"`` averages over the classes present in the
    targets (of each image with ``per_image=True``, of the batch otherwise),
    ``"all"`` over every class; an image with no valid pixel gives 0.
    Defaults (``"present"``, pooled) follow Berman's code and
    segmentation_models_pytorch; kornia's ``lovasz_softmax_loss`` is
    ``classes="all", per_image=True``. One batched sort over classes and
    images.

    Args:
      logits: floating ``(N, *spatial, C)`` (probabilities with
        ``from_logits=False``).
      targets: int ``(N, *spatial)`` class indices (or ``ignore_index``), or a
        float one-hot ``(N, *spatial, C)``.
      classes: ``"present"`` or ``"all"``.
      per_image: one loss per image instead of one over the pooled batch.
      from_logits: whether ``logits`` are logits.
      ignore_index: int target value whose pixels are dropped.
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N,)`` per image or ``()``
      pooled.

    Raises:
      ValueError: wrong shapes, unknown ``classes`` or reduction.
      TypeError: integer logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> round(float(jaxloss.lovasz_softmax_loss(probs, jnp.array([[0, 1, 1]]),
      ...                                         from_logits=False)), 5)
      0.38333

    References:
      Berman et al., `The Lovasz-Softmax loss
      <https://arxiv.org/abs/1705.08790>`_, CVPR 2018.
      segmentation_models_pytorch ``LovaszLoss("multiclass")``; kornia
      ``lovasz_softmax_loss``.
    """
    _checks.check_reduction(reduction)
    _checks.check_choice(classes, "classes", ("present", "all"))
    batch = jnp.shape(logits)[0] if jnp.ndim(logits) else 0
    keep = None
    if where is not None and per_image:
        keep = _checks.broadcast_mask(where, (batch,), "where").astype(bool)
    probs, onehot, dtype = _probabilities_and_targets(
        logits, targets, mode="multiclass", from_logits=from_logits, ignore_index=ignore_index,
        include_background=True, keep_images=keep)               # [N, S, C]
    valid = None
    labels = jnp.asarray(targets)
    if ignore_index is not None:
        valid = (labels != ignore_index).reshape(batch, -1)[..., None]
        valid = jnp.broadcast_to(valid, probs.shape)
    if not per_image:
        probs = probs.reshape(1, -1, probs.shape[-1])
        onehot = onehot.reshape(1, -1, onehot.shape[-1])
        valid = None if valid is None else valid.reshape(1, -1, valid.shape[-1])
    # Classes first, pixels last: one batched sort over images and classes.
    probs, onehot = jnp.swapaxes(probs, 1, 2), jnp.swapaxes(onehot, 1, 2)   # [N', C, S]
    valid = None if valid is None else jnp.swapaxes(valid, 1, 2)
    errors = jnp.abs(onehot - probs)
    per_class = _lovasz_dot(errors, errors, onehot, valid)                   # [N', C]
    if classes == "present":
        counted = (jnp.sum(onehot, axis=-1) > 0).astype(per_class.dtype)
    else:
        counted = jnp.ones_like(per_class)
        if valid is not None:  # an image with no valid pixel counts no class
            counted = counted * jnp.any(valid, axis=-1).astype(per_class.dtype)
    values = safe_div(jnp.sum(per_class * counted, axis=-1), jnp.sum(counted, axis=-1))
    if not per_image:
        values = values[0]
    return _finish(values, dtype=dtype, reduction=reduction, where=where, weights=weights)


def _spatial_maps(logits: ArrayLike, targets: ArrayLike, *, mode: str, from_logits: bool,
                  include_background: bool, where: ArrayLike | None, per_image: bool = True,
                  per_class: bool = True) -> tuple[Array, Array, jnp.dtype]:
    """Probabilities and one-hot targets kept spatial, ``(N, *spatial, C)``; 2-D or 3-D."""
    rank = jnp.ndim(logits)
    if rank not in (4, 5):
        raise ValueError(
            f"logits must be (N, H, W, C) or (N, D, H, W, C); got shape {jnp.shape(logits)}."
        )
    keep = None
    if where is not None and per_image:
        shape = jnp.shape(logits)
        channels = shape[-1] - (0 if include_background else 1)
        unreduced = (shape[0], channels) if per_class else (shape[0],)
        mask = _checks.broadcast_mask(where, unreduced, "where").astype(bool)
        keep = jnp.any(mask.reshape(shape[0], -1), axis=1)
    probs, onehot, dtype = _probabilities_and_targets(
        logits, targets, mode=mode, from_logits=from_logits, ignore_index=None,
        include_background=include_background, keep_images=keep)
    shape = jnp.shape(logits)[:-1] + (probs.shape[-1],)
    return probs.reshape(shape), onehot.reshape(shape), dtype


def _boundary_map(onehot: Array) -> Array:
    """MONAI's map per image and class: inside -(edt - 1), outside edt; 0 if empty or full."""
    spatial = tuple(range(1, onehot.ndim - 1))
    mask = jax.lax.stop_gradient(onehot) > 0.5
    inside = distance_transform(mask, spatial_axes=spatial)
    outside = distance_transform(~mask, spatial_axes=spatial)
    signed = jnp.where(mask, 1 - inside, outside)
    interface = jnp.any(mask, axis=spatial, keepdims=True) & jnp.any(~mask, axis=spatial,
                                                                       keepdims=True)
    return jnp.where(interface, signed, jnp.zeros_like(signed))


@_builtin("segmentation")
def boundary_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    mode: Mode = "multiclass",
    from_logits: bool = True,
    include_background: bool = True,
    per_image: bool = True,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Boundary loss: predicted probabilities integrated against the target's distance map.

    .. math:: \ell_{nc} = \frac{1}{|\Omega|} \sum_{x \in \Omega} p_{nc}(x)\, \phi_{nc}(x)

    Convention (MONAI ``BoundaryLoss``): :math:`\phi` is the target's signed
    distance map with ``edt`` (jaxloss's exact JAX transform) outside the
    object and ``-(edt - 1)`` inside (0 on the inner boundary); a channel
    whose target is empty or full has no boundary and gives 0. The map
    carries no gradient. The loss can be negative (it is minimised).

    Args:
      logits: floating ``(N, H, W, C)`` or ``(N, D, H, W, C)``.
      targets: int class indices ``(N, *spatial)`` or one-hot (multiclass);
        the shape of ``logits`` (binary, multilabel).
      mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
      from_logits: whether ``logits`` are logits.
      include_background: keep channel 0.
      per_image: ``(N, C)`` values; ``False`` averages over the batch per
        class first (MONAI ``batch=True``), ``(C,)``.
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N, C)`` or ``(C,)``.

    Raises:
      ValueError: rank not 4 or 5, wrong target shape, unknown mode/reduction.
      TypeError: integer logits.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> labels = jnp.array([[[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]])
      >>> perfect = jnp.where(jax.nn.one_hot(labels, 2) > 0, 20.0, -20.0)
      >>> wrong = -perfect
      >>> bool(jaxloss.boundary_loss(perfect, labels) < jaxloss.boundary_loss(wrong, labels))
      True

    References:
      Kervadec et al., `Boundary loss for highly unbalanced segmentation
      <https://arxiv.org/abs/1812.07032>`_, MIDL 2019. MONAI ``BoundaryLoss``.
    """
    _checks.check_reduction(reduction)
    probs, onehot, dtype = _spatial_maps(logits, targets, mode=mode, from_logits=from_logits,
                                         include_background=include_background, where=where,
                                         per_image=per_image)
    spatial = tuple(range(1, probs.ndim - 1))
    phi = _boundary_map(onehot).astype(probs.dtype)
    values = jnp.mean(probs * phi, axis=spatial)                     # [N, C]
    if not per_image:
        values = jnp.mean(values, axis=0)
    return _finish(values, dtype=dtype, reduction=reduction, where=where, weights=weights)


def _distance_field(mask: Array) -> Array:
    """MONAI's Hausdorff field: edt(m) + edt(~m) per image and class; 0 if empty or full."""
    spatial = tuple(range(1, mask.ndim - 1))
    field = (distance_transform(mask, spatial_axes=spatial)
             + distance_transform(~mask, spatial_axes=spatial))
    interface = jnp.any(mask, axis=spatial, keepdims=True) & jnp.any(~mask, axis=spatial,
                                                                       keepdims=True)
    return jnp.where(interface, field, jnp.zeros_like(field))


@_builtin("segmentation")
def hausdorff_dt_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike = 2.0,
    mode: Mode = "multiclass",
    from_logits: bool = True,
    include_background: bool = False,
    per_image: bool = True,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Hausdorff distance loss from distance transforms (Karimi & Salcudean).

    .. math::
        \ell_{nc} = \frac{1}{|\Omega|} \sum_{x} (p - t)^2\,
                     \big(d_p(x)^{\alpha} + d_t(x)^{\alpha}\big)

    Convention (MONAI ``HausdorffDTLoss`` defaults, ``include_background=False``):
    :math:`d_t` is ``edt(t) + edt(1 - t)`` of the target mask, :math:`d_p` the
    same of the prediction thresholded at 0.5, both 0 for an empty or full
    mask and neither carrying gradient.

    Args:
      logits: floating ``(N, H, W, C)`` or ``(N, D, H, W, C)``.
      targets: as for :func:`boundary_loss`.
      alpha: exponent of the distances (``>= 0``; MONAI's 2).
      mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
      from_logits: whether ``logits`` are logits.
      include_background: keep channel 0 (default False, as MONAI).
      per_image: ``(N, C)``; ``False`` averages over the batch too (``(C,)``).
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N, C)`` or ``(C,)``
      (``C - 1`` classes without the background).

    Raises:
      ValueError: rank not 4 or 5, wrong target shape, negative ``alpha``.
      TypeError: integer logits.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> labels = jnp.array([[[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]])
      >>> perfect = jnp.where(jax.nn.one_hot(labels, 2) > 0, 20.0, -20.0)
      >>> float(jaxloss.hausdorff_dt_loss(perfect, labels))
      0.0

    References:
      Karimi & Salcudean, `Reducing the Hausdorff Distance in Medical Image
      Segmentation with Convolutional Neural Networks
      <https://arxiv.org/abs/1904.10030>`_, 2019. MONAI ``HausdorffDTLoss``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(alpha, "alpha", low=0.0)
    probs, onehot, dtype = _spatial_maps(logits, targets, mode=mode, from_logits=from_logits,
                                         include_background=include_background, where=where,
                                         per_image=per_image)
    spatial = tuple(range(1, probs.ndim - 1))
    alpha = _checks.hyperparameter(alpha, "alpha", probs.dtype)
    pred_field = _distance_field(jax.lax.stop_gradient(probs) > 0.5)
    target_field = _distance_field(jax.lax.stop_gradient(onehot) > 0.5)
    distance = (safe_pow(pred_field, alpha) + safe_pow(target_field, alpha)).astype(probs.dtype)
    values = jnp.mean(jnp.square(probs - onehot) * distance, axis=spatial)
    if not per_image:
        values = jnp.mean(values, axis=0)
    return _finish(values, dtype=dtype, reduction=reduction, where=where, weights=weights)


def _pool(x: Array, window: tuple[int, ...], reducer: Callable[..., Array], init: float,
          ) -> Array:
    """Stride-1 pooling over the spatial axes of ``(N, *spatial, C)`` with 'same' padding."""
    dims = (1, *window, 1)
    padding = [(0, 0)] + [((w - 1) // 2, (w - 1) // 2) for w in window] + [(0, 0)]
    # A Python-scalar init keeps the reducer a recognised max/min pool (differentiable in loops).
    return jax.lax.reduce_window(x, init, reducer, dims, (1,) * x.ndim,
                                 padding)


def _soft_erode(x: Array) -> Array:
    spatial = x.ndim - 2
    eroded = None
    for axis in range(spatial):  # static: 2 or 3 spatial axes
        window = tuple(3 if a == axis else 1 for a in range(spatial))
        pooled = _pool(x, window, jax.lax.min, jnp.inf)
        eroded = pooled if eroded is None else jnp.minimum(eroded, pooled)
    return eroded


def _soft_dilate(x: Array) -> Array:
    return _pool(x, (3,) * (x.ndim - 2), jax.lax.max, -jnp.inf)


def _soft_skeleton(x: Array, iterations: int) -> Array:
    """Shit et al.'s soft skeleton: iterated soft erosion minus soft opening."""
    skeleton = jax.nn.relu(x - _soft_dilate(_soft_erode(x)))

    def step(carry, _):
        image, skel = carry
        image = _soft_erode(image)
        delta = jax.nn.relu(image - _soft_dilate(_soft_erode(image)))
        return (image, skel + jax.nn.relu(delta - skel * delta)), None

    (_, skeleton), _ = jax.lax.scan(step, (x, skeleton), None, length=iterations)
    return skeleton


@_builtin("segmentation")
def cldice_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    iterations: int = 3,
    smooth: ArrayLike = 1.0,
    mode: Mode = "multiclass",
    from_logits: bool = True,
    include_background: bool = True,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Soft clDice loss: Dice of skeletons against masks, for tubular structures.

    .. math::
        T_{prec} = \frac{\sum S_p\, t + s}{\sum S_p + s}, \quad
        T_{sens} = \frac{\sum S_t\, p + s}{\sum S_t + s}, \quad
        \ell = 1 - \frac{2\, T_{prec} T_{sens}}{T_{prec} + T_{sens} + 10^{-4}}

    with :math:`S` the soft skeleton (``iterations`` soft erosions by 3x3
    min-pooling, Shit et al.), sums over channels and pixels of each image.
    Follows MONAI ``SoftclDiceLoss`` (``smooth_nr = smooth_dr = smooth``).

    Args:
      logits: floating ``(N, H, W, C)`` or ``(N, D, H, W, C)``.
      targets: as for :func:`boundary_loss`.
      iterations: soft-skeleton iterations (static int ``>= 0``).
      smooth: added to both fractions (``>= 0``; MONAI's 1).
      mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
      from_logits: whether ``logits`` are logits.
      include_background: keep channel 0.
      where: boolean mask broadcastable to ``(N,)``.
      weights: weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N,)``.

    Raises:
      ValueError: rank not 4 or 5, wrong target shape, negative ``iterations``.
      TypeError: integer logits.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> vessel = jnp.zeros((1, 7, 7), jnp.int32).at[0, 3, 1:6].set(1)
      >>> perfect = jnp.where(jax.nn.one_hot(vessel, 2) > 0, 20.0, -20.0)
      >>> round(float(jaxloss.cldice_loss(perfect, vessel)), 4)
      0.0

    References:
      Shit et al., `clDice - a Novel Topology-Preserving Loss Function for
      Tubular Structure Segmentation <https://arxiv.org/abs/2003.07311>`_,
      CVPR 2021. MONAI ``SoftclDiceLoss``.
    """
    _checks.check_reduction(reduction)
    iterations = _checks.static_int(iterations, "iterations", low=0)
    _checks.check_range(smooth, "smooth", low=0.0)
    probs, onehot, dtype = _spatial_maps(logits, targets, mode=mode, from_logits=from_logits,
                                         include_background=include_background, where=where,
                                         per_class=False)
    smooth = _checks.hyperparameter(smooth, "smooth", probs.dtype)
    axes = tuple(range(1, probs.ndim))
    skeleton_pred = _soft_skeleton(probs, iterations)
    skeleton_true = _soft_skeleton(onehot, iterations)
    precision = (jnp.sum(skeleton_pred * onehot, axis=axes) + smooth) / (
        jnp.sum(skeleton_pred, axis=axes) + smooth)
    sensitivity = (jnp.sum(skeleton_true * probs, axis=axes) + smooth) / (
        jnp.sum(skeleton_true, axis=axes) + smooth)
    values = 1 - safe_div(2 * precision * sensitivity, precision + sensitivity + 1e-4)
    return _finish(values, dtype=dtype, reduction=reduction, where=where, weights=weights)


def _per_image_mean(values: Array) -> Array:
    """``(N, ...)`` to ``(N,)``: the mean over everything but the batch axis."""
    return jnp.mean(values.reshape(values.shape[0], -1), axis=1)


def _combined(dice_values: Array, other_values: Array, lambda_dice: ArrayLike,
              lambda_other: ArrayLike, dtype: jnp.dtype, reduction: str,
              where: ArrayLike | None, weights: ArrayLike | None) -> Array:
    compute = dice_values.dtype
    lambda_dice = _checks.hyperparameter(lambda_dice, "lambda_dice", compute)
    lambda_other = _checks.hyperparameter(lambda_other, "lambda", compute)
    values = lambda_dice * _per_image_mean(dice_values) + lambda_other * other_values
    return _finish(values, dtype=dtype, reduction=reduction, where=where, weights=weights)


@_builtin("segmentation")
def dice_ce_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    lambda_dice: ArrayLike = 1.0,
    lambda_ce: ArrayLike = 1.0,
    smooth: ArrayLike = 1e-5,
    squared: bool = False,
    include_background: bool = True,
    label_smoothing: ArrayLike = 0.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Dice loss plus cross-entropy (multi-class, softmax), MONAI's ``DiceCELoss``.

    .. math::
        \ell_n = \lambda_{dice}\, \operatorname{mean}_c \mathrm{Dice}_{nc}
                + \lambda_{ce}\, \operatorname{mean}_{x} \mathrm{CE}_n(x)

    Convention (MONAI): the Dice part is :func:`dice_loss` per image
    (``include_background`` applies to it only), the cross-entropy part is
    torch's over every class; the ``mean`` of the per-image values is MONAI's
    ``lambda_dice * dice + lambda_ce * ce``.

    Args:
      logits: floating ``(N, *spatial, C)``.
      targets: int ``(N, *spatial)`` class indices or float one-hot.
      lambda_dice: weight of the Dice part (``>= 0``).
      lambda_ce: weight of the cross-entropy part (``>= 0``).
      smooth: Dice smoothing (MONAI ``smooth_nr = smooth_dr``).
      squared: squared Dice denominators.
      include_background: keep channel 0 in the Dice part.
      label_smoothing: cross-entropy label smoothing in ``[0, 1]``.
      where: boolean mask broadcastable to ``(N,)``.
      weights: weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N,)`` per image.

    Raises:
      ValueError: wrong shapes, negative lambdas, unknown reduction.
      TypeError: integer logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[[2.0, -1.0], [-1.0, 2.0]]])
      >>> labels = jnp.array([[0, 1]])
      >>> dice = jaxloss.dice_loss(logits, labels)
      >>> ce = jaxloss.cross_entropy_loss(logits, labels)
      >>> bool(jnp.isclose(jaxloss.dice_ce_loss(logits, labels), dice + ce))
      True

    References:
      Isensee et al., `nnU-Net <https://arxiv.org/abs/1809.10486>`_, 2021.
      MONAI ``DiceCELoss(softmax=True, to_onehot_y=True)``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(lambda_dice, "lambda_dice", low=0.0)
    _checks.check_range(lambda_ce, "lambda_ce", low=0.0)
    keep = None
    if where is not None:
        keep = _checks.broadcast_mask(where, (jnp.shape(logits)[0],), "where").astype(bool)
    probs_dice = dice_loss(logits, targets, smooth=smooth, squared=squared,
                           include_background=include_background, where=None if keep is None
                           else keep[:, None], reduction="none")
    logits = _checks.float_input(logits, "logits")
    if keep is not None:
        keep_positions = keep.reshape((-1,) + (1,) * (logits.ndim - 1))
        logits = jnp.where(keep_positions, logits, jnp.zeros_like(logits))
    ce = cross_entropy_loss(logits, targets, label_smoothing=label_smoothing, ignore_index=None,
                            reduction="none")
    compute, dtype = _checks.compute_dtype(logits)
    return _combined(probs_dice.astype(compute), _per_image_mean(ce.astype(compute)),
                     lambda_dice, lambda_ce, dtype, reduction, where, weights)


@_builtin("segmentation")
def dice_focal_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    lambda_dice: ArrayLike = 1.0,
    lambda_focal: ArrayLike = 1.0,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    smooth: ArrayLike = 1e-5,
    squared: bool = False,
    include_background: bool = True,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Dice loss plus focal loss, MONAI's ``DiceFocalLoss`` with a softmax Dice.

    .. math::
        \ell_n = \lambda_{dice}\, \operatorname{mean}_c \mathrm{Dice}_{nc}
                + \lambda_{focal}\, \operatorname{mean}_{x, c} \mathrm{FL}_{nc}(x)

    Convention (MONAI ``DiceFocalLoss(softmax=True, to_onehot_y=True)``): the
    Dice part uses softmax probabilities; the focal part is MONAI's default
    *sigmoid* focal loss of each channel's logit against the one-hot target
    (:func:`sigmoid_focal_loss`), averaged over pixels and channels;
    ``include_background=False`` drops channel 0 from both.

    Args:
      logits: floating ``(N, *spatial, C)``.
      targets: int ``(N, *spatial)`` class indices or float one-hot.
      lambda_dice: weight of the Dice part (``>= 0``).
      lambda_focal: weight of the focal part (``>= 0``).
      gamma: focusing parameter (``>= 0``).
      alpha: ``None`` or the positive-class weight in ``[0, 1]``.
      smooth: Dice smoothing.
      squared: squared Dice denominators.
      include_background: keep channel 0.
      where: boolean mask broadcastable to ``(N,)``.
      weights: weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N,)`` per image.

    Raises:
      ValueError: wrong shapes, negative lambdas or gamma, unknown reduction.
      TypeError: integer logits.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[[2.0, -1.0], [-1.0, 2.0]]])
      >>> labels = jnp.array([[0, 1]])
      >>> focal = jaxloss.sigmoid_focal_loss(logits, jax.nn.one_hot(labels, 2), alpha=None)
      >>> total = jaxloss.dice_focal_loss(logits, labels)
      >>> bool(jnp.isclose(total, jaxloss.dice_loss(logits, labels) + focal))
      True

    References:
      Zhu et al., `AnatomyNet <https://arxiv.org/abs/1808.05238>`_, 2019.
      MONAI ``DiceFocalLoss(softmax=True, to_onehot_y=True)``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(lambda_dice, "lambda_dice", low=0.0)
    _checks.check_range(lambda_focal, "lambda_focal", low=0.0)
    keep = None
    if where is not None:
        keep = _checks.broadcast_mask(where, (jnp.shape(logits)[0],), "where").astype(bool)
    dice = dice_loss(logits, targets, smooth=smooth, squared=squared,
                     include_background=include_background,
                     where=None if keep is None else keep[:, None], reduction="none")
    logits = _checks.float_input(logits, "logits")
    compute, dtype = _checks.compute_dtype(logits)
    if keep is not None:
        keep_positions = keep.reshape((-1,) + (1,) * (logits.ndim - 1))
        logits = jnp.where(keep_positions, logits, jnp.zeros_like(logits))
    targets, is_index = _checks.class_targets(logits, targets, axis=logits.ndim - 1)
    onehot = (one_hot(targets, logits.shape[-1], logits.dtype) if is_index
              else targets.astype(logits.dtype))
    if not include_background:
        logits, onehot = logits[..., 1:], onehot[..., 1:]
    focal = sigmoid_focal_loss(logits, onehot, gamma=gamma, alpha=alpha, reduction="none")
    return _combined(dice.astype(compute), _per_image_mean(focal.astype(compute)), lambda_dice,
                     lambda_focal, dtype, reduction, where, weights)

"""Compound losses: Dice plus cross-entropy, Dice plus focal (MONAI's ``DiceCELoss``,
``DiceFocalLoss``).

A compound loss adds kernels, it does not call other public losses: the input
is validated and masked once (:func:`_common.prepare`), the Dice kernel and
the cross-entropy (``log_probability_of``) or sigmoid focal
(``sigmoid_focal_values``) kernel give per-image values, and the weighted sum
is reduced once.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._checks import Reduction
from jaxloss._classes import log_probabilities, log_probability_of
from jaxloss._numerics import sigmoid_focal_values, x_times
from jaxloss.registry import _builtin
from jaxloss.segmentation._common import (
    Inputs,
    drop_background,
    finish,
    pixel_mean,
    prepare,
    rows_of,
    soft_counts,
)
from jaxloss.segmentation.overlap import _dice_values

__all__ = ["dice_ce_loss", "dice_focal_loss"]


def _dice_per_image(inputs: Inputs, *, include_background: bool, smooth: ArrayLike,
                    squared: bool) -> Array:
    """``(N,)``: MONAI's per-image soft Dice averaged over the scored classes."""
    probs, onehot = drop_background(include_background, inputs.probs, inputs.onehot)
    tp, size_p, size_t = soft_counts(probs, onehot, per_image=True, squared=squared)
    compute = tp.dtype
    smooth = _checks.hyperparameter(smooth, "smooth", compute)
    dice = _dice_values(tp, size_p, size_t, smooth=smooth, eps=jnp.zeros((), compute))
    return jnp.mean(dice, axis=-1)


def _cross_entropy_values(inputs: Inputs, *, smoothing: Array | None) -> Array:
    """``(N, *spatial)`` torch cross-entropy per pixel (softmax over the last axis), with
    label smoothing ``(1 - s) CE + s / C * sum_c (-log p_c)`` when ``smoothing`` is given."""
    scores = inputs.scores
    num_classes = scores.shape[-1]
    if inputs.labels is not None:
        values = -log_probability_of(scores, inputs.labels, from_logits=True)
        if smoothing is not None:
            uniform = -jnp.sum(log_probabilities(scores, from_logits=True), axis=-1)
            values = (1 - smoothing) * values + smoothing / num_classes * uniform
        return values
    t = inputs.onehot
    if smoothing is not None:
        t = t * (1 - smoothing) + smoothing / num_classes
    return -jnp.sum(x_times(t, log_probabilities(scores, from_logits=True)), axis=-1)


def _valid_pixels(inputs: Inputs) -> Array | None:
    return None if inputs.valid is None else inputs.valid[..., 0]


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
    ignore_index: int | None = None,
    axis: int = -1,
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
    ``lambda_dice * dice + lambda_ce * ce``. ``ignore_index`` drops the pixel
    from both parts: from P and T of the Dice, and from the image's mean of
    the cross-entropy (an image without a kept pixel has a CE part of 0).

    Args:
      logits: floating ``(N, *spatial, C)``, class axis ``axis``.
      targets: int ``(N, *spatial)`` class indices or float one-hot.
      lambda_dice: weight of the Dice part (``>= 0``).
      lambda_ce: weight of the cross-entropy part (``>= 0``).
      smooth: Dice smoothing (MONAI ``smooth_nr = smooth_dr``).
      squared: squared Dice denominators.
      include_background: keep channel 0 in the Dice part.
      label_smoothing: cross-entropy label smoothing in ``[0, 1]``.
      ignore_index: int target value whose pixels are dropped.
      axis: the class axis of ``logits`` (static; ``1`` for channels-first).
      where: boolean mask broadcastable to ``(N,)``.
      weights: weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N,)`` per image (NaN
      under ``jit`` for an image with a label out of range).

    Raises:
      ValueError: wrong shapes, labels out of range (eager), negative lambdas,
        unknown reduction.
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
    _checks.check_range(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    inputs = prepare(logits, targets, ignore_index=ignore_index, axis=axis,
                     keep=rows_of(where, logits))
    compute = inputs.scores.dtype
    smoothed = not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0)
    smoothing = (_checks.hyperparameter(label_smoothing, "label_smoothing", compute)
                 if smoothed else None)
    dice = _dice_per_image(inputs, include_background=include_background, smooth=smooth,
                           squared=squared)                                   # [N]
    ce = _cross_entropy_values(inputs, smoothing=smoothing)                  # [N, *spatial]
    ce = pixel_mean(ce, _valid_pixels(inputs), tuple(range(1, ce.ndim)))      # [N]
    values = (_checks.hyperparameter(lambda_dice, "lambda_dice", compute) * dice
              + _checks.hyperparameter(lambda_ce, "lambda_ce", compute) * ce)
    return finish(values, dtype=inputs.dtype, reduction=reduction, where=where, weights=weights)


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
    ignore_index: int | None = None,
    axis: int = -1,
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
    ``include_background=False`` drops channel 0 from both. ``ignore_index``
    drops the pixel from both parts.

    Args:
      logits: floating ``(N, *spatial, C)``, class axis ``axis``.
      targets: int ``(N, *spatial)`` class indices or float one-hot.
      lambda_dice: weight of the Dice part (``>= 0``).
      lambda_focal: weight of the focal part (``>= 0``).
      gamma: focusing parameter (``>= 0``).
      alpha: ``None`` or the positive-class weight in ``[0, 1]``.
      smooth: Dice smoothing.
      squared: squared Dice denominators.
      include_background: keep channel 0.
      ignore_index: int target value whose pixels are dropped.
      axis: the class axis of ``logits`` (static; ``1`` for channels-first).
      where: boolean mask broadcastable to ``(N,)``.
      weights: weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N,)`` per image (NaN
      under ``jit`` for an image with a label out of range).

    Raises:
      ValueError: wrong shapes, labels out of range (eager), negative lambdas
        or gamma, ``alpha`` outside ``[0, 1]``, unknown reduction.
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
    _checks.check_range(gamma, "gamma", low=0.0)
    if alpha is not None:
        _checks.check_range(alpha, "alpha", low=0.0, high=1.0)
    inputs = prepare(logits, targets, ignore_index=ignore_index, axis=axis,
                     keep=rows_of(where, logits))
    compute = inputs.scores.dtype
    dice = _dice_per_image(inputs, include_background=include_background, smooth=smooth,
                           squared=squared)                                   # [N]
    x, t = drop_background(include_background, inputs.scores, inputs.onehot)
    focal = sigmoid_focal_values(
        x, t,  # a Python gamma stays static (an integer one becomes an integer power)
        gamma=(float(gamma) if isinstance(gamma, (int, float))
               else _checks.hyperparameter(gamma, "gamma", compute)),
        alpha=None if alpha is None else _checks.hyperparameter(alpha, "alpha", compute))
    focal = pixel_mean(focal, inputs.valid, tuple(range(1, focal.ndim)))     # [N]
    values = (_checks.hyperparameter(lambda_dice, "lambda_dice", compute) * dice
              + _checks.hyperparameter(lambda_focal, "lambda_focal", compute) * focal)
    return finish(values, dtype=inputs.dtype, reduction=reduction, where=where, weights=weights)

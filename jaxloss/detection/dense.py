"""Classification and distribution losses of dense (one-stage) detection heads.

Varifocal (VFNet, YOLOv8), quality focal and distribution focal (GFL,
RTMDet, YOLOv8) and CenterNet's Gaussian focal loss, and the decoding of a
distribution head (``distribution_expectation``).

Conventions: scores are logits by default (``from_logits=False``: probabilities
in ``[0, 1]``); every log of a probability is taken from the logits as a
``log_sigmoid`` (never ``log(1 - p + eps)``, which loses the small values and
which XLA may rewrite), so logits of +-1e4 give a finite value and gradient.
With probabilities each log is clamped at -100 (torch's
``binary_cross_entropy``). The unreduced loss is elementwise for the
varifocal, quality focal and Gaussian focal losses and ``(...)`` (the bin
axis reduced) for the distribution focal loss. Half precision is computed in
float32 and returned in its own dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._classes import poison
from jaxloss._numerics import abs_zero_grad, bce_with_logits, safe_log, safe_pow
from jaxloss.registry import _builtin

__all__ = [
    "distribution_expectation",
    "distribution_focal_loss",
    "gaussian_focal_loss",
    "quality_focal_loss",
    "varifocal_loss",
]

# torch.nn.functional.binary_cross_entropy clamps each log at -100.
_LOG_FLOOR = -100.0


# --------------------------------------------------------------------------------------
# Kernels: validated arrays in, unreduced values out.
# --------------------------------------------------------------------------------------


def _log_p(x: Array, from_logits: bool) -> tuple[Array, Array]:
    """``(log p, log(1 - p))`` of logits (``log_sigmoid``) or of probabilities (clamped)."""
    if from_logits:
        return jax.nn.log_sigmoid(x), jax.nn.log_sigmoid(-x)
    return safe_log(x, _LOG_FLOOR), safe_log(1 - x, _LOG_FLOOR)


def _bce(x: Array, t: Array, from_logits: bool) -> Array:
    if from_logits:
        return bce_with_logits(x, t, None)
    log_p, log_1mp = _log_p(x, False)
    return -(t * log_p + (1 - t) * log_1mp)


def _static_power(value: ArrayLike) -> int | None:
    """A Python integer exponent 1..8 (an integer power), or None."""
    if isinstance(value, (int, float)) and float(value).is_integer() and 1 <= value <= 8:
        return int(value)
    return None


def _prob_pow(x: Array, exponent: ArrayLike, from_logits: bool, *, negate: bool = False
              ) -> Array:
    """``p^exponent`` (``(1 - p)^exponent`` with ``negate``), finite with finite gradients.

    From logits, ``exp(exponent * log_sigmoid(+-x))`` (or an integer power of the
    sigmoid), which underflows to 0 without a NaN gradient in ``x`` or the exponent.
    """
    n = _static_power(exponent)
    if from_logits:
        z = -x if negate else x
        if n is not None:
            return jax.lax.integer_pow(jax.nn.sigmoid(z), n)
        return jnp.exp(exponent * jax.nn.log_sigmoid(z))
    p = 1 - x if negate else x
    if n is not None:
        return jax.lax.integer_pow(p, n)
    return safe_pow(p, exponent)


def _abs_pow(d: Array, exponent: ArrayLike) -> Array:
    """``|d|^exponent`` with a finite gradient at ``d = 0`` (an integer power when static)."""
    n = _static_power(exponent)
    if n is not None and n % 2 == 0:
        return jax.lax.integer_pow(d, n)                  # even power: no |.| needed
    if n is not None:
        return jax.lax.integer_pow(abs_zero_grad(d), n)
    return safe_pow(abs_zero_grad(d), exponent)


def _varifocal_values(x: Array, t: Array, alpha: Array, gamma: ArrayLike,
                      from_logits: bool) -> Array:
    # mmdet's |p - t|^gamma for the negatives (= p^gamma at t = 0, the same target gradient)
    p = jax.nn.sigmoid(x) if from_logits else x
    weight = jnp.where(t > 0, t, alpha * _abs_pow(p - t, gamma))
    return _bce(x, t, from_logits) * weight


def _quality_focal_values(x: Array, t: Array, beta: ArrayLike, from_logits: bool) -> Array:
    p = jax.nn.sigmoid(x) if from_logits else x
    # mmdet scores the negatives against a constant zero label: no target gradient there
    t = jnp.where(t != 0, t, jax.lax.stop_gradient(t))
    return _bce(x, t, from_logits) * _abs_pow(p - t, beta)


def _gaussian_focal_values(x: Array, t: Array, alpha: ArrayLike, gamma: ArrayLike,
                           from_logits: bool) -> Array:
    log_p, log_1mp = _log_p(x, from_logits)
    positive = -_prob_pow(x, alpha, from_logits, negate=True) * log_p
    n = _static_power(gamma)
    one_minus_t = 1 - t
    t_weight = (jax.lax.integer_pow(one_minus_t, n) if n is not None
                else safe_pow(one_minus_t, gamma))
    negative = -t_weight * _prob_pow(x, alpha, from_logits) * log_1mp
    return jnp.where(t == 1, positive, negative)


def _dfl_values(logits: Array, y: Array) -> Array:
    """``(y_r - y) CE(logits, y_l) + (y - y_l) CE(logits, y_r)`` over bins ``0 .. R``."""
    bins = logits.shape[-1]
    left = jnp.clip(jnp.floor(jax.lax.stop_gradient(y)), 0, bins - 2)      # y = R: bin R - 1
    w_right = y - left                                                      # [...]
    w_left = 1 - w_right
    k = jax.lax.broadcasted_iota(logits.dtype, (1,) * y.ndim + (bins,), y.ndim)
    soft = (jnp.where(k == left[..., None], w_left[..., None], 0)
            + jnp.where(k == left[..., None] + 1, w_right[..., None], 0))   # [..., R + 1]
    # CE(logits, j) = logsumexp(logits) - logits_j, and w_left + w_right = 1
    return jax.nn.logsumexp(logits, axis=-1) - jnp.sum(soft * logits, axis=-1)


# --------------------------------------------------------------------------------------
# The public layer.
# --------------------------------------------------------------------------------------


def _score_inputs(logits: ArrayLike, targets: ArrayLike, where: ArrayLike | None,
                  reduction: str, from_logits: bool, name: str = "logits"
                  ) -> tuple[Array, Array, jnp.dtype]:
    _checks.check_reduction(reduction)
    if not isinstance(from_logits, bool):
        raise TypeError(f"from_logits must be a static Python bool; got {from_logits!r}.")
    x, t, dtype = _checks.elementwise_pair(logits, targets, predictions_name=name)
    fill = 0.0 if from_logits else 0.5                 # a harmless probability
    x, = _reduce.mask_inputs(where, x, fill=fill)
    t, = _reduce.mask_inputs(where, t)
    return x, t, dtype


@_builtin("detection")
def varifocal_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike = 0.75,
    gamma: ArrayLike = 2.0,
    from_logits: bool = True,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Varifocal loss: BCE against IoU-aware scores, negatives down-weighted by :math:`p^\gamma`.

    .. math::
        \ell = \mathrm{BCE}(p, t)\cdot
        \begin{cases} t & t > 0 \\ \alpha\, p^{\gamma} & t = 0 \end{cases}

    with :math:`p = \sigma(x)`. The weight is not detached: the gradient flows
    through :math:`\alpha p^\gamma` (as in mmdet and ultralytics), written
    :math:`\alpha |p - t|^\gamma` as mmdet does (the same value at
    :math:`t = 0`, and mmdet's gradient in the targets).

    Args:
      logits: floating ``(..., C)`` class logits (probabilities with
        ``from_logits=False``).
      targets: the same shape, in ``[0, 1]``: the IoU-aware classification
        score (e.g. the IoU of the predicted box with its ground truth) at the
        positive class of positive anchors, 0 elsewhere.
      alpha: weight of the negatives (a float or traced scalar).
      gamma: focusing exponent of the negatives, ``>= 0``.
      from_logits: whether ``logits`` are logits.
      where: boolean mask broadcastable to the shape of ``logits``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the shape of ``logits``.

    Raises:
      ValueError: shapes differ, negative ``alpha`` or ``gamma``, unknown
        ``reduction``.
      TypeError: integer ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[2.0, -3.0]])
      >>> targets = jnp.array([[0.8, 0.0]])  # IoU 0.8 at the true class
      >>> float(jaxloss.varifocal_loss(logits, targets, reduction="sum"))
      0.4216...

    References:
      Zhang et al., `VarifocalNet: An IoU-aware Dense Object Detector
      <https://arxiv.org/abs/2008.13367>`_, 2021. mmdet
      ``varifocal_loss(pred, target, alpha, gamma, iou_weighted=True)``
      (``reduction="none"``); ultralytics ``VarifocalLoss()(logits, targets,
      targets > 0)`` is this loss's ``"none"`` averaged over axis 1 and summed.
    """
    x, t, dtype = _score_inputs(logits, targets, where, reduction, from_logits)
    _checks.check_range(alpha, "alpha", low=0.0)
    _checks.check_range(gamma, "gamma", low=0.0)
    a = _checks.hyperparameter(alpha, "alpha", x.dtype)
    g = gamma if _static_power(gamma) is not None else _checks.hyperparameter(
        gamma, "gamma", x.dtype)
    values = _varifocal_values(x, t, a, g, from_logits)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("detection")
def quality_focal_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    beta: ArrayLike = 2.0,
    from_logits: bool = True,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Quality focal loss (GFL): BCE against a soft quality score, scaled by :math:`|p - t|^\beta`.

    .. math:: \ell = \mathrm{BCE}(p, t)\, |p - t|^{\beta}, \qquad p = \sigma(x)

    Convention: the gradient in the targets is mmdet's, 0 where the target is
    0 (mmdet scores those entries against a constant zero label).

    Args:
      logits: floating ``(..., C)`` class logits (probabilities with
        ``from_logits=False``).
      targets: the same shape, in ``[0, 1]``: the quality (IoU) score at the
        positive class of positive anchors, 0 elsewhere.
      beta: modulating exponent, ``>= 0`` (a float or traced scalar).
      from_logits: whether ``logits`` are logits.
      where: boolean mask broadcastable to the shape of ``logits``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the shape of ``logits``.

    Raises:
      ValueError: shapes differ, negative ``beta``, unknown ``reduction``.
      TypeError: integer ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[0.0, -2.0]])
      >>> targets = jnp.array([[0.9, 0.0]])
      >>> float(jaxloss.quality_focal_loss(logits, targets, reduction="sum"))
      0.1127...

    References:
      Li et al., `Generalized Focal Loss: Learning Qualified and Distributed
      Bounding Boxes for Dense Object Detection
      <https://arxiv.org/abs/2006.04388>`_, 2020. mmdet
      ``quality_focal_loss_tensor_target(pred, target, beta)`` sums this
      loss's ``"none"`` over the class axis (``activated=True`` is
      ``from_logits=False``).
    """
    x, t, dtype = _score_inputs(logits, targets, where, reduction, from_logits)
    _checks.check_range(beta, "beta", low=0.0)
    b = beta if _static_power(beta) is not None else _checks.hyperparameter(
        beta, "beta", x.dtype)
    values = _quality_focal_values(x, t, b, from_logits)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("detection")
def gaussian_focal_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike = 2.0,
    gamma: ArrayLike = 4.0,
    from_logits: bool = True,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""CenterNet's penalty-reduced focal loss on Gaussian heatmaps.

    .. math::
        \ell = \begin{cases} -(1 - p)^{\alpha} \log p & t = 1 \\
        -(1 - t)^{\gamma}\, p^{\alpha} \log(1 - p) & t < 1 \end{cases}

    with :math:`p = \sigma(x)`. The peaks are the entries exactly equal to 1.
    CenterNet's normaliser is ``reduction="sum"`` divided by the number of
    peaks (``jnp.maximum(jnp.sum(targets == 1), 1)``).

    Args:
      predictions: floating heatmap logits, any shape, e.g. ``(N, H, W, K)``
        (probabilities with ``from_logits=False``).
      targets: the same shape, Gaussian heatmaps in ``[0, 1]`` with 1 at the
        object centres.
      alpha: exponent of the prediction's modulating factor, ``>= 0``.
      gamma: exponent of the penalty reduction around the peaks, ``>= 0``.
      from_logits: whether ``predictions`` are logits.
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the shape of ``predictions``.

    Raises:
      ValueError: shapes differ, negative ``alpha`` or ``gamma``, unknown
        ``reduction``.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> heat = jnp.array([1.0, 0.5, 0.0])
      >>> logits = jnp.array([2.0, 0.0, -3.0])
      >>> float(jaxloss.gaussian_focal_loss(logits, heat, reduction="sum"))
      0.0127...

    References:
      Zhou et al., `Objects as Points <https://arxiv.org/abs/1904.07850>`_,
      2019; Law & Deng, CornerNet, 2018. mmdet ``gaussian_focal_loss(
      pred.sigmoid(), gaussian_target, alpha, gamma)`` (``reduction="none"``);
      keras-cv's penalty-reduced focal loss.
    """
    x, t, dtype = _score_inputs(predictions, targets, where, reduction, from_logits,
                                "predictions")
    _checks.check_range(alpha, "alpha", low=0.0)
    _checks.check_range(gamma, "gamma", low=0.0)
    a = alpha if _static_power(alpha) is not None else _checks.hyperparameter(
        alpha, "alpha", x.dtype)
    g = gamma if _static_power(gamma) is not None else _checks.hyperparameter(
        gamma, "gamma", x.dtype)
    values = _gaussian_focal_values(x, t, a, g, from_logits)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


def _check_bin_targets(y: Array, bins: int) -> Array | None:
    """Raises for concrete targets outside ``[0, R]``; the traced mask of them, or None."""
    return _checks.refuse_concrete((y < 0) | (y > bins - 1), lambda index: (
        f"targets holds {float(np.asarray(y)[index])} at index {index}, outside the bins "
        f"[0, {bins - 1}] of logits with {bins} bins. Clip the regression targets first "
        f"(ultralytics clips to [0, {bins - 1} - 0.01])."))


@_builtin("detection")
def distribution_focal_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Distribution focal loss (GFL): cross-entropy toward the two bins around a continuous target.

    .. math::
        \ell = (y_r - y)\,\mathrm{CE}(x, y_l) + (y - y_l)\,\mathrm{CE}(x, y_r),
        \qquad y_l = \lfloor y \rfloor,\ y_r = y_l + 1

    over bins :math:`0 \dots R` (``R + 1`` logits); a target equal to
    :math:`R` counts as bin :math:`R` (:math:`y_l = R - 1`, weight 1 on
    :math:`y_r = R`). Its minimum puts the distribution's mass on the two
    neighbouring bins, so that :func:`distribution_expectation` decodes
    :math:`y`.

    Convention: targets outside ``[0, R]`` raise eagerly and give NaN at
    their positions under ``jit`` (mmdet indexes out of range, ultralytics
    clips to ``[0, R - 0.01]``; clip them yourself if that is what you want).

    Args:
      logits: floating ``(..., R + 1)`` logits over the bins, ``R >= 1``.
      targets: floating ``(...)`` (the shape of ``logits`` without the bin
        axis), in ``[0, R]``, e.g. the distances from an anchor to the four
        sides of its box in stride units.
      where: boolean mask broadcastable to ``targets``' shape.
      weights: weights broadcastable to ``targets``' shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the shape of ``targets``.

    Raises:
      ValueError: ``targets`` of the wrong shape, fewer than 2 bins, a target
        outside ``[0, R]`` (when concrete), unknown ``reduction``.
      TypeError: integer ``logits`` or ``targets``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.log(jnp.array([[0.1, 0.6, 0.3]]))
      >>> float(jaxloss.distribution_focal_loss(logits, jnp.array([1.25])))
      0.6841...

    References:
      Li et al., `Generalized Focal Loss <https://arxiv.org/abs/2006.04388>`_,
      2020. mmdet ``distribution_focal_loss(pred, label)``; ultralytics
      ``DFLoss(R + 1)(logits, targets)`` is this loss's ``"none"`` averaged
      over the last (side) axis.
    """
    _checks.check_reduction(reduction)
    x = _checks.float_input(logits, "logits")
    _checks.check_rank(x, "logits", min_rank=1)
    y = _checks.float_input(targets, "targets")
    if y.shape != x.shape[:-1]:
        raise ValueError(
            f"targets must have the shape of logits without the bin axis, {x.shape[:-1]}; "
            f"got {y.shape}."
        )
    bins = x.shape[-1]
    if bins < 2:
        raise ValueError(f"logits must have at least 2 bins on the last axis; got {x.shape}.")
    compute, dtype = _checks.compute_dtype(x, y)
    x, y = x.astype(compute), y.astype(compute)
    if where is not None:
        mask = _checks.broadcast_mask(where, y.shape, "where")
        x = jnp.where(mask[..., None], x, jnp.zeros((), compute))
        y = jnp.where(mask, y, jnp.zeros((), compute))
    bad = _check_bin_targets(y, bins)
    values = _dfl_values(x, y)
    if bad is not None:
        values = poison(values, bad)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


def distribution_expectation(logits: ArrayLike) -> Array:
    r"""The expectation of a discretised distribution: :math:`\sum_k \mathrm{softmax}(x)_k\, k`.

    The decoding of a distribution (DFL) head: each side of a box is the mean
    of its softmax over the bins ``0 .. R`` (GFL's "Integral"; YOLOv8's
    ``bbox_decode``). Not a loss: no reduction.

    Args:
      logits: floating ``(..., R + 1)`` logits over the bins.

    Returns:
      ``(...)`` expectations in ``[0, R]``, the dtype of ``logits``.

    Raises:
      ValueError: ``logits`` of rank 0.
      TypeError: integer ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.distribution_expectation(jnp.log(jnp.array([0.25, 0.5, 0.25]))))
      1.0

    References:
      Li et al., `Generalized Focal Loss <https://arxiv.org/abs/2006.04388>`_,
      2020 (the Integral); mmdet ``Integral``; ultralytics
      ``v8DetectionLoss.bbox_decode`` (``softmax(3) @ arange(reg_max)``).
    """
    x = _checks.float_input(logits, "logits")
    _checks.check_rank(x, "logits", min_rank=1)
    compute, dtype = _checks.compute_dtype(x)
    x = x.astype(compute)
    k = jax.lax.broadcasted_iota(compute, (1,) * (x.ndim - 1) + (x.shape[-1],), x.ndim - 1)
    return jnp.sum(jax.nn.softmax(x, axis=-1) * k, axis=-1).astype(dtype)

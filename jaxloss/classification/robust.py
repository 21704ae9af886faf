"""Hinge, divergence and noise-robust classification losses.

Conventions (see the package docstring): the class axis is ``axis=-1``;
integer targets are class indices, floating targets are per-class
probabilities of the logits' shape. ``reduction="none"`` is per position (the
class axis reduced) for the class-based losses here, and per element for the
binary ``hinge_loss`` / ``squared_hinge_loss``. Half-precision inputs are
computed in float32 and returned in their dtype.

Where probabilities (``from_logits=False``) meet ``log(0)`` with a positive
weight in front (a divergence or cross-entropy that is truly infinite), the
log is floored at -100, as ``torch.nn.functional.binary_cross_entropy``
does, so that the value and the gradient stay finite.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._classes import log_probabilities, prepare_class_inputs, take_class
from jaxloss._numerics import one_hot, safe_log, x_times, xlogy
from jaxloss.registry import _builtin

__all__ = [
    "generalized_cross_entropy_loss",
    "hinge_loss",
    "js_divergence_loss",
    "kl_divergence_loss",
    "multiclass_hinge_loss",
    "squared_hinge_loss",
    "symmetric_cross_entropy_loss",
]

# Floor of log-probabilities given as probabilities (torch's BCE convention).
_LOG_FLOOR = -100.0
# The reverse cross-entropy's clamp of the one-hot targets (Wang et al. 2019).
_RCE_TARGET_FLOOR = 1e-4


def _require_float_targets(targets: ArrayLike, loss: str) -> None:
    dtype = jnp.asarray(targets).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{loss} takes floating probability targets (same shape as predictions); got "
            f"targets of dtype {dtype}. For class indices pass "
            "jax.nn.one_hot(targets, num_classes) instead."
        )


def _signed_binary_targets(targets: Array) -> Array:
    """Binary targets in {-1, +1}: 0 maps to -1 elementwise; other values are refused."""
    values = _checks.host_copy(targets)
    if values is not None:
        bad = ~np.isin(values, (-1.0, 0.0, 1.0))
        if np.any(bad):
            raise ValueError(
                "targets must hold binary labels in {-1, +1} or {0, 1}; got the value "
                f"{values[bad].flat[0]!r}."
            )
    return jnp.where(targets == 0, -jnp.ones_like(targets), targets)


def _hinge_margins(predictions: ArrayLike, targets: ArrayLike, where: ArrayLike | None,
                   ) -> tuple[Array, jnp.dtype]:
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    p, t = _reduce.mask_inputs(where, p, t)
    t = _signed_binary_targets(t)
    return jax.nn.relu(1.0 - t * p), dtype


@_builtin("classification")
def hinge_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Binary hinge loss, elementwise.

    .. math:: \ell_i = \max(0,\ 1 - t_i\, y_i), \qquad t_i \in \{-1, +1\}

    Targets in ``{0, 1}`` are mapped elementwise (0 becomes -1), so ``{-1, +1}``
    and ``{0, 1}`` labels, integer, boolean or floating, give the same loss.
    The gradient at the kink ``t y = 1`` is 0.

    Args:
      predictions: floating decision values (raw scores), any shape.
      targets: labels in ``{-1, +1}`` or ``{0, 1}`` (int, bool or float), the
        shape of ``predictions``. Other values raise (checked when concrete).
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      TypeError: integer ``predictions``.
      ValueError: shapes differ, a target outside ``{-1, 0, 1}``, or an
        unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> y = jnp.array([2.0, 0.5, -0.5])
      >>> jaxloss.hinge_loss(y, jnp.array([1, 1, 0]), reduction="none")
      Array([0. , 0.5, 0.5], dtype=float32)

    References:
      Cortes & Vapnik, `Support-vector networks
      <https://doi.org/10.1007/BF00994018>`_, 1995. Equivalent to
      ``optax.losses.hinge_loss(predictions, targets)`` for ``{-1, +1}``
      targets, and to Keras ``hinge`` before its mean over the last axis.
    """
    _checks.check_reduction(reduction)
    values, dtype = _hinge_margins(predictions, targets, where)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("classification")
def squared_hinge_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Squared binary hinge loss, elementwise.

    .. math:: \ell_i = \max(0,\ 1 - t_i\, y_i)^2, \qquad t_i \in \{-1, +1\}

    Targets in ``{0, 1}`` are mapped elementwise (0 becomes -1). Smooth: the
    gradient is continuous and 0 at the kink.

    Args:
      predictions: floating decision values (raw scores), any shape.
      targets: labels in ``{-1, +1}`` or ``{0, 1}`` (int, bool or float), the
        shape of ``predictions``. Other values raise (checked when concrete).
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      TypeError: integer ``predictions``.
      ValueError: shapes differ, a target outside ``{-1, 0, 1}``, or an
        unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> y = jnp.array([2.0, 0.5, -0.5])
      >>> jaxloss.squared_hinge_loss(y, jnp.array([1, 1, 0]), reduction="none")
      Array([0.  , 0.25, 0.25], dtype=float32)

    References:
      Keras ``keras.losses.squared_hinge`` (elementwise, before its mean over
      the last axis); Rennie & Srebro, `Loss functions for preference levels
      <https://home.ttic.edu/~nati/Publications/RennieSrebroIJCAI05.pdf>`_, 2005.
    """
    _checks.check_reduction(reduction)
    values, dtype = _hinge_margins(predictions, targets, where)
    return _reduce.reduce_loss(jnp.square(values), reduction=reduction, where=where,
                               weights=weights, dtype=dtype)


@_builtin("classification")
def multiclass_hinge_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    p: int = 1,
    class_weights: ArrayLike | None = None,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Multi-class hinge (margin) loss of Weston & Watkins / Crammer-Singer style sums.

    .. math:: \ell = \frac{1}{C} \sum_{j \ne y} w_y\,
              \max(0,\ m - x_y + x_j)^p

    with ``C`` the number of classes, ``m = margin`` and ``w = class_weights``
    (1 when not given). This is exactly ``torch.nn.functional.multi_margin_loss``;
    the gradient at the hinge's kink is 0, as in torch.

    Args:
      logits: floating scores ``[..., C]`` (class axis ``axis``).
      targets: integer class indices in ``[0, C)``, the shape of ``logits``
        without the class axis.
      margin: margin ``m >= 0`` (Python float or JAX scalar).
      p: exponent, ``1`` or ``2`` (static).
      class_weights: optional floating ``(C,)`` weights ``w``; the weight of
        a position is that of its target class.
      axis: the class axis of ``logits``.
      where: boolean mask broadcastable to the per-position shape.
      weights: per-position weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per position (the
      shape of ``targets``).

    Raises:
      TypeError: integer ``logits``, or floating ``targets`` (only class
        indices are taken).
      ValueError: shapes disagree, a class index out of range (when
        concrete), ``margin < 0``, ``p`` not in ``{1, 2}``, ``class_weights``
        not of shape ``(C,)``, or an unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[0.1, 0.2, 0.4, 0.8]])
      >>> float(jaxloss.multiclass_hinge_loss(logits, jnp.array([3])))
      0.325

    References:
      Weston & Watkins, `Support vector machines for multi-class pattern
      recognition <https://www.esann.org/sites/default/files/proceedings/legacy/es1999-461.pdf>`_,
      1999. Equivalent to ``torch.nn.functional.multi_margin_loss(logits,
      targets, p=p, margin=margin, weight=class_weights, reduction=...)`` for
      2-D logits.
    """
    _checks.check_reduction(reduction)
    _checks.float_input(logits, "logits")
    target_dtype = jnp.asarray(targets).dtype
    if not jnp.issubdtype(target_dtype, jnp.integer):
        raise TypeError(
            "multiclass_hinge_loss takes integer class indices as targets; got targets of "
            f"dtype {target_dtype}. Convert one-hot targets with jnp.argmax(targets, axis=-1)."
        )
    _checks.check_choice(p, "p", (1, 2))
    _checks.check_range(margin, "margin", low=0.0)
    inputs = prepare_class_inputs(logits, targets, axis=axis, where=where)
    scores, labels, num_classes = inputs.scores, inputs.targets, inputs.num_classes
    compute = scores.dtype
    margin = _checks.hyperparameter(margin, "margin", compute)

    true_score = take_class(scores, labels)[..., None]                # [..., 1]
    hinge = jax.nn.relu(margin - true_score + scores)                  # [..., C]
    if p == 2:
        hinge = jnp.square(hinge)
    is_target = one_hot(labels, num_classes, jnp.bool_)                # [..., C]
    hinge = jnp.where(is_target, jnp.zeros_like(hinge), hinge)
    values = jnp.sum(hinge, axis=-1) / num_classes                     # [...]
    if class_weights is not None:
        class_weights = _checks.float_input(class_weights, "class_weights")
        if class_weights.shape != (num_classes,):
            raise ValueError(
                f"class_weights must have shape ({num_classes},), one weight per class; got "
                f"shape {class_weights.shape}."
            )
        index = jnp.clip(labels, 0, num_classes - 1)
        values = values * class_weights.astype(compute)[index]
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=inputs.dtype)


def _log_distribution(scores: Array, from_logits: bool) -> Array:
    """Log-probabilities of predictions: log-softmax of logits, or the floored log."""
    if from_logits:
        return log_probabilities(scores, from_logits=True)
    return safe_log(scores, floor=_LOG_FLOOR)


@_builtin("classification")
def kl_divergence_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    from_logits: bool = True,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Kullback-Leibler divergence of the predicted distribution from the targets.

    .. math:: \ell = \mathrm{KL}(t \,\|\, q) = \sum_c t_c\,(\log t_c - \log q_c),
              \qquad q = \mathrm{softmax}(x)

    summed over the class axis, with :math:`0 \log 0 = 0` (value and gradient
    finite). ``reduction="mean"`` is the mean over positions, which for 2-D
    inputs is torch's ``reduction="batchmean"`` (the mathematically correct
    mean KL), not torch's ``"mean"`` (which also divides by the class count).

    Convention: with ``from_logits=False``, ``log q`` is floored at -100 (as
    torch's ``binary_cross_entropy`` does), so a class with ``q = 0`` but
    ``t > 0`` gives a large finite value instead of ``inf``.

    Args:
      predictions: floating logits ``[..., C]``, or probabilities when
        ``from_logits=False``.
      targets: floating probabilities of the same shape (each row summing to
        1; exact zeros allowed).
      from_logits: whether ``predictions`` are logits (the stable path).
      axis: the class axis.
      where: boolean mask broadcastable to the per-position shape.
      weights: per-position weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per position (the
      shape of ``predictions`` without the class axis).

    Raises:
      TypeError: integer ``predictions`` or integer ``targets``.
      ValueError: shapes differ, or an unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> q = jnp.array([[0.5, 0.5]])
      >>> t = jnp.array([[1.0, 0.0]])
      >>> float(jaxloss.kl_divergence_loss(q, t, from_logits=False))  # log 2
      0.6931...

    References:
      Kullback & Leibler, `On information and sufficiency
      <https://doi.org/10.1214/aoms/1177729694>`_, 1951. Equivalent to
      ``torch.nn.functional.kl_div(log_softmax(x), targets,
      reduction="batchmean")`` (2-D inputs), ``reduction="none"`` to its
      unreduced values summed over the class axis.
    """
    _checks.check_reduction(reduction)
    _checks.float_input(predictions, "predictions")
    _require_float_targets(targets, "kl_divergence_loss")
    inputs = prepare_class_inputs(predictions, targets, axis=axis, where=where,
                                  logits_name="predictions")
    t = inputs.targets
    log_q = _log_distribution(inputs.scores, from_logits)
    values = jnp.sum(xlogy(t, t) - x_times(t, log_q), axis=-1)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=inputs.dtype)


@_builtin("classification")
def js_divergence_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    from_logits: bool = True,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Jensen-Shannon divergence between the predicted distribution and the targets.

    .. math:: \ell = \tfrac12 \mathrm{KL}(p \,\|\, m) + \tfrac12 \mathrm{KL}(t \,\|\, m),
              \qquad m = \tfrac12 (p + t), \quad p = \mathrm{softmax}(x)

    in nats (natural log; the maximum is :math:`\log 2`), summed over the
    class axis. Symmetric and bounded; value and gradient are finite when
    ``p`` or ``t`` has exact zeros (:math:`0 \log 0 = 0`). With logits,
    :math:`\log m` is computed as ``logaddexp(log p, log t) - log 2``, so
    it stays finite however small ``p`` gets.

    Args:
      predictions: floating logits ``[..., C]``, or probabilities when
        ``from_logits=False``.
      targets: floating probabilities of the same shape.
      from_logits: whether ``predictions`` are logits.
      axis: the class axis.
      where: boolean mask broadcastable to the per-position shape.
      weights: per-position weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per position (the
      shape of ``predictions`` without the class axis).

    Raises:
      TypeError: integer ``predictions`` or integer ``targets``.
      ValueError: shapes differ, or an unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[1.0, 0.0]])
      >>> t = jnp.array([[0.0, 1.0]])
      >>> float(jaxloss.js_divergence_loss(p, t, from_logits=False))  # log 2
      0.6931...

    References:
      Lin, `Divergence measures based on the Shannon entropy
      <https://doi.org/10.1109/18.61115>`_, 1991. Equivalent to
      ``0.5 * (kl_div(log(m), p) + kl_div(log(m), t)).sum(-1)`` with
      ``torch.nn.functional.kl_div`` (``reduction="none"``) and ``m = (p + t) / 2``.
    """
    _checks.check_reduction(reduction)
    _checks.float_input(predictions, "predictions")
    _require_float_targets(targets, "js_divergence_loss")
    inputs = prepare_class_inputs(predictions, targets, axis=axis, where=where,
                                  logits_name="predictions")
    t = inputs.targets
    log_t = safe_log(t)
    if from_logits:
        log_p = log_probabilities(inputs.scores, from_logits=True)
        p = jnp.exp(log_p)
    else:
        p = inputs.scores
        log_p = safe_log(p)
    # log m in log space, finite however small p gets (0.5 (p + t) underflows to 0 for a
    # subnormal p and t = 0, and log m = -inf would make the p log(p / m) term +inf).
    # logaddexp(-inf, -inf) (p and t both 0) has a NaN gradient: double-where it away.
    both_zero = jnp.isneginf(log_p) & (t == 0)
    log_m = jnp.where(
        both_zero, -jnp.inf,
        jnp.logaddexp(jnp.where(both_zero, 0.0, log_p), jnp.where(both_zero, 0.0, log_t))
        - math.log(2.0))
    # x_times zeroes the terms whose weight is 0 (there log p or log m may be -inf).
    values = 0.5 * jnp.sum(x_times(p, log_p - log_m) + x_times(t, log_t - log_m), axis=-1)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=inputs.dtype)


@_builtin("classification")
def generalized_cross_entropy_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    q: ArrayLike = 0.7,
    from_logits: bool = True,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Generalized cross-entropy (the :math:`\mathcal{L}_q` loss) for noisy labels.

    .. math:: \ell = \frac{1 - p_y^{\,q}}{q}, \qquad
              \text{probability targets: } \ell = \sum_c t_c\, \frac{1 - p_c^{\,q}}{q}

    with :math:`p = \mathrm{softmax}(x)`. It interpolates between the
    cross-entropy (:math:`q \to 0`) and the MAE :math:`1 - p_y` (``q = 1``).
    Computed stably as ``-expm1(q * log p) / q``, so ``p ** q`` never
    underflows to a wrong value or sends NaN into the gradient.

    Args:
      logits: floating logits ``[..., C]``, or probabilities when
        ``from_logits=False``.
      targets: integer class indices (the shape of ``logits`` without the
        class axis) or floating probabilities (the shape of ``logits``).
      q: exponent in ``(0, 1]`` (Python float or JAX scalar).
      from_logits: whether ``logits`` are logits.
      axis: the class axis.
      where: boolean mask broadcastable to the per-position shape.
      weights: per-position weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per position.

    Raises:
      TypeError: integer ``logits``.
      ValueError: shapes disagree, a class index out of range (when
        concrete), ``q`` outside ``(0, 1]``, or an unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[0.25, 0.75]])
      >>> float(jaxloss.generalized_cross_entropy_loss(
      ...     probs, jnp.array([0]), q=0.5, from_logits=False))  # (1 - 0.5) / 0.5
      1.0

    References:
      Zhang & Sabuncu, `Generalized Cross Entropy Loss for Training Deep Neural
      Networks with Noisy Labels <https://arxiv.org/abs/1805.07836>`_, 2018;
      the authors' code computes ``(1 - softmax(x).gather(1, y) ** q) / q``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(q, "q", low=0.0, high=1.0, low_inclusive=False)
    inputs = prepare_class_inputs(logits, targets, axis=axis, where=where)
    q = _checks.hyperparameter(q, "q", inputs.scores.dtype)
    log_p = log_probabilities(inputs.scores, from_logits=from_logits)
    if inputs.is_index:
        values = -jnp.expm1(q * take_class(log_p, inputs.targets)) / q
    else:
        values = jnp.sum(inputs.targets * -jnp.expm1(q * log_p), axis=-1) / q
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=inputs.dtype)


@_builtin("classification")
def symmetric_cross_entropy_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike = 0.1,
    beta: ArrayLike = 1.0,
    from_logits: bool = True,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Symmetric cross-entropy for noisy labels: cross-entropy plus reverse cross-entropy.

    .. math:: \ell = \alpha\,\Big(-\sum_c t_c \log p_c\Big)
              + \beta\,\Big(-\sum_c p_c \log \max(t_c, 10^{-4})\Big)

    with :math:`p = \mathrm{softmax}(x)`. For class-index (one-hot) targets
    the reverse term is :math:`-A\,(1 - p_y)` with :math:`A = \log 10^{-4}`,
    computed as :math:`\sum_{c \ne y} p_c`, which keeps its precision as
    :math:`p_y \to 1` (``1 - p_y`` and even ``-expm1(log p_y)`` lose the
    digits that the log-sum-exp rounds away).

    Convention: the targets are clamped at ``1e-4`` inside the log, as in
    the paper and the authors' code. The authors' code also clamps ``p`` at
    ``1e-7`` in the reverse term; we do not: that clamp moves the value by
    at most ``(C - 1) * 1e-7 * |A|`` and only switches off the gradient of
    classes whose probability is below ``1e-7``, so we keep the exact
    :math:`1 - p_y`. With ``from_logits=False`` the forward term's log is
    floored at -100 (torch's ``binary_cross_entropy`` convention).

    Args:
      logits: floating logits ``[..., C]``, or probabilities when
        ``from_logits=False``.
      targets: integer class indices (the shape of ``logits`` without the
        class axis) or floating probabilities (the shape of ``logits``).
      alpha: weight of the cross-entropy, ``>= 0`` (paper's CIFAR-10 value 0.1).
      beta: weight of the reverse cross-entropy, ``>= 0``.
      from_logits: whether ``logits`` are logits.
      axis: the class axis.
      where: boolean mask broadcastable to the per-position shape.
      weights: per-position weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per position.

    Raises:
      TypeError: integer ``logits``.
      ValueError: shapes disagree, a class index out of range (when
        concrete), negative ``alpha`` or ``beta``, or an unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[0.5, 0.5]])
      >>> # 0.1 * log 2 + 1.0 * 0.5 * log(1e4)
      >>> float(jaxloss.symmetric_cross_entropy_loss(probs, jnp.array([1]), from_logits=False))
      4.6744...

    References:
      Wang et al., `Symmetric Cross Entropy for Robust Learning with Noisy
      Labels <https://arxiv.org/abs/1908.06112>`_, ICCV 2019 (authors' code:
      ``alpha * cross_entropy(x, y) + beta * (-(softmax(x) *
      log(clamp(one_hot(y), 1e-4, 1))).sum(1))``).
    """
    _checks.check_reduction(reduction)
    _checks.check_range(alpha, "alpha", low=0.0)
    _checks.check_range(beta, "beta", low=0.0)
    inputs = prepare_class_inputs(logits, targets, axis=axis, where=where)
    compute = inputs.scores.dtype
    alpha = _checks.hyperparameter(alpha, "alpha", compute)
    beta = _checks.hyperparameter(beta, "beta", compute)
    if from_logits:
        log_p = log_probabilities(inputs.scores, from_logits=True)
        p = jnp.exp(log_p)
    else:
        p = inputs.scores
        log_p = safe_log(p, floor=_LOG_FLOOR)
    if inputs.is_index:
        log_p_y = take_class(log_p, inputs.targets)
        forward = -log_p_y
        # 1 - p_y as the sum of the other classes' probabilities (the paper's formula): exact
        # as p_y -> 1, where 1 - p_y and even -expm1(log p_y) lose the digits that the
        # log-sum-exp rounded away; and, for given probabilities, the formula's gradient.
        is_target = one_hot(inputs.targets, inputs.num_classes, jnp.bool_)
        one_minus_p_y = jnp.sum(jnp.where(is_target, jnp.zeros_like(p), p), axis=-1)
        reverse = -math.log(_RCE_TARGET_FLOOR) * one_minus_p_y
    else:
        t = inputs.targets
        forward = -jnp.sum(x_times(t, log_p), axis=-1)
        log_t = jnp.log(jnp.clip(t, _RCE_TARGET_FLOOR, 1.0))
        reverse = -jnp.sum(p * log_t, axis=-1)
    values = alpha * forward + beta * reverse
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=inputs.dtype)

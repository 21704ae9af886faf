"""The cross-entropy half of the classification family: binary and softmax
cross-entropy, softmax and sigmoid focal losses, and Poly-1.

Conventions: logits carry the class axis last (``axis=-1``); targets of the
softmax losses are integer class indices (the shape of the logits without the
class axis) or floating per-class probabilities / one-hot (the shape of the
logits), the dtype decides at trace time. ``reduction="none"`` is per
position (the class axis summed) for the softmax losses and per element for
the binary (sigmoid) ones. Half-precision inputs are computed in float32 and
returned in their own dtype.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._classes import (
    log_probabilities,
    log_probability_of,
    prepare_class_inputs,
)
from jaxloss._numerics import bce_with_logits, safe_log, safe_pow, sigmoid_focal_values, x_times
from jaxloss.registry import _builtin

__all__ = [
    "binary_cross_entropy_loss",
    "cross_entropy_loss",
    "focal_loss",
    "poly1_cross_entropy_loss",
    "sigmoid_focal_loss",
]

# torch.nn.functional.binary_cross_entropy clamps each log at -100.
_BCE_LOG_FLOOR = -100.0


def _class_vector(value: ArrayLike, name: str, num_classes: int, dtype: jnp.dtype) -> Array:
    """A per-class hyperparameter of shape ``(C,)`` in ``dtype`` (weights must be >= 0)."""
    array = _checks.hyperparameter(value, name, dtype, scalar=False)
    if array.shape != (num_classes,):
        raise ValueError(
            f"{name} must hold one value per class: expected shape ({num_classes},), got "
            f"{array.shape}."
        )
    _checks.check_range(value, name, low=0.0)
    return array


def _gather_class(vector: Array, labels: Array) -> Array:
    """``vector[labels]`` for a ``(C,)`` vector and int labels (clipped into range)."""
    index = jnp.clip(labels, 0, vector.shape[0] - 1).astype(jnp.int32)
    return jnp.take(vector, index, axis=0)


def _broadcast_class_axis(vector: Array, shape: tuple[int, ...]) -> Array:
    """A ``(C,)`` vector broadcast explicitly against ``[..., C]`` (no rank promotion)."""
    return jnp.broadcast_to(vector.reshape((1,) * (len(shape) - 1) + (-1,)), shape)


def _check_ignore_index(ignore_index: int | None) -> int | None:
    if ignore_index is None:
        return None
    return _checks.static_int(ignore_index, "ignore_index")


@_builtin("classification")
def binary_cross_entropy_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    from_logits: bool = True,
    pos_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Binary cross-entropy, elementwise, from logits (default) or probabilities.

    .. math::
        \ell_i = -\big[w_p\, t_i \log \sigma(x_i) + (1 - t_i) \log(1 - \sigma(x_i))\big],
        \qquad t_i \leftarrow t_i (1 - s) + s / 2

    with :math:`w_p` the ``pos_weight`` (1 by default) and :math:`s` the label
    smoothing (toward 0.5). From logits the loss is computed by one fused,
    overflow-free formula, ``max(x, 0) - x t + log1p(exp(-|x|))``, with the
    analytic derivative ``sigmoid(x) - t`` (one exponential per element). With
    ``from_logits=False`` the predictions are probabilities and each log is
    clamped at -100, as in torch; the gradient is finite at probabilities
    exactly 0 and 1.

    Args:
      predictions: floating logits (or probabilities in ``[0, 1]`` with
        ``from_logits=False``) of any shape.
      targets: the same shape; floating targets in ``[0, 1]`` (soft labels
        allowed), or integer / boolean 0-1 labels (cast to float).
      from_logits: whether ``predictions`` are logits.
      pos_weight: weight of the positive term, a scalar or an array that
        broadcasts to ``predictions`` (e.g. ``(C,)`` over the last axis, as in
        torch); values >= 0.
      label_smoothing: ``s`` in ``[0, 1]``; targets become ``t (1 - s) + s / 2``.
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, ``pos_weight`` does not broadcast,
        ``label_smoothing`` outside ``[0, 1]``, negative ``pos_weight`` or an
        unknown ``reduction``.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([2.0, -1.0])
      >>> targets = jnp.array([1.0, 0.0])
      >>> float(jaxloss.binary_cross_entropy_loss(logits, targets))
      0.22009...
      >>> probs = jnp.array([0.9, 0.2])
      >>> float(jaxloss.binary_cross_entropy_loss(probs, targets, from_logits=False))
      0.16425...

    References:
      Equivalent to ``torch.nn.functional.binary_cross_entropy_with_logits(
      input, target, pos_weight=pos_weight)`` and, with ``from_logits=False``,
      ``torch.nn.functional.binary_cross_entropy(input, target)``; optax
      ``sigmoid_binary_cross_entropy``.
    """
    _checks.check_reduction(reduction)
    x, t, dtype = _checks.elementwise_pair(predictions, targets)
    compute = x.dtype
    _checks.check_range(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    smoothing = _checks.hyperparameter(label_smoothing, "label_smoothing", compute)
    pw = None
    if pos_weight is not None:
        if not from_logits:
            raise ValueError(
                "pos_weight is only defined for logits (as in torch's "
                "binary_cross_entropy_with_logits); pass from_logits=True or weights= instead."
            )
        pw = _checks.hyperparameter(pos_weight, "pos_weight", compute, scalar=False)
        try:
            ok = np.broadcast_shapes(pw.shape, x.shape) == x.shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"pos_weight has shape {pw.shape}, which does not broadcast to predictions of "
                f"shape {x.shape}; give a scalar, shape ({x.shape[-1] if x.ndim else 1},) for "
                "one weight per entry of the last axis, or the shape of predictions."
            )
        _checks.check_range(pos_weight, "pos_weight", low=0.0)
        pw = jnp.broadcast_to(pw, x.shape)
    x, t = _reduce.mask_inputs(where, x, t)
    if not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0):
        t = t * (1 - smoothing) + smoothing / 2
    if from_logits:
        values = bce_with_logits(x, t, pw)
    else:
        log_p = safe_log(x, _BCE_LOG_FLOOR)
        log_1mp = safe_log(1 - x, _BCE_LOG_FLOOR)
        values = -(t * log_p + (1 - t) * log_1mp)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("classification")
def cross_entropy_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    class_weights: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    ignore_index: int | None = -100,
    from_logits: bool = True,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Softmax cross-entropy with torch's semantics (index or probability targets).

    Index targets :math:`y_i`, class weights :math:`w` (1 by default), label
    smoothing :math:`s`, :math:`C` classes:

    .. math::
        \ell_i = (1 - s)\, w_{y_i} (-\log p_{i, y_i})
                 + \frac{s}{C} \sum_c w_c (-\log p_{ic}),
        \qquad \text{mean} = \frac{\sum_i \ell_i}{\sum_i w_{y_i}}

    over the positions whose target is not ``ignore_index``. Probability
    targets :math:`t_{ic}`:

    .. math::
        \ell_i = -\sum_c w_c\, t'_{ic} \log p_{ic}, \quad t' = t (1 - s) + s / C,
        \qquad \text{mean} = \frac{1}{N} \sum_i \ell_i

    Convention (torch ``cross_entropy``): the class-weighted ``mean`` divides
    by the sum of the targets' class weights (with ``weights``/``where``, by
    the sum of ``weights * w[y]`` over the selected positions), and label
    smoothing is weighted by the class weights. Positions whose target is
    ``ignore_index`` give 0 and leave the denominator; when every target is
    ignored (or nothing is selected) the result is 0 with a zero gradient
    (torch gives NaN). ``ignore_index`` applies to index targets only.
    A logit of ``-inf`` in a class that is not the target (masking out a
    class) gives a finite value and gradient, also under ``jax.jacfwd``;
    with label smoothing ``s > 0`` (or a smoothed probability target) such a
    class makes the loss infinite, by definition (its smoothed target mass is
    ``s / C > 0``), unless its class weight is 0.
    Out-of-range labels raise ``ValueError`` when the labels are concrete;
    under ``jit`` they cannot be checked and are clipped into ``[0, C - 1]``.

    Args:
      logits: floating ``[..., C, ...]`` with the class axis at ``axis``
        (probabilities with ``from_logits=False``).
      targets: int ``[...]`` class indices in ``[0, C)`` (or ``ignore_index``),
        shape of ``logits`` without the class axis; or floating per-class
        probabilities / one-hot of the shape of ``logits``.
      class_weights: ``(C,)`` non-negative per-class weights (torch ``weight``).
      label_smoothing: ``s`` in ``[0, 1]``.
      ignore_index: static int label to ignore (torch's -100 by default);
        ``None`` disables it.
      from_logits: whether ``logits`` are logits (``False``: probabilities,
        whose log is taken; 0 gives ``-inf``).
      axis: the class axis (static).
      where: boolean mask broadcastable to the per-position shape.
      weights: per-position weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-position losses, the
      shape of ``logits`` without the class axis (0 at ignored positions).

    Raises:
      ValueError: targets of the wrong shape, labels out of range (eager),
        ``class_weights`` not of shape ``(C,)`` or negative, ``label_smoothing``
        outside ``[0, 1]``, unknown ``reduction``.
      TypeError: integer ``logits``; ``ignore_index`` not a static int.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
      >>> float(jaxloss.cross_entropy_loss(logits, jnp.array([0, 1])))
      0.39637...
      >>> float(jaxloss.cross_entropy_loss(logits, jnp.array([0, 1]), label_smoothing=0.1))
      0.50471...
      >>> float(jaxloss.cross_entropy_loss(logits, jnp.array([0, -100])))
      0.24131...

    References:
      Equivalent to ``torch.nn.functional.cross_entropy(input, target,
      weight=class_weights, ignore_index=ignore_index,
      label_smoothing=label_smoothing)`` with the class axis moved to dim 1;
      optax ``softmax_cross_entropy`` and
      ``softmax_cross_entropy_with_integer_labels``. Label smoothing:
      Szegedy et al., `Rethinking the Inception Architecture for Computer
      Vision <https://arxiv.org/abs/1512.00567>`_, 2016.
    """
    _checks.check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index)
    inputs = prepare_class_inputs(logits, targets, axis=axis, where=where,
                                  ignore_index=ignore_index, poison_scores=False)
    compute = inputs.scores.dtype
    num_classes = inputs.num_classes
    _checks.check_range(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    smoothing = _checks.hyperparameter(label_smoothing, "label_smoothing", compute)
    smoothed = not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0)
    w = None
    if class_weights is not None:
        w = _class_vector(class_weights, "class_weights", num_classes, compute)

    log_p = log_probabilities(inputs.scores, from_logits=from_logits)   # [..., C]
    normalizer = None
    if inputs.is_index:
        labels = inputs.targets                                          # [...]
        values = -log_probability_of(inputs.scores, labels, from_logits=from_logits)
        if w is not None:
            w_y = _gather_class(w, labels)
            values = w_y * values
            normalizer = w_y
        if smoothed:
            # -sum_c w_c log p_c; x_times keeps a zero-weight -inf class at 0.
            if w is None:
                smooth = -jnp.sum(log_p, axis=-1)
            else:
                smooth = -jnp.sum(x_times(_broadcast_class_axis(w, log_p.shape), log_p), axis=-1)
            # x_times: s = 0 (traced) times an infinite smoothing term stays 0.
            values = (1 - smoothing) * values + x_times(
                jnp.broadcast_to(smoothing / num_classes, smooth.shape), smooth)
        if ignore_index is not None:
            valid = labels != ignore_index
            values = jnp.where(valid, values, jnp.zeros_like(values))
            if normalizer is None:
                normalizer = valid.astype(compute)
            else:
                normalizer = jnp.where(valid, normalizer, jnp.zeros_like(normalizer))
    else:
        t = inputs.targets
        if smoothed:
            t = t * (1 - smoothing) + smoothing / num_classes
        terms = x_times(t, log_p)                                        # [..., C]
        if w is not None:
            terms = terms * _broadcast_class_axis(w, terms.shape)
        values = -jnp.sum(terms, axis=-1)
    values = inputs.poison(values)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               normalizer=normalizer, dtype=inputs.dtype)


def _focal_alpha(alpha: ArrayLike | None, num_classes: int, dtype: jnp.dtype) -> Array | None:
    """Per-class focal weights ``(C,)``: a scalar is kornia's ``(1 - a, a, ..., a)``."""
    if alpha is None:
        return None
    array = _checks.hyperparameter(alpha, "alpha", dtype, scalar=False)
    if array.ndim == 0:
        _checks.check_range(alpha, "alpha", low=0.0, high=1.0)
        return jnp.where(jnp.arange(num_classes) == 0, 1 - array, array)
    return _class_vector(alpha, "alpha", num_classes, dtype)


@_builtin("classification")
def focal_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    from_logits: bool = True,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Softmax (multi-class) focal loss.

    .. math::
        \ell_i = -\sum_c \alpha_c\, t_{ic}\, (1 - p_{ic})^{\gamma} \log p_{ic}

    which for an index target :math:`y_i` is
    :math:`-\alpha_{y_i} (1 - p_{i y_i})^\gamma \log p_{i y_i}`. ``gamma = 0``
    and ``alpha=None`` is the cross-entropy.

    Convention: ``alpha=None`` weights every class by 1; a scalar follows
    kornia (``1 - alpha`` for class 0, the background, and ``alpha`` for every
    other class); an array ``(C,)`` gives per-class weights. ``1 - p`` is
    computed as ``-expm1(log p)`` and the power with a zero gradient at
    ``1 - p = 0``, so value and gradient stay finite at saturated logits also
    for ``0 < gamma < 1`` (the exact limit of the gradient there is 0).
    ``mean`` is the mean over positions (kornia's ``mean`` divides by
    ``C`` times the number of positions; its ``sum`` equals ours).

    Args:
      logits: floating ``[..., C, ...]``, class axis at ``axis``
        (probabilities with ``from_logits=False``).
      targets: int ``[...]`` class indices in ``[0, C)``, or floating
        probabilities / one-hot of the shape of ``logits``.
      gamma: focusing parameter, ``>= 0``.
      alpha: ``None``, a scalar in ``[0, 1]``, or ``(C,)`` non-negative weights.
      from_logits: whether ``logits`` are logits.
      axis: the class axis (static).
      where: boolean mask broadcastable to the per-position shape.
      weights: per-position weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-position losses (the
      shape of ``logits`` without the class axis; kornia's ``none`` summed
      over its class axis).

    Raises:
      ValueError: targets of the wrong shape, labels out of range (eager;
        under ``jit`` they are clipped into ``[0, C - 1]``), negative
        ``gamma``, ``alpha`` out of range or of the wrong shape, unknown
        ``reduction``.
      TypeError: integer ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
      >>> float(jaxloss.focal_loss(logits, jnp.array([0, 1])))
      0.05508...
      >>> float(jaxloss.focal_loss(logits, jnp.array([0, 1]), alpha=0.25))
      0.01654...

    References:
      Lin et al., `Focal Loss for Dense Object Detection
      <https://arxiv.org/abs/1708.02002>`_, 2017. kornia
      ``kornia.losses.focal_loss(pred, target, alpha, gamma, reduction="sum")``
      (class axis at dim 1) equals ``reduction="sum"`` here.
    """
    _checks.check_reduction(reduction)
    inputs = prepare_class_inputs(logits, targets, axis=axis, where=where, poison_scores=False)
    compute = inputs.scores.dtype
    _checks.check_range(gamma, "gamma", low=0.0)
    g = _checks.hyperparameter(gamma, "gamma", compute)
    a = _focal_alpha(alpha, inputs.num_classes, compute)
    log_p = log_probabilities(inputs.scores, from_logits=from_logits)   # [..., C]
    if inputs.is_index:
        labels = inputs.targets
        log_pt = log_probability_of(inputs.scores, labels, from_logits=from_logits)
        modulator = safe_pow(-jnp.expm1(log_pt), g)
        values = -modulator * log_pt
        if a is not None:
            values = _gather_class(a, labels) * values
    else:
        modulator = safe_pow(-jnp.expm1(log_p), g)                       # [..., C]
        # x_times first: 0 * log p = 0 where a class is masked with -inf.
        terms = modulator * x_times(inputs.targets, log_p)
        if a is not None:
            terms = terms * _broadcast_class_axis(a, terms.shape)
        values = -jnp.sum(terms, axis=-1)
    values = inputs.poison(values)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=inputs.dtype)


@_builtin("classification")
def sigmoid_focal_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = 0.25,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Sigmoid (binary, per-element) focal loss, as in RetinaNet.

    .. math::
        \ell_i = \alpha_t\, (1 - p_t)^{\gamma}\, \mathrm{BCE}(x_i, t_i),\quad
        p_t = p t + (1 - p)(1 - t),\quad \alpha_t = \alpha t + (1 - \alpha)(1 - t)

    with :math:`p = \sigma(x)`. ``1 - p_t`` is computed as
    :math:`t\,\sigma(-x) + (1 - t)\,\sigma(x)` (no cancellation); value and
    gradient come from one ``exp(-|x|)`` per element with an analytic
    derivative, fused into one pass (a Python integer ``gamma`` is an integer
    power), and the gradient is finite at saturated logits also for
    ``0 < gamma < 1``. ``alpha=None`` disables the
    weighting (torchvision's ``alpha=-1``). For RetinaNet, use
    ``reduction="sum"`` and divide by the number of positive anchors.

    Args:
      logits: floating, any shape.
      targets: the same shape, in ``[0, 1]`` (float, or int/bool 0-1 labels).
      gamma: focusing parameter, ``>= 0``.
      alpha: weight of the positives in ``[0, 1]``, or ``None``.
      where: boolean mask broadcastable to the shape of ``logits``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``logits``.

    Raises:
      ValueError: shapes differ, negative ``gamma``, ``alpha`` outside
        ``[0, 1]``, unknown ``reduction``.
      TypeError: integer ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([2.0, -1.0])
      >>> float(jaxloss.sigmoid_focal_loss(logits, jnp.array([1.0, 0.0])))
      0.00872...

    References:
      Lin et al., `Focal Loss for Dense Object Detection
      <https://arxiv.org/abs/1708.02002>`_, 2017. Equivalent to
      ``torchvision.ops.sigmoid_focal_loss(inputs, targets, alpha, gamma,
      reduction)`` and optax ``sigmoid_focal_loss``.
    """
    _checks.check_reduction(reduction)
    x, t, dtype = _checks.elementwise_pair(logits, targets, predictions_name="logits")
    compute = x.dtype
    _checks.check_range(gamma, "gamma", low=0.0)
    # A Python number stays static: an integer gamma becomes an integer power in the kernel.
    g = (float(gamma) if isinstance(gamma, (int, float))
         else _checks.hyperparameter(gamma, "gamma", compute))
    a = None
    if alpha is not None:
        _checks.check_range(alpha, "alpha", low=0.0, high=1.0)
        a = _checks.hyperparameter(alpha, "alpha", compute)
    x, t = _reduce.mask_inputs(where, x, t)
    values = sigmoid_focal_values(x, t, gamma=g, alpha=a)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("classification")
def poly1_cross_entropy_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    epsilon: ArrayLike = 2.0,
    from_logits: bool = True,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Poly-1 loss: cross-entropy plus ``epsilon`` times ``1 - p_t``.

    .. math::
        \ell_i = -\sum_c t_{ic} \log p_{ic} + \epsilon \sum_c t_{ic} (1 - p_{ic})

    which for an index (or one-hot) target is
    :math:`-\log p_t + \epsilon (1 - p_t)`. ``1 - p`` is computed as
    ``-expm1(log p)``; a ``-inf`` logit in a class with zero target mass is
    finite in value and gradient.

    Args:
      logits: floating ``[..., C, ...]``, class axis at ``axis``
        (probabilities with ``from_logits=False``).
      targets: int ``[...]`` class indices in ``[0, C)``, or floating
        probabilities / one-hot of the shape of ``logits``.
      epsilon: coefficient of the first polynomial term (the paper uses 2 for
        ImageNet classification and -1 for detection); any real value.
      from_logits: whether ``logits`` are logits.
      axis: the class axis (static).
      where: boolean mask broadcastable to the per-position shape.
      weights: per-position weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-position losses (the
      shape of ``logits`` without the class axis).

    Raises:
      ValueError: targets of the wrong shape, labels out of range (eager;
        under ``jit`` they are clipped into ``[0, C - 1]``), unknown
        ``reduction``.
      TypeError: integer ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
      >>> float(jaxloss.poly1_cross_entropy_loss(logits, jnp.array([0, 1])))
      1.03466...

    References:
      Leng et al., `PolyLoss: A Polynomial Expansion Perspective of
      Classification Loss Functions <https://arxiv.org/abs/2204.12511>`_, 2022.
      Equivalent to ``optax.losses.poly_loss_cross_entropy(logits, labels,
      epsilon=epsilon)`` with one-hot ``labels``.
    """
    _checks.check_reduction(reduction)
    inputs = prepare_class_inputs(logits, targets, axis=axis, where=where, poison_scores=False)
    compute = inputs.scores.dtype
    eps = _checks.hyperparameter(epsilon, "epsilon", compute)
    log_p = log_probabilities(inputs.scores, from_logits=from_logits)   # [..., C]
    if inputs.is_index:
        log_pt = log_probability_of(inputs.scores, inputs.targets, from_logits=from_logits)
        values = -log_pt - eps * jnp.expm1(log_pt)
    else:
        t = inputs.targets
        cross_entropy = -jnp.sum(x_times(t, log_p), axis=-1)
        one_minus_pt = -jnp.sum(t * jnp.expm1(log_p), axis=-1)
        values = cross_entropy + eps * one_minus_pt
    values = inputs.poison(values)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=inputs.dtype)

"""The bi-tempered logistic loss (Amid et al. 2019) with the authors' gradient.

Conventions (see the package docstring): the class axis is ``axis`` (last by
default); integer targets are class indices (one-hot), floating targets are
per-class probabilities of the logits' shape; ``reduction="none"`` is per
position. Half-precision inputs are computed in float32 and returned in their
dtype.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._classes import label_one_hot, prepare_class_inputs
from jaxloss._numerics import x_times
from jaxloss.registry import _builtin

__all__ = ["bi_tempered_logistic_loss"]

# The authors' code adds 1e-10 to the labels inside log_t (finite at labels of 0).
_LABEL_OFFSET = 1e-10
# The normaliser's three methods, by the value of t2 (lax.switch's branch order).
_SOFTMAX, _FIXED_POINT, _BISECTION = 0, 1, 2


def _reciprocal_or_one(value: Array) -> Array:
    """``1 / value``, and 1 where ``value == 0`` (that branch is then not selected)."""
    return 1.0 / jnp.where(value == 0, jnp.ones_like(value), value)


def _exp_t(u: Array, t: Array) -> Array:
    """The tempered exponential ``max(1 + (1 - t) u, 0) ** (1 / (1 - t))`` for ``t != 1``."""
    return jnp.maximum(1.0 + (1.0 - t) * u, 0.0) ** _reciprocal_or_one(1.0 - t)


def _log_t_of_log(log_u: Array, t: Array) -> Array:
    """The tempered logarithm ``(u ** (1 - t) - 1) / (1 - t)`` of ``u = exp(log_u)``; ``log u``
    at ``t = 1``. From the log, so that ``u = 0`` (``log_u = -inf``) gives its finite or
    infinite limit, never NaN."""
    one_minus_t = 1.0 - t
    tempered = jnp.expm1(one_minus_t * log_u) * _reciprocal_or_one(one_minus_t)
    return jnp.where(t == 1, log_u, tempered)


def _fixed_point(shifted: Array, t2: Array, num_iters: int) -> Array:
    """The normaliser of ``shifted = a - max(a)`` for ``t2 > 1`` (the authors' fixed point)."""
    one_minus_t = 1.0 - t2

    def body(_: int, current: Array) -> Array:
        partition = jnp.sum(_exp_t(current, t2), axis=-1, keepdims=True)
        return shifted * partition**one_minus_t

    current = lax.fori_loop(0, num_iters, body, shifted)
    partition = jnp.sum(_exp_t(current, t2), axis=-1, keepdims=True)
    # -log_t(1 / Z, t2)
    return -jnp.expm1(-one_minus_t * jnp.log(partition)) * _reciprocal_or_one(one_minus_t)


def _bisection(shifted: Array, t2: Array, num_iters: int) -> Array:
    """The normaliser of ``shifted = a - max(a)`` for ``t2 < 1`` (the authors' bisection)."""
    one_minus_t = 1.0 - t2
    support = shifted > -_reciprocal_or_one(one_minus_t)
    effective = jnp.sum(support.astype(shifted.dtype), axis=-1, keepdims=True)
    lower = jnp.zeros_like(effective)
    upper = -jnp.expm1(-one_minus_t * jnp.log(effective)) * _reciprocal_or_one(one_minus_t)

    def body(_: int, bounds: tuple[Array, Array]) -> tuple[Array, Array]:
        lower, upper = bounds
        middle = (lower + upper) / 2.0
        below = jnp.sum(_exp_t(shifted - middle, t2), axis=-1, keepdims=True) < 1.0
        return jnp.where(below, lower, middle), jnp.where(below, middle, upper)

    lower, upper = lax.fori_loop(0, num_iters, body, (lower, upper))
    return (lower + upper) / 2.0


def _log_probabilities(a: Array, t2: Array, num_iters: int, method: int | None) -> Array:
    """``log`` of the tempered softmax of ``a`` ``[..., C]`` at ``t2`` (``method``: the
    normaliser's branch when ``t2`` is static, else chosen at run time)."""
    top = jnp.max(a, axis=-1, keepdims=True)
    shifted = a - top
    branches = [
        lambda s: jax.nn.logsumexp(s, axis=-1, keepdims=True),
        lambda s: _fixed_point(s, t2, num_iters),
        lambda s: _bisection(s, t2, num_iters),
    ]
    if method is None:
        index = jnp.where(t2 == 1, _SOFTMAX, jnp.where(t2 > 1, _FIXED_POINT, _BISECTION))
        normalizer = lax.switch(index, branches, shifted)
    else:
        normalizer = branches[method](shifted)
    u = shifted - normalizer
    one_minus_t = 1.0 - t2
    # log exp_t(u) = log(max(1 + (1 - t2) u, 0)) / (1 - t2); 0 outside the support (t2 < 1).
    tempered = jnp.log(jnp.maximum(1.0 + one_minus_t * u, 0.0)) * _reciprocal_or_one(one_minus_t)
    return jnp.where(t2 == 1, u, tempered)


def _forward(a: Array, y: Array, t1: Array, t2: Array, num_iters: int,
             method: int | None) -> tuple[Array, Array]:
    """Per-position loss ``[...]`` and log-probabilities ``[..., C]``."""
    log_p = _log_probabilities(a, t2, num_iters, method)
    log_y = jnp.log(y + _LABEL_OFFSET)
    two_minus_t1 = 2.0 - t1
    tempered = (x_times(y, _log_t_of_log(log_y, t1) - _log_t_of_log(log_p, t1))
                - (y**two_minus_t1 - jnp.exp(two_minus_t1 * log_p)) / two_minus_t1)
    # t1 = t2 = 1: the authors' cross-entropy (their epsilon 1e-15 is below float precision).
    cross_entropy = x_times(y, log_y - log_p)
    both_one = (t1 == 1) & (t2 == 1)
    return jnp.sum(jnp.where(both_one, cross_entropy, tempered), axis=-1), log_p


@partial(jax.custom_jvp, nondiff_argnums=(4, 5))
def _bi_tempered(a: Array, y: Array, t1: Array, t2: Array, num_iters: int,
                 method: int | None) -> Array:
    return _forward(a, y, t1, t2, num_iters, method)[0]


@_bi_tempered.defjvp
def _bi_tempered_jvp(num_iters: int, method: int | None, primals: tuple[Array, ...],
                     tangents: tuple[Array, ...]) -> tuple[Array, Array]:
    # The authors' gradient with respect to the activations (their bi_tempered_logistic_loss_bwd):
    # (p - y) p^(t2 - t1) minus the escort distribution p^t2 / sum p^t2 times its sum.
    # Labels and temperatures get no derivative, as in the authors' code.
    a, y, t1, t2 = primals
    a_dot = tangents[0]
    values, log_p = _forward(a, y, t1, t2, num_iters, method)
    p = jnp.exp(log_p)
    forget = jnp.where(t2 == t1, jnp.ones_like(p), jnp.exp((t2 - t1) * log_p))
    scaled = (p - y) * forget
    escorts = jnp.exp(t2 * log_p)
    escorts = escorts / jnp.sum(escorts, axis=-1, keepdims=True)
    derivative = scaled - escorts * jnp.sum(scaled, axis=-1, keepdims=True)
    return values, jnp.sum(derivative * a_dot, axis=-1)


def _method(t2: ArrayLike) -> int | None:
    """The normaliser's branch for a static ``t2``; None when ``t2`` is traced."""
    if _checks.is_traced(t2) or not isinstance(t2, (int, float)):
        return None
    return _SOFTMAX if t2 == 1 else _FIXED_POINT if t2 > 1 else _BISECTION


@_builtin("classification")
def bi_tempered_logistic_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    t1: ArrayLike = 1.0,
    t2: ArrayLike = 1.0,
    label_smoothing: ArrayLike = 0.0,
    num_iters: int = 5,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Bi-tempered logistic loss: a bounded loss over a heavy-tailed softmax, for noisy labels.

    With the tempered logarithm and exponential
    :math:`\log_t u = \frac{u^{1-t} - 1}{1 - t}`,
    :math:`\exp_t u = [1 + (1 - t) u]_+^{1/(1-t)}`, the tempered softmax
    :math:`\hat p_c = \exp_{t_2}(a_c - \lambda_{t_2}(a))` (:math:`\lambda` its
    normaliser) and labels :math:`y`:

    .. math::
        \ell = \sum_c \Big[ y_c \big(\log_{t_1} y_c - \log_{t_1} \hat p_c\big)
               - \frac{1}{2 - t_1}\big(y_c^{2 - t_1} - \hat p_c^{\,2 - t_1}\big) \Big]

    ``t1 < 1`` bounds the loss (robust to outliers far from the boundary),
    ``t2 > 1`` gives the softmax a heavier tail (robust to label noise near
    it); ``t1 = t2 = 1`` is the cross-entropy. The normaliser is found by
    ``num_iters`` fixed-point iterations for ``t2 > 1`` and bisection steps
    for ``t2 < 1`` (the authors' methods and iteration counts).

    Convention (the authors' JAX code): the gradient with respect to
    ``logits`` is the authors' closed form (``jax.custom_jvp``, so forward
    and reverse mode agree), not autodiff through the iterations; labels and
    temperatures receive no derivative. Label smoothing is theirs:
    :math:`y \leftarrow (1 - \frac{C}{C - 1}s)\,y + \frac{s}{C - 1}`. Inside
    :math:`\log_{t_1} y` the labels get the authors' ``+1e-10``. With
    ``t1 > t2`` a class outside the softmax's support (``t2 < 1``) or with
    an underflowing probability makes the gradient unbounded by definition.

    Args:
      logits: floating ``[..., C, ...]`` with the class axis at ``axis``.
      targets: int ``[...]`` class indices in ``[0, C)``, or floating
        per-class probabilities of the shape of ``logits``.
      t1: temperature of the log, in ``[0, 2)`` (``< 1``: bounded loss).
      t2: temperature of the exp, ``> 0`` (``> 1``: heavy tail).
      label_smoothing: ``s`` in ``[0, 1]``.
      num_iters: static number of normaliser iterations, ``>= 1``.
      axis: the class axis (static).
      where: boolean mask broadcastable to the per-position shape.
      weights: per-position weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-position losses.

    Raises:
      ValueError: targets of the wrong shape or out of range (eager; NaN
        under ``jit``), fewer than 2 classes, temperatures or
        ``label_smoothing`` out of range, an unknown ``reduction``.
      TypeError: integer ``logits``; ``num_iters`` not a static int.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[2.0, 0.5, -1.0]])
      >>> labels = jnp.array([0])
      >>> float(jaxloss.bi_tempered_logistic_loss(logits, labels))  # cross-entropy
      0.24131...
      >>> float(jaxloss.bi_tempered_logistic_loss(logits, labels, t1=0.8, t2=1.2))
      0.21314...

    References:
      Amid et al., `Robust Bi-Tempered Logistic Loss Based on Bregman
      Divergences <https://arxiv.org/abs/1906.03361>`_, NeurIPS 2019.
      Equivalent to the authors' ``bi_tempered_logistic_loss(activations,
      one_hot_labels, t1, t2, label_smoothing, num_iters)``
      (google/bi-tempered-loss ``jax/loss.py``), value and gradient.
    """
    _checks.check_reduction(reduction)
    num_iters = _checks.static_int(num_iters, "num_iters", low=1)
    inputs = prepare_class_inputs(logits, targets, axis=axis, where=where, min_classes=2)
    compute = inputs.scores.dtype
    num_classes = inputs.num_classes
    _checks.check_range(t1, "t1", low=0.0, high=2.0, high_inclusive=False)
    _checks.check_range(t2, "t2", low=0.0, low_inclusive=False)
    _checks.check_range(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    method = _method(t2)
    t1 = _checks.hyperparameter(t1, "t1", compute)
    t2 = _checks.hyperparameter(t2, "t2", compute)
    smoothing = _checks.hyperparameter(label_smoothing, "label_smoothing", compute)
    y = inputs.targets
    if inputs.is_index:
        y, _ = label_one_hot(y, num_classes, compute)   # NaN rows at out-of-range labels
    y = (1.0 - num_classes / (num_classes - 1) * smoothing) * y + smoothing / (num_classes - 1)
    values = _bi_tempered(inputs.scores, y, t1, t2, num_iters, method)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=inputs.dtype)

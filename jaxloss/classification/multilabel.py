"""Multi-label and binary losses with class imbalance: asymmetric loss, balanced BCE.

Conventions: elementwise losses on logits; targets have the logits' shape,
floating in ``[0, 1]`` (soft labels allowed) or integer/boolean 0-1 labels;
``reduction="none"`` is elementwise. Half-precision inputs are computed in
float32 and returned in their dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import safe_div, safe_pow
from jaxloss.registry import _builtin

__all__ = ["asymmetric_loss", "balanced_binary_cross_entropy_loss"]


def _focusing(base: Array, gamma: Array) -> Array:
    """``base ** gamma`` for ``base`` in ``[0, 1]``, ``gamma >= 0``: ``0 ** 0 = 1`` (torch's
    ``pow``), and a zero gradient at ``base = 0`` (finite for ``0 < gamma < 1``)."""
    return jnp.where((base == 0) & (gamma == 0), jnp.ones_like(base), safe_pow(base, gamma))


@_builtin("classification")
def asymmetric_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    gamma_neg: ArrayLike = 4.0,
    gamma_pos: ArrayLike = 1.0,
    clip: ArrayLike = 0.05,
    eps: ArrayLike = 1e-8,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Asymmetric loss (ASL) for multi-label classification, elementwise.

    .. math::
        \ell = -\big[y\,(1 - p)^{\gamma_+} \log p
               + (1 - y)\, p_m^{\gamma_-} \log(1 - p_m)\big],
        \qquad p = \sigma(x),\quad p_m = \max(p - m, 0)

    with the probability margin :math:`m` (``clip``) that discards easy
    negatives outright and a stronger focusing :math:`\gamma_-` on the
    negatives than :math:`\gamma_+` on the positives. For soft targets the
    focusing weight is :math:`(1 - p_t)^{\gamma_t}` with
    :math:`p_t = y p + (1 - y)(1 - p_m)` and
    :math:`\gamma_t = y \gamma_+ + (1 - y) \gamma_-`, as in the authors' code.

    Convention (timm ``AsymmetricLossMultiLabel``): each log's argument is
    clamped below at ``eps``; the focusing weight carries gradient
    (``disable_torch_grad_focal_loss=False``); ``0 ** 0 = 1``. ``sum`` is
    timm's value; ``mean`` divides it by the number of elements.

    Args:
      logits: floating, any shape (typically ``(N, C)``).
      targets: the same shape, in ``[0, 1]``.
      gamma_neg: focusing exponent of the negatives, ``>= 0``.
      gamma_pos: focusing exponent of the positives, ``>= 0``.
      clip: probability margin ``m`` in ``[0, 1]`` (0 disables it).
      eps: floor of the probabilities inside the logs, ``> 0``.
      where: boolean mask broadcastable to the shape of ``logits``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``logits``.

    Raises:
      ValueError: shapes differ, negative exponents, ``clip`` outside
        ``[0, 1]``, ``eps <= 0``, an unknown ``reduction``.
      TypeError: integer ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[0.0, -3.0]])
      >>> targets = jnp.array([[1.0, 0.0]])
      >>> # (1 - 0.5) log 2 for the positive; sigma(-3) < clip: the negative costs 0
      >>> float(jaxloss.asymmetric_loss(logits, targets, reduction="sum"))
      0.34657...

    References:
      Ridnik et al., `Asymmetric Loss For Multi-Label Classification
      <https://arxiv.org/abs/2009.14119>`_, ICCV 2021. timm
      ``AsymmetricLossMultiLabel(gamma_neg, gamma_pos, clip, eps)(x, y)``
      (``timm/loss/asymmetric_loss.py``) equals ``reduction="sum"``.
    """
    _checks.check_reduction(reduction)
    x, y, dtype = _checks.elementwise_pair(logits, targets, predictions_name="logits")
    compute = x.dtype
    for value, name in ((gamma_neg, "gamma_neg"), (gamma_pos, "gamma_pos")):
        _checks.check_range(value, name, low=0.0)
    _checks.check_range(clip, "clip", low=0.0, high=1.0)
    _checks.check_range(eps, "eps", low=0.0, low_inclusive=False)
    gamma_neg = _checks.hyperparameter(gamma_neg, "gamma_neg", compute)
    gamma_pos = _checks.hyperparameter(gamma_pos, "gamma_pos", compute)
    clip = _checks.hyperparameter(clip, "clip", compute)
    eps = _checks.hyperparameter(eps, "eps", compute)
    x, y = _reduce.mask_inputs(where, x, y)
    p = jax.nn.sigmoid(x)
    # 1 - sigma(x) as sigma(-x): no cancellation for confident positives.
    p_neg = jnp.where(clip > 0, jnp.minimum(jax.nn.sigmoid(-x) + clip, 1.0), jax.nn.sigmoid(-x))
    log_pos = jnp.log(jnp.maximum(p, eps))
    log_neg = jnp.log(jnp.maximum(p_neg, eps))
    # 1 - p_t, p_t = y p + (1 - y) p_neg, with sigma(-x) for 1 - p (no cancellation).
    one_minus_p_t = y * jax.nn.sigmoid(-x) + (1 - y) * (1 - p_neg)
    gamma = gamma_pos * y + gamma_neg * (1 - y)
    values = -(y * log_pos + (1 - y) * log_neg) * _focusing(one_minus_p_t, gamma)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("classification")
def balanced_binary_cross_entropy_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Class-balanced binary cross-entropy (HED): each image's positives and negatives
    weighted by the other side's share.

    .. math::
        \ell_{ij} = -\big[\beta_i\, t_{ij} \log \sigma(x_{ij})
                    + (1 - \beta_i)(1 - t_{ij}) \log(1 - \sigma(x_{ij}))\big],
        \qquad \beta_i = \frac{|Y_i^-|}{|Y_i|} = \frac{1}{|Y_i|}\sum_j (1 - t_{ij})

    so the rare side of each image (edges in an edge map, a small
    foreground) weighs as much in total as the frequent one. The logs are
    the stable softplus forms (finite at any logits).

    Convention: :math:`\beta` is computed per image (over every axis but the
    first) from the targets, over the elements ``where`` selects (soft
    targets count fractionally); it carries no gradient. An image with
    nothing selected has :math:`\beta = 0`. ``weights`` multiply the
    elementwise loss and do not change :math:`\beta`.

    Args:
      logits: floating ``[N, ...]`` (e.g. ``(N, H, W, 1)`` edge maps), rank >= 2.
      targets: the same shape, in ``[0, 1]``.
      where: boolean mask broadcastable to the shape of ``logits``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``logits``.

    Raises:
      ValueError: shapes differ, rank below 2, an unknown ``reduction``.
      TypeError: integer ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.zeros((1, 4))
      >>> targets = jnp.array([[1.0, 0.0, 0.0, 0.0]])  # beta = 3/4
      >>> jaxloss.balanced_binary_cross_entropy_loss(logits, targets, reduction="none")
      Array([[0.5198..., 0.1732..., 0.1732..., 0.1732...]], dtype=float32)

    References:
      Xie & Tu, `Holistically-Nested Edge Detection
      <https://arxiv.org/abs/1504.06375>`_, ICCV 2015, eq. 2. pytorch-toolbelt
      ``balanced_binary_cross_entropy_with_logits`` is the same weighting
      with one :math:`\beta` for the whole batch (``reduction="none"``).
    """
    _checks.check_reduction(reduction)
    x, t, dtype = _checks.elementwise_pair(logits, targets, predictions_name="logits")
    _checks.check_rank(x, "logits", min_rank=2)
    x, t = _reduce.mask_inputs(where, x, t)
    selected = _reduce.align_mask(where, x.shape, "where")
    selected = jnp.ones_like(x) if selected is None else selected.astype(x.dtype)
    image_axes = tuple(range(1, x.ndim))
    negatives = jnp.sum(selected * (1 - t), axis=image_axes, keepdims=True)
    beta = safe_div(negatives, jnp.sum(selected, axis=image_axes, keepdims=True))
    # -log sigma(x) = softplus(-x), -log(1 - sigma(x)) = softplus(x): overflow-free.
    values = beta * t * jax.nn.softplus(-x) + (1 - beta) * (1 - t) * jax.nn.softplus(x)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)

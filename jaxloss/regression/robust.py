"""Robust regression losses: Charbonnier, Cauchy, Geman-McClure, Welsch and Barron's
general robust loss (Barron, "A General and Adaptive Robust Loss Function", CVPR 2019).

Conventions: ``predictions`` and ``targets`` of the same shape; the unreduced
loss has that shape; ``scale = c`` applies the closed forms to ``r / c``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss.registry import _builtin
from jaxloss.regression._common import (
    EXP_MAX,
    F32_EPS,
    elementwise_hyperparameter,
    exprel,
    residual,
    scaled_square,
)

__all__ = [
    "cauchy_loss",
    "charbonnier_loss",
    "geman_mcclure_loss",
    "robust_loss",
    "welsch_loss",
]


# --------------------------------------------------------------------------------------
# Robust losses (Barron 2019 and its special cases).
# --------------------------------------------------------------------------------------


@_builtin("regression")
def charbonnier_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    eps: ArrayLike = 1e-3,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Charbonnier (pseudo-Huber, L1-L2) loss: a smooth L1 loss.

    .. math:: \ell_i = \sqrt{r_i^2 + \epsilon^2} - \epsilon, \qquad r_i = p_i - t_i

    Convention: ``eps = 1e-3`` by default (the image-restoration
    convention); kornia's ``charbonnier_loss`` is ``eps = 1``. It equals
    ``eps * robust_loss(..., alpha=1, scale=eps)``. Evaluated as
    ``r^2 / (sqrt(r^2 + eps^2) + eps)`` for ``|r| <= eps`` and
    ``|r| (sqrt(1 + (eps/r)^2) - eps/|r|)`` beyond, which neither cancels for
    small residuals nor overflows for huge ones; ``eps = 0`` gives ``|r|``
    with a 0 gradient at ``r = 0``.

    Args:
      predictions: floating array of any shape.
      targets: floating array of the same shape.
      eps: ``>= 0``; a Python float or a traced JAX scalar.
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, ``eps < 0`` (when concrete), or
        ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.charbonnier_loss(jnp.array([0.0, 3.0]), jnp.array([0.0, 0.0]), eps=1.0))
      1.08113...

    References:
      Charbonnier et al., `Two deterministic half-quadratic regularization
      algorithms for computed imaging <https://doi.org/10.1109/ICIP.1994.413553>`_,
      1994; Barron, `A General and Adaptive Robust Loss Function
      <https://arxiv.org/abs/1701.03077>`_, 2019 (alpha = 1). With ``eps=1``
      equivalent to ``kornia.losses.charbonnier_loss(img1, img2)``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(eps, "eps", low=0.0)
    r, dtype = residual(predictions, targets, where)
    eps = _checks.hyperparameter(eps, "eps", r.dtype)
    abs_r = jnp.abs(r)
    # Written as |r| g with g in [0, 1] computed from a ratio in [0, 1], so that nothing is
    # squared that could overflow or flush to 0, and no denominator is below sqrt(tiny)
    # (the derivative of a quotient divides by its square): finite gradients for any r and
    # eps >= 0, also r = eps = 0. Double where: each branch sees only its own inputs.
    floor = math.sqrt(float(jnp.finfo(r.dtype).tiny))
    inner = abs_r <= eps
    # |r| <= eps: g = u / (sqrt(u^2 + 1) + 1), u = |r| / eps (sqrt(r^2 + eps^2) - eps rationalised).
    u = jnp.where(inner, abs_r, 0.0) / jnp.where(inner, jnp.maximum(eps, floor), 1.0)
    g_inner = u / (jnp.sqrt(jnp.square(u) + 1.0) + 1.0)
    # |r| > eps: g = sqrt(1 + w^2) - w, w = eps / |r| < 1 (g >= sqrt(2) - 1: no cancellation).
    w = jnp.where(inner, 0.0, eps) / jnp.where(inner, 1.0, jnp.maximum(abs_r, floor))
    g_outer = jnp.sqrt(1.0 + jnp.square(w)) - w
    values = abs_r * jnp.where(inner, g_inner, g_outer)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("regression")
def cauchy_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    scale: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Cauchy (Lorentzian) loss: Barron's robust loss at ``alpha = 0``.

    .. math:: \ell_i = \log\left(\tfrac12 (r_i / c)^2 + 1\right), \qquad r_i = p_i - t_i

    Args:
      predictions: floating array of any shape.
      targets: floating array of the same shape.
      scale: ``c > 0``, a Python float or a traced JAX array (scalar or
        broadcastable to the shape of ``predictions``).
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, ``scale <= 0`` (when concrete), or
        ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.cauchy_loss(jnp.array([0.0, 2.0]), jnp.array([0.0, 0.0])))
      0.54930...

    References:
      Barron, `A General and Adaptive Robust Loss Function
      <https://arxiv.org/abs/1701.03077>`_, 2019. With ``scale=1`` equivalent
      to ``kornia.losses.cauchy_loss(img1, img2)``; otherwise to it on
      ``img1 / c, img2 / c``.
    """
    _checks.check_reduction(reduction)
    r, dtype = residual(predictions, targets, where)
    x = scaled_square(r, scale)
    values = jnp.log1p(0.5 * x)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("regression")
def geman_mcclure_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    scale: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Geman-McClure loss: Barron's robust loss at ``alpha = -2``, bounded by 2.

    .. math:: \ell_i = \frac{2 (r_i / c)^2}{(r_i / c)^2 + 4}, \qquad r_i = p_i - t_i

    Args:
      predictions: floating array of any shape.
      targets: floating array of the same shape.
      scale: ``c > 0``, a Python float or a traced JAX array (scalar or
        broadcastable to the shape of ``predictions``).
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, ``scale <= 0`` (when concrete), or
        ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.geman_mcclure_loss(jnp.array([2.0]), jnp.array([0.0]), scale=2.0))
      0.4

    References:
      Geman and McClure, Bayesian image analysis: an application to single
      photon emission tomography, 1985; Barron, `A General and Adaptive Robust
      Loss Function <https://arxiv.org/abs/1701.03077>`_, 2019. With
      ``scale=1`` equivalent to ``kornia.losses.geman_mcclure_loss(img1, img2)``;
      otherwise to it on ``img1 / c, img2 / c``.
    """
    _checks.check_reduction(reduction)
    r, dtype = residual(predictions, targets, where)
    x = scaled_square(r, scale)
    values = 2.0 * x / (x + 4.0)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("regression")
def welsch_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    scale: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Welsch (Leclerc) loss: Barron's robust loss at ``alpha = -inf``, bounded by 1.

    .. math:: \ell_i = 1 - \exp\left(-\tfrac12 (r_i / c)^2\right), \qquad r_i = p_i - t_i

    Convention: evaluated as ``-expm1(-x/2)``, exact for small residuals.

    Args:
      predictions: floating array of any shape.
      targets: floating array of the same shape.
      scale: ``c > 0``, a Python float or a traced JAX array (scalar or
        broadcastable to the shape of ``predictions``).
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, ``scale <= 0`` (when concrete), or
        ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.welsch_loss(jnp.array([2.0]), jnp.array([0.0])))
      0.86466...

    References:
      Dennis and Welsch, `Techniques for nonlinear least squares and robust
      regression <https://doi.org/10.1080/03610917808812083>`_, 1978; Barron,
      `A General and Adaptive Robust Loss Function
      <https://arxiv.org/abs/1701.03077>`_, 2019. With ``scale=1`` equivalent
      to ``kornia.losses.welsch_loss(img1, img2)``; otherwise to it on
      ``img1 / c, img2 / c``.
    """
    _checks.check_reduction(reduction)
    r, dtype = residual(predictions, targets, where)
    x = scaled_square(r, scale)
    values = -jnp.expm1(-0.5 * x)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("regression")
def robust_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike = 1.0,
    scale: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Barron's general robust loss, with a shape ``alpha`` that can be learned.

    .. math::

        \ell_i = \frac{|\alpha - 2|}{\alpha}\left(\left(\frac{(r_i/c)^2}{|\alpha - 2|}
                 + 1\right)^{\alpha/2} - 1\right), \qquad r_i = p_i - t_i

    and its limits: ``alpha = 2`` is ``x/2`` (L2), ``alpha = 0`` is
    ``log(x/2 + 1)`` (Cauchy), ``alpha = -inf`` is ``1 - exp(-x/2)`` (Welsch)
    and ``alpha = +inf`` is ``exp(x/2) - 1``, with ``x = (r/c)^2``; ``alpha = 1``
    is Charbonnier, ``alpha = -2`` Geman-McClure.

    Convention: ``alpha`` and ``scale`` may be traced (learned, scheduled) and
    the gradients with respect to both are finite everywhere, including at
    ``r = 0`` and at the special values of ``alpha``. ``alpha`` in
    ``{2, -inf, +inf}`` selects its limit with a double ``where`` (the
    derivative in ``alpha`` is 0 exactly there; at ``alpha = 2`` the true one
    is unbounded). Otherwise the loss is evaluated as
    ``b/2 log1p(x/b) exprel(alpha/2 log1p(x/b))`` with ``b = max(|alpha - 2|,
    eps_f32)`` (Barron's floor) and ``exprel(z) = expm1(z)/z``, which equals
    eq. 1 but never divides by ``alpha``: ``alpha = 0`` gives the Cauchy limit
    exactly, with the true, finite derivative in ``alpha``. As in Barron's
    code the exponent is clamped at 43, so losses above ``e^43 ~ 4.7e18``
    (huge residuals at large ``alpha``) are flat instead of overflowing.

    Args:
      predictions: floating array of any shape.
      targets: floating array of the same shape.
      alpha: shape parameter, any real value or ``+-inf``; a Python float or a
        JAX array (scalar, or broadcastable to the shape of ``predictions``
        for a per-element shape), traced and differentiable.
      scale: ``c > 0``, a Python float or a JAX array (scalar or
        broadcastable to the shape of ``predictions``), differentiable.
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, ``alpha`` is NaN or ``scale <= 0`` (when
        concrete), ``alpha`` or ``scale`` do not broadcast to the shape of
        ``predictions``, or ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p, t = jnp.array([3.0]), jnp.array([0.0])
      >>> float(jaxloss.robust_loss(p, t, alpha=1.0))  # sqrt(9 + 1) - 1
      2.16227...
      >>> float(jaxloss.robust_loss(p, t, alpha=2.0))  # 9 / 2
      4.5

    References:
      Barron, `A General and Adaptive Robust Loss Function
      <https://arxiv.org/abs/1701.03077>`_, CVPR 2019, eq. 1. Equivalent to
      ``robust_loss_pytorch.general.lossfun(x, alpha, scale)`` with
      ``x = predictions - targets``; kornia's ``charbonnier_loss``,
      ``cauchy_loss``, ``geman_mcclure_loss`` and ``welsch_loss`` are
      ``alpha = 1, 0, -2, -inf`` at ``scale = 1``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(alpha, "alpha")  # any real or +-inf; rejects NaN
    r, dtype = residual(predictions, targets, where)
    x = scaled_square(r, scale)
    alpha = elementwise_hyperparameter(alpha, "alpha", r)

    is_two = alpha == 2.0
    is_neginf = jnp.isneginf(alpha)
    is_posinf = jnp.isposinf(alpha)
    special = is_two | is_neginf | is_posinf
    # Double where: the general form is fed alpha = 1 where a limit is selected, so that
    # neither its value nor its gradient can be inf/NaN there.
    a = jnp.where(special, jnp.ones_like(alpha), alpha)
    b = jnp.maximum(jnp.abs(a - 2.0), F32_EPS)
    log_term = jnp.log1p(x / b)
    z = 0.5 * a * log_term
    # Barron's clamp of the exponent (only reachable for alpha > ~1): there the loss is
    # (b / a) expm1(43); a double where keeps exprel away from the overflowing z.
    clamped = z > EXP_MAX
    a_clamped = jnp.where(clamped, a, jnp.ones_like(a))
    z = jnp.where(clamped, jnp.zeros_like(z), z)
    # (b / a) expm1(z) == (b / 2) log_term exprel(z): no division by alpha, exact at alpha = 0.
    general = jnp.where(clamped, b / a_clamped * jnp.expm1(EXP_MAX),
                        0.5 * b * log_term * exprel(z))

    half_x = 0.5 * x
    values = jnp.where(
            is_two, half_x,
            jnp.where(is_neginf, -jnp.expm1(-half_x),
                      jnp.where(is_posinf, jnp.expm1(jnp.minimum(half_x, EXP_MAX)), general)))
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)



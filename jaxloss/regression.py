"""Per-element regression and robust losses.

Conventions: ``predictions`` and ``targets`` are floating arrays of exactly
the same shape (no silent broadcasting); the unreduced loss
(``reduction="none"``) has that shape; ``reduction="mean"`` is the mean over
all elements, or the weighted mean over the entries ``where`` selects.
Half-precision inputs are computed in float32 and returned in their dtype.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import abs_zero_grad
from jaxloss.registry import _builtin

__all__ = [
    "cauchy_loss",
    "charbonnier_loss",
    "gaussian_nll_loss",
    "geman_mcclure_loss",
    "huber_loss",
    "log_cosh_loss",
    "mae_loss",
    "mse_loss",
    "quantile_loss",
    "robust_loss",
    "smooth_l1_loss",
    "welsch_loss",
]


@_builtin("regression")
def mse_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Mean squared error.

    .. math:: \ell_i = (p_i - t_i)^2

    Args:
      predictions: floating array of any shape.
      targets: floating array of the same shape.
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, or ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.mse_loss(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0])))
      2.5

    References:
      Equivalent to ``torch.nn.functional.mse_loss(input, target)``.
    """
    _checks.check_reduction(reduction)
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    p, t = _reduce.mask_inputs(where, p, t)
    values = jnp.square(p - t)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("regression")
def mae_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Mean absolute error (L1 loss).

    .. math:: \ell_i = |p_i - t_i|

    The gradient at ``p == t`` is 0, as in torch.

    Args:
      predictions: floating array of any shape.
      targets: floating array of the same shape.
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, or ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.mae_loss(jnp.array([1.0, -2.0]), jnp.array([0.0, 0.0])))
      1.5

    References:
      Equivalent to ``torch.nn.functional.l1_loss(input, target)``.
    """
    _checks.check_reduction(reduction)
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    p, t = _reduce.mask_inputs(where, p, t)
    values = abs_zero_grad(p - t)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


# --------------------------------------------------------------------------------------
# Shared helpers (private).
# --------------------------------------------------------------------------------------

# Barron clamps the exponent of his expm1 at 43 so that the loss of huge residuals at
# large alpha stays finite (e^43 ~ 4.7e18); beyond it the loss is flat. Same here.
_EXP_MAX = 43.0
# |alpha - 2| is floored at float32's machine epsilon before dividing by it, as Barron does.
_F32_EPS = float(jnp.finfo(jnp.float32).eps)
# Below this |z| the relative exponential exprel(z) = expm1(z) / z is its Taylor series;
# above it expm1(z) / z and its derivative lose at most ~1e-7 relative to cancellation.
_EXPREL_SERIES = 0.5


def _residual(predictions: ArrayLike, targets: ArrayLike, where: ArrayLike | None,
              ) -> tuple[Array, jnp.dtype]:
    """``predictions - targets`` (masked entries 0) in the compute dtype, and the result dtype."""
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    p, t = _reduce.mask_inputs(where, p, t)
    return p - t, dtype


def _elementwise_hyperparameter(value: ArrayLike, name: str, like: Array) -> Array:
    """A scalar or per-element hyperparameter broadcast explicitly to ``like``'s shape."""
    array = _checks.hyperparameter(value, name, like.dtype, scalar=False)
    return _checks.broadcast_mask(array, like.shape, name)


def _scaled_square(residual: Array, scale: ArrayLike) -> Array:
    """``(r / c)^2`` with ``scale = c > 0`` (scalar or broadcastable to ``r``)."""
    _checks.check_range(scale, "scale", low=0.0, low_inclusive=False)
    c = _elementwise_hyperparameter(scale, "scale", residual)
    return jnp.square(residual / c)


def _exprel(z: Array) -> Array:
    """``expm1(z) / z`` (1 at ``z = 0``), accurate with an accurate derivative everywhere.

    Near 0 the quotient and, worse, its autodiff derivative ``e^z/z - expm1(z)/z^2``
    cancel catastrophically, so there it is the Taylor series sum_k z^k / (k+1)!
    (11 terms: truncation error < 1e-12 for |z| < 0.5). Double-where: each branch
    only ever sees inputs in its own range.
    """
    small = jnp.abs(z) < _EXPREL_SERIES
    z_small = jnp.where(small, z, jnp.zeros_like(z))
    z_large = jnp.where(small, jnp.ones_like(z), z)
    series = jnp.ones_like(z)
    for k in range(12, 1, -1):  # Horner: 1 + z/2 (1 + z/3 (1 + ...)); static, 11 terms
        series = 1.0 + z_small * series / k
    return jnp.where(small, series, jnp.expm1(z_large) / z_large)


# --------------------------------------------------------------------------------------
# Huber family.
# --------------------------------------------------------------------------------------


@_builtin("regression")
def huber_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    delta: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Huber loss: quadratic for small residuals, linear with slope ``delta`` beyond.

    .. math::

        \ell_i = \begin{cases} \tfrac12 r_i^2 & |r_i| < \delta \\
                 \delta\,(|r_i| - \tfrac12 \delta) & \text{otherwise} \end{cases},
        \qquad r_i = p_i - t_i

    Convention: torch's ``huber_loss`` (not divided by ``delta``; see
    :func:`smooth_l1_loss` for the form divided by ``beta``).

    Args:
      predictions: floating array of any shape.
      targets: floating array of the same shape.
      delta: threshold between the quadratic and the linear part, ``> 0``; a
        Python float or a traced JAX scalar (differentiable).
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, ``delta <= 0`` (when concrete), or
        ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.huber_loss(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0])))
      1.3125

    References:
      Huber, `Robust Estimation of a Location Parameter
      <https://doi.org/10.1214/aoms/1177703732>`_, 1964. Equivalent to
      ``torch.nn.functional.huber_loss(input, target, delta=delta)`` and
      ``optax.losses.huber_loss(predictions, targets, delta)``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(delta, "delta", low=0.0, low_inclusive=False)
    r, dtype = _residual(predictions, targets, where)
    delta = _checks.hyperparameter(delta, "delta", r.dtype)
    # jnp.abs is safe here: at r = 0, q = 0 and d/dr [q (|r| - q / 2)] = 0 whatever |r|'s
    # derivative there; it fuses ~20% faster on CPU than max(r, -r).
    abs_r = jnp.abs(r)
    # q (|r| - q / 2) with q = min(|r|, delta) is 0.5 r^2 inside and delta (|r| - delta / 2)
    # outside, without a select: XLA fuses it with the reduction (0 bytes of temp memory).
    clipped = jnp.minimum(abs_r, delta)
    values = clipped * (abs_r - 0.5 * clipped)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("regression")
def smooth_l1_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    beta: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Smooth L1 loss: the Huber loss divided by ``beta``; ``beta = 0`` is the L1 loss.

    .. math::

        \ell_i = \begin{cases} \tfrac{1}{2\beta} r_i^2 & |r_i| < \beta \\
                 |r_i| - \tfrac12 \beta & \text{otherwise} \end{cases},
        \qquad r_i = p_i - t_i

    Convention: torch's ``smooth_l1_loss`` (Fast R-CNN's box loss at
    ``beta = 1``). ``beta = 0`` gives :func:`mae_loss` with finite gradients
    (the division by ``beta`` is never evaluated there), also when ``beta`` is
    traced.

    Args:
      predictions: floating array of any shape.
      targets: floating array of the same shape.
      beta: threshold, ``>= 0``; a Python float or a traced JAX scalar.
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, ``beta < 0`` (when concrete), or
        ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.smooth_l1_loss(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]), beta=2.0))
      1.03125

    References:
      Girshick, `Fast R-CNN <https://arxiv.org/abs/1504.08083>`_, 2015.
      Equivalent to ``torch.nn.functional.smooth_l1_loss(input, target, beta=beta)``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(beta, "beta", low=0.0)
    r, dtype = _residual(predictions, targets, where)
    beta = _checks.hyperparameter(beta, "beta", r.dtype)
    abs_r = abs_zero_grad(r)
    # q (|r| - q / 2) / beta with q = min(|r|, beta) is r^2 / (2 beta) inside and
    # |r| - beta / 2 outside, with no elementwise select (it fuses with the reduction).
    # beta = 0 takes |r| - beta / 2 through a scalar where (double where on the division).
    positive = beta > 0
    safe_beta = jnp.where(positive, beta, jnp.ones_like(beta))
    clipped = jnp.minimum(abs_r, beta)
    values = jnp.where(positive, clipped * (abs_r - 0.5 * clipped) / safe_beta,
                       abs_r - 0.5 * beta)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("regression")
def log_cosh_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Log-cosh loss: about ``r^2 / 2`` for small and ``|r| - log 2`` for large residuals.

    .. math:: \ell_i = \log\cosh(p_i - t_i)

    Convention: evaluated as ``log1p(2 sinh(r/2)^2)`` for ``|r| < 1`` (no
    cancellation for tiny residuals) and ``|r| + log1p(exp(-2|r|)) - log 2``
    otherwise (no overflow for huge residuals); the gradient is ``tanh(r)``.

    Args:
      predictions: floating array of any shape.
      targets: floating array of the same shape.
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, or ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.log_cosh_loss(jnp.array([0.0, 1.0]), jnp.array([0.0, 0.0])))
      0.21689...

    References:
      Chen et al., `Log Hyperbolic Cosine Loss Improves Variational
      Auto-Encoder <https://openreview.net/forum?id=rkglvsC9Ym>`_, 2019.
      Equivalent to ``optax.losses.log_cosh(predictions, targets)``.
    """
    _checks.check_reduction(reduction)
    r, dtype = _residual(predictions, targets, where)
    abs_r = jnp.abs(r)
    small = abs_r < 1.0
    r_small = jnp.where(small, r, jnp.zeros_like(r))
    r_large = jnp.where(small, jnp.ones_like(abs_r), abs_r)
    # cosh(r) = 1 + 2 sinh(r/2)^2: exact for small r, where log(cosh(r)) ~ r^2/2.
    near = jnp.log1p(2.0 * jnp.square(jnp.sinh(0.5 * r_small)))
    # log(cosh(r)) = |r| + log(1 + exp(-2|r|)) - log(2): never overflows.
    far = r_large + jnp.log1p(jnp.exp(-2.0 * r_large)) - jnp.log(2.0).astype(r.dtype)
    values = jnp.where(small, near, far)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


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
    r, dtype = _residual(predictions, targets, where)
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
    r, dtype = _residual(predictions, targets, where)
    x = _scaled_square(r, scale)
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
    r, dtype = _residual(predictions, targets, where)
    x = _scaled_square(r, scale)
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
    r, dtype = _residual(predictions, targets, where)
    x = _scaled_square(r, scale)
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
    r, dtype = _residual(predictions, targets, where)
    x = _scaled_square(r, scale)
    alpha = _elementwise_hyperparameter(alpha, "alpha", r)

    is_two = alpha == 2.0
    is_neginf = jnp.isneginf(alpha)
    is_posinf = jnp.isposinf(alpha)
    special = is_two | is_neginf | is_posinf
    # Double where: the general form is fed alpha = 1 where a limit is selected, so that
    # neither its value nor its gradient can be inf/NaN there.
    a = jnp.where(special, jnp.ones_like(alpha), alpha)
    b = jnp.maximum(jnp.abs(a - 2.0), _F32_EPS)
    log_term = jnp.log1p(x / b)
    z = 0.5 * a * log_term
    # Barron's clamp of the exponent (only reachable for alpha > ~1): there the loss is
    # (b / a) expm1(43); a double where keeps exprel away from the overflowing z.
    clamped = z > _EXP_MAX
    a_clamped = jnp.where(clamped, a, jnp.ones_like(a))
    z = jnp.where(clamped, jnp.zeros_like(z), z)
    # (b / a) expm1(z) == (b / 2) log_term exprel(z): no division by alpha, exact at alpha = 0.
    general = jnp.where(clamped, b / a_clamped * jnp.expm1(_EXP_MAX),
                        0.5 * b * log_term * _exprel(z))

    half_x = 0.5 * x
    values = jnp.where(
            is_two, half_x,
            jnp.where(is_neginf, -jnp.expm1(-half_x),
                      jnp.where(is_posinf, jnp.expm1(jnp.minimum(half_x, _EXP_MAX)), general)))
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


# --------------------------------------------------------------------------------------
# Quantile and likelihood losses.
# --------------------------------------------------------------------------------------


@_builtin("regression")
def quantile_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    tau: ArrayLike = 0.5,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Quantile (pinball) loss: its minimiser is the ``tau``-quantile of the targets.

    .. math:: \ell_i = \max(\tau r_i, (\tau - 1) r_i), \qquad r_i = t_i - p_i

    Convention: the residual is target minus prediction, so predictions below
    the target cost ``tau`` per unit; ``tau = 0.5`` is half the L1 loss.

    Args:
      predictions: floating array of any shape.
      targets: floating array of the same shape.
      tau: quantile in ``[0, 1]``; a Python float or a traced JAX scalar.
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, ``tau`` outside ``[0, 1]`` (when concrete),
        or ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p, t = jnp.array([1.0, 3.0]), jnp.array([2.0, 2.0])
      >>> float(jaxloss.quantile_loss(p, t, tau=0.9))  # (0.9 * 1 + 0.1 * 1) / 2
      0.5

    References:
      Koenker and Bassett, `Regression Quantiles
      <https://doi.org/10.2307/1913643>`_, 1978. torch has no builtin; it is
      ``tensorflow_addons.losses.pinball_loss(targets, predictions, tau)``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(tau, "tau", low=0.0, high=1.0)
    r, dtype = _residual(predictions, targets, where)
    r = -r  # target - prediction
    tau = _checks.hyperparameter(tau, "tau", r.dtype)
    values = jnp.maximum(tau * r, (tau - 1.0) * r)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("regression")
def gaussian_nll_loss(
    mean: ArrayLike,
    targets: ArrayLike,
    var: ArrayLike,
    *,
    full: bool = False,
    eps: ArrayLike = 1e-6,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Gaussian negative log-likelihood of ``targets`` under ``N(mean, var)``.

    .. math::

        \ell_i = \tfrac12\left(\log \max(v_i, \epsilon) + \frac{(m_i - t_i)^2}
                 {\max(v_i, \epsilon)}\right) \;\left[+ \tfrac12 \log 2\pi\right]

    Convention: torch's ``gaussian_nll_loss``, argument order included. The
    variance is clamped at ``eps`` as torch does it, outside autograd: the
    gradient with respect to ``var`` is that of the unclamped formula at the
    clamped value. ``full=True`` adds the constant ``0.5 log(2 pi)``.

    Args:
      mean: floating array of any shape, the predicted means.
      targets: floating array of the shape of ``mean``.
      var: floating, ``>= 0``, the predicted variances: the shape of ``mean``
        (heteroscedastic), or that shape with a last axis of size 1 (one
        variance per row, broadcast over the last axis).
      full: static bool, include the constant term.
      eps: lower clamp of ``var``, ``> 0``; a Python float or a JAX scalar
        (no gradient flows to it).
      where: boolean mask broadcastable to the shape of ``mean``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``mean``.

    Raises:
      ValueError: ``targets`` or ``var`` have another shape, ``var`` has a
        negative entry or ``eps <= 0`` (when concrete), or ``reduction`` is
        unknown.
      TypeError: integer ``mean`` or ``var``, or a non-bool ``full``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> m, t, v = jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0]), jnp.array([1.0, 2.0])
      >>> float(jaxloss.gaussian_nll_loss(m, t, v))  # (0.5 + 0.5 log 2) / 2
      0.42328...

    References:
      Nix and Weigend, `Estimating the mean and variance of the target
      probability distribution <https://doi.org/10.1109/ICNN.1994.374138>`_,
      1994. Equivalent to ``torch.nn.functional.gaussian_nll_loss(input,
      target, var, full=full, eps=eps)``.
    """
    _checks.check_reduction(reduction)
    if not isinstance(full, bool):
        raise TypeError(f"full must be a static Python bool; got {full!r}.")
    _checks.check_range(eps, "eps", low=0.0, low_inclusive=False)
    m, t, _ = _checks.elementwise_pair(mean, targets, predictions_name="mean")
    var = _checks.float_input(var, "var")
    compute, dtype = _checks.compute_dtype(jnp.asarray(mean), jnp.asarray(targets), var)
    homoscedastic = m.shape[:-1] + (1,) if m.ndim else None
    if var.shape != m.shape:
        if var.shape != homoscedastic:
            expected = f"{m.shape}" + ("" if homoscedastic is None else f" or {homoscedastic}")
            raise ValueError(
                    f"var has shape {var.shape} but mean has shape {m.shape}; expected var of "
                    f"shape {expected} (one variance per element, or one per row of the last "
                    "axis). Reshape var, e.g. var[..., None] for one variance per row."
            )
        var = jnp.broadcast_to(var, m.shape)  # homoscedastic: repeat over the last axis
    m, t, var = (a.astype(compute) for a in (m, t, var))
    m, t = _reduce.mask_inputs(where, m, t)
    (var,) = _reduce.mask_inputs(where, var, fill=1.0)
    _checks.check_range(var, "var", low=0.0)
    eps = _checks.hyperparameter(eps, "eps", compute)
    # torch clamps under no_grad: the value is max(var, eps), the gradient that of var.
    var = jax.lax.stop_gradient(jnp.maximum(var, eps)) + (var - jax.lax.stop_gradient(var))
    values = 0.5 * (jnp.log(var) + jnp.square(m - t) / var)
    if full:
        values = values + 0.5 * math.log(2.0 * math.pi)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)

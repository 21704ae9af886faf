"""Private helpers of the regression family: the masked residual, scaled squares,
elementwise hyperparameters and the relative exponential ``exprel``."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce

# Barron clamps the exponent of his expm1 at 43 so that the loss of huge residuals at
# large alpha stays finite (e^43 ~ 4.7e18); beyond it the loss is flat. Same here.
EXP_MAX = 43.0
# |alpha - 2| is floored at float32's machine epsilon before dividing by it, as Barron does.
F32_EPS = float(jnp.finfo(jnp.float32).eps)
# Below this |z| the relative exponential exprel(z) = expm1(z) / z is its Taylor series;
# above it expm1(z) / z and its derivative lose at most ~1e-7 relative to cancellation.
EXPREL_SERIES = 0.5


def residual(predictions: ArrayLike, targets: ArrayLike, where: ArrayLike | None,
              ) -> tuple[Array, jnp.dtype]:
    """``predictions - targets`` (masked entries 0) in the compute dtype, and the result dtype."""
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    p, t = _reduce.mask_inputs(where, p, t)
    return p - t, dtype


def elementwise_hyperparameter(value: ArrayLike, name: str, like: Array) -> Array:
    """A scalar or per-element hyperparameter broadcast explicitly to ``like``'s shape."""
    array = _checks.hyperparameter(value, name, like.dtype, scalar=False)
    return _checks.broadcast_mask(array, like.shape, name)


def scaled_square(residual: Array, scale: ArrayLike) -> Array:
    """``(r / c)^2`` with ``scale = c > 0`` (scalar or broadcastable to ``r``)."""
    _checks.check_range(scale, "scale", low=0.0, low_inclusive=False)
    c = elementwise_hyperparameter(scale, "scale", residual)
    return jnp.square(residual / c)


def exprel(z: Array) -> Array:
    """``expm1(z) / z`` (1 at ``z = 0``), accurate with an accurate derivative everywhere.

    Near 0 the quotient and, worse, its autodiff derivative ``e^z/z - expm1(z)/z^2``
    cancel catastrophically, so there it is the Taylor series sum_k z^k / (k+1)!
    (11 terms: truncation error < 1e-12 for |z| < 0.5). Double-where: each branch
    only ever sees inputs in its own range.
    """
    small = jnp.abs(z) < EXPREL_SERIES
    z_small = jnp.where(small, z, jnp.zeros_like(z))
    z_large = jnp.where(small, jnp.ones_like(z), z)
    series = jnp.ones_like(z)
    for k in range(12, 1, -1):  # Horner: 1 + z/2 (1 + z/3 (1 + ...)); static, 11 terms
        series = 1.0 + z_small * series / k
    return jnp.where(small, series, jnp.expm1(z_large) / z_large)


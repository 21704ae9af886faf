"""Numerically safe primitives shared by every family.

Each one keeps the *gradient* finite, not only the value, with the
double-``where`` pattern: the unsafe branch is fed a harmless input where it
is not selected, so that ``0 * inf`` never reaches the backward pass.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array


def safe_div(numerator: Array, denominator: Array) -> Array:
    """``numerator / denominator``, and 0 (with a 0 gradient) where the denominator is 0."""
    nonzero = denominator != 0
    safe_denominator = jnp.where(nonzero, denominator, jnp.ones_like(denominator))
    return jnp.where(nonzero, numerator / safe_denominator, jnp.zeros_like(numerator))


def safe_sqrt(x: Array) -> Array:
    """``sqrt(x)`` for ``x >= 0`` whose gradient at 0 is 0 instead of inf."""
    positive = x > 0
    safe_x = jnp.where(positive, x, jnp.ones_like(x))
    return jnp.where(positive, jnp.sqrt(safe_x), jnp.zeros_like(x))


def safe_log(x: Array, floor: float = -jnp.inf) -> Array:
    """``max(log(x), floor)`` for ``x >= 0``; at ``x == 0`` it is ``floor`` with a 0 gradient."""
    positive = x > 0
    safe_x = jnp.where(positive, x, jnp.ones_like(x))
    log_x = jnp.log(safe_x)
    if floor != -jnp.inf:
        log_x = jnp.maximum(log_x, floor)
    return jnp.where(positive, log_x, jnp.full_like(x, floor))


def safe_pow(base: Array, exponent: Array | float) -> Array:
    """``base ** exponent`` for ``base >= 0``, exponent > 0, with a 0 gradient at ``base == 0``.

    ``x ** g`` for ``0 < g < 1`` has an infinite derivative at 0; the limits the
    losses need there (focal modulating factors) are 0.
    """
    positive = base > 0
    safe_base = jnp.where(positive, base, jnp.ones_like(base))
    return jnp.where(positive, safe_base**exponent, jnp.zeros_like(base))


def xlogy(x: Array, y: Array) -> Array:
    """``x * log(y)``, 0 where ``x == 0`` (also when ``y == 0``), finite gradients there."""
    nonzero = x != 0
    safe_y = jnp.where(nonzero, y, jnp.ones_like(y))
    return jnp.where(nonzero, x * jnp.log(safe_y), jnp.zeros_like(x))


def x_times(x: Array, y: Array) -> Array:
    """``x * y``, 0 where ``x == 0`` even if ``y`` is infinite (e.g. a log-probability of -inf)."""
    nonzero = x != 0
    safe_y = jnp.where(nonzero, y, jnp.zeros_like(y))
    return jnp.where(nonzero, x * safe_y, jnp.zeros_like(x))


def one_hot(labels: Array, num_classes: int, dtype: jnp.dtype, axis: int = -1) -> Array:
    """One-hot encoding of integer ``labels`` along ``axis``; out-of-range labels give zeros."""
    classes = jnp.arange(num_classes, dtype=labels.dtype)
    expanded = jnp.expand_dims(labels, axis)
    shape = [1] * expanded.ndim
    shape[axis] = num_classes
    return (expanded == classes.reshape(shape)).astype(dtype)

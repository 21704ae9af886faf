"""Numerically safe primitives shared by every family.

Each one keeps the *gradient* finite, not only the value, with the
double-``where`` pattern: the unsafe branch is fed a harmless input where it
is not selected, so that ``0 * inf`` never reaches the backward pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array


def abs_zero_grad(x: Array) -> Array:
    """``|x|`` whose derivative at 0 is 0 (torch's choice); ``jnp.abs``'s is 1 there.

    ``max(x, -x)``: ``jnp.maximum`` splits the gradient at the tie, so the
    derivative at 0 is ``(1 - 1) / 2 = 0``; it also fuses better on CPU than
    ``x * sign(x)``.
    """
    return jnp.maximum(x, -x)


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


def softplus_neg_abs(x: Array) -> Array:
    """``log1p(exp(-|x|))``: the bounded part of the stable softplus, fuses elementwise.

    ``-|x|`` is written ``min(x, -x)``: its gradient at the tie ``x = 0`` is the
    average 0, where ``jnp.abs``'s is 1, which together with ``max(x, 0)``'s
    1/2 gives the exact derivative of the softplus at 0.
    """
    return jnp.log1p(jnp.exp(jnp.minimum(x, -x)))


def bce_with_logits(x: Array, t: Array, pos_weight: Array | None) -> Array:
    """Elementwise binary cross-entropy of logits ``x`` against targets ``t``.

    One fused formula (no ``log_sigmoid``, whose custom gradient splits the
    fusion): ``max(x, 0) - x t + log1p(exp(-|x|))``; with ``pos_weight``,
    ``(1 - t) x + (1 + (pw - 1) t)(log1p(exp(-|x|)) + max(-x, 0))`` (torch's form).
    ``jnp.maximum`` splits its gradient at the tie; with ``min(x, -x)`` for
    ``-|x|`` the derivative at ``x = 0`` is exactly ``sigmoid(0) - t``.
    """
    zero = jnp.zeros((), x.dtype)
    if pos_weight is None:
        return jnp.maximum(x, zero) - x * t + softplus_neg_abs(x)
    log_weight = 1 + (pos_weight - 1) * t
    return (1 - t) * x + log_weight * (softplus_neg_abs(x) + jnp.maximum(-x, zero))


def sigmoid_focal_values(x: Array, t: Array, *, gamma: Array, alpha: Array | None) -> Array:
    """Elementwise sigmoid focal loss of logits ``x`` against targets ``t`` in ``[0, 1]``.

    ``alpha_t (1 - p_t)^gamma BCE(x, t)`` (Lin et al.; torchvision's
    ``sigmoid_focal_loss``, MONAI's ``FocalLoss(use_softmax=False)``), with
    ``1 - p_t = t sigmoid(-x) + (1 - t) sigmoid(x)`` (no cancellation) and the
    power from :func:`safe_pow`, so the gradient is finite at saturated logits
    also for ``0 < gamma < 1``. ``alpha=None`` disables the weighting;
    ``alpha_t = alpha t + (1 - alpha)(1 - t)``.
    """
    one_minus_pt = t * jax.nn.sigmoid(-x) + (1 - t) * jax.nn.sigmoid(x)
    values = bce_with_logits(x, t, None) * safe_pow(one_minus_pt, gamma)
    if alpha is not None:
        values = (alpha * t + (1 - alpha) * (1 - t)) * values
    return values


def smooth_l1(residual: Array, beta: Array) -> Array:
    """Elementwise smooth L1 of a residual (torch's ``smooth_l1_loss``, unreduced), ``beta >= 0``.

    ``q (|r| - q / 2) / beta`` with ``q = min(|r|, beta)`` is ``r^2 / (2 beta)`` inside
    and ``|r| - beta / 2`` outside, with no elementwise select (it fuses with the
    reduction). ``beta = 0`` takes ``|r| - beta / 2`` through a scalar ``where``
    (double where on the division), so a traced ``beta = 0`` has finite gradients;
    ``|r|``'s derivative at 0 is 0 (torch's).
    """
    abs_r = abs_zero_grad(residual)
    positive = beta > 0
    safe_beta = jnp.where(positive, beta, jnp.ones_like(beta))
    clipped = jnp.minimum(abs_r, beta)
    return jnp.where(positive, clipped * (abs_r - 0.5 * clipped) / safe_beta, abs_r - 0.5 * beta)

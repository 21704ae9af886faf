"""Numerically safe primitives shared by every family.

Each one keeps the *gradient* finite, not only the value, with the
double-``where`` pattern: the unsafe branch is fed a harmless input where it
is not selected, so that ``0 * inf`` never reaches the backward pass.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.custom_derivatives import SymbolicZero


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


def _is_zero(tangent: object) -> bool:
    return isinstance(tangent, SymbolicZero)


def _logit_parts(x: Array) -> tuple[Array, Array, Array, Array]:
    """``(e, r, s, log1p(e))`` with ``e = exp(-|x|)``, ``r = 1 / (1 + e)``, ``s = sigmoid(x)``.

    The one exponential of the sigmoid losses: ``sigmoid(|x|) = r``,
    ``sigmoid(-|x|) = e r``, overflow-free at any ``x``; at ``x = 0`` both give 1/2.
    """
    e = jnp.exp(jnp.minimum(x, -x))
    r = 1 / (1 + e)
    return e, r, r * _pick(x, e), jnp.log1p(e)


def _pick(x: Array, e: Array) -> Array:
    """1 where ``x >= 0``, else ``e = exp(-|x|)`` (which is 1 at ``x = 0``): ``max(e, sign(x))``.

    Exact and free of compares: an elementwise compare or select keeps XLA:CPU
    from fusing the loss into its reduction (the exponential is then written out).
    """
    return jnp.maximum(e, jnp.sign(x))


@jax.custom_jvp
def _bce_logits(x: Array, t: Array) -> Array:
    return jnp.maximum(x, jnp.zeros((), x.dtype)) - x * t + jnp.log1p(jnp.exp(jnp.minimum(x, -x)))


@partial(_bce_logits.defjvp, symbolic_zeros=True)
def _bce_logits_jvp(primals: tuple[Array, Array], tangents: tuple[Array, Array]
                    ) -> tuple[Array, Array]:
    # d/dx = sigmoid(x) - t, d/dt = -x, from the exponential of the value.
    x, t = primals
    dx, dt = tangents
    _, _, s, log1p_e = _logit_parts(x)
    value = jnp.maximum(x, jnp.zeros((), x.dtype)) - x * t + log1p_e
    out = jnp.zeros_like(value)
    if not _is_zero(dx):
        out = (s - t) * dx
    if not _is_zero(dt):
        out = out - x * dt
    return value, out


@jax.custom_jvp
def _bce_logits_weighted(x: Array, t: Array, pw: Array) -> Array:
    softplus_neg = jnp.log1p(jnp.exp(jnp.minimum(x, -x))) + jnp.maximum(-x, jnp.zeros((), x.dtype))
    return (1 - t) * x + (1 + (pw - 1) * t) * softplus_neg


@partial(_bce_logits_weighted.defjvp, symbolic_zeros=True)
def _bce_logits_weighted_jvp(primals: tuple[Array, Array, Array],
                             tangents: tuple[Array, Array, Array]) -> tuple[Array, Array]:
    # softplus(-x) = log1p(e) + max(-x, 0), its derivative -sigmoid(-x) = s - 1.
    x, t, pw = primals
    dx, dt, dpw = tangents
    _, _, s, log1p_e = _logit_parts(x)
    softplus_neg = log1p_e + jnp.maximum(-x, jnp.zeros((), x.dtype))
    log_weight = 1 + (pw - 1) * t
    value = (1 - t) * x + log_weight * softplus_neg
    out = jnp.zeros_like(value)
    if not _is_zero(dx):
        out = ((1 - t) + log_weight * (s - 1)) * dx
    if not _is_zero(dt):
        out = out + ((pw - 1) * softplus_neg - x) * dt
    if not _is_zero(dpw):
        out = out + t * softplus_neg * dpw
    return value, out


def bce_with_logits(x: Array, t: Array, pos_weight: Array | None) -> Array:
    """Elementwise binary cross-entropy of logits ``x`` against targets ``t``.

    One fused formula (no ``log_sigmoid``, whose custom gradient splits the
    fusion): ``max(x, 0) - x t + log1p(exp(-|x|))``; with ``pos_weight``,
    ``(1 - t) x + (1 + (pw - 1) t)(log1p(exp(-|x|)) + max(-x, 0))`` (torch's form).
    The derivative is written once (a ``custom_jvp``): ``sigmoid(x) - t`` from
    the same ``exp(-|x|)`` as the value, so value and gradient cost one
    exponential per element; it is exactly ``1/2 - t`` at ``x = 0``.
    """
    if pos_weight is None:
        return _bce_logits(x, t)
    return _bce_logits_weighted(x, t, jnp.broadcast_to(pos_weight, x.shape))


def _focal_parts(x: Array, t: Array) -> tuple[Array, Array, Array, Array]:
    """``(bce, q, dq, s)``: BCE of logits, ``q = 1 - p_t``, ``dq = s (1 - s)``, ``s = sigmoid(x)``.

    ``q = t sigmoid(-x) + (1 - t) sigmoid(x)`` without cancellation, all from
    one exponential.
    """
    e, r, s, log1p_e = _logit_parts(x)
    bce = jnp.maximum(x, jnp.zeros((), x.dtype)) - x * t + log1p_e
    # sigmoid(-x) = r * (e if x >= 0 else 1), sigmoid(x) = r * (1 if x >= 0 else e)
    q = r * (t * _pick(-x, e) + (1 - t) * _pick(x, e))
    return bce, q, e * r * r, s


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _focal_int(n: int, x: Array, t: Array) -> Array:
    bce, q, _, _ = _focal_parts(x, t)
    return bce * lax.integer_pow(q, n)


@partial(_focal_int.defjvp, symbolic_zeros=True)
def _focal_int_jvp(n: int, primals: tuple[Array, Array], tangents: tuple[Array, Array]
                   ) -> tuple[Array, Array]:
    # d/dx [q^n bce] = n q^(n-1) (1 - 2t) s (1 - s) bce + q^n (s - t)
    # d/dt [q^n bce] = n q^(n-1) (1 - 2s) bce - x q^n
    x, t = primals
    dx, dt = tangents
    bce, q, dq, s = _focal_parts(x, t)
    q_n1 = lax.integer_pow(q, n - 1)
    q_n = q_n1 * q
    value = bce * q_n
    out = jnp.zeros_like(value)
    if not _is_zero(dx):
        out = (n * q_n1 * (1 - 2 * t) * dq * bce + q_n * (s - t)) * dx
    if not _is_zero(dt):
        out = out + (n * q_n1 * (1 - 2 * s) * bce - x * q_n) * dt
    return value, out


@jax.custom_jvp
def _focal_pow(x: Array, t: Array, gamma: Array) -> Array:
    bce, q, _, _ = _focal_parts(x, t)
    return bce * safe_pow(q, gamma)


@partial(_focal_pow.defjvp, symbolic_zeros=True)
def _focal_pow_jvp(primals: tuple[Array, Array, Array], tangents: tuple[Array, Array, Array]
                   ) -> tuple[Array, Array]:
    # As _focal_int_jvp with q^(gamma - 1) s (1 - s) = q^gamma (s (1 - s) / q), the ratio
    # bounded by max(s, 1 - s) <= 1 (q lies between s and 1 - s), and 0 where q = 0; so
    # the x-derivative is finite at saturated logits for 0 < gamma < 1 too.
    x, t, gamma = primals
    dx, dt, dgamma = tangents
    bce, q, dq, s = _focal_parts(x, t)
    positive = q > 0
    safe_q = jnp.where(positive, q, jnp.ones_like(q))
    q_g = jnp.where(positive, safe_q**gamma, jnp.zeros_like(q))
    value = bce * q_g
    out = jnp.zeros_like(value)
    if not _is_zero(dx):
        ratio = jnp.where(positive, dq / safe_q, jnp.zeros_like(q))
        out = (gamma * q_g * ratio * (1 - 2 * t) * bce + q_g * (s - t)) * dx
    if not _is_zero(dt):
        q_g1 = jnp.where(positive, q_g / safe_q, jnp.zeros_like(q))
        out = out + (gamma * q_g1 * (1 - 2 * s) * bce - x * q_g) * dt
    if not _is_zero(dgamma):
        log_q = jnp.where(positive, jnp.log(safe_q), jnp.zeros_like(q))
        out = out + q_g * log_q * bce * dgamma
    return value, out


def sigmoid_focal_values(x: Array, t: Array, *, gamma: Array | float,
                         alpha: Array | None) -> Array:
    """Elementwise sigmoid focal loss of logits ``x`` against targets ``t`` in ``[0, 1]``.

    ``alpha_t (1 - p_t)^gamma BCE(x, t)`` (Lin et al.; torchvision's
    ``sigmoid_focal_loss``, MONAI's ``FocalLoss(use_softmax=False)``), with
    ``1 - p_t = t sigmoid(-x) + (1 - t) sigmoid(x)`` (no cancellation) and
    ``alpha_t = alpha t + (1 - alpha)(1 - t)``; ``alpha=None`` disables the
    weighting. Value and derivative are written once (a ``custom_jvp``) from
    one exponential per element, ``exp(-|x|)``; a Python integer ``gamma``
    (0 to 8, e.g. the usual 2) is an integer power, any other ``gamma`` (a float
    or a traced array, differentiable) a power with a zero gradient at
    ``1 - p_t = 0``, so the gradient is finite at saturated logits also for
    ``0 < gamma < 1``.
    """
    if isinstance(gamma, (int, float)) and float(gamma).is_integer() and 0 <= gamma <= 8:
        n = int(gamma)
        values = _bce_logits(x, t) if n == 0 else _focal_int(n, x, t)
    else:
        values = _focal_pow(x, t, jnp.asarray(gamma, x.dtype))
    if alpha is not None:
        values = (alpha * t + (1 - alpha) * (1 - t)) * values
    return values

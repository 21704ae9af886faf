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
from jax.typing import ArrayLike


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
    """``sqrt(x)`` for ``x >= 0`` whose gradient at 0 is 0 instead of inf.

    Roundoff-negative ``x`` gives 0; a NaN stays NaN (it is not a square root
    of something small, and must not turn into a plausible 0).
    """
    positive = x > 0
    safe_x = jnp.where(positive, x, jnp.ones_like(x))
    return jnp.where(positive, jnp.sqrt(safe_x), jnp.where(jnp.isnan(x), x, jnp.zeros_like(x)))


def sqrt_at_zero(x: Array) -> Array:
    """``sqrt(x)`` whose gradient at ``x == 0`` is 0 instead of inf; NaN stays NaN.

    Unlike :func:`safe_sqrt` (which maps every ``x <= 0`` to 0)
    only an exact 0 is special-cased, so a NaN or negative input gives NaN
    (never a plausible wrong number). Callers clamp roundoff-negative
    arguments themselves.
    """
    zero = x == 0
    safe_x = jnp.where(zero, jnp.ones_like(x), x)
    return jnp.where(zero, jnp.zeros_like(x), jnp.sqrt(safe_x))


def safe_log(x: Array, floor: float = -jnp.inf) -> Array:
    """``max(log(x), floor)`` for ``x >= 0``; at ``x == 0`` it is ``floor`` with a 0 gradient."""
    positive = x > 0
    safe_x = jnp.where(positive, x, jnp.ones_like(x))
    log_x = jnp.log(safe_x)
    if floor != -jnp.inf:
        log_x = jnp.maximum(log_x, floor)
    return jnp.where(positive, log_x, jnp.full_like(x, floor))


def safe_pow(base: Array, exponent: ArrayLike) -> Array:
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


def _logit_parts(x: Array, one: Array | float = 1) -> tuple[Array, Array, Array, Array]:
    """``(e, r, s, log1p(e))`` with ``e = exp(-|x|)``, ``r = 1 / (1 + e)``, ``s = sigmoid(x)``.

    The one exponential of the sigmoid losses: ``sigmoid(|x|) = r``,
    ``sigmoid(-|x|) = e r``, overflow-free at any ``x``; at ``x = 0`` both give 1/2.
    ``one``: see :func:`_apart`.
    """
    e = jnp.exp(jnp.minimum(x, -x))
    r = one / (one + e)
    return e, r, r * _pick(x, e), jnp.log1p(e)


def _apart(*arrays: Array) -> tuple[Array, ...]:
    """``arrays`` and the scalars 0 and 1 behind an optimization barrier, for the derivative.

    XLA:CPU cannot compute a reduction and a second elementwise output in one
    loop, so under ``value_and_grad`` the value (reduced) and the derivative
    (written out) are two loops. Whatever they share (the exponential, even a
    broadcast constant such as 1) is then written to memory between them; the
    derivative is cheaper recomputed from the inputs, which the barrier forces
    (XLA sees different values and neither merges nor shares them).
    """
    dtype = arrays[0].dtype
    return lax.optimization_barrier((*arrays, jnp.zeros((), dtype), jnp.ones((), dtype)))


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
    x, t, _, one = _apart(x, t)
    _, _, s, _ = _logit_parts(x, one)
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


def _focal_parts(x: Array, t: Array, zero: Array | float = 0, one: Array | float = 1
                 ) -> tuple[Array, Array, Array, Array]:
    """``(bce, q, dq, s)``: BCE of logits, ``q = 1 - p_t``, ``dq = s (1 - s)``, ``s = sigmoid(x)``.

    ``q = t sigmoid(-x) + (1 - t) sigmoid(x)`` without cancellation, all from
    one exponential. ``zero``, ``one``: see :func:`_apart`.
    """
    e, r, s, log1p_e = _logit_parts(x, one)
    bce = jnp.maximum(x, zero) - x * t + log1p_e
    # sigmoid(-x) = r * (e if x >= 0 else 1), sigmoid(x) = r * (1 if x >= 0 else e)
    q = r * (t * _pick(-x, e) + (one - t) * _pick(x, e))
    return bce, q, e * r * r, s


def _q_pow(n: int | None, q: Array, gamma: Array, one: Array | float = 1
           ) -> tuple[Array, Array]:
    """``(q^gamma, q^(gamma - 1))`` for ``q`` in ``[0, 1]``, without compares or selects.

    An integer ``n`` is an integer power. Otherwise ``exp(gamma log max(q, tiny))``:
    where ``q = 0`` (a saturated, correct prediction) the loss and ``sigmoid(x) - t``
    are exactly 0, so any finite value there is exact for the loss and its gradient.
    """
    if n == 0:
        return jnp.ones_like(q), jnp.zeros_like(q)
    if n is not None:
        q_n1 = lax.integer_pow(q, n - 1) if n > 1 else jnp.ones_like(q)
        return q_n1 * q, q_n1
    safe_q = jnp.maximum(q, jnp.finfo(q.dtype).tiny * one)
    q_g = jnp.exp(gamma * jnp.log(safe_q))
    return q_g, q_g / safe_q


def _alpha_t(alpha: Array, t: Array, one: Array | float = 1) -> Array:
    return alpha * t + (one - alpha) * (one - t)


@partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _focal(n: int | None, weighted: bool, x: Array, t: Array, gamma: Array,
           alpha: Array) -> Array:
    # The forward in few operations (XLA:CPU's fused reduction costs about one pass
    # per operation): with u = 1 + e, sigmoid(x) u = max(e, sign(x)) and
    # sigmoid(-x) u = max(e, -sign(x)) (exact, one of them is 1, the other e).
    e = jnp.exp(jnp.minimum(x, -x))
    u = 1 + e
    sign = jnp.sign(x)
    q = (t * jnp.maximum(e, -sign) + (1 - t) * jnp.maximum(e, sign)) / u
    bce = jnp.maximum(x, 0) - x * t + jnp.log1p(e)
    value = bce * _q_pow(n, q, gamma)[0]
    if weighted:
        # alpha t + (1 - alpha)(1 - t), with the scalars combined first
        value = ((1 - alpha) + (2 * alpha - 1) * t) * value
    return value


@partial(_focal.defjvp, symbolic_zeros=True)
def _focal_jvp(n: int | None, weighted: bool, primals: tuple[Array, ...],
               tangents: tuple[Array, ...]) -> tuple[Array, Array]:
    # F = alpha_t q^g bce, q = 1 - p_t, alpha_t = alpha t + (1 - alpha)(1 - t):
    #   dF/dx     = alpha_t [g q^(g-1) (1 - 2t) s (1 - s) bce + q^g (s - t)]
    #   dF/dt     = alpha_t [g q^(g-1) (1 - 2s) bce - x q^g] + (2 alpha - 1) q^g bce
    #   dF/dg     = alpha_t q^g log(q) bce
    #   dF/dalpha = (2t - 1) q^g bce
    # q^(g-1) s (1 - s) is bounded (q lies between s and 1 - s, so s (1 - s) <= q), so
    # the x-derivative is finite at saturated logits also for 0 < g < 1.
    x, t, gamma, alpha = primals
    dx, dt, dgamma, dalpha = tangents
    value = _focal(n, weighted, x, t, gamma, alpha)
    x, t, gamma, alpha, zero, one = _apart(x, t, gamma, alpha)
    two = one + one
    g = n if n is not None else gamma
    bce, q, dq, s = _focal_parts(x, t, zero, one)
    q_g, q_g1 = _q_pow(n, q, gamma, one)
    alpha_t = _alpha_t(alpha, t, one) if weighted else one
    out = jnp.zeros_like(value)
    if not _is_zero(dx):
        out = alpha_t * (g * q_g1 * (one - two * t) * dq * bce + q_g * (s - t)) * dx
    if not _is_zero(dt):
        d_t = g * q_g1 * (one - two * s) * bce - x * q_g
        if weighted:
            d_t = alpha_t * d_t + (two * alpha - one) * q_g * bce
        out = out + d_t * dt
    if n is None and not _is_zero(dgamma):
        log_q = jnp.log(jnp.maximum(q, jnp.finfo(q.dtype).tiny * one))
        out = out + alpha_t * q_g * log_q * bce * dgamma
    if weighted and not _is_zero(dalpha):
        out = out + (two * t - one) * q_g * bce * dalpha
    return value, out


def sigmoid_focal_values(x: Array, t: Array, *, gamma: Array | float,
                         alpha: Array | None) -> Array:
    """Elementwise sigmoid focal loss of logits ``x`` against targets ``t`` in ``[0, 1]``.

    ``alpha_t (1 - p_t)^gamma BCE(x, t)`` (Lin et al.; torchvision's
    ``sigmoid_focal_loss``, MONAI's ``FocalLoss(use_softmax=False)``), with
    ``1 - p_t = t sigmoid(-x) + (1 - t) sigmoid(x)`` (no cancellation) and
    ``alpha_t = alpha t + (1 - alpha)(1 - t)``; ``alpha=None`` disables the
    weighting. Value and derivatives (in ``x``, ``t``, ``gamma``, ``alpha``) are
    written once (a ``custom_jvp``) from one exponential per element,
    ``exp(-|x|)``, with no elementwise select, so that XLA fuses the loss into its
    reduction. A Python integer ``gamma`` (0 to 8, e.g. the usual 2) is an integer
    power; any other ``gamma`` (a float or a traced array, differentiable) costs
    a ``log`` and an ``exp`` more. The gradient is finite at saturated logits also
    for ``0 < gamma < 1``.
    """
    n = None
    if isinstance(gamma, (int, float)) and float(gamma).is_integer() and 0 <= gamma <= 8:
        n = int(gamma)
        if n == 0 and alpha is None:
            return _bce_logits(x, t)
    g = jnp.zeros((), x.dtype) if n is not None else jnp.asarray(gamma, x.dtype)
    a = jnp.zeros((), x.dtype) if alpha is None else jnp.asarray(alpha, x.dtype)
    return _focal(n, alpha is not None, x, t, g, a)


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

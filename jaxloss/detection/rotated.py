"""Losses of rotated (oriented) boxes through their Gaussians: ProbIoU and KLD.

Conventions: a rotated box is ``(..., 5)`` = ``(cx, cy, w, h, theta)`` with
``theta`` in radians (any value; the losses are periodic in it), ultralytics'
``xywhr``. A box is the Gaussian with mean ``(cx, cy)`` and covariance
``R(theta) diag(w^2, h^2) R(theta)^T / 12`` (ProbIoU) or ``/ 4`` (KLD,
mmrotate's ``xy_wh_r_2_xy_sigma``). Determinants and traces are written in
closed form (``det = w^2 h^2 / 144``, the trace through the angle difference)
instead of from the 2x2 matrices, so that thin, zero-size and identical boxes
give a finite value and gradient without the cancellation of ``ad - bc``. The
unreduced loss has the boxes' shape without the last axis.
"""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import abs_zero_grad, safe_div, safe_log, safe_sqrt
from jaxloss.registry import _builtin

__all__ = ["kld_rotated_loss", "probiou_loss"]

KldFun = Literal["log1p", "sqrt", "none"]


def _rotated_pair(boxes1: ArrayLike, boxes2: ArrayLike, where: ArrayLike | None,
                  reduction: str) -> tuple[Array, Array, jnp.dtype]:
    """Validated ``(..., 5)`` pairs in the compute dtype (masked pairs zeroed) and the dtype."""
    _checks.check_reduction(reduction)
    b1 = _checks.float_input(boxes1, "boxes1")
    b2 = _checks.float_input(boxes2, "boxes2")
    if b1.ndim < 1 or b1.shape[-1] != 5:
        raise ValueError(
            f"boxes1 must have shape (..., 5) = (cx, cy, w, h, theta in radians); got shape "
            f"{b1.shape}."
        )
    _checks.check_same_shape(b2, "boxes2", b1, "boxes1")
    compute, dtype = _checks.compute_dtype(b1, b2)
    b1, b2 = b1.astype(compute), b2.astype(compute)
    if where is not None:
        mask = _checks.broadcast_mask(where, b1.shape[:-1], "where")
        b1, b2 = _reduce.mask_inputs(mask[..., None], b1, b2)
    return b1, b2, dtype


def _unstack5(boxes: Array) -> tuple[Array, Array, Array, Array, Array]:
    return boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3], boxes[..., 4]


def _probiou_values(b1: Array, b2: Array, e: Array) -> Array:
    x1, y1, w1, h1, r1 = _unstack5(b1)
    x2, y2, w2, h2, r2 = _unstack5(b2)
    a1, b1_, a2, b2_ = w1 * w1 / 12, h1 * h1 / 12, w2 * w2 / 12, h2 * h2 / 12
    c1, s1, c2, s2 = jnp.cos(r1), jnp.sin(r1), jnp.cos(r2), jnp.sin(r2)
    big_a = a1 * c1 * c1 + b1_ * s1 * s1 + a2 * c2 * c2 + b2_ * s2 * s2   # sum of covariances
    big_b = a1 * s1 * s1 + b1_ * c1 * c1 + a2 * s2 * s2 + b2_ * c2 * c2
    big_c = (a1 - b1_) * c1 * s1 + (a2 - b2_) * c2 * s2
    # det(S1 + S2) in closed form: every term >= 0, no cancellation
    cd, sd = jnp.cos(r1 - r2), jnp.sin(r1 - r2)
    det = (a1 * b1_ + a2 * b2_ + (a1 * b2_ + a2 * b1_) * cd * cd
           + (a1 * a2 + b1_ * b2_) * sd * sd)
    dx, dy = x1 - x2, y1 - y2
    t12 = safe_div((big_a * dy * dy + big_b * dx * dx) * 0.25 - 0.5 * big_c * dx * dy,
                   det + e)
    # sqrt(det S1 det S2) = |w1 h1 w2 h2| / 144
    root = abs_zero_grad(w1 * h1 * w2 * h2) / 144
    t3 = 0.5 * safe_log(safe_div(det, 4 * root + e) + e, -200.0)
    bd = jnp.clip(t12 + t3, e, 100.0)
    return safe_sqrt(-jnp.expm1(-bd) + e)


@_builtin("detection")
def probiou_loss(
    boxes1: ArrayLike,
    boxes2: ArrayLike,
    *,
    eps: ArrayLike = 1e-7,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""ProbIoU loss of rotated boxes: the Hellinger distance between their Gaussians.

    .. math::
        \ell = \sqrt{1 - e^{-B} + \epsilon}, \qquad
        B = \tfrac18 \Delta\mu^\top \Sigma^{-1} \Delta\mu
            + \tfrac12 \log\frac{\det \Sigma}{\sqrt{\det\Sigma_1 \det\Sigma_2}},
        \quad \Sigma = \tfrac{\Sigma_1 + \Sigma_2}{2}

    with :math:`B` (the Bhattacharyya distance) clamped to
    :math:`[\epsilon, 100]` and :math:`\Sigma_i = R_i\,\mathrm{diag}(w_i^2,
    h_i^2)\,R_i^\top / 12`. This is :math:`1 - \mathrm{ProbIoU}`.

    Convention: ultralytics' eps placement (in the two denominators, inside
    the log, the clamp and the square root). Zero-size boxes, identical boxes
    and any angle give a finite value and gradient.

    Args:
      boxes1: floating ``(..., 5)`` predicted boxes ``(cx, cy, w, h, theta)``,
        theta in radians.
      boxes2: floating ``(..., 5)`` target boxes, the same shape.
      eps: ``>= 0``, a Python float or traced scalar.
      where: boolean mask broadcastable to the boxes' shape without the last
        axis.
      weights: per-pair weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the boxes' shape without the
      last axis. Values in ``[0, 1]``.

    Raises:
      ValueError: shapes differ, the last axis is not 5, negative ``eps``,
        unknown ``reduction``.
      TypeError: integer boxes.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[0.0, 0.0, 4.0, 2.0, 0.0]])
      >>> t = jnp.array([[0.0, 0.0, 4.0, 2.0, jnp.pi / 2]])  # the same box turned 90 degrees
      >>> float(jaxloss.probiou_loss(p, t))  # sqrt(1 - 16 / 20)
      0.4472...

    References:
      Llerena et al., `Gaussian Bounding Boxes and Probabilistic Intersection-
      over-Union for Object Detection <https://arxiv.org/abs/2106.06072>`_,
      2021. ultralytics ``1 - probiou(boxes1, boxes2, eps=eps)`` (the YOLOv8-OBB
      box loss before its weighting).
    """
    b1, b2, dtype = _rotated_pair(boxes1, boxes2, where, reduction)
    _checks.check_range(eps, "eps", low=0.0)
    e = _checks.hyperparameter(eps, "eps", b1.dtype)
    return _reduce.reduce_loss(_probiou_values(b1, b2, e), reduction=reduction, where=where,
                               weights=weights, dtype=dtype)


def _kld_values(b1: Array, b2: Array, fun: str, tau: Array) -> Array:
    x1, y1, w1, h1, r1 = _unstack5(b1)
    x2, y2, w2, h2, r2 = _unstack5(b2)
    # mmrotate's xy_wh_r_2_xy_sigma: sides clamped to [1e-7, 1e7], std = side / 2
    pw, ph = jnp.clip(w1, 1e-7, 1e7) / 2, jnp.clip(h1, 1e-7, 1e7) / 2
    tw, th = jnp.clip(w2, 1e-7, 1e7) / 2, jnp.clip(h2, 1e-7, 1e7) / 2
    c, s = jnp.cos(r1), jnp.sin(r1)
    dx, dy = x1 - x2, y1 - y2
    u, v = c * dx + s * dy, c * dy - s * dx               # offset in the predicted box's frame
    xy_distance = 0.5 * (jnp.square(u / pw) + jnp.square(v / ph))
    cd, sd = jnp.cos(r2 - r1), jnp.sin(r2 - r1)
    tw2, th2 = tw * tw, th * th
    trace = ((cd * cd * tw2 + sd * sd * th2) / (pw * pw)
             + (sd * sd * tw2 + cd * cd * th2) / (ph * ph))
    log_det_ratio = 2 * (jnp.log(pw) + jnp.log(ph) - jnp.log(tw) - jnp.log(th))
    distance = xy_distance + 0.5 * trace + 0.5 * log_det_ratio - 1
    distance = safe_sqrt(jnp.maximum(distance, 0))
    if fun == "log1p":
        distance = jnp.log1p(distance)
    elif fun == "sqrt":
        distance = safe_sqrt(distance)
    squashed = 1 - safe_div(jnp.ones_like(distance), tau + distance)   # 0 at tau = D = 0
    return jnp.where(tau >= 1, squashed, distance)


@_builtin("detection")
def kld_rotated_loss(
    boxes1: ArrayLike,
    boxes2: ArrayLike,
    *,
    fun: KldFun = "log1p",
    tau: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""KLD loss of rotated boxes: the Kullback-Leibler divergence of their Gaussians, squashed.

    .. math::
        D = \sqrt{\tfrac12 \Delta\mu^\top \Sigma_p^{-1} \Delta\mu
            + \tfrac12 \operatorname{tr}(\Sigma_p^{-1}\Sigma_t)
            + \tfrac12 \log\frac{\det\Sigma_p}{\det\Sigma_t} - 1}, \qquad
        \ell = 1 - \frac{1}{\tau + f(D)}

    (:math:`\ell = f(D)` when :math:`\tau < 1`), with :math:`f` = ``log1p``,
    ``sqrt`` or the identity (``fun="none"``) and
    :math:`\Sigma = R\,\mathrm{diag}(w^2, h^2)\,R^\top / 4`.

    Convention: mmrotate's ``kld_loss`` with ``sqrt=True`` and ``alpha=1``
    (its default): the sides are clamped to ``[1e-7, 1e7]`` and the
    divergence at 0 before the square root, so zero-size boxes give a finite
    (large) value and gradient; the square roots have a zero gradient at 0
    (identical boxes).

    Args:
      boxes1: floating ``(..., 5)`` predicted boxes ``(cx, cy, w, h, theta)``,
        theta in radians.
      boxes2: floating ``(..., 5)`` target boxes, the same shape.
      fun: ``"log1p"`` (default), ``"sqrt"`` or ``"none"``.
      tau: ``>= 0``; ``tau >= 1`` maps the distance into ``[0, 1)`` (a float
        or traced scalar).
      where: boolean mask broadcastable to the boxes' shape without the last
        axis.
      weights: per-pair weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the boxes' shape without the
      last axis.

    Raises:
      ValueError: shapes differ, the last axis is not 5, unknown ``fun`` or
        ``reduction``, negative ``tau``.
      TypeError: integer boxes.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[0.0, 0.0, 4.0, 2.0, 0.0]])
      >>> t = jnp.array([[1.0, 0.0, 4.0, 2.0, 0.0]])  # shifted by half a width
      >>> float(jaxloss.kld_rotated_loss(p, t))  # 1 - 1 / (1 + log1p(sqrt(1/8)))
      0.2324...

    References:
      Yang et al., `Learning High-Precision Bounding Box for Rotated Object
      Detection via Kullback-Leibler Divergence
      <https://arxiv.org/abs/2106.01883>`_, 2021. mmrotate
      ``GDLoss(loss_type="kld", fun=fun, tau=tau, reduction="none")``.
    """
    b1, b2, dtype = _rotated_pair(boxes1, boxes2, where, reduction)
    _checks.check_choice(fun, "fun", ("log1p", "sqrt", "none"))
    _checks.check_range(tau, "tau", low=0.0)
    t = _checks.hyperparameter(tau, "tau", b1.dtype)
    return _reduce.reduce_loss(_kld_values(b1, b2, fun, t), reduction=reduction, where=where,
                               weights=weights, dtype=dtype)

"""Coordinate regression losses for landmarks and poses: Wing, Soft Wing, MPJPE and OKS.

Conventions: keypoints are floating arrays ``(N, K, D)`` (``D = 2`` image
coordinates ``(x, y)``, or 3 for 3-D joints). The Wing losses are elementwise
(``reduction="none"`` has the shape of the inputs), MPJPE is per joint
``(N, K)``, OKS per instance ``(N,)``. Half-precision inputs are computed in
float32 and returned in their dtype.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._classes import poison
from jaxloss._numerics import abs_zero_grad, safe_div, safe_sqrt
from jaxloss.keypoint._common import (
    AREA_SPACING,
    check_nonnegative,
    keep_mask,
    keypoint_array,
    mask_array,
    sigmas_for,
)
from jaxloss.registry import _builtin

__all__ = ["mpjpe_loss", "oks_loss", "soft_wing_loss", "wing_loss"]


def _positive(value: ArrayLike, name: str, dtype: jnp.dtype) -> Array:
    _checks.check_range(value, name, low=0.0, low_inclusive=False)
    return _checks.hyperparameter(value, name, dtype)


def _wing_values(r: Array, omega: Array, epsilon: Array) -> Array:
    """Elementwise Wing loss of residuals ``r`` (torch's |r|: derivative 0 at r = 0)."""
    a = abs_zero_grad(r)
    c = omega - omega * jnp.log1p(omega / epsilon)
    return jnp.where(a < omega, omega * jnp.log1p(a / epsilon), a - c)


def _soft_wing_values(r: Array, omega1: Array, omega2: Array, epsilon: Array) -> Array:
    a = abs_zero_grad(r)
    b = omega1 - omega2 * jnp.log1p(omega1 / epsilon)
    return jnp.where(a < omega1, a, omega2 * jnp.log1p(a / epsilon) + b)


@_builtin("keypoint")
def wing_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    omega: ArrayLike = 10.0,
    epsilon: ArrayLike = 2.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Wing loss: logarithmic for small landmark errors, linear for large ones.

    .. math::

        \ell_i = \begin{cases} \omega \ln(1 + |r_i| / \epsilon) & |r_i| < \omega \\
                 |r_i| - C & \text{otherwise} \end{cases},
        \qquad C = \omega - \omega \ln(1 + \omega / \epsilon),\ r_i = p_i - t_i

    ``C`` joins the two pieces continuously. The derivative at ``r = 0`` is 0
    (torch's ``abs``), where the log's one-sided slope is ``omega / epsilon``.

    Args:
      predictions: floating array of any shape, typically keypoints ``(N, K, 2)``.
      targets: floating array of the same shape.
      omega: width of the logarithmic part, ``> 0`` (Python float or traced scalar).
      epsilon: curvature of the logarithmic part, ``> 0``.
      where: boolean mask broadcastable to the shape of ``predictions`` (``(N, K, 1)``
        masks keypoints).
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, ``omega`` or ``epsilon`` not positive (when
        concrete), or ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[[1.0, 2.0], [30.0, 0.0]]])
      >>> float(jaxloss.wing_loss(p, jnp.zeros_like(p), reduction="sum"))
      48.9037...

    References:
      Feng et al., `Wing Loss for Robust Facial Landmark Localisation with
      Convolutional Neural Networks <https://arxiv.org/abs/1711.06753>`_, 2018.
      mmpose ``WingLoss(omega, epsilon)`` (``regression_loss.py``) sums over
      keypoints and coordinates and averages over the batch: it equals
      ``K * D * wing_loss(...)`` here.
    """
    _checks.check_reduction(reduction)
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    omega = _positive(omega, "omega", p.dtype)
    epsilon = _positive(epsilon, "epsilon", p.dtype)
    p, t = _reduce.mask_inputs(where, p, t)
    values = _wing_values(p - t, omega, epsilon)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("keypoint")
def soft_wing_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    omega1: ArrayLike = 2.0,
    omega2: ArrayLike = 20.0,
    epsilon: ArrayLike = 0.5,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Soft Wing loss: L1 for small errors, logarithmic (Wing-like) for large ones.

    .. math::

        \ell_i = \begin{cases} |r_i| & |r_i| < \omega_1 \\
                 \omega_2 \ln(1 + |r_i| / \epsilon) + B & \text{otherwise} \end{cases},
        \qquad B = \omega_1 - \omega_2 \ln(1 + \omega_1 / \epsilon)

    Args:
      predictions: floating array of any shape, typically keypoints ``(N, K, 2)``.
      targets: floating array of the same shape.
      omega1: end of the linear part, ``> 0``.
      omega2: scale of the logarithmic part, ``> 0``.
      epsilon: curvature of the logarithmic part, ``> 0``.
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, a hyperparameter not positive (when concrete),
        or ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[[1.0, 2.0], [30.0, 0.0]]])
      >>> float(jaxloss.soft_wing_loss(p, jnp.zeros_like(p), reduction="sum"))
      55.0287...

    References:
      Lin et al., `Structure-Coherent Deep Feature Learning for Robust Face
      Alignment <https://doi.org/10.1109/TIP.2021.3082319>`_, TIP 2021. mmpose
      ``SoftWingLoss(omega1, omega2, epsilon)`` (``regression_loss.py``) equals
      ``K * D * soft_wing_loss(...)`` (it sums over keypoints and coordinates).
    """
    _checks.check_reduction(reduction)
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    omega1 = _positive(omega1, "omega1", p.dtype)
    omega2 = _positive(omega2, "omega2", p.dtype)
    epsilon = _positive(epsilon, "epsilon", p.dtype)
    p, t = _reduce.mask_inputs(where, p, t)
    values = _soft_wing_values(p - t, omega1, omega2, epsilon)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("keypoint")
def mpjpe_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Mean per-joint position error: the Euclidean distance of each joint.

    .. math:: \ell_{nk} = \lVert p_{nk} - t_{nk} \rVert_2

    The gradient at zero distance is 0 (not NaN).

    Args:
      predictions: floating ``(N, K, D)`` joints (any leading axes ``(..., D)``, rank >= 2).
      targets: floating array of the same shape.
      where: boolean mask broadcastable to ``(N, K)`` (or ``(N,)``: whole poses).
      weights: per-joint weights broadcastable to ``(N, K)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the distances ``(N, K)``
      (``predictions.shape[:-1]``).

    Raises:
      ValueError: shapes differ, rank below 2, or ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]])
      >>> float(jaxloss.mpjpe_loss(p, jnp.zeros_like(p)))
      3.0

    References:
      Pavllo et al., `3D human pose estimation in video with temporal convolutions
      and semi-supervised training <https://arxiv.org/abs/1811.11742>`_, 2019.
      mmpose ``MPJPELoss()`` (``regression_loss.py``); with per-joint
      ``weights`` our mean divides by their sum, mmpose by the number of joints.
    """
    _checks.check_reduction(reduction)
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    keypoint_array(p, "predictions")
    keep = keep_mask(where, p.shape[:-1])
    p, t = mask_array(keep, p), mask_array(keep, t)
    values = safe_sqrt(jnp.sum(jnp.square(p - t), axis=-1))
    return _reduce.reduce_loss(values, reduction=reduction, where=keep, weights=weights,
                               dtype=dtype, align="leading")


@_builtin("keypoint")
def oks_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    visibility: ArrayLike,
    areas: ArrayLike,
    *,
    sigmas: ArrayLike | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""One minus the object keypoint similarity (COCO's OKS) of each instance.

    .. math::

        \ell_n = 1 - \frac{\sum_k v_{nk}\, e^{-d_{nk}^2 / (2 (a_n + \varepsilon)(2\sigma_k)^2)}}
                 {\sum_k v_{nk}}

    with ``d`` the distance between predicted and true keypoint, ``a`` the
    instance's area, ``sigma_k`` the per-keypoint constant and ``epsilon``
    pycocotools' ``np.spacing(1)`` (float64's machine epsilon, also in float32).

    Convention: the visibility weights the keypoints (pass COCO's flags as
    ``flags > 0``: pycocotools counts flags 1 and 2 alike); an instance with no
    visible keypoint has loss 0 and a zero gradient (mmpose's ``OKSLoss`` gives 1).
    A zero area is legal (any error then gives a per-keypoint loss of 1).
    A negative area or visibility raises eagerly and gives NaN for its instance
    under ``jit``.

    Args:
      predictions: floating ``(N, K, 2)`` keypoints ``(x, y)``, in the unit of the
        targets.
      targets: floating ``(N, K, 2)``.
      visibility: ``(N, K)`` bool or non-negative weights.
      areas: floating ``(N,)`` instance areas (segment or box area, in squared units).
      sigmas: ``(K,)`` per-keypoint constants; ``None`` = COCO's 17.
      where: boolean mask broadcastable to ``(N,)``.
      weights: per-instance weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-instance loss ``(N,)``.

    Raises:
      ValueError: shapes differ, ``sigmas=None`` with ``K != 17``, a negative
        area or visibility (eager), or ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> t = jnp.zeros((1, 2, 2))
      >>> p = t.at[0, 0, 0].set(1.0)
      >>> loss = jaxloss.oks_loss(p, t, jnp.array([[True, True]]), jnp.array([2.0]),
      ...                         sigmas=jnp.array([0.5, 0.5]))
      >>> float(loss)  # 1 - (exp(-1/4) + 1) / 2
      0.1105...

    References:
      Lin et al., `Microsoft COCO: Common Objects in Context
      <https://arxiv.org/abs/1405.0312>`_, 2014; pycocotools
      ``COCOeval.computeOks`` (its similarity of one detection to its own ground
      truth). ultralytics ``KeypointLoss(sigmas)(pred, gt, mask, area)`` is the
      ``"mean"`` here for 0/1 masks (it puts ``1e-9`` where pycocotools puts
      ``np.spacing(1)``); mmpose ``OKSLoss``.
    """
    _checks.check_reduction(reduction)
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    keypoint_array(p, "predictions", coords=2, min_rank=3)
    _checks.check_rank(p, "predictions", rank=3)
    n, k = p.shape[:2]
    v = jnp.asarray(visibility)
    if v.shape != (n, k):
        raise ValueError(f"visibility must have shape {(n, k)} (instances, keypoints); got "
                         f"shape {v.shape}.")
    if not (jnp.issubdtype(v.dtype, jnp.floating) or jnp.issubdtype(v.dtype, jnp.integer)
            or v.dtype == jnp.bool_):
        raise TypeError(f"visibility must be boolean or real; got dtype {v.dtype}.")
    a = _checks.float_input(areas, "areas")
    if a.shape != (n,):
        raise ValueError(f"areas must have shape {(n,)} (one area per instance); got shape "
                         f"{a.shape}.")
    v, a = v.astype(p.dtype), a.astype(p.dtype)
    sigma = sigmas_for(sigmas, k, p.dtype)
    keep = keep_mask(where, (n,))
    p, t, v = mask_array(keep, p), mask_array(keep, t), mask_array(keep, v)
    a = mask_array(keep, a, fill=1.0)
    # Checked after masking: a row that where= drops may hold anything.
    bad = check_nonnegative(a, "areas", "an area")
    bad_v = check_nonnegative(v, "visibility", "a visibility weight")
    if bad_v is not None:
        bad_v = jnp.any(bad_v, axis=-1)
        bad = bad_v if bad is None else bad | bad_v
    d2 = jnp.sum(jnp.square(p - t), axis=-1)                          # (N, K)
    scale = 2.0 * jnp.square(2.0 * sigma)[None, :] * (a[:, None] + AREA_SPACING)  # (N, K)
    miss = -jnp.expm1(-d2 / scale)                                    # 1 - exp(-e)
    values = safe_div(jnp.sum(v * miss, axis=-1), jnp.sum(v, axis=-1))  # (N,)
    if bad is not None:
        values = poison(values, bad)
    return _reduce.reduce_loss(values, reduction=reduction, where=keep, weights=weights,
                               dtype=dtype, align="leading")

"""Heatmap and SimCC losses for keypoint detection: adaptive Wing, heatmap MSE (with online
hard keypoint mining) and SimCC's KL divergence.

Conventions: heatmaps are channels-last, ``(N, *spatial, K)`` with one channel per
keypoint (``(N, H, W, K)`` for images), their values in ``[0, 1]`` (the Gaussian
targets of :func:`jaxloss.keypoint.gaussian_heatmaps`). SimCC logits and targets
are ``(N, K, bins)``, one 1-D distribution per keypoint and axis. Half-precision
inputs are computed in float32 and returned in their dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import abs_zero_grad, safe_pow, xlogy
from jaxloss.keypoint._common import keep_mask, mask_array
from jaxloss.registry import _builtin

__all__ = ["adaptive_wing_loss", "heatmap_mse_loss", "simcc_loss"]


def _adaptive_wing_values(p: Array, t: Array, alpha: Array, omega: Array, epsilon: Array,
                          theta: Array) -> Array:
    """Elementwise adaptive Wing loss of predicted heatmaps ``p`` against targets ``t``."""
    d = abs_zero_grad(t - p)
    exponent = alpha - t
    ratio = theta / epsilon
    ratio_pow = jnp.power(ratio, exponent)                     # (theta / eps)^(alpha - y)
    a = omega * exponent * (ratio_pow / ratio) / (epsilon * (1.0 + ratio_pow))
    c = theta * a - omega * jnp.log1p(ratio_pow)
    small = d < theta
    # Double where: the power only ever sees errors below theta (a huge error would
    # overflow it and turn the unselected branch's zero cotangent into NaN).
    d_small = jnp.where(small, d, jnp.zeros_like(d))
    log_part = omega * jnp.log1p(safe_pow(d_small / epsilon, exponent))
    return jnp.where(small, log_part, a * d - c)


@_builtin("keypoint")
def adaptive_wing_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike = 2.1,
    omega: ArrayLike = 14.0,
    epsilon: ArrayLike = 1.0,
    theta: ArrayLike = 0.5,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Adaptive Wing loss on heatmaps: its curvature adapts to the target value.

    .. math::

        \ell_i = \begin{cases}
            \omega \ln\!\big(1 + (\delta_i/\epsilon)^{\alpha - y_i}\big) & \delta_i < \theta \\
            A_i \delta_i - C_i & \text{otherwise} \end{cases},
        \qquad \delta_i = |y_i - \hat y_i|

    with :math:`A = \omega \frac{(\alpha - y)(\theta/\epsilon)^{\alpha - y - 1}}
    {\epsilon\,(1 + (\theta/\epsilon)^{\alpha - y})}` and
    :math:`C = \theta A - \omega \ln(1 + (\theta/\epsilon)^{\alpha - y})`, which
    join the pieces smoothly. Near the foreground (``y`` close to 1) it behaves
    like L1, on the background (``y`` close to 0) like L2.

    Args:
      predictions: floating heatmaps ``(N, *spatial, K)`` (any shape).
      targets: floating target heatmaps of the same shape, values in ``[0, 1]``.
      alpha: ``> 1`` (Python float or traced scalar); ``alpha - y`` is the exponent.
      omega: scale, ``> 0``.
      epsilon: ``> 0``.
      theta: threshold between the two pieces, ``> 0``.
      where: boolean mask broadcastable to the shape of ``predictions``.
      weights: per-element weights broadcastable to that shape (e.g. keypoint
        weights ``(N, 1, 1, K)``; mmpose multiplies both heatmaps by them instead).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``predictions``.

    Raises:
      ValueError: shapes differ, a hyperparameter out of range (when concrete),
        or ``reduction`` is unknown.
      TypeError: integer ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([0.2, 0.9, 0.0])
      >>> float(jaxloss.adaptive_wing_loss(p, jnp.array([0.0, 1.0, 0.0]), reduction="sum"))
      1.5389...

    References:
      Wang et al., `Adaptive Wing Loss for Robust Face Alignment via Heatmap
      Regression <https://arxiv.org/abs/1904.07399>`_, ICCV 2019. mmpose
      ``AdaptiveWingLoss(alpha, omega, epsilon, theta)`` (``heatmap_loss.py``,
      the mean over every element, after the layout transposition).
    """
    _checks.check_reduction(reduction)
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    _checks.check_range(alpha, "alpha", low=1.0, low_inclusive=False)
    for value, name in ((omega, "omega"), (epsilon, "epsilon"), (theta, "theta")):
        _checks.check_range(value, name, low=0.0, low_inclusive=False)
    alpha, omega, epsilon, theta = (
        _checks.hyperparameter(v, n, p.dtype)
        for v, n in ((alpha, "alpha"), (omega, "omega"), (epsilon, "epsilon"), (theta, "theta")))
    p, t = _reduce.mask_inputs(where, p, t)
    values = _adaptive_wing_values(p, t, alpha, omega, epsilon, theta)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


def _keypoint_weights(value: ArrayLike | None, shape: tuple[int, int], dtype: jnp.dtype
                      ) -> Array | None:
    if value is None:
        return None
    w = jnp.asarray(value)
    if jnp.issubdtype(w.dtype, jnp.complexfloating):
        raise TypeError(f"keypoint_weights must be real; got dtype {w.dtype}.")
    return _checks.broadcast_mask(w, shape, "keypoint_weights").astype(dtype)


@_builtin("keypoint")
def heatmap_mse_loss(
    heatmaps: ArrayLike,
    targets: ArrayLike,
    *,
    keypoint_weights: ArrayLike | None = None,
    top_k: int | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Heatmap mean squared error per keypoint, with online hard keypoint mining.

    .. math:: \ell_{nk} = w_{nk}^2 \operatorname{mean}_{x}\,(h_{nxk} - t_{nxk})^2

    the mean over the spatial positions ``x``. With ``top_k`` the loss of a sample
    is the mean of its ``top_k`` largest keypoint losses (OHKM, Chen et al. 2018):
    :math:`\ell_n = \frac1k \sum_{\text{top } k} \ell_{nk}`.

    Convention: the keypoint weights enter squared, as in SimpleBaseline and
    mmpose's ``KeypointOHKMMSELoss`` (both heatmaps are multiplied by the weight);
    mmpose's ``KeypointMSELoss`` multiplies the squared error by ``w``, the same
    for 0/1 visibility weights.

    Args:
      heatmaps: floating ``(N, *spatial, K)`` predicted heatmaps (``(N, H, W, K)``).
      targets: floating target heatmaps of the same shape.
      keypoint_weights: per-keypoint weights broadcastable to ``(N, K)``: the
        visibility ``(N, K)``, or joint weights ``(K,)``; applied before the mining.
      top_k: static int in ``[1, K]``: keep each sample's ``top_k`` hardest
        keypoints; ``None`` keeps all.
      where: boolean mask broadcastable to the unreduced shape (``(N, K)``, or
        ``(N,)`` with ``top_k``).
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-keypoint loss ``(N, K)``,
      or with ``top_k`` the per-sample loss ``(N,)``.

    Raises:
      ValueError: shapes differ, rank below 3, ``top_k`` outside ``[1, K]``, or
        ``reduction`` is unknown.
      TypeError: integer ``heatmaps``, or a ``top_k`` that is not a Python int.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> h = jnp.zeros((1, 2, 2, 3)).at[0, 0, 0, :].set(jnp.array([1.0, 2.0, 4.0]))
      >>> jaxloss.heatmap_mse_loss(h, jnp.zeros_like(h), reduction="none")
      Array([[0.25, 1.  , 4.  ]], dtype=float32)
      >>> float(jaxloss.heatmap_mse_loss(h, jnp.zeros_like(h), top_k=2))
      2.5

    References:
      Xiao et al., `Simple Baselines for Human Pose Estimation and Tracking
      <https://arxiv.org/abs/1804.06208>`_, 2018; Chen et al., `Cascaded Pyramid
      Network for Multi-Person Pose Estimation <https://arxiv.org/abs/1711.07319>`_,
      2018 (OHKM). mmpose ``KeypointMSELoss(use_target_weight=True)`` is the
      ``"mean"`` here with 0/1 ``keypoint_weights``; ``KeypointOHKMMSELoss(topk=k)``
      is ``top_k=k`` (``heatmap_loss.py``).
    """
    _checks.check_reduction(reduction)
    h, t, dtype = _checks.elementwise_pair(heatmaps, targets, predictions_name="heatmaps")
    _checks.check_rank(h, "heatmaps", min_rank=3)
    n, k = h.shape[0], h.shape[-1]
    w = _keypoint_weights(keypoint_weights, (n, k), h.dtype)
    if top_k is not None:
        top_k = _checks.static_int(top_k, "top_k", low=1)
        if top_k > k:
            raise ValueError(f"top_k must be at most the number of keypoints K={k} (the last "
                             f"axis of heatmaps); got top_k={top_k}.")
    keep = keep_mask(where, (n,) if top_k is not None else (n, k))
    h = mask_array(keep, h, keypoints_last=True)
    t = mask_array(keep, t, keypoints_last=True)
    spatial = tuple(range(1, h.ndim - 1))
    values = jnp.mean(jnp.square(h - t), axis=spatial)                  # (N, K)
    if w is not None:
        values = values * jnp.square(w)
    if top_k is not None:
        values = jnp.mean(jax.lax.top_k(values, top_k)[0], axis=-1)     # (N,)
    return _reduce.reduce_loss(values, reduction=reduction, where=keep, weights=weights,
                               dtype=dtype, align="leading")


def _simcc_kl(logits: Array, targets: Array, beta: Array, label_softmax: bool,
              label_beta: Array) -> Array:
    """Mean over the bins of KL(targets || softmax(beta * logits)), ``(N, K)``."""
    log_p = jax.nn.log_softmax(beta * logits, axis=-1)
    if label_softmax:
        log_t = jax.nn.log_softmax(label_beta * targets, axis=-1)
        kl = jnp.exp(log_t) * (log_t - log_p)
    else:  # torch's kl_div: t (log t - log p), 0 where t = 0
        kl = xlogy(targets, targets) - targets * log_p
    return jnp.mean(kl, axis=-1)


def _simcc_pair(logits: ArrayLike, targets: ArrayLike, axis: str) -> tuple[Array, Array]:
    logits = _checks.float_input(logits, f"{axis}_logits")
    targets = _checks.float_input(targets, f"{axis}_targets")
    _checks.check_rank(logits, f"{axis}_logits", rank=3)
    _checks.check_same_shape(targets, f"{axis}_targets", logits, f"{axis}_logits")
    return logits, targets


@_builtin("keypoint")
def simcc_loss(
    x_logits: ArrayLike,
    y_logits: ArrayLike,
    x_targets: ArrayLike,
    y_targets: ArrayLike,
    *,
    beta: ArrayLike = 10.0,
    label_softmax: bool = True,
    label_beta: ArrayLike = 10.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""SimCC loss: KL divergence of each keypoint's 1-D x and y distributions.

    .. math::

        \ell_{nk} = \operatorname{mean}_b \mathrm{KL}_b\big(q^x_{nk} \,\|\,
                    \mathrm{softmax}(\beta z^x_{nk})\big)
                  + \operatorname{mean}_b \mathrm{KL}_b\big(q^y_{nk} \,\|\,
                    \mathrm{softmax}(\beta z^y_{nk})\big)

    where ``KL_b = q_b (log q_b - log p_b)`` per bin and the targets ``q`` are
    ``softmax(label_beta * targets)`` when ``label_softmax`` (RTMPose), or used as
    given otherwise (0 where ``q = 0``).

    Args:
      x_logits: floating ``(N, K, Wx)`` horizontal classification logits.
      y_logits: floating ``(N, K, Wy)`` vertical logits.
      x_targets: floating ``(N, K, Wx)`` targets (e.g. :func:`simcc_targets`).
      y_targets: floating ``(N, K, Wy)`` targets.
      beta: logit scale, ``> 0`` (Python float or traced scalar).
      label_softmax: static bool: softmax the targets at ``label_beta`` first.
      label_beta: target scale, ``> 0``.
      where: boolean mask broadcastable to ``(N, K)`` (or ``(N,)``).
      weights: per-keypoint weights broadcastable to ``(N, K)`` (mmpose's
        ``target_weight``).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-keypoint loss ``(N, K)``
      (x plus y).

    Raises:
      ValueError: shapes differ, rank not 3, ``beta`` or ``label_beta`` not
        positive (when concrete), or ``reduction`` is unknown.
      TypeError: integer logits, or a non-bool ``label_softmax``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[[0.0, 1.0, 0.0]]])
      >>> y = jnp.array([[[1.0, 0.0]]])
      >>> float(jaxloss.simcc_loss(x, y, x, y))  # logits that match their targets
      0.0

    References:
      Li et al., `SimCC: a Simple Coordinate Classification Perspective for Human
      Pose Estimation <https://arxiv.org/abs/2107.03332>`_, ECCV 2022; Jiang et
      al., `RTMPose <https://arxiv.org/abs/2303.07399>`_, 2023. mmpose
      ``KLDiscretLoss(beta, label_softmax, label_beta)`` (``classification_loss.py``)
      sums over the samples and averages over keypoints: it equals ``N`` times
      the ``"mean"`` here.
    """
    _checks.check_reduction(reduction)
    if not isinstance(label_softmax, bool):
        raise TypeError(f"label_softmax must be a static bool; got {label_softmax!r}.")
    zx, qx = _simcc_pair(x_logits, x_targets, "x")
    zy, qy = _simcc_pair(y_logits, y_targets, "y")
    if zy.shape[:2] != zx.shape[:2]:
        raise ValueError(f"y_logits must have the (N, K) = {zx.shape[:2]} of x_logits; got "
                         f"shape {zy.shape}.")
    compute, dtype = _checks.compute_dtype(zx, zy, qx, qy)
    zx, zy, qx, qy = (a.astype(compute) for a in (zx, zy, qx, qy))
    _checks.check_range(beta, "beta", low=0.0, low_inclusive=False)
    _checks.check_range(label_beta, "label_beta", low=0.0, low_inclusive=False)
    beta = _checks.hyperparameter(beta, "beta", compute)
    label_beta = _checks.hyperparameter(label_beta, "label_beta", compute)
    keep = keep_mask(where, zx.shape[:2])
    zx, zy, qx, qy = (mask_array(keep, a) for a in (zx, zy, qx, qy))
    values = (_simcc_kl(zx, qx, beta, label_softmax, label_beta)
              + _simcc_kl(zy, qy, beta, label_softmax, label_beta))
    return _reduce.reduce_loss(values, reduction=reduction, where=keep, weights=weights,
                               dtype=dtype, align="leading")

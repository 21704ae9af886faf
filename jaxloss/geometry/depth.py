"""Depth losses: scale-invariant log (SILog), MiDaS's scale-and-shift-invariant loss
and the edge-aware smoothness of a disparity map.

Conventions: depth, disparity and inverse depth are channels-last
``(N, H, W, 1)``; images ``(N, H, W, C)``. Each loss returns one value per
image, so ``reduction="none"`` gives ``(N,)`` and ``where``/``weights`` select
or weight whole images (an image left out is zeroed before the loss, so a NaN
in it reaches neither value nor gradient). Which pixels carry ground truth is
said per loss: ``silog_loss`` keeps the targets ``> eps`` (mmseg),
``scale_shift_invariant_loss`` takes a boolean ``mask`` (MiDaS). An image
without a valid pixel gives 0 with a zero gradient. Half-precision inputs are
computed in float32 and returned in their own dtype.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import abs_zero_grad, safe_div, sqrt_at_zero
from jaxloss.geometry._common import depth_map, pair
from jaxloss.registry import _builtin

__all__ = [
    "edge_aware_smoothness_loss",
    "scale_shift_invariant_loss",
    "silog_loss",
]


def _image_sum(values: Array) -> Array:
    """Sum over every axis but the batch axis: ``(N, ...) -> (N,)``."""
    return jnp.sum(values, axis=tuple(range(1, values.ndim)))


# --------------------------------------------------------------------------------------
# Kernels (validated inputs in the compute dtype; unreduced (N,) values).
# --------------------------------------------------------------------------------------


@jax.jit
def _silog_values(p: Array, t: Array, variance_focus: Array, eps: Array) -> Array:
    valid = t > eps
    log_t = jnp.log(jnp.where(valid, t, jnp.ones_like(t)))
    g = jnp.where(valid, log_t - jnp.log(jnp.maximum(p, eps)), jnp.zeros_like(t))
    count = _image_sum(valid.astype(p.dtype))
    mean_g = safe_div(_image_sum(g), count)
    mean_g2 = safe_div(_image_sum(g * g), count)
    # >= (1 - lambda) mean_g^2 >= 0 in exact arithmetic; clamp the roundoff.
    return sqrt_at_zero(jnp.maximum(mean_g2 - variance_focus * mean_g * mean_g, 0.0))


def _scale_and_shift(p: Array, t: Array, m: Array) -> tuple[Array, Array]:
    """Per-image least-squares ``(s, t)`` of ``s p + t ~ target`` over the mask (MiDaS eq. 4).

    A singular system (no or one valid pixel, a constant prediction) gives
    ``s = t = 0`` with a zero gradient (MiDaS's ``compute_scale_and_shift``).
    """
    a00, a01, a11 = _image_sum(m * p * p), _image_sum(m * p), _image_sum(m)
    b0, b1 = _image_sum(m * p * t), _image_sum(m * t)
    det = a00 * a11 - a01 * a01
    return safe_div(a11 * b0 - a01 * b1, det), safe_div(a00 * b1 - a01 * b0, det)


def _gradient_matching(r: Array, m: Array, scales: int) -> Array:
    """MiDaS eq. 11: per scale, sum |grad_x R| + |grad_y R| over valid pairs / valid pixels."""
    total = jnp.zeros(r.shape[:1], r.dtype)
    for k in range(scales):  # static: each scale has its own (subsampled) shape
        step = 2**k
        rk, mk = r[:, ::step, ::step], m[:, ::step, ::step]
        gx = abs_zero_grad(rk[:, :, 1:] - rk[:, :, :-1]) * (mk[:, :, 1:] * mk[:, :, :-1])
        gy = abs_zero_grad(rk[:, 1:] - rk[:, :-1]) * (mk[:, 1:] * mk[:, :-1])
        total = total + safe_div(_image_sum(gx) + _image_sum(gy), _image_sum(mk))
    return total


# Jitted (also when called eagerly): the multi-scale term is many small operations.
@functools.partial(jax.jit, static_argnames=("scales",))
def _ssi_values(p: Array, t: Array, m: Array, gradient_weight: Array, *, scales: int) -> Array:
    scale, shift = _scale_and_shift(p, t, m)
    aligned = scale[:, None, None, None] * p + shift[:, None, None, None]
    r = m * (aligned - t)  # [N, H, W, 1]
    data = safe_div(_image_sum(r * r), 2.0 * _image_sum(m))
    return data + gradient_weight * _gradient_matching(r, m, scales)


@jax.jit
def _smoothness_values(d: Array, image: Array) -> Array:
    def term(dd: Array, di: Array) -> Array:  # [N, h, w, 1], [N, h, w, C]
        weight = jnp.exp(-jnp.mean(abs_zero_grad(di), axis=-1, keepdims=True))
        return jnp.mean(abs_zero_grad(dd * weight), axis=(1, 2, 3))

    return (term(d[:, :, :-1] - d[:, :, 1:], image[:, :, :-1] - image[:, :, 1:])
            + term(d[:, :-1] - d[:, 1:], image[:, :-1] - image[:, 1:]))


# --------------------------------------------------------------------------------------
# Public losses.
# --------------------------------------------------------------------------------------


@_builtin("geometry")
def silog_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    variance_focus: ArrayLike = 0.85,
    eps: ArrayLike = 1e-6,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Scale-invariant logarithmic (SILog) depth loss of Eigen et al., per image.

    .. math::

        \ell_n = \sqrt{\frac{1}{|V_n|}\sum_{i \in V_n} g_i^2
                 - \lambda \Big(\frac{1}{|V_n|}\sum_{i \in V_n} g_i\Big)^2},
        \qquad g_i = \log t_i - \log \max(p_i, \epsilon),\quad
        V_n = \{i : t_i > \epsilon\}

    with ``lambda = variance_focus``. ``lambda = 1`` makes the loss blind to a
    global scale of the prediction; ``lambda = 0`` is the RMSE of log depths.

    Convention: pixels whose target is ``<= eps`` (0 marks missing ground
    truth in KITTI and NYU) are left out; the prediction is clamped at ``eps``
    before the logarithm, as mmseg does (a prediction ``<= eps`` therefore
    gets no gradient: keep depth heads positive, e.g. with a softplus or an
    exponential). An image without a valid pixel gives 0 with a zero gradient
    (mmseg's gives a NaN gradient); a NaN prediction gives NaN (mmseg drops
    it). The default ``lambda = 0.85`` is BTS's and Depth Anything's; mmseg
    fixes 0.5. Neither BTS's factor 10 nor any other scale is applied.

    Args:
      predictions: floating depth ``(N, ...)``, e.g. ``(N, H, W, 1)``; every
        axis but the first belongs to one image.
      targets: floating ground-truth depth of the same shape.
      variance_focus: ``lambda`` in ``[0, 1]``; a Python float or traced scalar.
      eps: validity threshold and prediction floor, ``> 0``.
      where: boolean mask of the images to include, broadcastable to ``(N,)``.
      weights: per-image weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per image, ``(N,)``.

    Raises:
      ValueError: shapes differ, rank below 2, ``variance_focus`` outside
        ``[0, 1]``, ``eps <= 0`` or an unknown ``reduction``.
      TypeError: integer predictions.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> t = jnp.array([[1.0, 2.0, 4.0, 0.0]])  # the last pixel has no ground truth
      >>> float(jaxloss.silog_loss(2.0 * t, t, variance_focus=1.0))  # a global scale is free
      0.0
      >>> round(float(jaxloss.silog_loss(2.0 * t, t)), 5)  # log(2) sqrt(1 - 0.85)
      0.26845

    References:
      Eigen et al., `Depth Map Prediction from a Single Image using a
      Multi-Scale Deep Network <https://arxiv.org/abs/1406.2283>`_, 2014.
      mmseg ``models/losses/silog_loss.py``: ``silog_loss(pred, target,
      eps=eps, reduction="none")`` on NCHW maps with its fixed 0.5 replaced
      by ``variance_focus``.
    """
    _checks.check_reduction(reduction)
    p, t, dtype = pair(predictions, targets)
    _checks.check_rank(p, "predictions", min_rank=2)
    _checks.check_range(variance_focus, "variance_focus", low=0.0, high=1.0)
    _checks.check_range(eps, "eps", low=0.0, low_inclusive=False)
    lam = _checks.hyperparameter(variance_focus, "variance_focus", p.dtype)
    eps_ = _checks.hyperparameter(eps, "eps", p.dtype)
    p, t = _reduce.mask_rows(where, p, t, fill=1.0)
    values = _silog_values(p, t, lam, eps_)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("geometry")
def scale_shift_invariant_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    gradient_weight: ArrayLike = 0.5,
    scales: int = 4,
    mask: ArrayLike | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""MiDaS's scale-and-shift-invariant loss with multi-scale gradient matching, per image.

    .. math::

        (s, t) = \arg\min_{s, t} \sum_{i \in V} (s\,d_i + t - d^*_i)^2, \qquad
        R_i = s\,d_i + t - d^*_i,

        \ell_n = \frac{1}{2M}\sum_{i \in V} R_i^2
        + \alpha \sum_{k=0}^{K-1} \frac{1}{M_k}\sum_{i}
          \big(|\nabla_x R^k_i| + |\nabla_y R^k_i|\big)

    where ``V`` holds the valid pixels (``mask``), ``M = |V|``, ``R^k`` is
    the residual map subsampled by ``2^k`` (every ``2^k``-th row and column),
    ``M_k`` its valid pixels, differences taken only between two valid
    pixels, ``alpha = gradient_weight`` and ``K = scales``.

    Convention: the closed-form per-image scale and shift (MiDaS eq. 4, its
    ``compute_scale_and_shift``) are differentiated through, not stopped.
    A singular system (a constant prediction, fewer than two valid pixels)
    gives ``s = t = 0`` with a zero gradient, as MiDaS. Each term is divided
    by its own image's valid pixels (MiDaS's image-based reduction); its
    default batch-based reduction divides the batch sums instead, which
    ``weights`` proportional to the valid-pixel counts reproduce for the data
    term. An image without a valid pixel gives 0. Predictions and targets
    live in the same space (MiDaS trains on disparity).

    Args:
      predictions: floating ``(N, H, W, 1)`` depth or disparity.
      targets: floating ground truth of the same shape.
      gradient_weight: ``alpha >= 0``; a Python float or traced scalar.
      scales: number of scales ``K >= 1`` of the gradient term, static.
      mask: boolean ``(N, H, W, 1)`` of the pixels with ground truth (MiDaS's
        ``mask``); ``None`` means every pixel.
      where: boolean mask of the images to include, broadcastable to ``(N,)``.
      weights: per-image weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per image, ``(N,)``.

    Raises:
      ValueError: inputs not ``(N, H, W, 1)``, shapes differ (``mask``
        included), negative ``gradient_weight``, ``scales < 1`` or an unknown
        ``reduction``.
      TypeError: integer predictions, a non-boolean ``mask``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> d = jnp.arange(16.0).reshape(1, 4, 4, 1)
      >>> round(float(jaxloss.scale_shift_invariant_loss(3.0 * d - 1.0, d)), 5)  # s = t = 1/3
      0.0
      >>> round(float(jaxloss.scale_shift_invariant_loss(jnp.square(d), d, scales=2)), 4)
      2.4919

    References:
      Ranftl et al., `Towards Robust Monocular Depth Estimation: Mixing
      Datasets for Zero-shot Cross-dataset Transfer
      <https://arxiv.org/abs/1907.01341>`_, 2020, eqs. 1-5 and 11. MiDaS
      (its training-loss code): ``ScaleAndShiftInvariantLoss(alpha=
      gradient_weight, scales=scales, reduction="image-based")`` on
      ``(N, H, W)`` maps, per image.
    """
    _checks.check_reduction(reduction)
    p, t, dtype = pair(predictions, targets, check=depth_map)
    _checks.check_range(gradient_weight, "gradient_weight", low=0.0)
    scales = _checks.static_int(scales, "scales", low=1)
    alpha = _checks.hyperparameter(gradient_weight, "gradient_weight", p.dtype)
    if mask is None:
        m = jnp.ones_like(p)
    else:
        mask = jnp.asarray(mask)
        if mask.dtype != jnp.bool_:
            raise TypeError(f"mask must be a boolean array of the valid pixels; got dtype "
                            f"{mask.dtype}. Pass e.g. mask=targets > 0.")
        _checks.check_same_shape(mask, "mask", p, "predictions")
        m = mask.astype(p.dtype)
    p, t, m = _reduce.mask_rows(where, p, t, m)
    values = _ssi_values(p, t, m, alpha, scales=scales)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("geometry")
def edge_aware_smoothness_loss(
    disparity: ArrayLike,
    images: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Edge-aware smoothness of a disparity (inverse depth) map, per image (Godard et al.).

    .. math::

        \ell_n = \operatorname{mean}_{ij} |\partial_x d_{ij}|\,
                 e^{-\frac{1}{C}\sum_c |\partial_x I_{ijc}|}
               + \operatorname{mean}_{ij} |\partial_y d_{ij}|\,
                 e^{-\frac{1}{C}\sum_c |\partial_y I_{ijc}|}

    with forward differences, each mean over its own ``H (W - 1)`` or
    ``(H - 1) W`` differences.

    Convention: kornia's: the disparity is not mean-normalised (Monodepth2
    divides it by its mean first; do that before the call to get its form),
    so the loss is linear in the disparity's scale; the image weights use the
    raw values, so images are expected in ``[0, 1]``. The image is not
    detached: pass ``jax.lax.stop_gradient(images)`` if it is a network output.

    Args:
      disparity: floating ``(N, H, W, 1)`` disparity or inverse depth.
      images: floating ``(N, H, W, C)`` images, ``H, W >= 2``.
      where: boolean mask of the images to include, broadcastable to ``(N,)``.
      weights: per-image weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per image, ``(N,)``.

    Raises:
      ValueError: ``disparity`` not ``(N, H, W, 1)``, ``images`` not of rank
        4 or of another ``(N, H, W)``, ``H`` or ``W`` below 2, an unknown
        ``reduction``.
      TypeError: integer inputs.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> d = jnp.tile(jnp.arange(4.0), (1, 3, 1))[..., None]  # a ramp along x
      >>> float(jaxloss.edge_aware_smoothness_loss(d, jnp.zeros((1, 3, 4, 3))))
      1.0

    References:
      Godard et al., `Unsupervised Monocular Depth Estimation with
      Left-Right Consistency <https://arxiv.org/abs/1609.03677>`_, 2017.
      kornia: ``kornia.losses.inverse_depth_smoothness_loss(d, image)`` on
      NCHW inputs equals this loss's ``"mean"``.
    """
    _checks.check_reduction(reduction)
    d = depth_map(disparity, "disparity")
    image = _checks.float_input(images, "images")
    if image.ndim != 4 or image.shape[:3] != d.shape[:3]:
        raise ValueError(
                f"images must be (N, H, W, C) with the (N, H, W) of disparity {d.shape[:3]}; got "
                f"shape {image.shape}. Channels-last: jnp.moveaxis(images, 1, -1) for NCHW.")
    if min(d.shape[1:3]) < 2:
        raise ValueError(f"disparity must be at least 2x2 pixels; got {d.shape[1:3]}.")
    compute, dtype = _checks.compute_dtype(d, image)
    d, image = _reduce.mask_rows(where, d.astype(compute), image.astype(compute))
    values = _smoothness_values(d, image)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)

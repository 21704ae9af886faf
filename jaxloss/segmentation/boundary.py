"""Distance-map and skeleton losses: boundary (Kervadec), Hausdorff DT, soft clDice.

Logits are ``(N, H, W, C)`` or ``(N, D, H, W, C)`` (class axis ``axis``). The
distance maps come from :func:`jaxloss.distance_transform`, carry no
gradient, and are 0 for a channel whose target is empty or full (MONAI).
With ``ignore_index`` the ignored pixels are outside every class for the
maps, contribute nothing, and the per-image means run over the kept pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._checks import Reduction
from jaxloss._numerics import safe_div, safe_pow
from jaxloss.distance import distance_transform
from jaxloss.registry import _builtin
from jaxloss.segmentation._common import (
    Inputs,
    Mode,
    drop_background,
    finish,
    pixel_mean,
    prepare,
    rows_of,
    scored_classes,
)

__all__ = ["boundary_loss", "cldice_loss", "hausdorff_dt_loss"]


def _spatial_inputs(logits: ArrayLike, targets: ArrayLike, *, mode: str, from_logits: bool,
                    ignore_index: int | None, axis: int, keep: Array | None) -> Inputs:
    """:func:`_common.prepare` for 2-D or 3-D images, ``(N, *spatial, C)`` after the move."""
    rank = jnp.ndim(logits)
    if rank not in (4, 5):
        raise ValueError(
            f"logits must be (N, H, W, C) or (N, D, H, W, C); got shape {jnp.shape(logits)}."
        )
    return prepare(logits, targets, mode=mode, from_logits=from_logits,
                   ignore_index=ignore_index, axis=axis, keep=keep)


def _boundary_map(onehot: Array) -> Array:
    """MONAI's map per image and class: inside -(edt - 1), outside edt; 0 if empty or full."""
    spatial = tuple(range(1, onehot.ndim - 1))
    mask = jax.lax.stop_gradient(onehot) > 0.5
    inside = distance_transform(mask, spatial_axes=spatial)
    outside = distance_transform(~mask, spatial_axes=spatial)
    signed = jnp.where(mask, 1 - inside, outside)
    interface = jnp.any(mask, axis=spatial, keepdims=True) & jnp.any(~mask, axis=spatial,
                                                                       keepdims=True)
    return jnp.where(interface, signed, jnp.zeros_like(signed))


def _boundary_values(probs: Array, onehot: Array, valid: Array | None) -> Array:
    """``(N, *spatial, C)`` to ``(N, C)``: the mean of ``p * phi`` over the (kept) pixels."""
    spatial = tuple(range(1, probs.ndim - 1))
    phi = _boundary_map(onehot).astype(probs.dtype)
    return pixel_mean(probs * phi, valid, spatial)


@_builtin("segmentation")
def boundary_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    mode: Mode = "multiclass",
    from_logits: bool = True,
    include_background: bool = True,
    per_image: bool = True,
    ignore_index: int | None = None,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Boundary loss: predicted probabilities integrated against the target's distance map.

    .. math:: \ell_{nc} = \frac{1}{|\Omega|} \sum_{x \in \Omega} p_{nc}(x)\, \phi_{nc}(x)

    Convention (MONAI ``BoundaryLoss``): :math:`\phi` is the target's signed
    distance map with ``edt`` (jaxloss's exact JAX transform) outside the
    object and ``-(edt - 1)`` inside (0 on the inner boundary); a channel
    whose target is empty or full has no boundary and gives 0. The map
    carries no gradient. The loss can be negative (it is minimised).

    Args:
      logits: floating ``(N, H, W, C)`` or ``(N, D, H, W, C)``.
      targets: int class indices ``(N, *spatial)`` or one-hot (multiclass);
        the shape of ``logits`` (binary, multilabel).
      mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
      from_logits: whether ``logits`` are logits.
      include_background: keep channel 0.
      per_image: ``(N, C)`` values; ``False`` averages over the batch per
        class first (MONAI ``batch=True``), ``(C,)``.
      ignore_index: int target value whose pixels are dropped (outside every
        class for the map, excluded from the mean).
      axis: the class axis of ``logits`` (static; ``1`` for channels-first).
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N, C)`` or ``(C,)``.

    Raises:
      ValueError: rank not 4 or 5, wrong target shape, labels out of range
        (eager; NaN at their image under ``jit``), unknown mode/reduction.
      TypeError: integer logits.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> labels = jnp.array([[[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]])
      >>> perfect = jnp.where(jax.nn.one_hot(labels, 2) > 0, 20.0, -20.0)
      >>> wrong = -perfect
      >>> bool(jaxloss.boundary_loss(perfect, labels) < jaxloss.boundary_loss(wrong, labels))
      True

    References:
      Kervadec et al., `Boundary loss for highly unbalanced segmentation
      <https://arxiv.org/abs/1812.07032>`_, MIDL 2019. MONAI ``BoundaryLoss``.
    """
    _checks.check_reduction(reduction)
    keep = rows_of(where, logits, scored_classes(logits, axis, include_background),
                   per_image=per_image)
    inputs = _spatial_inputs(logits, targets, mode=mode, from_logits=from_logits,
                             ignore_index=ignore_index, axis=axis, keep=keep)
    probs, onehot = drop_background(include_background, inputs.probs, inputs.onehot)
    values = _boundary_values(probs, onehot, inputs.valid)             # [N, C]
    if not per_image:
        values = jnp.mean(values, axis=0)
    return finish(values, dtype=inputs.dtype, reduction=reduction, where=where, weights=weights)


def _distance_field(mask: Array) -> Array:
    """MONAI's Hausdorff field: edt(m) + edt(~m) per image and class; 0 if empty or full."""
    spatial = tuple(range(1, mask.ndim - 1))
    field = (distance_transform(mask, spatial_axes=spatial)
             + distance_transform(~mask, spatial_axes=spatial))
    interface = jnp.any(mask, axis=spatial, keepdims=True) & jnp.any(~mask, axis=spatial,
                                                                       keepdims=True)
    return jnp.where(interface, field, jnp.zeros_like(field))


def _hausdorff_values(probs: Array, onehot: Array, valid: Array | None, *,
                      alpha: Array) -> Array:
    """``(N, *spatial, C)`` to ``(N, C)``: ``(p - t)^2 (d_p^alpha + d_t^alpha)`` averaged."""
    spatial = tuple(range(1, probs.ndim - 1))
    pred_field = _distance_field(jax.lax.stop_gradient(probs) > 0.5)
    target_field = _distance_field(jax.lax.stop_gradient(onehot) > 0.5)
    distance = (safe_pow(pred_field, alpha) + safe_pow(target_field, alpha)).astype(probs.dtype)
    return pixel_mean(jnp.square(probs - onehot) * distance, valid, spatial)


@_builtin("segmentation")
def hausdorff_dt_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike = 2.0,
    mode: Mode = "multiclass",
    from_logits: bool = True,
    include_background: bool = False,
    per_image: bool = True,
    ignore_index: int | None = None,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Hausdorff distance loss from distance transforms (Karimi & Salcudean).

    .. math::
        \ell_{nc} = \frac{1}{|\Omega|} \sum_{x} (p - t)^2\,
                     \big(d_p(x)^{\alpha} + d_t(x)^{\alpha}\big)

    Convention (MONAI ``HausdorffDTLoss`` defaults, ``include_background=False``):
    :math:`d_t` is ``edt(t) + edt(1 - t)`` of the target mask, :math:`d_p` the
    same of the prediction thresholded at 0.5, both 0 for an empty or full
    mask and neither carrying gradient.

    Args:
      logits: floating ``(N, H, W, C)`` or ``(N, D, H, W, C)``.
      targets: as for :func:`boundary_loss`.
      alpha: exponent of the distances (``>= 0``; MONAI's 2).
      mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
      from_logits: whether ``logits`` are logits.
      include_background: keep channel 0 (default False, as MONAI).
      per_image: ``(N, C)``; ``False`` averages over the batch too (``(C,)``).
      ignore_index: int target value whose pixels are dropped (outside every
        mask for the distance fields, excluded from the mean).
      axis: the class axis of ``logits`` (static).
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N, C)`` or ``(C,)``
      (``C - 1`` classes without the background).

    Raises:
      ValueError: rank not 4 or 5, wrong target shape, labels out of range
        (eager; NaN at their image under ``jit``), negative ``alpha``.
      TypeError: integer logits.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> labels = jnp.array([[[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]])
      >>> perfect = jnp.where(jax.nn.one_hot(labels, 2) > 0, 20.0, -20.0)
      >>> float(jaxloss.hausdorff_dt_loss(perfect, labels))
      0.0

    References:
      Karimi & Salcudean, `Reducing the Hausdorff Distance in Medical Image
      Segmentation with Convolutional Neural Networks
      <https://arxiv.org/abs/1904.10030>`_, 2019. MONAI ``HausdorffDTLoss``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(alpha, "alpha", low=0.0)
    keep = rows_of(where, logits, scored_classes(logits, axis, include_background),
                   per_image=per_image)
    inputs = _spatial_inputs(logits, targets, mode=mode, from_logits=from_logits,
                             ignore_index=ignore_index, axis=axis, keep=keep)
    probs, onehot = drop_background(include_background, inputs.probs, inputs.onehot)
    alpha = _checks.hyperparameter(alpha, "alpha", probs.dtype)
    values = _hausdorff_values(probs, onehot, inputs.valid, alpha=alpha)   # [N, C]
    if not per_image:
        values = jnp.mean(values, axis=0)
    return finish(values, dtype=inputs.dtype, reduction=reduction, where=where, weights=weights)


def _pool(x: Array, window: tuple[int, ...], reducer: Callable[..., Array], init: float,
          ) -> Array:
    """Stride-1 pooling over the spatial axes of ``(N, *spatial, C)`` with 'same' padding."""
    dims = (1, *window, 1)
    padding = [(0, 0)] + [((w - 1) // 2, (w - 1) // 2) for w in window] + [(0, 0)]
    # A Python-scalar init keeps the reducer a recognised max/min pool (differentiable in loops).
    return jax.lax.reduce_window(x, init, reducer, dims, (1,) * x.ndim,
                                 padding)


def _soft_erode(x: Array) -> Array:
    spatial = x.ndim - 2
    eroded = None
    for axis in range(spatial):  # static: 2 or 3 spatial axes
        window = tuple(3 if a == axis else 1 for a in range(spatial))
        pooled = _pool(x, window, jax.lax.min, jnp.inf)
        eroded = pooled if eroded is None else jnp.minimum(eroded, pooled)
    assert eroded is not None  # 2 or 3 spatial axes
    return eroded


def _soft_dilate(x: Array) -> Array:
    return _pool(x, (3,) * (x.ndim - 2), jax.lax.max, -jnp.inf)


def _soft_skeleton(x: Array, iterations: int) -> Array:
    """Shit et al.'s soft skeleton: iterated soft erosion minus soft opening."""
    skeleton = jax.nn.relu(x - _soft_dilate(_soft_erode(x)))

    def step(carry, _):
        image, skel = carry
        image = _soft_erode(image)
        delta = jax.nn.relu(image - _soft_dilate(_soft_erode(image)))
        return (image, skel + jax.nn.relu(delta - skel * delta)), None

    (_, skeleton), _ = jax.lax.scan(step, (x, skeleton), None, length=iterations)
    return skeleton


def _cldice_values(probs: Array, onehot: Array, *, iterations: int, smooth: Array) -> Array:
    """``(N, *spatial, C)`` to ``(N,)``: MONAI's soft clDice, sums over pixels and channels."""
    axes = tuple(range(1, probs.ndim))
    skeleton_pred = _soft_skeleton(probs, iterations)
    skeleton_true = _soft_skeleton(onehot, iterations)
    precision = (jnp.sum(skeleton_pred * onehot, axis=axes) + smooth) / (
        jnp.sum(skeleton_pred, axis=axes) + smooth)
    sensitivity = (jnp.sum(skeleton_true * probs, axis=axes) + smooth) / (
        jnp.sum(skeleton_true, axis=axes) + smooth)
    return 1 - safe_div(2 * precision * sensitivity, precision + sensitivity + 1e-4)


@_builtin("segmentation")
def cldice_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    iterations: int = 3,
    smooth: ArrayLike = 1.0,
    mode: Mode = "multiclass",
    from_logits: bool = True,
    include_background: bool = True,
    ignore_index: int | None = None,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Soft clDice loss: Dice of skeletons against masks, for tubular structures.

    .. math::
        T_{prec} = \frac{\sum S_p\, t + s}{\sum S_p + s}, \quad
        T_{sens} = \frac{\sum S_t\, p + s}{\sum S_t + s}, \quad
        \ell = 1 - \frac{2\, T_{prec} T_{sens}}{T_{prec} + T_{sens} + 10^{-4}}

    with :math:`S` the soft skeleton (``iterations`` soft erosions by 3x3
    min-pooling, Shit et al.), sums over channels and pixels of each image.
    Follows MONAI ``SoftclDiceLoss`` (``smooth_nr = smooth_dr = smooth``).

    Args:
      logits: floating ``(N, H, W, C)`` or ``(N, D, H, W, C)``.
      targets: as for :func:`boundary_loss`.
      iterations: soft-skeleton iterations (static int ``>= 0``).
      smooth: added to both fractions (``>= 0``; MONAI's 1).
      mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
      from_logits: whether ``logits`` are logits.
      include_background: keep channel 0.
      ignore_index: int target value whose pixels are dropped (0 in both the
        prediction and the target before the skeletons).
      axis: the class axis of ``logits`` (static).
      where: boolean mask broadcastable to ``(N,)``.
      weights: weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N,)``.

    Raises:
      ValueError: rank not 4 or 5, wrong target shape, labels out of range
        (eager; NaN at their image under ``jit``), negative ``iterations``.
      TypeError: integer logits.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> vessel = jnp.zeros((1, 7, 7), jnp.int32).at[0, 3, 1:6].set(1)
      >>> perfect = jnp.where(jax.nn.one_hot(vessel, 2) > 0, 20.0, -20.0)
      >>> round(float(jaxloss.cldice_loss(perfect, vessel)), 4)
      0.0

    References:
      Shit et al., `clDice - a Novel Topology-Preserving Loss Function for
      Tubular Structure Segmentation <https://arxiv.org/abs/2003.07311>`_,
      CVPR 2021. MONAI ``SoftclDiceLoss``.
    """
    _checks.check_reduction(reduction)
    iterations = _checks.static_int(iterations, "iterations", low=0)
    _checks.check_range(smooth, "smooth", low=0.0)
    inputs = _spatial_inputs(logits, targets, mode=mode, from_logits=from_logits,
                             ignore_index=ignore_index, axis=axis, keep=rows_of(where, logits))
    probs, onehot = drop_background(include_background, inputs.probs, inputs.onehot)
    smooth = _checks.hyperparameter(smooth, "smooth", probs.dtype)
    values = _cldice_values(probs, onehot, iterations=iterations, smooth=smooth)  # [N]
    return finish(values, dtype=inputs.dtype, reduction=reduction, where=where, weights=weights)



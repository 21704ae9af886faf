"""Image-quality losses: PSNR and total variation (SSIM and MS-SSIM are in ``ssim``).

Conventions: images are floating, channels-last ``(N, H, W, C)``, usually in
``[0, max_val]``; every loss returns one value per image, so the unreduced
loss (``reduction="none"``) has shape ``(N,)`` and ``where``/``weights``
select or weight whole images. Pairs must have exactly the same shape.
Half-precision images are computed in float32 and the loss is returned in
their dtype.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import safe_sqrt
from jaxloss.image._common import image_batch, image_pair
from jaxloss.registry import _builtin

__all__ = [
    "psnr_loss",
    "total_variation_loss",
]


@_builtin("image")
def psnr_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    max_val: ArrayLike = 1.0,
    eps: ArrayLike = 1e-10,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Negative peak signal-to-noise ratio of each image pair, in decibels.

    .. math::

        \ell_n = -10 \log_{10} \frac{L^2}{\max(\mathrm{MSE}_n, \epsilon)},
        \qquad \mathrm{MSE}_n = \frac{1}{HWC}\sum_{h,w,c} (p_{nhwc} - t_{nhwc})^2

    Convention: the MSE is per image (kornia pools it over the batch); the
    floor ``eps`` caps the PSNR of identical images at
    ``10 log10(L^2 / eps)`` (100 dB at the defaults) with a zero gradient,
    where kornia gives ``-inf``.

    Args:
      predictions: floating ``(N, H, W, C)`` images.
      targets: floating images of the same shape.
      max_val: data range ``L > 0``; a Python float or a traced JAX scalar.
      eps: floor of the MSE, ``> 0``; a Python float or a traced JAX scalar.
      where: boolean mask of the images to include, broadcastable to ``(N,)``.
      weights: per-image weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per image, ``(N,)``.

    Raises:
      ValueError: images not of rank 4, shapes differ, ``max_val <= 0`` or
        ``eps <= 0``, or ``reduction`` is unknown.
      TypeError: integer images.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.zeros((1, 2, 2, 1))
      >>> round(float(jaxloss.psnr_loss(x, x + 0.1)), 4)  # MSE 0.01: 20 dB
      -20.0

    References:
      `Peak signal-to-noise ratio
      <https://en.wikipedia.org/wiki/Peak_signal-to-noise_ratio>`_. For one
      image equivalent to ``kornia.losses.psnr_loss(p, t, max_val)``;
      ``-dm_pix.psnr(p, t)`` for images in ``[0, 1]``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(max_val, "max_val", low=0.0, low_inclusive=False)
    _checks.check_range(eps, "eps", low=0.0, low_inclusive=False)
    x, y, dtype = image_pair(predictions, targets)
    max_val = _checks.hyperparameter(max_val, "max_val", x.dtype)
    eps = _checks.hyperparameter(eps, "eps", x.dtype)
    x, y = _reduce.mask_rows(where, x, y)
    mse = jnp.mean(jnp.square(x - y), axis=(1, 2, 3))
    scale = 10.0 / math.log(10.0)
    values = scale * (jnp.log(jnp.maximum(mse, eps)) - 2.0 * jnp.log(max_val))
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("image")
def total_variation_loss(
    predictions: ArrayLike,
    *,
    isotropic: bool = False,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Total variation of each image: the summed size of its forward differences.

    .. math::

        \ell_n = \sum_{h,w,c} |\Delta^x_{hwc}| + |\Delta^y_{hwc}| \quad\text{or}\quad
        \ell_n = \sum_{h,w,c} \sqrt{(\Delta^x_{hwc})^2 + (\Delta^y_{hwc})^2}

    (anisotropic, the default, or ``isotropic=True``), with
    ``Delta^x = p[h, w+1] - p[h, w]`` and ``Delta^y = p[h+1, w] - p[h, w]``.

    Convention: a sum per image over pixels and channels, not a mean (kornia's
    ``total_variation(..., reduction="sum")``; its ``"mean"`` divides the two
    directions by their own counts, ``H (W - 1)`` and ``(H - 1) W``). The
    isotropic form is per channel, with a zero difference past the last row
    and column (Neumann boundary), so every pixel contributes once. The
    gradient of ``|d|`` and of ``sqrt`` at a zero difference is 0 (finite on
    flat images).

    Args:
      predictions: floating ``(N, H, W, C)`` images.
      isotropic: static bool, the Euclidean (isotropic) form.
      where: boolean mask of the images to include, broadcastable to ``(N,)``.
      weights: per-image weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per image, ``(N,)``.

    Raises:
      ValueError: images not of rank 4, or ``reduction`` is unknown.
      TypeError: integer images, or a non-bool ``isotropic``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[0.0, 1.0], [2.0, 4.0]]).reshape(1, 2, 2, 1)
      >>> float(jaxloss.total_variation_loss(x))  # (1 + 2) + (2 + 3)
      8.0
      >>> round(float(jaxloss.total_variation_loss(x, isotropic=True)), 5)  # sqrt(5) + 3 + 2
      7.23607

    References:
      Rudin, Osher and Fatemi, `Nonlinear total variation based noise removal
      algorithms <https://doi.org/10.1016/0167-2789(92)90242-F>`_, 1992.
      Anisotropic: ``kornia.losses.total_variation(p, reduction="sum").sum(-1)``
      on NCHW images.
    """
    _checks.check_reduction(reduction)
    if not isinstance(isotropic, bool):
        raise TypeError(f"isotropic must be a static Python bool; got {isotropic!r}.")
    x = image_batch(predictions, "predictions")
    compute, dtype = _checks.compute_dtype(x)
    (x,) = _reduce.mask_rows(where, x.astype(compute))
    dy = x[:, 1:] - x[:, :-1]  # (N, H - 1, W, C)
    dx = x[:, :, 1:] - x[:, :, :-1]  # (N, H, W - 1, C)
    if isotropic:
        dy = jnp.pad(dy, ((0, 0), (0, 1), (0, 0), (0, 0)))  # Neumann: 0 past the last row
        dx = jnp.pad(dx, ((0, 0), (0, 0), (0, 1), (0, 0)))
        values = jnp.sum(safe_sqrt(dx * dx + dy * dy), axis=(1, 2, 3))
    else:
        # max(d, -d): |d| with a zero derivative at 0 (torch's abs), fuses into the sums.
        values = (jnp.sum(jnp.maximum(dy, -dy), axis=(1, 2, 3))
                  + jnp.sum(jnp.maximum(dx, -dx), axis=(1, 2, 3)))
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)

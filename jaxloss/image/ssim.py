"""Structural similarity losses: SSIM and MS-SSIM.

Conventions: images are floating, channels-last ``(N, H, W, C)``, usually in
``[0, max_val]``, or volumes ``(N, D, H, W, C)`` (the window, the padding and
MS-SSIM's 2x pooling then act on all three spatial axes); every loss returns
one value per image, so the unreduced loss (``reduction="none"``) has shape
``(N,)`` and ``where``/``weights`` select or weight whole images. Pairs must
have exactly the same shape. Half-precision images are computed in float32 and
the loss is returned in their dtype.

SSIM is computed per channel with a depthwise, separable Gaussian window and
averaged over pixels and channels. Its gradient is written out analytically
(a ``jax.custom_jvp``: the gradient of the mean SSIM map is the adjoint
Gaussian filter of four local partial-derivative maps), so that reverse mode
costs about two forward passes; forward mode and ``vmap`` work as usual.
Large batches are processed in chunks of images (``lax.map``) so that the
filtered moment maps stay small.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import safe_pow
from jaxloss.image._common import image_pair
from jaxloss.registry import _builtin

__all__ = [
    "ms_ssim_loss",
    "ssim_loss",
]

Padding = Literal["valid", "same"]
_PADDINGS = ("valid", "same")
_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# Images per lax.map step: the largest divisor of N whose chunk holds at most this many
# pixel values (x 5 filtered moments in float32: ~10 MiB per step, cache-sized).
_CHUNK_ELEMENTS = 2**19


# --------------------------------------------------------------------------------------
# Validation.
# --------------------------------------------------------------------------------------


def _static_float(value: object, name: str, *, low: float = 0.0) -> float:
    """A static, finite Python float ``> low`` (it shapes the filter, so it is not traced)."""
    if _checks.is_traced(value):
        raise TypeError(f"{name} must be a static Python number (it defines the window); "
                        f"got a traced value.")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a Python number; got {value!r}.") from None
    if not math.isfinite(number) or number <= low:
        raise ValueError(f"{name} must be a finite number > {low}; got {value!r}.")
    return number


def _window(window_size: int, sigma: float) -> tuple[float, ...]:
    """The sampled, normalised 1-D Gaussian window (taps at integer offsets from the centre)."""
    window_size = _checks.static_int(window_size, "window_size", low=1)
    if window_size % 2 == 0:
        raise ValueError(
                f"window_size must be odd (the window is centred on a pixel); got {window_size}."
        )
    sigma = _static_float(sigma, "sigma")
    offsets = np.arange(window_size, dtype=np.float64) - window_size // 2
    taps = np.exp(-0.5 * np.square(offsets / sigma))
    return tuple(float(t) for t in taps / taps.sum())


def _check_size(spatial: tuple[int, ...], window_size: int, padding: str, what: str) -> None:
    """``spatial``: the ``(H, W)`` or ``(D, H, W)`` sizes."""
    size = "x".join(str(s) for s in spatial)
    sides = "H and W" if len(spatial) == 2 else "D, H and W"
    radius = window_size // 2
    if padding == "valid" and min(spatial) < window_size:
        raise ValueError(
                f"{what} is {size}, smaller than window_size={window_size}: "
                f"padding='valid' needs {sides} >= window_size. Use a smaller window_size, "
                "fewer scales, or padding='same'."
        )
    if padding == "same" and min(spatial) <= radius:
        raise ValueError(
                f"{what} is {size}: padding='same' reflects window_size // 2 = "
                f"{radius} pixels, which needs {sides} > {radius}. Use a smaller window_size or "
                "fewer scales."
        )


def _ssim_constants(max_val: ArrayLike, k1: ArrayLike, k2: ArrayLike, dtype: jnp.dtype,
                    ) -> tuple[Array, Array]:
    _checks.check_range(max_val, "max_val", low=0.0, low_inclusive=False)
    _checks.check_range(k1, "k1", low=0.0, low_inclusive=False)
    _checks.check_range(k2, "k2", low=0.0, low_inclusive=False)
    max_val = _checks.hyperparameter(max_val, "max_val", dtype)
    c1 = jnp.square(_checks.hyperparameter(k1, "k1", dtype) * max_val)
    c2 = jnp.square(_checks.hyperparameter(k2, "k2", dtype) * max_val)
    return c1, c2


# --------------------------------------------------------------------------------------
# SSIM statistics with an analytic derivative.
# --------------------------------------------------------------------------------------


def _filter_axis(z: Array, window: tuple[float, ...], axis: int, step: int) -> Array:
    """Valid correlation along ``axis`` as ``len(window)`` shifted multiply-adds (XLA fuses them).

    ``step`` is the stride of one pixel along ``axis``: the width axis is stored
    flattened with the channels, ``(..., W * C)``, so one pixel is ``C`` entries.
    """
    size = z.shape[axis] - (len(window) - 1) * step
    out = None
    for k, tap in enumerate(window):  # static: window_size taps
        term = lax.slice_in_dim(z, k * step, k * step + size, axis=axis) * tap
        out = term if out is None else out + term
    assert out is not None  # window has at least one tap (window_size >= 1)
    return out


def _blur(z: Array, window: tuple[float, ...], channels: int, ndim: int) -> Array:
    """Separable valid Gaussian filter of ``(..., H, W * C)`` (``ndim=2``) or
    ``(..., D, H, W * C)`` (``ndim=3``) maps, per channel."""
    z = _filter_axis(z, window, -1, channels)
    for axis in range(2, ndim + 1):  # static: the other spatial axes
        z = _filter_axis(z, window, -axis, 1)
    return z


def _blur_transpose(z: Array, window: tuple[float, ...], channels: int, ndim: int) -> Array:
    """Adjoint of :func:`_blur`: zero-pad by the window and correlate with the reversed window."""
    r = len(window) - 1
    pad = [(0, 0)] * (z.ndim - ndim) + [(r, r)] * (ndim - 1) + [(r * channels, r * channels)]
    return _blur(jnp.pad(z, pad), window[::-1], channels, ndim)


def _reflect(image: Array, window: tuple[float, ...], padding: str) -> Array:
    if padding == "valid":
        return image
    r = len(window) // 2
    pad = ((0, 0),) + ((r, r),) * (image.ndim - 2) + ((0, 0),)
    return jnp.pad(image, pad, mode="reflect")


def _flat(image: Array) -> Array:
    """``(n, *spatial, C)`` -> ``(n, *spatial[:-1], W * C)``."""
    return image.reshape(image.shape[:-2] + (image.shape[-2] * image.shape[-1],))


def _channel_mean(values: Array, channels: int) -> Array:
    """``(n, ..., w * C)`` map -> ``(n, C)`` mean over pixels."""
    return jnp.mean(values.reshape(values.shape[0], -1, channels), axis=1)


def _moment_terms(x: Array, y: Array, c1: Array, c2: Array, window: tuple[float, ...],
                  channels: int) -> tuple[Array, ...]:
    """Local moments of flat ``(n, H, W * C)`` images and the four SSIM factors.

    ``a1 = 2 mx my + c1``, ``b1 = mx^2 + my^2 + c1``, ``a2 = 2 sxy + c2``,
    ``b2 = sxx + syy + c2``; the local variances are clamped at 0 (they are
    non-negative in exact arithmetic, roundoff can make them slightly
    negative), so ``b2 >= c2 > 0``.
    """
    ndim = x.ndim - 1  # flat maps (n, *spatial[:-1], W * C)
    mx, my, exx, eyy, exy = _blur(jnp.stack([x, y, x * x, y * y, x * y]), window, channels, ndim)
    mxy = mx * my
    vx = exx - mx * mx
    vy = eyy - my * my
    a1 = 2.0 * mxy + c1
    b1 = mx * mx + my * my + c1
    a2 = 2.0 * (exy - mxy) + c2
    b2 = jnp.maximum(vx, 0.0) + jnp.maximum(vy, 0.0) + c2
    return mx, my, vx > 0, vy > 0, a1, b1, a2, b2


def _stats_value(x: Array, y: Array, c1: Array, c2: Array, window: tuple[float, ...],
                 padding: str, kind: str) -> Array:
    channels = x.shape[-1]
    xf, yf = _flat(_reflect(x, window, padding)), _flat(_reflect(y, window, padding))
    *_, a1, b1, a2, b2 = _moment_terms(xf, yf, c1, c2, window, channels)
    values = a1 * a2 / (b1 * b2) if kind == "ssim" else a2 / b2
    return _channel_mean(values, channels)


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5, 6))
def _ssim_stats(x: Array, y: Array, c1: Array, c2: Array, window: tuple[float, ...],
                padding: str, kind: str) -> Array:
    """Per image and channel mean of the SSIM map (``kind="ssim"``) or the CS map (``"cs"``).

    ``x``, ``y``: ``(n, H, W, C)``; returns ``(n, C)``.
    """
    return _stats_value(x, y, c1, c2, window, padding, kind)


@functools.partial(_ssim_stats.defjvp, symbolic_zeros=True)
def _ssim_stats_jvp(window: tuple[float, ...], padding: str, kind: str,
                    primals: tuple[Array, ...], tangents: tuple[Array | SymbolicZero, ...],
                    ) -> tuple[Array, Array]:
    """Value and tangent from the analytic gradient of the mean map.

    With ``S = a1 a2 / (b1 b2)`` (or ``CS = a2 / b2``) a function of the local
    moments ``m = (mx, my, exx, eyy, exy) = G * (x, y, x^2, y^2, x y)``, the
    gradient of the per-channel mean with respect to ``x`` is
    ``(G^T dS/dmx + 2 x G^T dS/dexx + y G^T dS/dexy) / P``, ``G^T`` the adjoint
    (zero-padded, reversed) filter and ``P`` the number of map pixels. Zero
    (symbolic) tangents skip their part: differentiating with respect to the
    predictions alone filters three maps back, not five.
    """
    x, y, c1, c2 = primals
    tx, ty, tc1, tc2 = tangents
    channels = x.shape[-1]
    xp, yp = _reflect(x, window, padding), _reflect(y, window, padding)
    xf, yf = _flat(xp), _flat(yp)
    mx, my, x_var, y_var, a1, b1, a2, b2 = _moment_terms(xf, yf, c1, c2, window, channels)
    zeros = jnp.zeros_like(b2)
    if kind == "ssim":
        inverse = 1.0 / (b1 * b2)
        values = a1 * a2 * inverse
        d_a1, d_a2 = a2 * inverse, a1 * inverse
        d_b1, d_b2 = -values / b1, -values / b2
    else:
        values = a2 / b2
        d_a1 = d_b1 = zeros
        d_a2, d_b2 = 1.0 / b2, -values / b2
    value = _channel_mean(values, channels)
    tangent = jnp.zeros_like(value)
    count = math.prod(values.shape[1:]) // channels  # map pixels per channel

    d_exy = 2.0 * d_a2
    d_mean_product = d_a1 - d_a2  # d/d(mx my) through a1 and a2
    for image, other, mean, other_mean, positive, t in (
            (xp, yp, mx, my, x_var, tx), (yp, xp, my, mx, y_var, ty)):
        if isinstance(t, SymbolicZero):
            continue
        d_square = jnp.where(positive, d_b2, zeros)  # d/d(E[x^2]) through b2 = sxx + ...
        d_mean = 2.0 * (other_mean * d_mean_product + mean * (d_b1 - d_square))
        back = _blur_transpose(jnp.stack([d_mean, d_square, d_exy]), window, channels,
                               x.ndim - 2) / count
        grad = back[0] + 2.0 * _flat(image) * back[1] + _flat(other) * back[2]
        grad = grad.reshape(image.shape)
        if padding == "same":  # through the reflect padding: its transpose
            _, unpad = jax.vjp(lambda z: _reflect(z, window, padding), primals[0])
            (grad,) = unpad(grad)
        tangent = tangent + jnp.sum(grad * t, axis=tuple(range(1, x.ndim - 1)))
    if not isinstance(tc1, SymbolicZero):
        tangent = tangent + _channel_mean(d_a1 + d_b1, channels) * tc1
    if not isinstance(tc2, SymbolicZero):
        tangent = tangent + _channel_mean(d_a2 + d_b2, channels) * tc2
    return value, tangent


def _chunk_size(n: int, per_image: int) -> int:
    """The largest divisor of ``n`` whose chunk holds at most ``_CHUNK_ELEMENTS`` values."""
    limit = max(1, _CHUNK_ELEMENTS // max(per_image, 1))
    if n <= limit:
        return max(n, 1)
    return max(d for d in range(1, limit + 1) if n % d == 0)


def _channel_stats(x: Array, y: Array, c1: Array, c2: Array, window: tuple[float, ...],
                   padding: str, kind: str) -> Array:
    """:func:`_ssim_stats` over the batch, ``chunk`` images at a time: ``(N, C)``."""
    n = x.shape[0]
    chunk = _chunk_size(n, math.prod(x.shape[1:]))
    if chunk >= n:
        return _ssim_stats(x, y, c1, c2, window, padding, kind)
    xs = x.reshape((n // chunk, chunk) + x.shape[1:])
    ys = y.reshape(xs.shape)
    out = lax.map(lambda pair: _ssim_stats(pair[0], pair[1], c1, c2, window, padding, kind),
                  (xs, ys))
    return out.reshape(n, x.shape[-1])


def _downsample(image: Array) -> Array:
    """2x2 (2x2x2) average pooling; an odd side gets one zero row/column in front
    (pytorch_msssim)."""
    spatial = image.shape[1:-1]
    image = jnp.pad(image, ((0, 0),) + tuple((s % 2, 0) for s in spatial) + ((0, 0),))
    halves = tuple(s // 2 for s in image.shape[1:-1])
    split = sum(((h, 2) for h in halves), ())  # (h1, 2, h2, 2[, h3, 2])
    pooled = image.reshape((image.shape[0],) + split + (image.shape[-1],))
    axes = tuple(2 + 2 * i for i in range(len(halves)))
    return jnp.sum(pooled, axis=axes) * (0.5 ** len(halves))


# Jitted cores: one compilation per shape and static setting, also when called eagerly
# (op-by-op dispatch of the filter's many small operations would compile each one).


@functools.partial(jax.jit, static_argnames=("window", "padding"))
def _ssim_values(x: Array, y: Array, c1: Array, c2: Array, *, window: tuple[float, ...],
                 padding: str) -> Array:
    """``1 - mean SSIM`` per image, ``(N,)``."""
    return 1.0 - jnp.mean(_channel_stats(x, y, c1, c2, window, padding, "ssim"), axis=-1)


@functools.partial(jax.jit, static_argnames=("window", "padding", "powers"))
def _ms_ssim_values(x: Array, y: Array, c1: Array, c2: Array, *, window: tuple[float, ...],
                    padding: str, powers: tuple[float, ...]) -> Array:
    """``1 - MS-SSIM`` per image, ``(N,)``."""
    product = None
    for level, power in enumerate(powers):  # static: one iteration per scale
        last = level == len(powers) - 1
        stat = _channel_stats(x, y, c1, c2, window, padding, "ssim" if last else "cs")
        factor = safe_pow(jnp.maximum(stat, 0.0), power)  # (N, C)
        product = factor if product is None else product * factor
        if not last:
            x, y = _downsample(x), _downsample(y)
    assert product is not None  # ms_ssim_loss checks power_factors is not empty
    return 1.0 - jnp.mean(product, axis=-1)


# --------------------------------------------------------------------------------------
# Public losses.
# --------------------------------------------------------------------------------------


@_builtin("image")
def ssim_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    max_val: ArrayLike = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: ArrayLike = 0.01,
    k2: ArrayLike = 0.03,
    padding: Padding = "valid",
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""SSIM loss: one minus the mean structural similarity of each image pair.

    .. math::

        \ell_n = 1 - \frac{1}{|\Omega| C}\sum_{c}\sum_{p \in \Omega}
        \frac{(2\mu_x\mu_y + c_1)(2\sigma_{xy} + c_2)}
             {(\mu_x^2 + \mu_y^2 + c_1)(\sigma_x^2 + \sigma_y^2 + c_2)},
        \qquad c_1 = (k_1 L)^2,\; c_2 = (k_2 L)^2

    with local means, variances and covariance from a Gaussian window
    (``window_size`` taps, standard deviation ``sigma``) per channel, and
    ``L = max_val``.

    Convention: ``padding="valid"`` filters without padding, so the SSIM map
    is ``(H - w + 1) x (W - w + 1)`` (tf.image.ssim, dm-pix ``ssim``, the
    MATLAB code of Wang et al.); ``padding="same"`` reflects ``w // 2`` pixels
    at every border and keeps ``H x W`` (kornia ``metrics.ssim``). The local
    variances are clamped at 0 against roundoff (so the denominator is at
    least ``c2`` and flat or identical images give finite gradients); the
    covariance is not clipped (dm-pix clips it to ``sqrt(sxx syy)``, which
    changes nothing on real images). kornia's ``ssim_loss`` is a different
    normalisation: the pixel mean of ``clamp((1 - SSIM) / 2, 0, 1)``, i.e.
    half of this loss where SSIM lies in ``[-1, 1]``. The gradient is
    analytic (see the module docstring); forward mode works.

    Args:
      predictions: floating ``(N, H, W, C)`` images or ``(N, D, H, W, C)``
        volumes, channels-last.
      targets: floating images of the same shape.
      max_val: data range ``L > 0`` (1 for images in ``[0, 1]``, 255 for
        ``[0, 255]``); a Python float or a traced JAX scalar.
      window_size: odd number of taps of the Gaussian window, static;
        ``H, W >= window_size`` for ``"valid"``, ``> window_size // 2`` for
        ``"same"``.
      sigma: standard deviation of the window in pixels, ``> 0``, static.
      k1, k2: SSIM constants, ``> 0``; Python floats or traced JAX scalars.
      padding: ``"valid"`` or ``"same"`` (see Convention), static.
      where: boolean mask of the images to include, broadcastable to ``(N,)``.
      weights: per-image weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per image, ``(N,)``.

    Raises:
      ValueError: images not of rank 4 or 5, shapes differ, even ``window_size``,
        images smaller than the window, unknown ``padding`` or ``reduction``,
        non-positive ``max_val``, ``k1``, ``k2`` or ``sigma``.
      TypeError: integer images, or a traced ``window_size`` or ``sigma``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = (jnp.arange(64.0) / 63.0).reshape(1, 8, 8, 1)
      >>> round(float(jaxloss.ssim_loss(x, jnp.square(x), window_size=7)), 5)
      0.17391
      >>> round(float(jaxloss.ssim_loss(x, jnp.square(x), window_size=7, padding="same")), 5)
      0.2757

    References:
      Wang et al., `Image Quality Assessment: From Error Visibility to
      Structural Similarity <https://doi.org/10.1109/TIP.2003.819861>`_, 2004.
      ``"valid"``: ``1 - dm_pix.ssim(predictions, targets, max_val=max_val,
      filter_size=window_size, filter_sigma=sigma, k1=k1, k2=k2)``;
      ``"same"``: ``1 - kornia.metrics.ssim(p, t, window_size, max_val,
      eps=0.0).mean((1, 2, 3))`` on NCHW images (kornia fixes ``sigma=1.5``,
      ``k1=0.01``, ``k2=0.03``). Volumes, ``"valid"``: MONAI
      ``SSIMLoss(spatial_dims=3, data_range=max_val, win_size=window_size,
      kernel_sigma=sigma, k1=k1, k2=k2, reduction="none")`` on NCDHW volumes.
    """
    _checks.check_reduction(reduction)
    _checks.check_choice(padding, "padding", _PADDINGS)
    window = _window(window_size, sigma)
    x, y, dtype = image_pair(predictions, targets, volumes=True)
    _check_size(x.shape[1:-1], window_size, padding, "The image")
    c1, c2 = _ssim_constants(max_val, k1, k2, x.dtype)
    x, y = _reduce.mask_rows(where, x, y)
    values = _ssim_values(x, y, c1, c2, window=window, padding=padding)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("image")
def ms_ssim_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    max_val: ArrayLike = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: ArrayLike = 0.01,
    k2: ArrayLike = 0.03,
    power_factors: Sequence[float] = _MS_SSIM_WEIGHTS,
    padding: Padding = "valid",
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Multi-scale SSIM loss: one minus Wang et al.'s MS-SSIM of each image pair.

    .. math::

        \ell_n = 1 - \frac{1}{C}\sum_c \mathrm{relu}(\mathrm{SSIM}_{M,c})^{\beta_M}
                 \prod_{j=1}^{M-1} \mathrm{relu}(\mathrm{CS}_{j,c})^{\beta_j}

    where ``CS_j`` is the mean contrast-structure term
    ``(2 sxy + c2) / (sxx + syy + c2)`` at scale ``j``, ``SSIM_M`` the mean
    SSIM at the coarsest scale, ``beta = power_factors`` (``M`` scales), and
    scale ``j + 1`` is scale ``j`` average-pooled 2x2.

    Convention: pytorch_msssim's algorithm: per-channel means, ``relu`` before
    the fractional powers (a zero base gives 0 with a zero gradient), mean over
    channels last; an odd side is pooled with one zero row/column in front
    (``avg_pool2d(x, 2, padding=side % 2)``). Each scale's SSIM is
    :func:`ssim_loss`'s, with the same ``padding``; ``power_factors=(1.0,)``
    gives exactly :func:`ssim_loss`. Unlike pytorch_msssim, which skips the
    filter along an axis shorter than the window, the coarsest scale must fit
    the window (a clear error otherwise). kornia's ``MS_SSIMLoss`` is a
    different loss (Zhao et al. 2017: several Gaussian widths at one
    resolution, mixed with L1), not this one. The loop over scales is a
    static Python loop (each scale has its own shape, at most a handful).

    Args:
      predictions: floating ``(N, H, W, C)`` images or ``(N, D, H, W, C)``
        volumes, channels-last.
      targets: floating images of the same shape.
      max_val: data range ``L > 0``; a Python float or a traced JAX scalar.
      window_size: odd number of taps of the Gaussian window, static. The
        coarsest scale ``H / 2^(M-1)`` must be ``>= window_size``
        (``"valid"``) or ``> window_size // 2`` (``"same"``).
      sigma: standard deviation of the window in pixels, ``> 0``, static.
      k1, k2: SSIM constants, ``> 0``; Python floats or traced JAX scalars.
      power_factors: static sequence of ``M >= 1`` exponents ``> 0``, finest
        scale first; the default is Wang et al.'s five.
      padding: ``"valid"`` or ``"same"`` (reflect), as in :func:`ssim_loss`.
      where: boolean mask of the images to include, broadcastable to ``(N,)``.
      weights: per-image weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per image, ``(N,)``.

    Raises:
      ValueError: images not of rank 4 or 5, shapes differ, even ``window_size``,
        a coarsest scale smaller than the window, empty or non-positive
        ``power_factors``, unknown ``padding`` or ``reduction``.
      TypeError: integer images, or non-static ``window_size``, ``sigma`` or
        ``power_factors``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> i = jnp.arange(40.0)
      >>> x = (jnp.sin(i[:, None] / 3.0) * jnp.cos(i[None, :] / 5.0) + 1.0) / 2.0
      >>> x = x[None, :, :, None]
      >>> loss = jaxloss.ms_ssim_loss(x, jnp.square(x), window_size=3,
      ...                             power_factors=(0.3, 0.3, 0.4))
      >>> round(float(loss), 5)
      0.12377

    References:
      Wang et al., `Multiscale structural similarity for image quality
      assessment <https://doi.org/10.1109/ACSSC.2003.1292216>`_, 2003.
      ``"valid"``: ``1 - pytorch_msssim.ms_ssim(p, t, data_range=max_val,
      size_average=False, win_size=window_size, win_sigma=sigma,
      weights=power_factors, K=(k1, k2))`` on NCHW images; on single-channel
      NCDHW volumes with even sides, ``1 - MultiScaleSSIMMetric(spatial_dims=3,
      ...)`` of MONAI (which averages the channels before the powers).
    """
    _checks.check_reduction(reduction)
    _checks.check_choice(padding, "padding", _PADDINGS)
    window = _window(window_size, sigma)
    if isinstance(power_factors, (str, bytes)) or not isinstance(power_factors, Sequence):
        raise TypeError(f"power_factors must be a static sequence of numbers; got "
                        f"{power_factors!r}.")
    if not power_factors:
        raise ValueError("power_factors must hold at least one exponent; got an empty sequence.")
    powers = tuple(_static_float(p, "power_factors") for p in power_factors)
    x, y, dtype = image_pair(predictions, targets, volumes=True)
    spatial = x.shape[1:-1]
    for _ in range(len(powers) - 1):
        spatial = tuple((s + 1) // 2 for s in spatial)
    _check_size(spatial, window_size, padding,
                f"The coarsest of the {len(powers)} scales "
                f"({'x'.join(str(s) for s in x.shape[1:-1])} halved {len(powers) - 1} times)")
    c1, c2 = _ssim_constants(max_val, k1, k2, x.dtype)
    x, y = _reduce.mask_rows(where, x, y)
    values = _ms_ssim_values(x, y, c1, c2, window=window, padding=padding, powers=powers)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)

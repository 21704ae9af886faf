"""Keypoint targets and decoding: Gaussian heatmaps and SimCC 1-D labels rendered from
coordinates under ``jit``, and coordinates read back from heatmaps and SimCC logits.

Conventions: keypoints are ``(..., K, 2)`` arrays of ``(x, y)`` coordinates in
pixels of the grid they are rendered on, pixel centres at integers (column
``x``, row ``y``); heatmaps are channels-last ``(..., H, W, K)``; SimCC vectors
are ``(..., K, bins)`` with ``bins = round(W * split_ratio)`` for x and
``round(H * split_ratio)`` for y. Nothing here is a loss: the helpers make the
targets the losses compare against and turn predictions into coordinates for
evaluation.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss.keypoint._common import keypoint_array

__all__ = ["decode_heatmaps", "decode_simcc", "gaussian_heatmaps", "simcc_targets"]

Refinement = Literal["none", "quarter", "taylor"]


def _grid_shape(shape: tuple[int, int], name: str = "shape") -> tuple[int, int]:
    if (not isinstance(shape, (tuple, list)) or len(shape) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)):
        raise ValueError(f"{name} must be a static (height, width) pair of positive ints; "
                         f"got {shape!r}.")
    return int(shape[0]), int(shape[1])


def _visible(visibility: ArrayLike | None, keypoints: Array) -> Array | None:
    """Boolean ``keypoints.shape[:-1]``: the keypoints whose targets are drawn."""
    if visibility is None:
        return None
    v = jnp.asarray(visibility)
    if v.shape != keypoints.shape[:-1]:
        raise ValueError(f"visibility must have shape {keypoints.shape[:-1]} (one flag per "
                         f"keypoint); got shape {v.shape}.")
    return v > 0 if v.dtype != jnp.bool_ else v


def _profile(centers: Array, length: int, sigma: Array) -> Array:
    """``exp(-(i - c)^2 / (2 sigma^2))`` for ``i`` in ``range(length)``: ``(..., length)``."""
    grid = jnp.arange(length, dtype=centers.dtype).reshape((1,) * centers.ndim + (length,))
    return jnp.exp(-jnp.square(grid - centers[..., None]) / (2.0 * jnp.square(sigma)))


def gaussian_heatmaps(
    keypoints: ArrayLike,
    *,
    shape: tuple[int, int],
    sigma: ArrayLike = 2.0,
    visibility: ArrayLike | None = None,
) -> Array:
    r"""Gaussian target heatmaps, one channel per keypoint, centred at sub-pixel positions.

    .. math:: h_{yxk} = \exp\!\big(-((x - x_k)^2 + (y - y_k)^2) / (2\sigma^2)\big)

    on the whole grid, the peak 1 at the keypoint (not rounded to a pixel: the
    unbiased encoding of Huang et al. 2020). Invisible keypoints get an all-zero
    channel. Works under ``jit`` (``shape`` is static, ``sigma`` may be traced).

    Args:
      keypoints: floating ``(..., K, 2)`` coordinates ``(x, y)`` in heatmap pixels.
      shape: static ``(H, W)`` of the heatmaps.
      sigma: Gaussian standard deviation in pixels, ``> 0``.
      visibility: ``(..., K)``; keypoints whose entry is 0 or False get a zero map.

    Returns:
      ``(..., H, W, K)`` heatmaps in ``[0, 1]``, the dtype of ``keypoints``.

    Raises:
      ValueError: ``keypoints`` not ``(..., K, 2)``, a bad ``shape``, a
        non-positive ``sigma`` (when concrete) or a ``visibility`` of another shape.
      TypeError: integer ``keypoints``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> h = jaxloss.gaussian_heatmaps(jnp.array([[[2.0, 1.0]]]), shape=(3, 4), sigma=1.0)
      >>> h.shape, float(h[0, 1, 2, 0]), round(float(h[0, 1, 3, 0]), 4)
      ((1, 3, 4, 1), 1.0, 0.6065)

    References:
      Tompson et al., `Joint Training of a Convolutional Network and a Graphical
      Model for Human Pose Estimation <https://arxiv.org/abs/1406.2984>`_, 2014;
      Huang et al., `The Devil is in the Details: Delving into Unbiased Data
      Processing for Human Pose Estimation <https://arxiv.org/abs/1911.07524>`_,
      2020. mmpose ``generate_unbiased_gaussian_heatmaps``
      (``codecs/utils/gaussian_heatmap.py``), channels-last.
    """
    kp = keypoint_array(keypoints, "keypoints", coords=2)
    height, width = _grid_shape(shape)
    _checks.check_range(sigma, "sigma", low=0.0, low_inclusive=False)
    compute, dtype = _checks.compute_dtype(kp)
    kp = kp.astype(compute)
    sigma = _checks.hyperparameter(sigma, "sigma", compute)
    return _render_heatmaps(kp, sigma, _visible(visibility, kp), height, width).astype(dtype)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _render_heatmaps(kp: Array, sigma: Array, visible: Array | None, height: int,
                     width: int) -> Array:
    """``(..., H, W, K)`` Gaussians as the outer product of two 1-D profiles (one program)."""
    gx = _profile(kp[..., 0], width, sigma)                          # (..., K, W)
    gy = _profile(kp[..., 1], height, sigma)                         # (..., K, H)
    if visible is not None:
        gx = jnp.where(visible[..., None], gx, jnp.zeros_like(gx))
    maps = gy[..., :, None] * gx[..., None, :]                       # (..., K, H, W)
    return jnp.moveaxis(maps, -3, -1)                                # (..., H, W, K)


def simcc_targets(
    keypoints: ArrayLike,
    *,
    shape: tuple[int, int],
    split_ratio: float = 2.0,
    sigma: ArrayLike = 6.0,
    visibility: ArrayLike | None = None,
    normalize: bool = False,
) -> tuple[Array, Array]:
    r"""SimCC's 1-D Gaussian labels: one distribution over x bins and one over y bins.

    .. math::

        q^x_{kb} = \exp\!\big(-(b - r x_k)^2 / (2\sigma_x^2)\big), \qquad
        q^y_{kb} = \exp\!\big(-(b - r y_k)^2 / (2\sigma_y^2)\big)

    with ``r = split_ratio`` bins per pixel. The centre is not rounded to a bin
    (mmpose's ``SimCCLabel`` rounds it: pass ``jnp.round(r * keypoints) / r`` to
    match it). Invisible keypoints get all-zero labels. Works under ``jit``.

    Args:
      keypoints: floating ``(..., K, 2)`` coordinates ``(x, y)`` in input pixels.
      shape: static ``(H, W)`` of the input: ``round(W * r)`` x bins and
        ``round(H * r)`` y bins.
      split_ratio: static bins per pixel, ``> 0``.
      sigma: standard deviation in bins, ``> 0``: a scalar or ``(sigma_x, sigma_y)``
        (RTMPose uses ``(4.9, 5.66)`` at ``split_ratio=2``).
      visibility: ``(..., K)``; keypoints whose entry is 0 or False get zero labels.
      normalize: static bool: divide by ``sigma * sqrt(2 pi)`` (mmpose's ``normalize``).

    Returns:
      ``(x_targets, y_targets)``: ``(..., K, round(W r))`` and ``(..., K, round(H r))``.

    Raises:
      ValueError: ``keypoints`` not ``(..., K, 2)``, a bad ``shape``,
        ``split_ratio`` or ``sigma`` out of range.
      TypeError: integer ``keypoints``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> qx, qy = jaxloss.simcc_targets(jnp.array([[[1.5, 0.0]]]), shape=(2, 3), sigma=1.0)
      >>> qx.shape, qy.shape, int(qx.argmax()), int(qy.argmax())
      ((1, 1, 6), (1, 1, 4), 3, 0)

    References:
      Li et al., `SimCC: a Simple Coordinate Classification Perspective for Human
      Pose Estimation <https://arxiv.org/abs/2107.03332>`_, ECCV 2022. mmpose
      ``SimCCLabel(input_size=(W, H), smoothing_type="gaussian", sigma,
      simcc_split_ratio)`` (``codecs/simcc_label.py``).
    """
    kp = keypoint_array(keypoints, "keypoints", coords=2)
    height, width = _grid_shape(shape)
    if isinstance(split_ratio, bool) or not _checks.finite_float(split_ratio) or split_ratio <= 0:
        raise ValueError(f"split_ratio must be a static positive number; got {split_ratio!r}.")
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a static bool; got {normalize!r}.")
    _checks.check_range(sigma, "sigma", low=0.0, low_inclusive=False)
    compute, dtype = _checks.compute_dtype(kp)
    kp = kp.astype(compute)
    s = _checks.hyperparameter(sigma, "sigma", compute, scalar=False)
    if s.shape not in ((), (2,)):
        raise ValueError(f"sigma must be a scalar or a (sigma_x, sigma_y) pair; got shape "
                         f"{s.shape}.")
    bins = (round(width * split_ratio), round(height * split_ratio))
    qx, qy = _render_simcc(kp, s, _visible(visibility, kp), bins, float(split_ratio), normalize)
    return qx.astype(dtype), qy.astype(dtype)


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _render_simcc(kp: Array, s: Array, visible: Array | None, bins: tuple[int, int],
                  split_ratio: float, normalize: bool) -> tuple[Array, Array]:
    sx, sy = (s, s) if s.ndim == 0 else (s[0], s[1])
    qx = _profile(kp[..., 0] * split_ratio, bins[0], sx)
    qy = _profile(kp[..., 1] * split_ratio, bins[1], sy)
    if normalize:
        qx = qx / (sx * math.sqrt(2.0 * math.pi))
        qy = qy / (sy * math.sqrt(2.0 * math.pi))
    if visible is not None:
        qx = jnp.where(visible[..., None], qx, jnp.zeros_like(qx))
        qy = jnp.where(visible[..., None], qy, jnp.zeros_like(qy))
    return qx, qy


def _at(flat: Array, row: Array, col: Array, width: int) -> Array:
    """``maps[..., row, col]`` of maps flattened to ``(..., H * W)``; indices ``(...)``."""
    return jnp.take_along_axis(flat, (row * width + col)[..., None], axis=-1)[..., 0]


@functools.partial(jax.jit, static_argnums=1)
def _decode_heatmaps(h: Array, refine: str) -> tuple[Array, Array]:
    """The argmax and its refinement (one compiled program: eager calls stay cheap)."""
    compute, _ = _checks.compute_dtype(h)
    h = jnp.moveaxis(h.astype(compute), -1, -3)                      # (..., K, H, W)
    height, width = h.shape[-2:]
    flat = h.reshape(h.shape[:-2] + (height * width,))
    index = jnp.argmax(flat, axis=-1)
    scores = jnp.max(flat, axis=-1)
    row, col = index // width, index % width
    x, y = col.astype(compute), row.astype(compute)
    if refine != "none":
        inner_x = (col > 0) & (col < width - 1)
        inner_y = (row > 0) & (row < height - 1)
        cl, cr = jnp.clip(col - 1, 0, width - 1), jnp.clip(col + 1, 0, width - 1)
        ru, rd = jnp.clip(row - 1, 0, height - 1), jnp.clip(row + 1, 0, height - 1)

        def at(r: Array, c: Array) -> Array:
            return _at(flat, r, c, width)

        if refine == "quarter":
            dx = jnp.where(inner_x, at(row, cr) - at(row, cl), 0.0)
            dy = jnp.where(inner_y, at(rd, col) - at(ru, col), 0.0)
            x, y = x + 0.25 * jnp.sign(dx), y + 0.25 * jnp.sign(dy)
        else:
            tiny = jnp.finfo(compute).tiny

            def log_at(r: Array, c: Array) -> Array:
                return jnp.log(jnp.maximum(at(r, c), tiny))

            center = log_at(row, col)
            left, right, up, down = (log_at(row, cl), log_at(row, cr), log_at(ru, col),
                                     log_at(rd, col))
            gx, gy = 0.5 * (right - left), 0.5 * (down - up)
            hxx, hyy = right - 2.0 * center + left, down - 2.0 * center + up
            hxy = 0.25 * (log_at(rd, cr) - log_at(rd, cl) - log_at(ru, cr) + log_at(ru, cl))
            det = hxx * hyy - hxy * hxy
            ok = inner_x & inner_y & (det > 0) & (hxx < 0)
            safe_det = jnp.where(ok, det, 1.0)
            # -(H^-1) g for the 2x2 Hessian [[hxx, hxy], [hxy, hyy]]
            ox = -(hyy * gx - hxy * gy) / safe_det
            oy = -(hxx * gy - hxy * gx) / safe_det
            x = x + jnp.where(ok, jnp.clip(ox, -1.0, 1.0), 0.0)
            y = y + jnp.where(ok, jnp.clip(oy, -1.0, 1.0), 0.0)
    return jnp.stack([x, y], axis=-1), scores


def decode_heatmaps(
    heatmaps: ArrayLike,
    *,
    refine: Refinement = "quarter",
) -> tuple[Array, Array]:
    r"""Keypoint coordinates from heatmaps: the argmax, refined to sub-pixel precision.

    ``refine="quarter"`` moves the argmax a quarter pixel toward the higher of its
    two neighbours on each axis (Newell 2016, SimpleBaseline; mmpose
    ``refine_keypoints``). ``refine="taylor"`` takes one Newton step on the log
    heatmap, :math:`\mu = m - (\nabla^2 \log h)^{-1} \nabla \log h` from central
    differences at the argmax ``m`` (DARK's Taylor expansion, Zhang et al. 2020,
    without its Gaussian modulation: blur noisy heatmaps first); it is exact for a
    Gaussian peak and falls back to the argmax where the Hessian is not negative
    definite. Both leave argmaxes on the border unrefined. ``"none"`` returns the
    argmax. Works under ``jit``; not meant to be differentiated.

    Args:
      heatmaps: floating ``(..., H, W, K)``.
      refine: ``"quarter"`` (default), ``"taylor"`` or ``"none"``.

    Returns:
      ``(keypoints, scores)``: ``(..., K, 2)`` coordinates ``(x, y)`` in heatmap
      pixels (float32, or the heatmaps' dtype if wider) and the maxima ``(..., K)``.

    Raises:
      ValueError: rank below 3, or an unknown ``refine``.
      TypeError: integer ``heatmaps``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> h = jaxloss.gaussian_heatmaps(jnp.array([[[3.3, 2.6]]]), shape=(8, 8))
      >>> jaxloss.decode_heatmaps(h, refine="none")[0]
      Array([[[3., 3.]]], dtype=float32)
      >>> jaxloss.decode_heatmaps(h)[0]
      Array([[[3.25, 2.75]]], dtype=float32)
      >>> jaxloss.decode_heatmaps(h, refine="taylor")[0].round(4)
      Array([[[3.3, 2.6]]], dtype=float32)

    References:
      Newell et al., `Stacked Hourglass Networks for Human Pose Estimation
      <https://arxiv.org/abs/1603.06937>`_, 2016 (quarter offset); Zhang et al.,
      `Distribution-Aware Coordinate Representation for Human Pose Estimation
      <https://arxiv.org/abs/1910.06278>`_, 2020 (Taylor step). mmpose
      ``get_heatmap_maximum`` with ``refine_keypoints`` / ``refine_keypoints_dark``
      (``codecs/utils``).
    """
    h = _checks.float_input(heatmaps, "heatmaps")
    _checks.check_rank(h, "heatmaps", min_rank=3)
    _checks.check_choice(refine, "refine", ("none", "quarter", "taylor"))
    return _decode_heatmaps(h, refine)


def decode_simcc(
    x_logits: ArrayLike,
    y_logits: ArrayLike,
    *,
    split_ratio: float = 2.0,
) -> tuple[Array, Array]:
    r"""Keypoint coordinates from SimCC vectors: the argmax bin of each axis over ``split_ratio``.

    The score of a keypoint is the smaller of its two maxima (mmpose's
    ``get_simcc_maximum``), on whatever scale the inputs are (logits or
    probabilities). Works under ``jit``.

    Args:
      x_logits: floating ``(..., K, Wx)``.
      y_logits: floating ``(..., K, Wy)``, the same leading shape.
      split_ratio: static bins per pixel, ``> 0``.

    Returns:
      ``(keypoints, scores)``: ``(..., K, 2)`` coordinates ``(x, y)`` in input
      pixels and ``(..., K)`` scores.

    Raises:
      ValueError: rank below 2, leading shapes that differ, or a bad ``split_ratio``.
      TypeError: integer logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> qx, qy = jaxloss.simcc_targets(jnp.array([[[1.5, 3.0]]]), shape=(4, 4))
      >>> jaxloss.decode_simcc(qx, qy)[0]
      Array([[[1.5, 3. ]]], dtype=float32)

    References:
      Li et al., `SimCC: a Simple Coordinate Classification Perspective for Human
      Pose Estimation <https://arxiv.org/abs/2107.03332>`_, ECCV 2022. mmpose
      ``SimCCLabel.decode`` (``codecs/simcc_label.py``).
    """
    zx = _checks.float_input(x_logits, "x_logits")
    zy = _checks.float_input(y_logits, "y_logits")
    _checks.check_rank(zx, "x_logits", min_rank=2)
    if zy.shape[:-1] != zx.shape[:-1]:
        raise ValueError(f"y_logits must have the leading shape {zx.shape[:-1]} of x_logits; "
                         f"got shape {zy.shape}.")
    if isinstance(split_ratio, bool) or not _checks.finite_float(split_ratio) or split_ratio <= 0:
        raise ValueError(f"split_ratio must be a static positive number; got {split_ratio!r}.")
    compute, _ = _checks.compute_dtype(zx, zy)
    return _decode_simcc(zx.astype(compute), zy.astype(compute), float(split_ratio))


@functools.partial(jax.jit, static_argnums=2)
def _decode_simcc(zx: Array, zy: Array, split_ratio: float) -> tuple[Array, Array]:
    x = jnp.argmax(zx, axis=-1).astype(zx.dtype) / split_ratio
    y = jnp.argmax(zy, axis=-1).astype(zx.dtype) / split_ratio
    scores = jnp.minimum(jnp.max(zx, axis=-1), jnp.max(zy, axis=-1))
    return jnp.stack([x, y], axis=-1), scores


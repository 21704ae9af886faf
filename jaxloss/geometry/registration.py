"""Image-registration losses: local normalised cross-correlation, global mutual
information and the bending energy of a displacement field.

Conventions: images and volumes are channels-last, ``(N, H, W, C)`` or
``(N, D, H, W, C)`` (``lncc_loss`` also takes 1-D ``(N, L, C)``); displacement
fields are ``(N, *spatial, ndim)`` with one component per spatial axis, in
the axes' order. Similarity losses are negated so that lower is better
(MONAI's sign). Unreduced shapes: the channels-last NCC map for LNCC, ``(N,)``
for mutual information, ``(N, *(spatial - 2), ndim)`` for the bending energy.
``where`` selects entries of the unreduced loss; an image in which it selects
nothing is zeroed before the loss, so a NaN there reaches neither value nor
gradient. Half-precision inputs are computed in float32 and returned in their
own dtype.
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss.geometry._common import filter_same, float_batch, mask_images
from jaxloss.registry import _builtin

__all__ = [
    "bending_energy_loss",
    "lncc_loss",
    "mutual_information_loss",
]

KernelType = Literal["rectangular", "triangular", "gaussian"]
_KERNEL_TYPES = ("rectangular", "triangular", "gaussian")


@functools.lru_cache(maxsize=64)
def _ncc_taps(kernel_size: int, kernel_type: str) -> tuple[float, ...]:
    """MONAI's 1-D windows (``make_*_kernel`` in ``losses/image_dissimilarity.py``)."""
    if kernel_type == "rectangular":
        taps = np.ones(kernel_size)
    elif kernel_type == "triangular":
        fsize = (kernel_size + 1) // 2
        fsize -= 1 if fsize % 2 == 0 else 0
        box = np.full(fsize, 1.0 / fsize)
        pad = (kernel_size - fsize) // 2 + fsize // 2
        taps = np.correlate(np.pad(box, pad), box, mode="valid")
    else:
        sigma = kernel_size / 3.0
        x = np.arange(kernel_size) - kernel_size // 2
        taps = np.exp(-0.5 / (sigma * sigma) * x**2)
    return tuple(float(v) for v in taps.astype(np.float32))


# Jitted kernels: one compilation per shape and static setting, also when called eagerly
# (op-by-op dispatch of the filters' many small operations would compile each one).


@functools.partial(jax.jit, static_argnames=("taps",))
def _lncc_values(p: Array, t: Array, smooth_nr: Array, smooth_dr: Array, *,
                 taps: tuple[float, ...]) -> Array:
    ndim = p.ndim - 2
    volume = float(np.sum(np.asarray(taps, np.float64)) ** ndim)
    # [5, N, *spatial, C]: the five local sums, filtered along each spatial axis.
    t_sum, p_sum, t2_sum, p2_sum, tp_sum = filter_same(
        jnp.stack([t, p, t * t, p * p, t * p]), taps, tuple(range(2, 2 + ndim)))
    cross = tp_sum - p_sum / volume * t_sum
    t_var = jnp.maximum(t2_sum - t_sum / volume * t_sum, smooth_dr)
    p_var = jnp.maximum(p2_sum - p_sum / volume * p_sum, smooth_dr)
    return -(cross * cross + smooth_nr) / (t_var * p_var)


@functools.partial(jax.jit, static_argnames=("num_bins",))
def _mi_values(p: Array, t: Array, sigma_ratio: Array, smooth_nr: Array, smooth_dr: Array, *,
               num_bins: int) -> Array:
    centers = jnp.linspace(0.0, 1.0, num_bins, dtype=p.dtype)
    sigma = sigma_ratio / (num_bins - 1)
    preterm = 1.0 / (2.0 * sigma * sigma)

    def parzen(x: Array) -> tuple[Array, Array]:
        x = x.reshape(x.shape[0], -1, 1)  # [N, P, 1]
        # torch.clamp's gradient: all of it at exactly 0 or 1 (jnp.clip passes half there)
        x = jnp.where(x < 0, jnp.zeros_like(x), jnp.where(x > 1, jnp.ones_like(x), x))
        w = jnp.exp(-preterm * jnp.square(x - centers[None, None, :]))  # [N, P, B]
        w = w / jnp.sum(w, axis=-1, keepdims=True)
        return w, jnp.mean(w, axis=1)  # [N, P, B], [N, B]

    wa, pa = parzen(p)
    wb, pb = parzen(t)
    pab = jnp.einsum("npi,npj->nij", wa, wb) / wa.shape[1]  # [N, B, B]
    papb = pa[:, :, None] * pb[:, None, :]
    mi = jnp.sum(pab * jnp.log((pab + smooth_nr) / (papb + smooth_dr) + smooth_dr), axis=(1, 2))
    return -mi


def _second_difference(x: Array, a: int, b: int) -> Array:
    """MONAI 1.6's compact stencils along spatial axes ``a``, ``b``; every spatial axis
    trimmed to ``[1:-1]``."""
    def take(shifts: dict[int, int]) -> Array:
        index = [slice(None)]
        for axis in range(1, x.ndim - 1):
            start = 1 + shifts.get(axis, 0)
            index.append(slice(start, x.shape[axis] - 2 + start))
        return x[tuple(index) + (slice(None),)]

    if a == b:
        return take({a: 1}) - 2.0 * take({}) + take({a: -1})
    return (take({a: 1, b: 1}) - take({a: 1, b: -1}) - take({a: -1, b: 1})
            + take({a: -1, b: -1})) / 4.0


@functools.partial(jax.jit, static_argnames=("normalize",))
def _bending_values(u: Array, *, normalize: bool) -> Array:
    sizes = u.shape[1:-1]
    components = np.asarray(sizes, np.float64)  # component c is scaled by spatial size c
    energy = jnp.zeros((u.shape[0],) + tuple(s - 2 for s in sizes) + (u.shape[-1],), u.dtype)
    for a in range(1, u.ndim - 1):  # static: at most three axes
        for b in range(a, u.ndim - 1):
            d2 = _second_difference(u, a, b)
            if normalize:
                scale = sizes[a - 1] * sizes[b - 1] / components  # (ndim,), per component
                d2 = d2 * jnp.asarray(scale, u.dtype).reshape((1,) * (u.ndim - 1) + (-1,))
            energy = energy + (1.0 if a == b else 2.0) * d2 * d2
    return energy


def _registration_pair(predictions: ArrayLike, targets: ArrayLike, ranks: tuple[int, ...],
                       layout: str) -> tuple[Array, Array, jnp.dtype]:
    float_batch(predictions, "predictions", rank=ranks, layout=layout)
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    return p, t, dtype


@_builtin("geometry")
def lncc_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    kernel_size: int = 9,
    kernel_type: KernelType = "rectangular",
    smooth_nr: ArrayLike = 0.0,
    smooth_dr: ArrayLike = 1e-5,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Local normalised cross-correlation loss (negated, squared NCC over a window).

    .. math::

        \ell = -\frac{\big(\sum_w (t - \bar t)(p - \bar p)\big)^2 + s_{nr}}
               {\max\big(\sum_w (t - \bar t)^2, s_{dr}\big)\,
                \max\big(\sum_w (p - \bar p)^2, s_{dr}\big)}

    at every pixel, the sums taken over the window ``w`` around it (weighted
    by the kernel, zero padding at the borders) and ``bar`` the window means.
    It lies in about ``[-1, 0]``, ``-1`` for a perfect local linear match.

    Convention: MONAI's: local sums from a separable window of
    ``kernel_size`` taps per spatial axis (``"rectangular"``: ones;
    ``"triangular"``: a box convolved with itself; ``"gaussian"``:
    ``exp(-x^2 / (2 (k/3)^2))``, unnormalised), the variances floored at
    ``smooth_dr``. The default window is VoxelMorph's 9 (MONAI's default is 3).

    Args:
      predictions: floating ``(N, *spatial, C)`` with 1 to 3 spatial axes
        (``(N, H, W, C)`` images, ``(N, D, H, W, C)`` volumes).
      targets: floating array of the same shape.
      kernel_size: odd window size ``>= 1``, static.
      kernel_type: ``"rectangular"``, ``"triangular"`` or ``"gaussian"``.
      smooth_nr: constant added to the numerator, ``>= 0``.
      smooth_dr: floor of the local variances, ``> 0``.
      where: boolean mask broadcastable to the NCC map ``(N, *spatial, C)``.
      weights: weights broadcastable to the NCC map.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the negated NCC map, the
      input's shape ``(N, *spatial, C)``.

    Raises:
      ValueError: rank not 3 to 5, shapes differ, an even or non-positive
        ``kernel_size``, an unknown ``kernel_type`` or ``reduction``,
        ``smooth_dr <= 0``.
      TypeError: integer inputs, a traced ``kernel_size``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.sin(jnp.arange(64.0)).reshape(1, 8, 8, 1)
      >>> ncc = jaxloss.lncc_loss(x, 2.0 * x + 1.0, kernel_size=3, reduction="none")
      >>> round(float(ncc[0, 4, 4, 0]), 4)  # a linear match inside the image
      -1.0

    References:
      Balakrishnan et al., `VoxelMorph: A Learning Framework for Deformable
      Medical Image Registration <https://arxiv.org/abs/1809.05231>`_, 2019.
      MONAI: ``LocalNormalizedCrossCorrelationLoss(spatial_dims, kernel_size,
      kernel_type, reduction, smooth_nr, smooth_dr)`` on channels-first inputs.
    """
    _checks.check_reduction(reduction)
    _checks.check_choice(kernel_type, "kernel_type", _KERNEL_TYPES)
    kernel_size = _checks.static_int(kernel_size, "kernel_size", low=1)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (the window is centred); got {kernel_size}.")
    p, t, dtype = _registration_pair(predictions, targets, (3, 4, 5),
                                     "(N, *spatial, C) with 1 to 3 spatial axes")
    _checks.check_channels_last(p, "predictions")
    _checks.check_range(smooth_nr, "smooth_nr", low=0.0)
    _checks.check_range(smooth_dr, "smooth_dr", low=0.0, low_inclusive=False)
    nr = _checks.hyperparameter(smooth_nr, "smooth_nr", p.dtype)
    dr = _checks.hyperparameter(smooth_dr, "smooth_dr", p.dtype)
    p, t = mask_images(where, p.shape, p, t)
    values = _lncc_values(p, t, nr, dr, taps=_ncc_taps(kernel_size, kernel_type))
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("geometry")
def mutual_information_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    num_bins: int = 23,
    sigma_ratio: ArrayLike = 0.5,
    smooth_nr: ArrayLike = 1e-7,
    smooth_dr: ArrayLike = 1e-7,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Global mutual information loss with Gaussian Parzen windows (negated MI), per image.

    .. math::

        \ell_n = -\sum_{a, b} p_{ab} \log\Big(\frac{p_{ab} + s_{nr}}{p_a p_b + s_{dr}}
                 + s_{dr}\Big)

    with soft histograms over ``num_bins`` bin centres evenly spaced in
    ``[0, 1]``: each value ``x`` gets weights ``exp(-(x - c_b)^2 / (2
    sigma^2))`` normalised over the bins, ``sigma = sigma_ratio / (B - 1)``;
    ``p_a``, ``p_b`` are the mean weights of predictions and targets and
    ``p_ab`` the mean of their outer products.

    Convention: MONAI's ``kernel_type="gaussian"``: intensities are expected
    in ``[0, 1]`` and clamped to it (a value outside gets no gradient, one at
    exactly 0 or 1 all of it, as ``torch.clamp`` in MONAI); normalise images
    first. All of an image's entries (every
    spatial position and channel) form one sample.

    Args:
      predictions: floating ``(N, ...)``, e.g. ``(N, H, W, C)`` or
        ``(N, D, H, W, C)``, values in ``[0, 1]``.
      targets: floating array of the same shape.
      num_bins: number of histogram bins ``>= 2``, static.
      sigma_ratio: Parzen width in bin spacings, ``> 0``.
      smooth_nr, smooth_dr: MONAI's constants, ``>= 0``.
      where: boolean mask of the images to include, broadcastable to ``(N,)``.
      weights: per-image weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per image, ``(N,)``.

    Raises:
      ValueError: shapes differ, rank below 2, ``num_bins < 2``, non-positive
        ``sigma_ratio``, an unknown ``reduction``.
      TypeError: integer inputs, a traced ``num_bins``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = (jnp.arange(100.0) / 99.0).reshape(1, 10, 10, 1)
      >>> same = jaxloss.mutual_information_loss(x, x)
      >>> other = jaxloss.mutual_information_loss(x, jnp.flip(x, axis=2))
      >>> bool(same < other)  # more information shared, lower loss
      True

    References:
      Mattes et al., `PET-CT Image Registration in the Chest Using Free-form
      Deformations <https://doi.org/10.1109/TMI.2002.806591>`_, 2003.
      MONAI: ``GlobalMutualInformationLoss(kernel_type="gaussian", num_bins,
      sigma_ratio, reduction, smooth_nr, smooth_dr)``.
    """
    _checks.check_reduction(reduction)
    num_bins = _checks.static_int(num_bins, "num_bins", low=2)
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    _checks.check_rank(p, "predictions", min_rank=2)
    _checks.check_range(sigma_ratio, "sigma_ratio", low=0.0, low_inclusive=False)
    _checks.check_range(smooth_nr, "smooth_nr", low=0.0)
    _checks.check_range(smooth_dr, "smooth_dr", low=0.0)
    ratio = _checks.hyperparameter(sigma_ratio, "sigma_ratio", p.dtype)
    nr = _checks.hyperparameter(smooth_nr, "smooth_nr", p.dtype)
    dr = _checks.hyperparameter(smooth_dr, "smooth_dr", p.dtype)
    p, t = _reduce.mask_rows(where, p, t)
    values = _mi_values(p, t, ratio, nr, dr, num_bins=num_bins)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("geometry")
def bending_energy_loss(
    displacement: ArrayLike,
    *,
    normalize: bool = False,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Bending energy of a displacement field: its squared second derivatives.

    .. math::

        \ell = \sum_i \big(\partial_{ii} u\big)^2
             + 2 \sum_{i < j} \big(\partial_{ij} u\big)^2

    per component ``u`` and interior voxel, with central differences:
    ``u[x+1] - 2 u[x] + u[x-1]`` along one axis and the compact four-point
    stencil ``(u[+,+] - u[+,-] - u[-,+] + u[-,-]) / 4`` for mixed partials.

    Convention: MONAI 1.6's stencils (earlier MONAI releases applied the
    first difference twice, a wider stencil); every spatial axis loses one
    voxel at each end. ``normalize=True`` multiplies the second derivative
    along axes ``i, j`` of component ``c`` by ``size_i size_j / size_c``, as
    MONAI's ``normalize``.

    Args:
      displacement: floating ``(N, *spatial, ndim)`` with ``ndim`` in
        ``{1, 2, 3}`` spatial axes, each longer than 2 voxels.
      normalize: MONAI's size normalisation, static.
      where: boolean mask broadcastable to ``(N, *(spatial - 2), ndim)``.
      weights: weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the energy per interior
      voxel and component, ``(N, *(spatial - 2), ndim)``.

    Raises:
      ValueError: rank not 3 to 5, a last axis other than the number of
        spatial axes, a spatial axis of 2 voxels or fewer, an unknown
        ``reduction``.
      TypeError: integer input, a non-bool ``normalize``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> y, x = jnp.meshgrid(jnp.arange(5.0), jnp.arange(5.0), indexing="ij")
      >>> affine = jnp.stack([0.1 * x + 0.2 * y, -0.3 * x], axis=-1)[None]
      >>> round(float(jaxloss.bending_energy_loss(affine)), 6)  # affine maps do not bend
      0.0
      >>> float(jaxloss.bending_energy_loss(jnp.stack([x * x, 0.0 * x], axis=-1)[None]))
      2.0

    References:
      Rueckert et al., `Nonrigid registration using free-form deformations
      <https://doi.org/10.1109/42.796284>`_, 1999. MONAI:
      ``BendingEnergyLoss(normalize, reduction)`` on channels-first fields.
    """
    _checks.check_reduction(reduction)
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a static bool; got {normalize!r}.")
    u = float_batch(displacement, "displacement", rank=(3, 4, 5),
                    layout="a displacement field (N, *spatial, ndim)")
    ndim = u.ndim - 2
    if u.shape[-1] != ndim:
        raise ValueError(
                f"displacement has {ndim} spatial axes, so its last axis must hold {ndim} "
                f"components; got shape {u.shape}. For a channels-first field use "
                "jnp.moveaxis(displacement, 1, -1).")
    if min(u.shape[1:-1]) <= 2:
        raise ValueError(f"every spatial axis of displacement must be longer than 2; got "
                         f"{u.shape[1:-1]}.")
    compute, dtype = _checks.compute_dtype(u)
    u = u.astype(compute)
    shape = (u.shape[0],) + tuple(s - 2 for s in u.shape[1:-1]) + (ndim,)
    (u,) = mask_images(where, shape, u)
    values = _bending_values(u, normalize=normalize)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)

"""Private helpers of the geometry family: validation, separable "same" filtering and
whole-image masking."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce


def float_batch(value: ArrayLike, name: str, *, rank: int | tuple[int, ...],
                layout: str) -> Array:
    """A floating array whose rank is ``rank`` (or one of them), else a clear error."""
    array = _checks.float_input(value, name)
    ranks = (rank,) if isinstance(rank, int) else rank
    if array.ndim not in ranks:
        raise ValueError(
                f"{name} must be {layout}, channels-last (rank "
                f"{' or '.join(str(r) for r in ranks)}); got shape {array.shape}."
        )
    return array


def depth_map(value: ArrayLike, name: str) -> Array:
    """A floating ``(N, H, W, 1)`` depth or disparity batch."""
    array = float_batch(value, name, rank=4, layout="a batch of depth maps (N, H, W, 1)")
    if array.shape[-1] != 1:
        raise ValueError(
                f"{name} must be a batch of depth maps (N, H, W, 1) with one channel; got shape "
                f"{array.shape}. Add the channel axis with {name}[..., None]"
                + (", or move a channels-first axis last." if array.shape[1] == 1 else ".")
        )
    return array


def pair(predictions: ArrayLike, targets: ArrayLike, *, check=None) -> tuple[Array, Array,
                                                                              jnp.dtype]:
    """A validated same-shape pair in the compute dtype, and the result dtype."""
    if check is not None:
        check(predictions, "predictions")
    return _checks.elementwise_pair(predictions, targets)


def _band(taps: tuple[float, ...], size: int) -> np.ndarray:
    """``(size, size)`` matrix of the zero-padded "same" correlation with ``taps``."""
    radius = len(taps) // 2
    band = np.zeros((size, size + 2 * radius), np.float64)
    for k, tap in enumerate(taps):
        band[np.arange(size), np.arange(size) + k] = tap
    return band[:, radius:size + radius]


def filter_same(z: Array, taps: tuple[float, ...], axes: tuple[int, ...]) -> Array:
    """Correlation with the 1-D window ``taps`` along each of ``axes``, zero-padded ("same").

    ``len(taps)`` is odd; the output has the input's shape. One product with a
    banded matrix per axis: its derivatives are products too, where shifted
    multiply-adds would give XLA one sliced and padded term per tap and axis to
    compile (seconds for a 3-D window).
    """
    for axis in axes:
        band = jnp.asarray(_band(taps, z.shape[axis]), z.dtype)
        z = jnp.moveaxis(jnp.tensordot(z, band, axes=((axis,), (1,)),
                                       precision=lax.Precision.HIGHEST), -1, axis)
    return z


def mask_images(where: ArrayLike | None, shape: tuple[int, ...], *arrays: Array) -> tuple[Array,
                                                                                          ...]:
    """Zeroes the images (rows of ``arrays``) in which ``where`` selects no entry.

    ``where`` broadcasts to the unreduced ``shape`` (which need not be the
    inputs' shape: windowed losses shrink or keep it). A NaN in an image left
    out entirely then reaches neither value nor gradient; within a partly
    selected image every input pixel still feeds its neighbours' windows.
    """
    if where is None:
        return arrays
    mask = _reduce.align_mask(where, shape, "where").astype(jnp.bool_)
    kept = jnp.any(mask.reshape(shape[0], -1), axis=1)  # (N,)
    return _reduce.mask_rows(kept, *arrays)

"""Private helpers of the keypoint family: the COCO sigmas, masks aligned with the
unreduced shape, and the eager check of values that only the caller can vouch for."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce

# COCO's per-keypoint OKS constants (pycocotools cocoeval.py, ``Params.setKpParams``):
# nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles (left before right).
COCO_SIGMAS: tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
    0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)
# pycocotools adds np.spacing(1) (float64's machine epsilon) to the area before dividing.
AREA_SPACING = float(np.spacing(np.float64(1.0)))


def keep_mask(where: ArrayLike | None, shape: tuple[int, ...]) -> Array | None:
    """``where`` as a boolean array of the unreduced ``shape`` (a prefix such as ``(N,)``
    selects whole rows), or None."""
    mask = _reduce.align_mask(where, shape, "where", align="leading")
    return None if mask is None else mask.astype(jnp.bool_)


def mask_array(keep: Array | None, array: Array, *, fill: float = 0.0,
               keypoints_last: bool = False) -> Array:
    """``array`` with ``fill`` where ``keep`` (the unreduced shape) is False.

    ``keep``'s axes line up with ``array``'s leading axes (``(N, K)`` against
    ``(N, K, bins)``), or with ``keypoints_last=True`` its second axis with
    ``array``'s last (``(N, K)`` against heatmaps ``(N, H, W, K)``): the first half
    of the double-``where`` pattern.
    """
    if keep is None:
        return array
    if keypoints_last and keep.ndim == 2:
        shape = (keep.shape[0],) + (1,) * (array.ndim - 2) + (keep.shape[1],)
    else:
        shape = keep.shape + (1,) * (array.ndim - keep.ndim)
    return jnp.where(keep.reshape(shape), array, jnp.asarray(fill, array.dtype))


def check_nonnegative(value: Array, name: str, what: str) -> Array | None:
    """Raises for a concrete negative entry of ``value``; returns the traced mask, or None.

    Under ``jit`` the values are unknown at trace time: the caller turns the loss
    of the rows the returned mask marks into NaN (never a plausible number).
    """
    return _checks.refuse_concrete(
        value < 0,
        lambda index: f"{name} holds a negative value at index {index}; {what} must be >= 0.")


def sigmas_for(sigmas: ArrayLike | None, num_keypoints: int, dtype: jnp.dtype) -> Array:
    """The per-keypoint OKS constants ``(K,)``: COCO's 17 when ``sigmas`` is None."""
    if sigmas is None:
        if num_keypoints != len(COCO_SIGMAS):
            raise ValueError(
                f"sigmas=None means COCO's 17 keypoint constants, but the keypoints have "
                f"K={num_keypoints}; pass sigmas= of shape ({num_keypoints},) (for example "
                f"jnp.full(({num_keypoints},), 1.0 / {num_keypoints}), as ultralytics does for "
                "non-COCO skeletons)."
            )
        return jnp.asarray(COCO_SIGMAS, dtype)
    array = _checks.hyperparameter(sigmas, "sigmas", dtype, scalar=False)
    if array.shape != (num_keypoints,):
        raise ValueError(
            f"sigmas must have shape ({num_keypoints},) (one constant per keypoint); got "
            f"shape {array.shape}."
        )
    _checks.check_range(sigmas, "sigmas", low=0.0, low_inclusive=False)
    return array


def keypoint_array(value: ArrayLike, name: str, *, coords: int | None = None,
                   min_rank: int = 2) -> Array:
    """A floating array ``(..., K, D)`` (``D == coords`` when given)."""
    array = _checks.float_input(value, name)
    if array.ndim < min_rank or (coords is not None and array.shape[-1] != coords):
        want = f"(..., K, {coords})" if coords is not None else "(..., K, D)"
        raise ValueError(f"{name} must have shape {want}; got shape {array.shape}.")
    return array

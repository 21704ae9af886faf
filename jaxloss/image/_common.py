"""Private helpers of the image family: validated image batches."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks


def image_batch(value: ArrayLike, name: str, *, volumes: bool = False) -> Array:
    """A floating ``(N, H, W, C)`` batch (``volumes=True``: or ``(N, D, H, W, C)``); rejects
    other ranks and channels-first layouts."""
    array = _checks.float_input(value, name)
    if array.ndim != 4 and not (volumes and array.ndim == 5):
        what = ("images of rank 4, (N, H, W, C), or volumes of rank 5, (N, D, H, W, C),"
                if volumes else "images of rank 4, (N, H, W, C)")
        raise ValueError(
                f"{name} must be a batch of {what} channels-last; got "
                f"shape {array.shape}. Add the missing axes, e.g. {name}[None] for one image or "
                f"{name}[..., None] for a single channel."
        )
    _checks.check_channels_last(array, name)
    return array


def image_pair(predictions: ArrayLike, targets: ArrayLike, *, volumes: bool = False,
               ) -> tuple[Array, Array, jnp.dtype]:
    """Validated ``(N, H, W, C)`` (or, ``volumes=True``, ``(N, D, H, W, C)``) pair in the
    compute dtype, and the result dtype."""
    image_batch(predictions, "predictions", volumes=volumes)
    return _checks.elementwise_pair(predictions, targets)

"""Private helpers of the detection family: box validation, format conversion and the
geometric pieces (intersection, union, enclosing box, centre distance, aspect angle)
that the box utilities and the IoU losses share."""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._numerics import safe_div

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
FORMATS: tuple[str, ...] = ("xyxy", "xywh", "cxcywh")


def as_boxes(boxes: ArrayLike, name: str, *, min_rank: int = 1) -> Array:
    """``boxes`` as a floating array of shape ``(..., 4)`` (rank >= ``min_rank``)."""
    boxes = _checks.float_input(boxes, name)
    if boxes.ndim < min_rank or boxes.shape[-1] != 4:
        lead = "(..., " if min_rank <= 1 else "(..., N, "
        raise ValueError(
            f"{name} must have shape {lead}4) (the last axis holds the 4 box coordinates); "
            f"got shape {boxes.shape}."
        )
    return boxes


def check_format(value: str, name: str) -> None:
    _checks.check_choice(value, name, FORMATS)


# Boxes as their four coordinate arrays (x1, y1, x2, y2), as ``unstack`` returns them.
Coords = tuple[Array, Array, Array, Array]


def unstack(boxes: Array | Coords) -> Coords:
    """The four coordinates of ``(..., 4)`` boxes (a tuple of four is returned as is).

    Kernels unstack their boxes once and pass the tuple to the helpers below: the
    gradient then accumulates each coordinate's cotangent before one transposed
    split, instead of one per helper. ``split`` (not four slices): its transpose
    is one concatenation, where four slices give four pads that XLA compiles as
    four kernels each recomputing the whole forward expression.
    """
    if isinstance(boxes, tuple):
        return boxes
    x1, y1, x2, y2 = (part[..., 0] for part in jnp.split(boxes, 4, axis=-1))
    return x1, y1, x2, y2


def convert(boxes: Array, in_fmt: str, out_fmt: str) -> Array:
    """Conversion between the three formats (no validation), through ``xyxy`` as torchvision."""
    if in_fmt == out_fmt:
        return boxes
    a, b, c, d = unstack(boxes)
    if in_fmt == "xywh":
        x1, y1, x2, y2 = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        x1, y1, x2, y2 = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    else:
        x1, y1, x2, y2 = a, b, c, d
    if out_fmt == "xywh":
        out = (x1, y1, x2 - x1, y2 - y1)
    elif out_fmt == "cxcywh":
        out = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    else:
        out = (x1, y1, x2, y2)
    return jnp.stack(out, axis=-1)


def to_xyxy_linear(boxes: Array, in_fmt: str) -> Array:
    """``convert(boxes, in_fmt, "xyxy")`` as one product with a 4 x 4 matrix.

    The same values for finite boxes (each corner is one rounding of the same
    two terms, the others are exact zeros); a non-finite coordinate makes the
    whole box non-finite. Its derivative is one product too, where the stack in
    :func:`convert` transposes to four slices, each a separate XLA kernel that
    recomputes the whole gradient expression feeding it.
    """
    if in_fmt == "xyxy":
        return boxes
    half = 0.5 if in_fmt == "cxcywh" else 1.0
    low = -half if in_fmt == "cxcywh" else 0.0
    matrix = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [low, 0, half, 0], [0, low, 0, half]])
    return jnp.matmul(boxes, jnp.asarray(matrix, boxes.dtype), precision=lax.Precision.HIGHEST)


def inter_union(b1: Array | Coords, b2: Array | Coords) -> tuple[Array, Array]:
    """Intersection and union areas of ``xyxy`` boxes of the same rank (size-1 axes broadcast).

    The intersection is 0 unless both overlaps are strictly positive (torchvision's
    ``_loss_inter_union``): no product of two negative overlaps, no gradient there.
    """
    x1, y1, x2, y2 = unstack(b1)
    x1g, y1g, x2g, y2g = unstack(b2)
    overlap_w = jnp.minimum(x2, x2g) - jnp.maximum(x1, x1g)
    overlap_h = jnp.minimum(y2, y2g) - jnp.maximum(y1, y1g)
    overlap = (overlap_w > 0) & (overlap_h > 0)
    product = overlap_w * overlap_h
    inter = jnp.where(overlap, product, jnp.zeros_like(product))
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    return inter, union


def enclosing_wh(b1: Array | Coords, b2: Array | Coords) -> tuple[Array, Array]:
    """Width and height of the smallest box enclosing both ``xyxy`` boxes."""
    x1, y1, x2, y2 = unstack(b1)
    x1g, y1g, x2g, y2g = unstack(b2)
    return jnp.maximum(x2, x2g) - jnp.minimum(x1, x1g), jnp.maximum(y2, y2g) - jnp.minimum(y1, y1g)


def center_distance_sq(b1: Array | Coords, b2: Array | Coords) -> Array:
    """Squared distance between the boxes' centres (torchvision's ``_diou_iou_loss`` form)."""
    x1, y1, x2, y2 = unstack(b1)
    x1g, y1g, x2g, y2g = unstack(b2)
    dx = (x2 + x1) / 2 - (x1g + x2g) / 2
    dy = (y2 + y1) / 2 - (y1g + y2g) / 2
    return dx * dx + dy * dy


def aspect_angle(w: Array, h: Array) -> Array:
    """``atan(w / h)`` with a finite value and gradient everywhere.

    Written ``atan2(s w, s h)`` with ``s = sign(h)`` (1 at ``h = 0``), which equals
    ``atan(w / h)`` for every ``h != 0`` and its limit ``+-pi/2`` at ``h = 0, w != 0``,
    where torchvision's ``atan(w / h)`` has the right value but a NaN gradient. At
    ``w = h = 0`` (a point box) the angle is defined as 0 with a 0 gradient (double
    ``where``; torchvision gives NaN). So is it for a box whose ``w^2 + h^2`` is below
    the dtype's smallest normal number (sides below ~1e-19 in float32): there
    ``atan2``'s derivative ``(h, -w) / (w^2 + h^2)`` divides by an underflowed 0.
    """
    flip = h < 0
    num = jnp.where(flip, -w, w)
    den = jnp.where(flip, -h, h)
    point = num * num + den * den < jnp.finfo(num.dtype).tiny
    safe_num = jnp.where(point, jnp.ones_like(num), num)
    safe_den = jnp.where(point, jnp.ones_like(den), den)
    return jnp.where(point, jnp.zeros_like(num), jnp.arctan2(safe_num, safe_den))



def iou_ratio(inter: Array, union: Array, eps: Array) -> Array:
    """``inter / (union + eps)``, torchvision's placement; 0 where the denominator is 0."""
    return safe_div(inter, union + eps)


def int_array(value: ArrayLike, name: str, shape: tuple[int, ...]) -> Array:
    array = jnp.asarray(value)
    if not jnp.issubdtype(array.dtype, jnp.integer):
        raise TypeError(f"{name} must hold integer class indices; got dtype {array.dtype}.")
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}; got {array.shape}.")
    return array


"""Private helpers of the segmentation family: validated inputs, the layout rule, soft counts.

Every public segmentation loss calls :func:`prepare` once (validation, the
class axis moved last, images that ``where=`` drops sanitised, ignored pixels
zeroed, out-of-range labels poisoned under ``jit``), a private kernel that
returns the unreduced loss, and :func:`finish` once (``_reduce.reduce_loss``
with leading alignment: a ``where``/``weights`` of shape ``(N,)`` selects
whole images).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._classes import label_one_hot, out_of_range, poison, prepare_class_inputs
from jaxloss._numerics import safe_div

Mode = Literal["multiclass", "binary", "multilabel"]
Average = Literal["macro", "micro"]
MODES = ("multiclass", "binary", "multilabel")
AVERAGES = ("macro", "micro")


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Validated inputs of a segmentation loss, class axis last, every class kept.

    Attributes:
      scores: logits (or probabilities) ``(N, *spatial, C)`` in the compute
        dtype; images that ``where`` drops are 0, positions whose label is out
        of range (under ``jit``) are NaN.
      probs: softmax / sigmoid of ``scores`` (``scores`` themselves with
        ``from_logits=False``), 0 at ignored pixels.
      onehot: float targets ``(N, *spatial, C)``, 0 at ignored pixels, NaN rows
        at out-of-range labels under ``jit``.
      labels: int ``(N, *spatial)`` class indices (multiclass index targets),
        else None.
      valid: bool kept pixels, ``(N, *spatial, 1)`` (multiclass) or the shape
        of ``probs`` (binary, multilabel); None when ``ignore_index`` is None.
      dtype: the result dtype (the input's dtype).
    """

    scores: Array
    probs: Array
    onehot: Array
    labels: Array | None
    valid: Array | None
    dtype: jnp.dtype

    @property
    def spatial(self) -> tuple[int, ...]:
        """The spatial axes of ``probs`` (between the batch and the class axis)."""
        return tuple(range(1, self.probs.ndim - 1))


def check_layout(logits: Array, name: str = "logits") -> None:
    """Rejects logits that look channels-first when the targets cannot tell the layout.

    Called only when the targets have the logits' full shape (one-hot,
    probabilities, binary and multilabel targets) and the class axis is the
    default ``axis=-1`` (a non-negative ``axis``, even the last one, states the
    layout): integer class-index targets fix the layout by their own shape
    (``_checks.class_targets`` gives the channels-first hint when they fit
    axis 1 instead). The rule is ``_checks.check_channels_last``'s: an image
    or volume with more classes than its width (the last spatial axis) is
    taken for ``(N, C, H, W)`` read as ``(N, H, W, C)``.
    """
    _checks.check_channels_last(logits, name)


def check_ignore_index(ignore_index: int | None) -> int | None:
    """``ignore_index`` as a static Python int (or None)."""
    if ignore_index is None:
        return None
    return _checks.static_int(ignore_index, "ignore_index")


def images_kept(where: ArrayLike | None, shape: tuple[int, ...]) -> Array | None:
    """``(N,)`` bool: the images that ``where`` keeps at all, for an unreduced ``shape``
    ``(N, ...)`` (leading alignment), or None. Their inputs are sanitised before the kernel
    (the first half of the double-``where``), so a NaN in a dropped image reaches neither the
    value nor the gradient."""
    if where is None or not shape:
        return None
    kept = _reduce.rows_kept(where, None, shape)
    return jnp.any(kept.reshape(shape[0], -1), axis=1)


def rows_of(where: ArrayLike | None, logits: ArrayLike, classes: int | None = None, *,
            per_image: bool = True) -> Array | None:
    """:func:`images_kept` for a loss whose unreduced shape is ``(N,)`` (``classes`` None)
    or ``(N, classes)``; None for pooled losses (their ``where`` does not select images)."""
    shape = jnp.shape(logits)
    if where is None or not per_image or len(shape) < 2:
        return None
    return images_kept(where, (shape[0],) if classes is None else (shape[0], classes))


def prepare(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    mode: str = "multiclass",
    from_logits: bool = True,
    ignore_index: int | None = None,
    axis: int = -1,
    keep: Array | None = None,
    min_rank: int = 2,
) -> Inputs:
    """Validates logits and targets of a segmentation loss (see :class:`Inputs`).

    ``keep`` (``(N,)`` bool) zeroes the logits and targets of the images it
    drops. In ``mode="multiclass"`` integer targets are class indices in
    ``[0, C)`` or ``ignore_index``; in the binary and multilabel modes they
    are 0/1 labels (or ``ignore_index``). Other values raise eagerly and give
    NaN at their positions under ``jit``.
    """
    _checks.check_choice(mode, "mode", MODES)
    ignore_index = check_ignore_index(ignore_index)
    logits = _checks.float_input(logits, "logits")
    _checks.check_rank(logits, "logits", min_rank=min_rank)
    # The layout rule runs for the default axis=-1 only: a non-negative class axis, even the
    # last one (axis=3 for (N, H, W, C)), states the layout explicitly.
    guess_layout = isinstance(axis, (int, np.integer)) and int(axis) == -1
    axis = _checks.normalize_axis(axis, logits.ndim)
    if axis == 0:
        raise ValueError(
            f"axis=0 is the batch axis of logits with shape {logits.shape}; the class axis is "
            "axis=-1 (channels-last) or axis=1 (channels-first)."
        )
    targets = jnp.asarray(targets)
    is_float = jnp.issubdtype(targets.dtype, jnp.floating)
    if is_float and ignore_index is not None:
        raise ValueError(
            f"ignore_index={ignore_index} needs integer targets; got {targets.dtype} targets. "
            "Use where= (or zero rows of the one-hot) to drop pixels of float targets."
        )
    if mode == "multiclass":
        if is_float and guess_layout and targets.shape == logits.shape:
            check_layout(logits)
        positions = None
        if keep is not None:
            positions = keep.reshape((-1,) + (1,) * (logits.ndim - 2))
        inputs = prepare_class_inputs(logits, targets, axis=axis, where=positions,
                                      ignore_index=ignore_index)
        scores = inputs.scores
        compute = scores.dtype
        probs = jax.nn.softmax(scores, axis=-1) if from_logits else scores
        labels, valid = None, None
        if inputs.is_index:
            labels = inputs.targets
            onehot, valid = label_one_hot(labels, inputs.num_classes, compute,
                                          ignore_index=ignore_index)
            if valid is not None:
                valid = valid[..., None]
                probs = jnp.where(valid, probs, jnp.zeros_like(probs))
        else:
            onehot = inputs.targets
        return Inputs(scores, probs, onehot, labels, valid, inputs.dtype)

    num_classes = logits.shape[axis]
    if mode == "binary" and num_classes != 1:
        hint = ""
        if logits.ndim >= 3 and logits.shape[1] == 1:
            hint = " " + _checks.channels_first_hint("logits", logits.shape)
        raise ValueError(
            f"mode='binary' needs logits with one channel, (N, *spatial, 1); got shape "
            f"{logits.shape}. Use mode='multilabel' for several sigmoid channels or "
            f"mode='multiclass' for a softmax.{hint}"
        )
    is_label = not is_float and (jnp.issubdtype(targets.dtype, jnp.integer)
                                 or targets.dtype == jnp.bool_)
    if not (is_float or is_label):
        raise TypeError(f"targets must be 0/1 labels or floats; got dtype {targets.dtype}.")
    _checks.check_same_shape(targets, "targets", logits, "logits")
    if guess_layout:
        check_layout(logits)
    compute, dtype = (_checks.compute_dtype(logits) if is_label
                      else _checks.compute_dtype(logits, targets))
    scores = jnp.moveaxis(logits, axis, -1).astype(compute)
    targets = jnp.moveaxis(targets, axis, -1)
    if keep is not None:
        scores, targets = _reduce.mask_rows(keep, scores, targets)
    valid = None
    if is_label and targets.dtype != jnp.bool_:
        _checks.check_labels_in_range(targets, 2, "targets", ignore_index=ignore_index)
        if ignore_index is not None:
            valid = targets != ignore_index
        if _checks.is_traced(targets):
            scores = poison(scores, out_of_range(targets, 2, ignore_index=ignore_index))
    onehot = targets.astype(compute)
    probs = jax.nn.sigmoid(scores) if from_logits else scores
    if valid is not None:
        probs = jnp.where(valid, probs, jnp.zeros_like(probs))
        onehot = jnp.where(valid, onehot, jnp.zeros_like(onehot))
    return Inputs(scores, probs, onehot, None, valid, dtype)


def drop_background(include_background: bool, *arrays: Array) -> tuple[Array, ...]:
    """The arrays without class 0 (last axis) when ``include_background`` is False."""
    if include_background:
        return arrays
    if arrays[0].shape[-1] == 1:
        raise ValueError(
            "include_background=False drops channel 0, but the logits have one channel."
        )
    return tuple(a[..., 1:] for a in arrays)


def scored_classes(logits: ArrayLike, axis: int, include_background: bool) -> int:
    """The number of classes a loss scores (for the unreduced shape, before the kernel)."""
    shape = jnp.shape(logits)
    if not shape:
        return 1
    axis = _checks.normalize_axis(axis, len(shape))
    return shape[axis] - (0 if include_background else 1)


def soft_counts(probs: Array, onehot: Array, *, per_image: bool, average: str = "macro",
                squared: bool = False, axis_name: str | None = None,
                ) -> tuple[Array, Array, Array]:
    """``(TP, |P|, |T|)`` of ``(N, *spatial, C)`` inputs: ``(N, C)`` per image, ``(C,)``
    pooled over the batch (psum-ed over ``axis_name``); ``average="micro"`` also sums the
    classes."""
    _checks.check_choice(average, "average", AVERAGES)
    axes = tuple(range(1 if per_image else 0, probs.ndim - 1))
    if average == "micro":
        axes = (*axes, probs.ndim - 1)
    tp = jnp.sum(probs * onehot, axis=axes)
    size_p = jnp.sum(jnp.square(probs) if squared else probs, axis=axes)
    size_t = jnp.sum(jnp.square(onehot) if squared else onehot, axis=axes)
    if axis_name is not None and not per_image:
        tp, size_p, size_t = jax.lax.psum((tp, size_p, size_t), axis_name)
    return tp, size_p, size_t


def finish(values: Array, *, dtype: jnp.dtype, reduction: str, where: ArrayLike | None,
           weights: ArrayLike | None) -> Array:
    """The one reduction: ``_reduce.reduce_loss`` with leading alignment (``(N,)`` masks
    select images)."""
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype, align="leading")


def pixel_mean(values: Array, valid: Array | None, axes: tuple[int, ...]) -> Array:
    """Mean of ``values`` over ``axes``, over the kept pixels only when ``valid`` is given
    (0 where an image keeps none)."""
    if valid is None:
        return jnp.mean(values, axis=axes)
    valid = jnp.broadcast_to(valid, values.shape).astype(values.dtype)
    total = jnp.sum(jnp.where(valid > 0, values, jnp.zeros_like(values)), axis=axes)
    return safe_div(total, jnp.sum(valid, axis=axes))

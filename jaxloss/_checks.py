"""Argument, shape and dtype validation shared by every loss.

Every check runs at trace time on static information (shapes, dtypes, Python
values). None of them branches on the values of traced arrays, so every loss
stays `jit`-able. Error messages name the argument, say what was given and
what was expected, and how to fix the call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, overload

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

Reduction = Literal["mean", "sum", "none"]
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")
# PML's AvgNonZeroReducer, for the losses that offer it (pairs, triplets, ...).
NonZeroReduction = Literal["mean", "sum", "none", "avg_non_zero"]
NON_ZERO_REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none", "avg_non_zero")


def is_traced(value: Any) -> bool:
    """True when ``value`` is an abstract tracer (its values are unknown now)."""
    return isinstance(value, jax.core.Tracer)


def host_copy(value: Any) -> np.ndarray | None:
    """A NumPy copy of a concrete array, for checks on its values; None when ``value`` is
    traced (its values are unknown at trace time) or not addressable from this process
    (a sharded global array)."""
    if is_traced(value):
        return None
    try:
        return np.asarray(value)
    except Exception:  # e.g. non-addressable sharded arrays
        return None


def refuse_concrete(bad: Array, message: Callable[[tuple[int, ...]], str]) -> Array | None:
    """Raises ``ValueError(message(index))`` at the first True entry of a concrete mask.

    Returns None when ``bad`` is concrete and all False, and ``bad`` itself when its
    values cannot be read now (traced, or not addressable): the caller then turns
    the loss of the entries it marks into NaN, never a plausible number.
    """
    values = host_copy(bad)
    if values is None:
        return bad
    if values.any():
        raise ValueError(message(tuple(int(i) for i in np.argwhere(values)[0])))
    return None


# Reductions other libraries spell differently, and what to write instead.
_REDUCTION_HINTS: dict[str, str] = {
    "batchmean": 'reduction="batchmean" is PyTorch\'s kl_div spelling; use reduction="mean" '
                 "(the mean of the unreduced loss, whose shape the docstring gives).",
    "elementwise_mean": 'reduction="elementwise_mean" is an old PyTorch spelling of "mean".',
    "sum_over_batch_size": 'reduction="sum_over_batch_size" is Keras\'s spelling of "mean".',
    "auto": 'reduction="auto" is a Keras option; jaxloss\'s default is reduction="mean".',
}
_BATCHMEAN_KL = (
    'reduction="batchmean" is PyTorch\'s kl_div spelling; kl_divergence_loss\'s '
    'reduction="mean" already is batchmean (the per-sample KL, summed over classes, averaged '
    "over the batch), so pass reduction=\"mean\" (the default)."
)


def reduction_hint(reduction: Any, loss_name: str | None = None) -> str | None:
    """The jaxloss spelling of a reduction another library names differently, or None."""
    if not isinstance(reduction, str) or reduction not in _REDUCTION_HINTS:
        return None
    if (loss_name, reduction) == ("kl_divergence_loss", "batchmean"):
        return _BATCHMEAN_KL
    return _REDUCTION_HINTS[reduction]


def check_reduction(reduction: Any, choices: Sequence[str] = REDUCTIONS) -> None:
    """Raises ValueError unless ``reduction`` is one of ``choices`` ("mean", "sum", "none").

    PyTorch's and Keras's names (``"batchmean"``, ``"sum_over_batch_size"``, ...)
    get a message with the jaxloss spelling.
    """
    if isinstance(reduction, str) and reduction in tuple(choices):
        return
    hint = reduction_hint(reduction) or "Pass reduction='none' for the unreduced loss."
    raise ValueError(f"reduction must be one of {tuple(choices)}; got {reduction!r}. {hint}")


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> None:
    """Raises ValueError unless the static ``value`` is one of ``choices``."""
    if is_traced(value) or value not in tuple(choices):
        raise ValueError(
                f"{name} must be one of {tuple(choices)}; got {value!r}."
        )


def float_input(value: ArrayLike, name: str) -> Array:
    """Converts ``value`` to a JAX array and requires a floating dtype.

    Raises:
        TypeError: ``value`` is an integer, boolean or complex array.
    """
    array = jnp.asarray(value)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise TypeError(
                f"{name} must be a floating-point array; got dtype {array.dtype} with shape "
                f"{array.shape}. Cast it first, e.g. {name}.astype(jnp.float32)."
        )
    return array


def check_same_shape(value: Array, name: str, reference: Array, reference_name: str) -> None:
    """Requires two arrays to have exactly the same shape (no broadcasting)."""
    if value.shape != reference.shape:
        raise ValueError(
                f"{name} has shape {value.shape} but {reference_name} has shape "
                f"{reference.shape}; expected {name} of shape exactly {reference.shape}. "
                "jaxloss does not broadcast these silently: reshape or squeeze "
                f"{name} (e.g. {name}.reshape({reference_name}.shape)) if that is what you mean."
        )


def check_rank(value: Array, name: str, *, min_rank: int = 0, rank: int | None = None) -> None:
    """Requires ``value.ndim == rank`` (when given) and ``value.ndim >= min_rank``."""
    if rank is not None and value.ndim != rank:
        raise ValueError(
                f"{name} must have rank {rank}; got shape {value.shape} (rank {value.ndim})."
        )
    if value.ndim < min_rank:
        raise ValueError(
                f"{name} must have rank >= {min_rank}; got shape {value.shape} (rank {value.ndim})."
        )


def normalize_axis(axis: int, ndim: int, name: str = "axis") -> int:
    """Returns ``axis`` as a non-negative index into an array of rank ``ndim``."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{name} must be a static Python int; got {axis!r}.")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for an array of rank {ndim}.")
    return int(axis) % ndim


def check_range(
        value: Any,
        name: str,
        *,
        low: float | None = None,
        high: float | None = None,
        low_inclusive: bool = True,
        high_inclusive: bool = True,
) -> None:
    """Checks a numeric hyperparameter against ``[low, high]`` when it is concrete.

    Traced values (scheduled or learned inside ``jit``) are not checked: their
    values are unknown at trace time.
    """
    if value is None or is_traced(value):
        return
    array = np.asarray(value)
    if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be a number or a numeric array; got {value!r}.")
    if array.size == 0 or np.any(np.isnan(array.astype(np.float64))):
        raise ValueError(f"{name} must be a number; got {value!r}.")
    lo_ok = low is None or bool(np.all(array >= low if low_inclusive else array > low))
    hi_ok = high is None or bool(np.all(array <= high if high_inclusive else array < high))
    if not (lo_ok and hi_ok):
        left = "-inf" if low is None else f"{low}"
        right = "inf" if high is None else f"{high}"
        interval = f"{'[' if low_inclusive else '('}{left}, {right}{']' if high_inclusive else ')'}"
        shown = value if array.ndim == 0 else f"values in [{array.min()}, {array.max()}]"
        raise ValueError(f"{name} must lie in {interval}; got {shown}.")


def compute_dtype(*arrays: Array) -> tuple[jnp.dtype, jnp.dtype]:
    """Returns ``(compute, result)`` dtypes for floating inputs.

    The result dtype is the promotion of the inputs' floating dtypes; the compute
    dtype is float32 when that is narrower than 32 bits (float16, bfloat16).
    Mixed dtypes are promoted explicitly here, so the losses work under
    ``jax_numpy_dtype_promotion="strict"``.
    """
    floats = {jnp.dtype(a.dtype) for a in arrays if jnp.issubdtype(a.dtype, jnp.floating)}
    if not floats:
        result = jnp.dtype(jnp.float32)
    elif len(floats) == 1:
        result = floats.pop()
    else:
        # The widest wins; float16 with bfloat16 (neither holds the other) gives float32.
        # Done by hand: jnp.promote_types obeys jax_numpy_dtype_promotion="strict".
        widest = max(d.itemsize for d in floats)
        candidates = [d for d in floats if d.itemsize == widest]
        result = candidates[0] if len(candidates) == 1 else jnp.dtype(jnp.float32)
    compute = jnp.dtype(jnp.float32) if result.itemsize < 4 else result
    return compute, result


def hyperparameter(value: ArrayLike, name: str, dtype: jnp.dtype, *, scalar: bool = True) -> Array:
    """A numeric hyperparameter (Python number or JAX array) as an array of ``dtype``."""
    array = jnp.asarray(value)
    if scalar and array.ndim != 0:
        raise ValueError(f"{name} must be a scalar; got shape {array.shape}.")
    if jnp.issubdtype(array.dtype, jnp.complexfloating):
        raise TypeError(f"{name} must be real; got dtype {array.dtype}.")
    return array.astype(dtype)


def class_targets(
        logits: Array, targets: ArrayLike, *, axis: int, logits_name: str = "logits",
        targets_name: str = "targets",
) -> tuple[Array, bool]:
    """Validates class targets against ``logits`` and tells whether they are indices.

    An integer array holds class indices and has the shape of ``logits`` without
    the class axis; a floating array holds per-class probabilities (or one-hot)
    and has the shape of ``logits``. The dtype decides, at trace time.

    Returns:
        ``(targets, is_index)``.
    """
    targets = jnp.asarray(targets)
    if jnp.issubdtype(targets.dtype, jnp.integer):
        expected = logits.shape[:axis] + logits.shape[axis + 1:]
        if targets.shape != expected:
            hint = ""
            if logits.ndim >= 3 and targets.shape == logits.shape[:1] + logits.shape[2:]:
                hint = " " + channels_first_hint(logits_name, logits.shape)
            raise ValueError(
                    f"{targets_name} holds integer class indices, so it must have the shape of "
                    f"{logits_name} without the class axis {axis}: expected {expected}, got "
                    f"{targets.shape}. For one-hot or probability targets pass a floating array "
                    f"of shape {logits.shape}.{hint}"
            )
        return targets, True
    if jnp.issubdtype(targets.dtype, jnp.floating):
        check_same_shape(targets, targets_name, logits, logits_name)
        return targets, False
    raise TypeError(
            f"{targets_name} must be integer class indices or floating probabilities; got "
            f"dtype {targets.dtype}."
    )


def channels_first_hint(name: str, shape: tuple[int, ...]) -> str:
    """The message for an input that looks channels-first (PyTorch's layout)."""
    letters = "(N, C, H, W)" if len(shape) == 4 else "(N, C, *spatial)"
    return (
        f"{name} with shape {tuple(shape)} looks like {letters}; jaxloss is channels-last: "
        f"jnp.moveaxis({name}, 1, -1), or pass axis=1 where the loss takes a class axis."
    )


def check_channels_last(value: Array, name: str) -> None:
    """Raises ValueError for an image ``(N, *spatial, C)`` that looks channels-first.

    The rule (static, on the shape only): an image with more channels than its
    width (the last spatial axis) is taken for an NCHW image read as NHWC,
    e.g. ``(8, 3, 64, 64)`` read as 64 channels of 3 x 64 pixels. Images whose
    channel count really exceeds their width are not supported by the losses
    that apply this check (SSIM, total variation).
    """
    shape = tuple(value.shape)
    if len(shape) >= 4 and shape[-1] > shape[-2]:
        raise ValueError(
                f"{name} has {shape[-1]} channels but a width of {shape[-2]}. "
                + channels_first_hint(name, shape)
        )


def check_labels_in_range(
        labels: Array, num_classes: int, name: str = "targets", *, ignore_index: int | None = None
) -> None:
    """Raises ValueError for class indices outside ``[0, num_classes)``.

    Only concrete (eager) labels can be checked; under ``jit`` the values are
    unknown at trace time and the check is skipped (the loss documents what an
    out-of-range label gives there).
    """
    values = host_copy(labels)
    if values is None:
        return
    if ignore_index is not None:
        values = values[values != ignore_index]
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        bad = values[(values < 0) | (values >= num_classes)][0]
        hint = "" if ignore_index is None else f" (or equal to ignore_index={ignore_index})"
        raise ValueError(
                f"{name} holds class index {int(bad)}, outside [0, {num_classes}){hint}."
        )


@overload
def broadcast_mask(mask: None, shape: tuple[int, ...], name: str) -> None: ...
@overload
def broadcast_mask(mask: ArrayLike, shape: tuple[int, ...], name: str) -> Array: ...
@overload
def broadcast_mask(mask: ArrayLike | None, shape: tuple[int, ...], name: str) -> Array | None: ...
def broadcast_mask(mask: ArrayLike | None, shape: tuple[int, ...], name: str) -> Array | None:
    """``mask`` (``where=`` or ``weights=``) broadcast to the unreduced ``shape``.

    Follows NumPy broadcasting (trailing axes aligned) but never raises the rank
    of the loss: the mask may not have more axes than the unreduced loss.
    """
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    try:
        broadcast = np.broadcast_shapes(mask.shape, shape)
    except ValueError:
        broadcast = None
    if broadcast != tuple(shape):
        raise ValueError(
                f"{name} has shape {mask.shape}, which does not broadcast to the loss's "
                f"unreduced shape {tuple(shape)} (see reduction='none'). Give {name} that shape, "
                "or one with size-1 axes where it should repeat."
        )
    return jnp.broadcast_to(mask, shape)


def static_int(value: Any, name: str, *, low: int | None = None) -> int:
    """A static Python integer hyperparameter, optionally bounded below."""
    if is_traced(value) or not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a static Python int; got {value!r}.")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}; got {value}.")
    return int(value)


def finite_float(value: float) -> bool:
    """True for a finite Python float (helper for static checks)."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def elementwise_pair(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    predictions_name: str = "predictions",
    targets_name: str = "targets",
) -> tuple[Array, Array, jnp.dtype]:
    """Validates a ``(predictions, targets)`` pair of an elementwise loss.

    Both must be floating and of exactly the same shape. Returns both cast to
    the compute dtype (float32 for half precision) and the result dtype.
    """
    predictions = float_input(predictions, predictions_name)
    targets = jnp.asarray(targets)
    if jnp.issubdtype(targets.dtype, jnp.integer) or targets.dtype == jnp.bool_:
        targets = targets.astype(predictions.dtype)
    targets = float_input(targets, targets_name)
    check_same_shape(targets, targets_name, predictions, predictions_name)
    compute, result = compute_dtype(predictions, targets)
    return predictions.astype(compute), targets.astype(compute), result

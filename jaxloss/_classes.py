"""Class-based inputs shared by every family: validation, masking, log-probabilities.

One place for what the classification, segmentation and detection losses all
need (``prepare_class_inputs``, ``log_probability_of``, ``take_class``,
``label_one_hot``), so that no family imports another family's private module.

Out-of-range labels ("never a plausible wrong number"): an integer
label outside ``[0, C)`` that is not ``ignore_index`` raises eagerly; under
``jit`` its values are unknown at trace time, so ``prepare_class_inputs``
replaces the scores at that position by NaN. Every loss built on them then
returns NaN at that position (and in any reduction over it) instead of the
loss of a clipped label.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._numerics import one_hot, safe_log


@dataclasses.dataclass(frozen=True)
class ClassInputs:
    """Validated inputs of a class-based loss, class axis moved last.

    Attributes:
      scores: logits (or probabilities) in the compute dtype, ``[..., C]``;
        entries at positions that ``where`` masks out are replaced by 0, and
        positions whose label is out of range are NaN.
      targets: int ``[...]`` class indices (masked positions replaced by 0) or
        float ``[..., C]`` probabilities in the compute dtype (masked rows 0).
      is_index: whether ``targets`` are class indices.
      num_classes: ``C``.
      dtype: the result dtype (the input's dtype).
      bad: under ``jit``, the positions ``[...]`` whose label is out of range
        (None for eager calls, which raise instead, and probability targets).
      scores_poisoned: whether ``scores`` are already NaN at ``bad``.
    """

    scores: Array
    targets: Array
    is_index: bool
    num_classes: int
    dtype: jnp.dtype
    bad: Array | None = None
    scores_poisoned: bool = True

    def poison(self, values: Array) -> Array:
        """Per-position ``values`` made NaN at out-of-range labels (for losses that asked
        ``prepare_class_inputs(poison_scores=False)`` to keep their fused fast path)."""
        if self.bad is None or self.scores_poisoned:
            return values
        return poison(values, self.bad)

    @property
    def position_shape(self) -> tuple[int, ...]:
        """The unreduced per-position shape (the class axis removed)."""
        return self.scores.shape[:-1]


def out_of_range(labels: Array, num_classes: int, *, ignore_index: int | None = None) -> Array:
    """Boolean ``labels.shape``: labels outside ``[0, num_classes)`` that are not ignored."""
    bad = (labels < 0) | (labels >= num_classes)
    if ignore_index is not None:
        bad = bad & (labels != ignore_index)
    return bad


def poison(values: Array, bad: Array) -> Array:
    """``values`` with NaN where ``bad`` (broadcast from the left: ``bad`` may lack trailing axes).

    The NaN marks a result that cannot be trusted (an out-of-range label under
    ``jit``); the gradient with respect to the other entries is unchanged.
    """
    bad = bad.reshape(bad.shape + (1,) * (values.ndim - bad.ndim))
    return jnp.where(bad, jnp.asarray(jnp.nan, values.dtype), values)


def prepare_class_inputs(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    logits_name: str = "logits",
    targets_name: str = "targets",
    ignore_index: int | None = None,
    min_classes: int = 1,
    poison_scores: bool = True,
) -> ClassInputs:
    """Validates logits and targets of a class-based loss and moves the class axis last.

    ``where`` is per position (the shape of the logits without the class axis,
    or broadcastable to it). Masked positions are sanitised (double-``where``)
    so that a NaN there reaches neither value nor gradient. Integer labels out
    of ``[0, C)`` (other than ``ignore_index``) raise eagerly and give NaN
    scores at their positions under ``jit``. A loss whose kernel is a fused
    pass over the scores (cross-entropy: a select on the whole ``[..., C]``
    array costs it half its speed) passes ``poison_scores=False`` and applies
    ``ClassInputs.poison`` to its per-position values instead.
    """
    logits = _checks.float_input(logits, logits_name)
    _checks.check_rank(logits, logits_name, min_rank=1)
    axis = _checks.normalize_axis(axis, logits.ndim)
    targets, is_index = _checks.class_targets(
        logits, targets, axis=axis, logits_name=logits_name, targets_name=targets_name
    )
    num_classes = logits.shape[axis]
    if num_classes < min_classes:
        raise ValueError(
            f"{logits_name} must have at least {min_classes} classes along axis {axis}; "
            f"got shape {logits.shape}."
        )
    if is_index:
        _checks.check_labels_in_range(targets, num_classes, targets_name,
                                      ignore_index=ignore_index)
        compute, dtype = _checks.compute_dtype(logits)
    else:
        compute, dtype = _checks.compute_dtype(logits, targets)
    scores = jnp.moveaxis(logits, axis, -1).astype(compute)
    if not is_index:
        targets = jnp.moveaxis(targets, axis, -1).astype(compute)
    if where is not None:
        positions = _checks.broadcast_mask(where, scores.shape[:-1], "where")
        (scores,) = _reduce.mask_inputs(positions[..., None], scores)
        if is_index:
            targets = jnp.where(positions, targets, jnp.zeros_like(targets))
        else:
            (targets,) = _reduce.mask_inputs(positions[..., None], targets)
    bad = None
    if is_index and _checks.is_traced(targets):
        bad = out_of_range(targets, num_classes, ignore_index=ignore_index)
        if poison_scores:
            scores = poison(scores, bad)
    return ClassInputs(scores, targets, is_index, num_classes, dtype, bad, poison_scores)


def label_one_hot(labels: Array, num_classes: int, dtype: jnp.dtype, *,
                  ignore_index: int | None = None) -> tuple[Array, Array | None]:
    """One-hot ``[..., C]`` of integer ``labels`` and the kept positions ``[...]`` (or None).

    Positions labelled ``ignore_index`` get an all-zero row and are False in
    the returned mask; positions whose label is out of range (and not
    ignored) get a NaN row, so that every sum over them is NaN.
    """
    valid = None if ignore_index is None else labels != ignore_index
    onehot = one_hot(labels, num_classes, dtype)
    if valid is not None:
        onehot = jnp.where(valid[..., None], onehot, jnp.zeros_like(onehot))
    if _checks.is_traced(labels):
        onehot = poison(onehot, out_of_range(labels, num_classes, ignore_index=ignore_index))
    return onehot, valid


def log_probabilities(scores: Array, *, from_logits: bool) -> Array:
    """Log-probabilities over the last axis: a stable log-softmax of logits, or the log of
    probabilities (0 probabilities give -inf with a finite gradient)."""
    if from_logits:
        return jax.nn.log_softmax(scores, axis=-1)
    return safe_log(scores)


def take_class(values: Array, labels: Array) -> Array:
    """``values[..., labels]`` per position: ``[..., C]`` and int ``[...]`` to ``[...]``.

    Labels outside ``[0, C)`` are clipped for the gather: callers mask ignored
    positions, and ``prepare_class_inputs`` has already made the scores of an
    out-of-range position NaN, so a clipped label never yields a valid-looking
    value.
    """
    num_classes = values.shape[-1]
    index = jnp.clip(labels, 0, num_classes - 1).astype(jnp.int32)
    return jnp.take_along_axis(values, index[..., None], axis=-1)[..., 0]


def log_probability_of(scores: Array, labels: Array, *, from_logits: bool) -> Array:
    """``log p[..., label]`` per position without materialising the whole log-softmax.

    From logits it is ``logits[y] - logsumexp(logits)``: fused passes over the
    classes and a gather, the way optax computes its integer-label cross-entropy
    (a log-softmax followed by a gather writes a ``[..., C]`` temporary and is
    several times slower in the backward pass).
    """
    if from_logits:
        # Shifted by the (constant) max first, as log_softmax is: when y is the largest
        # logit, x_y - max is exactly 0 and the result keeps its relative precision.
        shift = jax.lax.stop_gradient(jnp.max(scores, axis=-1, keepdims=True))
        log_normalizer = jnp.log(jnp.sum(jnp.exp(scores - shift), axis=-1))
        return (take_class(scores, labels) - shift[..., 0]) - log_normalizer
    return safe_log(take_class(scores, labels))

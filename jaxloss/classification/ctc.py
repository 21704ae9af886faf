"""Connectionist temporal classification (CTC) loss.

Conventions: batch-major, channels-last ``logits (B, T, K)`` with the blank
among the ``K`` classes; integer ``labels (B, N)``; padding indicators as in
optax (1.0 marks a padded frame or label; labels are right-padded). The
unreduced loss is one value per sequence, ``(B,)``; ``where`` and
``weights`` are per sequence.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss.registry import _builtin

__all__ = ["ctc_loss"]


def _paddings(value: ArrayLike, name: str, shape: tuple[int, ...], what: str) -> Array:
    """A padding-indicator array of exactly ``shape``, as booleans (True = padded)."""
    value = jnp.asarray(value)
    if not (jnp.issubdtype(value.dtype, jnp.floating) or jnp.issubdtype(value.dtype, jnp.integer)
            or value.dtype == jnp.bool_):
        raise TypeError(f"{name} must hold 0/1 padding indicators; got dtype {value.dtype}.")
    if value.shape != shape:
        raise ValueError(
            f"{name} must have shape {shape} ({what}); got shape {value.shape}."
        )
    if value.dtype == jnp.bool_:
        return value
    return value > 0.5


def _check_label_values(labels: Array, padded: Array, num_classes: int) -> None:
    """Refuses (when concrete) non-padded labels outside ``[0, num_classes)``."""
    label_values, padded_values = _checks.host_copy(labels), _checks.host_copy(padded)
    if label_values is None or padded_values is None:
        return
    values = label_values[~padded_values]
    bad = values[(values < 0) | (values >= num_classes)]
    if bad.size:
        raise ValueError(
            f"labels holds class index {int(bad[0])} at a non-padded position, outside "
            f"[0, {num_classes})."
        )


def _ctc_forward(log_probs: Array, labels: Array, frame_padded: Array, label_length: Array,
                 *, blank_id: int, log_epsilon: Array) -> Array:
    """Per-sequence negative log-likelihood by the log-space alpha recursion.

    The extended label sequence interleaves blanks and labels,
    ``[blank, l_0, blank, l_1, ..., l_{N-1}, blank]`` (``S = 2N + 1`` states).
    ``log(0)`` is replaced by ``log_epsilon`` (the start distribution and the
    forbidden skip between repeated labels), as optax does, so infeasible
    alignments give a large finite loss with a finite gradient.
    """
    batch, _, num_classes = log_probs.shape
    num_labels = labels.shape[1]
    num_states = 2 * num_labels + 1
    dtype = log_probs.dtype

    index = jnp.clip(labels, 0, num_classes - 1).astype(jnp.int32)              # [B, N]
    emit = jnp.take_along_axis(
        log_probs, jnp.broadcast_to(index[:, None, :], (batch, log_probs.shape[1], num_labels)),
        axis=2)                                                                   # [B, T, N]
    blank = log_probs[:, :, blank_id]                                             # [B, T]
    interleaved = jnp.stack([jnp.broadcast_to(blank[..., None], emit.shape), emit], axis=-1)
    extended = jnp.concatenate(
        [interleaved.reshape(emit.shape[:2] + (2 * num_labels,)), blank[..., None]],
        axis=-1)                                                                  # [B, T, S]

    state = jnp.arange(num_states)
    has_previous = state >= 1                                                     # [S]
    can_skip = (state % 2 == 1) & (state >= 3)                                    # [S]
    # Skipping the blank between two equal labels is forbidden: log_epsilon.
    repeat = jnp.zeros((batch, num_labels), bool).at[:, 1:].set(
        labels[:, 1:] == labels[:, :-1])                                          # [B, N]
    repeat_state = jnp.stack([jnp.zeros_like(repeat), repeat], axis=-1).reshape(batch, -1)
    repeat_state = jnp.concatenate([repeat_state, jnp.zeros((batch, 1), bool)], axis=1)
    skip_penalty = jnp.where(repeat_state, log_epsilon, jnp.zeros((), dtype))   # [B, S]

    # A virtual step before t = 0 holds all mass in state 0.
    init = jnp.broadcast_to(
        jnp.where(state == 0, jnp.zeros((), dtype), log_epsilon), (batch, num_states))

    def step(alpha: Array, inputs: tuple[Array, Array]) -> tuple[Array, None]:
        frame, padded = inputs                                                    # [B, S], [B]
        # alpha[s - 1] and alpha[s - 2]; the filled-in entries are never selected
        # (has_previous, can_skip) and only keep the unselected branch finite.
        fill = jnp.zeros((batch, 2), dtype)
        shift1 = jnp.concatenate([fill[:, :1], alpha], axis=1)[:, :num_states]
        shift2 = jnp.concatenate([fill, alpha], axis=1)[:, :num_states]
        total = jnp.where(has_previous, jnp.logaddexp(alpha, shift1), alpha)
        total = jnp.where(can_skip, jnp.logaddexp(total, shift2 + skip_penalty), total)
        new = total + frame
        return jnp.where(padded[:, None], alpha, new), None

    alpha, _ = jax.lax.scan(
        step, init, (jnp.moveaxis(extended, 1, 0), jnp.moveaxis(frame_padded, 1, 0)))

    last = 2 * label_length                                                       # [B]
    end_blank = jnp.take_along_axis(alpha, last[:, None], axis=1)[:, 0]
    end_label = jnp.take_along_axis(alpha, jnp.maximum(last - 1, 0)[:, None], axis=1)[:, 0]
    log_likelihood = jnp.where(label_length > 0, jnp.logaddexp(end_blank, end_label), end_blank)
    return -log_likelihood


@_builtin("classification")
def ctc_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    logit_paddings: ArrayLike,
    label_paddings: ArrayLike,
    *,
    blank_id: int = 0,
    log_epsilon: ArrayLike = -1e5,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Connectionist temporal classification loss, one value per sequence.

    .. math:: \ell_b = -\log \sum_{\pi \in \mathcal{B}^{-1}(y_b)}
              \prod_{t} \mathrm{softmax}(x_{b,t})_{\pi_t}

    the negative log-probability of the label sequence summed over every
    alignment :math:`\pi` that collapses to it (merge repeats, then drop
    blanks), by the forward (alpha) recursion in log space over the
    blank-interleaved label sequence, one ``lax.scan`` step per frame.

    Convention (optax's): padded frames (``logit_paddings == 1``) are
    skipped wherever they are; labels are right-padded and the label length
    is the number of non-padded labels; ``log(0)`` is replaced by
    ``log_epsilon``, so an infeasible alignment (too few frames for the
    labels and the blanks their repeats need) gives a large *finite* loss
    (about ``-log_epsilon`` per missing frame) with a finite gradient, where
    torch gives ``inf``. A sequence with no labels costs the log-probability
    of all-blank; with no frames and no labels it costs 0.
    ``reduction="mean"`` is the mean over sequences (optax and torch
    ``reduction="none"`` followed by a mean), not torch's ``"mean"``, which
    first divides each loss by its target length (pass
    ``weights=1 / max(label_length, 1)`` and ``reduction="sum"`` divided by
    the batch size for that).

    Args:
      logits: floating ``(B, T, K)`` logits over ``K`` classes including the
        blank.
      labels: integer ``(B, N)`` label sequences (values in ``[0, K)``, not the
        blank, at non-padded positions).
      logit_paddings: ``(B, T)`` indicators, 1.0 for a padded frame, else 0.0.
      label_paddings: ``(B, N)`` indicators, 1.0 for a padded label, else
        0.0; each row zeros then ones (right-padded).
      blank_id: the blank's class index (static int in ``[0, K)``).
      log_epsilon: finite negative stand-in for ``log(0)`` (optax's default).
      where: boolean mask broadcastable to ``(B,)``.
      weights: per-sequence weights broadcastable to ``(B,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per sequence, ``(B,)``.

    Raises:
      TypeError: integer ``logits``, or non-integer ``labels``.
      ValueError: ``logits`` not of rank 3, ``labels`` not of rank 2, batch
        sizes that differ, paddings whose shapes are not ``(B, T)`` and
        ``(B, N)``, ``blank_id`` outside ``[0, K)``, a non-padded label
        outside ``[0, K)`` (when concrete), ``log_epsilon`` not finite and
        negative, or an unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.zeros((1, 2, 2))  # two frames, uniform over {blank, 1}
      >>> labels = jnp.array([[1]])
      >>> # alignments "1 1", "1 -", "- 1": 3 of 4 paths, -log(3/4)
      >>> float(jaxloss.ctc_loss(logits, labels, jnp.zeros((1, 2)), jnp.zeros((1, 1))))
      0.2876...

    References:
      Graves et al., `Connectionist temporal classification: labelling
      unsegmented sequence data with recurrent neural networks
      <https://www.cs.toronto.edu/~graves/icml_2006.pdf>`_, 2006. Equivalent to
      ``optax.ctc_loss(logits, logit_paddings, labels, label_paddings,
      blank_id=blank_id)`` (note optax's argument order) and, on feasible
      inputs, to ``torch.nn.functional.ctc_loss(log_softmax(logits).transpose(0, 1),
      labels, input_lengths, target_lengths, blank=blank_id, reduction="none")``.
    """
    _checks.check_reduction(reduction)
    logits = _checks.float_input(logits, "logits")
    _checks.check_rank(logits, "logits", rank=3)
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(
            f"labels must be integer class indices of shape (batch, max_label_length); got "
            f"dtype {labels.dtype}."
        )
    _checks.check_rank(labels, "labels", rank=2)
    batch, frames, num_classes = logits.shape
    if labels.shape[0] != batch:
        raise ValueError(
            f"labels has batch size {labels.shape[0]} but logits has batch size {batch}; "
            "they must be equal."
        )
    frame_padded = _paddings(logit_paddings, "logit_paddings", (batch, frames),
                             "the (batch, time) axes of logits")
    label_padded = _paddings(label_paddings, "label_paddings", labels.shape,
                             "the shape of labels")
    blank_id = _checks.static_int(blank_id, "blank_id", low=0)
    if blank_id >= num_classes:
        raise ValueError(f"blank_id must lie in [0, {num_classes}); got {blank_id}.")
    _checks.check_range(log_epsilon, "log_epsilon", low=-float("inf"), high=0.0,
                        low_inclusive=False, high_inclusive=False)
    _check_label_values(labels, label_padded, num_classes)

    compute, dtype = _checks.compute_dtype(logits)
    log_epsilon = _checks.hyperparameter(log_epsilon, "log_epsilon", compute)
    x = logits.astype(compute)
    if where is not None:
        keep = _checks.broadcast_mask(where, (batch,), "where")
        (x,) = _reduce.mask_inputs(keep[:, None, None], x)
    log_probs = jax.nn.log_softmax(x, axis=-1)
    label_length = labels.shape[1] - jnp.sum(label_padded, axis=1, dtype=jnp.int32)
    values = _ctc_forward(log_probs, labels, frame_padded, label_length,
                          blank_id=blank_id, log_epsilon=log_epsilon)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)

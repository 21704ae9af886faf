"""Lovasz losses: the Lovasz extension of the Jaccard loss, binary (hinge) and multi-class.

One batched sort over images (and classes) and no Python loop: the kernel
``_lovasz_dot`` sorts the errors of every row at once.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._checks import Reduction
from jaxloss._numerics import safe_div
from jaxloss.registry import _builtin
from jaxloss.segmentation._common import finish, prepare, rows_of

__all__ = ["lovasz_hinge_loss", "lovasz_softmax_loss"]


def _lovasz_dot(key: Array, values: Array, foreground: Array, valid: Array | None) -> Array:
    """Lovasz extension of the Jaccard loss along the last axis, batched over the rest.

    Sorts ``key`` (the errors) in decreasing order (one batched sort; ignored
    entries last) and returns ``sum_i values_sorted[i] * g[i]`` with ``g`` the
    discrete gradient of the Jaccard loss along the sorted foreground.
    """
    if valid is not None:
        key = jnp.where(valid, key, jnp.full_like(key, -jnp.inf))
        values = jnp.where(valid, values, jnp.zeros_like(values))
        foreground = jnp.where(valid, foreground, jnp.zeros_like(foreground))
    order = jnp.argsort(-jax.lax.stop_gradient(key), axis=-1)        # [..., L]
    values_sorted = jnp.take_along_axis(values, order, axis=-1)
    fg_sorted = jnp.take_along_axis(foreground, order, axis=-1)
    total = jnp.sum(fg_sorted, axis=-1, keepdims=True)
    intersection = total - jnp.cumsum(fg_sorted, axis=-1)
    union = total + jnp.cumsum(1 - fg_sorted, axis=-1)                # >= 1 everywhere
    jaccard = 1 - intersection / union
    gradient = jnp.concatenate([jaccard[..., :1], jnp.diff(jaccard, axis=-1)], axis=-1)
    return jnp.sum(values_sorted * gradient, axis=-1)


def _lovasz_hinge_values(x: Array, t: Array, valid: Array | None) -> Array:
    """``(R, L)`` logits and 0/1 targets to ``(R,)``: the Lovasz hinge of each row."""
    errors = 1 - x * (2 * t - 1)
    return _lovasz_dot(errors, jax.nn.relu(errors), t, valid)


def _lovasz_softmax_values(probs: Array, onehot: Array, valid: Array | None, *,
                           classes: str) -> Array:
    """``(R, L, C)`` probabilities and one-hot to ``(R,)``: the mean over the counted classes
    of the Lovasz extension of each class's Jaccard loss."""
    probs, onehot = jnp.swapaxes(probs, 1, 2), jnp.swapaxes(onehot, 1, 2)   # [R, C, L]
    if valid is not None:
        valid = jnp.broadcast_to(jnp.swapaxes(valid, 1, 2), probs.shape)
    errors = jnp.abs(onehot - probs)
    per_class = _lovasz_dot(errors, errors, onehot, valid)                   # [R, C]
    if classes == "present":
        counted = (jnp.sum(onehot, axis=-1) > 0).astype(per_class.dtype)
    else:
        counted = jnp.ones_like(per_class)
        if valid is not None:  # a row with no valid pixel counts no class
            counted = counted * jnp.any(valid, axis=-1).astype(per_class.dtype)
    # A NaN row of the one-hot (a label out of range under jit) must stay NaN.
    counted = jnp.where(jnp.isnan(per_class), jnp.ones_like(counted), counted)
    return safe_div(jnp.sum(per_class * counted, axis=-1), jnp.sum(counted, axis=-1))


@_builtin("segmentation")
def lovasz_hinge_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    per_image: bool = True,
    ignore_index: int | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Lovasz hinge loss: the Lovasz extension of the binary Jaccard loss on hinge errors.

    .. math::
        e_i = 1 - x_i (2 t_i - 1), \qquad
        \ell = \sum_i \max(e_{\pi(i)}, 0)\, g_i(t_\pi)

    with :math:`\pi` sorting the errors in decreasing order and :math:`g`
    the discrete gradient of the Jaccard loss along the sorted labels. One
    batched sort, no loop over images. The sort order carries no gradient
    (the loss is piecewise linear in the logits).

    Args:
      logits: floating ``(N, *spatial)`` binary logits (no channel axis; a
        channels-first ``(N, 1, H, W)`` gives the same per-image result).
      targets: the same shape, 0/1 (float, bool or int; int may hold
        ``ignore_index``).
      per_image: one loss per image (Berman's default, kornia) or one over
        the pooled batch (smp's ``LovaszLoss`` default).
      ignore_index: int target value whose pixels are dropped.
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N,)`` per image or ``()``
      pooled. Under ``jit`` an int target other than 0, 1 and
      ``ignore_index`` makes its image NaN.

    Raises:
      ValueError: shapes differ, rank < 2, int targets other than 0/1 (eager),
        unknown reduction.
      TypeError: integer logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[2.0, -1.0, 0.5, -3.0]])
      >>> float(jaxloss.lovasz_hinge_loss(logits, jnp.array([[1.0, 0.0, 0.0, 0.0]])))
      0.75

    References:
      Berman et al., `The Lovasz-Softmax loss
      <https://arxiv.org/abs/1705.08790>`_, CVPR 2018. kornia
      ``lovasz_hinge_loss``; segmentation_models_pytorch ``LovaszLoss("binary")``.
    """
    _checks.check_reduction(reduction)
    logits = _checks.float_input(logits, "logits")
    _checks.check_rank(logits, "logits", min_rank=2)
    targets = jnp.asarray(targets)
    _checks.check_same_shape(targets, "targets", logits, "logits")
    keep = rows_of(where, logits, per_image=per_image)
    # A binary "class" axis of size 1 appended, so that the family's prepare() validates.
    inputs = prepare(logits[..., None], targets[..., None], mode="binary",
                     from_logits=False, ignore_index=ignore_index, keep=keep, min_rank=3)
    batch = logits.shape[0]
    x = inputs.scores.reshape(batch, -1)
    t = inputs.onehot.reshape(batch, -1)
    valid = None if inputs.valid is None else inputs.valid.reshape(batch, -1)
    if not per_image:
        x, t = x.reshape(1, -1), t.reshape(1, -1)
        valid = None if valid is None else valid.reshape(1, -1)
    values = _lovasz_hinge_values(x, t, valid)
    if not per_image:
        values = values[0]
    return finish(values, dtype=inputs.dtype, reduction=reduction, where=where, weights=weights)


@_builtin("segmentation")
def lovasz_softmax_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    classes: Literal["present", "all"] = "present",
    per_image: bool = False,
    from_logits: bool = True,
    ignore_index: int | None = None,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Lovasz-Softmax loss: the Lovasz extension of the per-class Jaccard loss.

    .. math::
        e_{ic} = |[y_i = c] - p_{ic}|, \qquad
        \ell = \operatorname{mean}_{c} \sum_i e_{\pi_c(i) c}\, g_i([y = c]_{\pi_c})

    Convention: ``classes="present"`` averages over the classes present in the
    targets (of each image with ``per_image=True``, of the batch otherwise),
    ``"all"`` over every class; an image with no valid pixel gives 0.
    Defaults (``"present"``, pooled) follow Berman's code and
    segmentation_models_pytorch; kornia's ``lovasz_softmax_loss`` is
    ``classes="all", per_image=True``. One batched sort over classes and
    images.

    Args:
      logits: floating ``(N, *spatial, C)`` (probabilities with
        ``from_logits=False``), class axis ``axis``.
      targets: int ``(N, *spatial)`` class indices (or ``ignore_index``), or a
        float one-hot ``(N, *spatial, C)``.
      classes: ``"present"`` or ``"all"``.
      per_image: one loss per image instead of one over the pooled batch.
      from_logits: whether ``logits`` are logits.
      ignore_index: int target value whose pixels are dropped.
      axis: the class axis of ``logits`` (static).
      where: boolean mask broadcastable to the unreduced shape.
      weights: weights broadcastable to the unreduced shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N,)`` per image or ``()``
      pooled (NaN under ``jit`` where a label is out of range).

    Raises:
      ValueError: wrong shapes, labels out of range (eager), unknown
        ``classes`` or reduction.
      TypeError: integer logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> round(float(jaxloss.lovasz_softmax_loss(probs, jnp.array([[0, 1, 1]]),
      ...                                         from_logits=False)), 5)
      0.38333

    References:
      Berman et al., `The Lovasz-Softmax loss
      <https://arxiv.org/abs/1705.08790>`_, CVPR 2018.
      segmentation_models_pytorch ``LovaszLoss("multiclass")``; kornia
      ``lovasz_softmax_loss``.
    """
    _checks.check_reduction(reduction)
    _checks.check_choice(classes, "classes", ("present", "all"))
    keep = rows_of(where, logits, per_image=per_image)
    inputs = prepare(logits, targets, mode="multiclass", from_logits=from_logits,
                     ignore_index=ignore_index, axis=axis, keep=keep)
    batch, num_classes = inputs.probs.shape[0], inputs.probs.shape[-1]
    rows = batch if per_image else 1
    probs = inputs.probs.reshape(rows, -1, num_classes)                     # [R, L, C]
    onehot = inputs.onehot.reshape(rows, -1, num_classes)
    valid = None if inputs.valid is None else inputs.valid.reshape(rows, -1, 1)
    values = _lovasz_softmax_values(probs, onehot, valid, classes=classes)
    if not per_image:
        values = values[0]
    return finish(values, dtype=inputs.dtype, reduction=reduction, where=where, weights=weights)

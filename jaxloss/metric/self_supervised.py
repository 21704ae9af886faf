"""Self-supervised and contrastive losses: NT-Xent/InfoNCE, SupCon, CLIP, SigLIP, BYOL,
SimSiam, Barlow Twins and VICReg.

Conventions:

* Embeddings are float ``(N, d)``; labels are int ``(N,)``. Similarities are
  cosine similarities (rows L2-normalised with ``_common.l2_normalize``, so a
  zero-norm embedding has similarity 0 to everything and finite gradients).
* ``where`` and ``weights`` are per row ``(N,)``. A row with ``where=False``
  *or a weight of exactly 0* is removed from the batch: it is neither an
  anchor nor a key (positive or negative) of any other row, and it does not
  enter batch statistics. ``where`` therefore equals slicing the batch, and a
  zero weight equals masking. Nonzero weights only weigh each row's own loss
  term (they do not re-weight it as a key).
* The all-pairs losses (``ntxent_loss``/``info_nce_loss``, ``supcon_loss``,
  ``clip_loss``, ``siglip_loss``) take ``block_size=None``: with a block size
  the ``N x N`` similarity matrix is never held; columns are processed in
  blocks of ``block_size`` inside a checkpointed ``lax.scan`` with an online
  log-sum-exp (``_common.scan_column_blocks``), so memory grows as
  ``O(N (d + block_size))``. The value and gradient equal the dense path.
* Batch-wide losses take ``axis_name=None``: inside ``shard_map`` with the
  batch split over ``axis_name`` the local rows are the anchors, the keys (or
  the batch statistics) are gathered (or ``psum``-ed) over the axis, and the
  ``"mean"``/``"sum"`` reductions are ``psum``-ed, so ``loss(x_local, ...,
  axis_name="data")`` with ``out_specs=P()`` returns exactly the loss of the
  global batch (``reduction="none"`` returns the local rows' values).
* Half-precision inputs are computed in float32 and the result is returned in
  the input dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import safe_div, safe_sqrt
from jaxloss.metric import _common
from jaxloss.registry import _builtin

__all__ = [
    "barlow_twins_loss",
    "byol_loss",
    "clip_loss",
    "info_nce_loss",
    "ntxent_loss",
    "siglip_loss",
    "simsiam_loss",
    "supcon_loss",
    "vicreg_loss",
]


# --------------------------------------------------------------------------------------
# Shared helpers (private).
# --------------------------------------------------------------------------------------


def _presence(where: ArrayLike | None, weights: ArrayLike | None, rows: int) -> Array | None:
    """``(rows,)`` boolean: rows in the batch (``where`` True and weight nonzero), or None."""
    present = _checks.broadcast_mask(where, (rows,), "where")
    if present is not None:
        present = present.astype(jnp.bool_)
    if weights is not None:
        nonzero = _checks.broadcast_mask(weights, (rows,), "weights") != 0
        present = nonzero if present is None else present & nonzero
    return present


def _sanitize(x: Array, present: Array | None) -> Array:
    """Rows not present set to 0 (first half of the double where: NaN there cannot leak)."""
    if present is None:
        return x
    return jnp.where(present[:, None], x, jnp.zeros_like(x))


def _ones_if_none(present: Array | None, rows: int) -> Array:
    return jnp.ones((rows,), jnp.bool_) if present is None else present


def _finish(values: Array, *, reduction: str, where: ArrayLike | None,
            weights: ArrayLike | None, normalizer: Array | None, axis_name: str | None,
            dtype: jnp.dtype) -> Array:
    """``reduce_loss``, with the sum and the mean's denominator ``psum``-ed over ``axis_name``."""
    if axis_name is None or reduction == "none":
        return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                                   normalizer=normalizer, dtype=dtype)
    total = jax.lax.psum(_reduce.reduce_loss(values, reduction="sum", where=where,
                                             weights=weights), axis_name)
    if reduction == "sum":
        return total.astype(dtype)
    count = jnp.ones_like(values) if normalizer is None else normalizer.astype(values.dtype)
    count = jax.lax.psum(_reduce.reduce_loss(count, reduction="sum", where=where,
                                             weights=weights), axis_name)
    return safe_div(total, count).astype(dtype)


def _over_columns(body, init, keys: Array, extras: tuple[Array, ...], block_size: int | None,
                  axis_name: str | None):
    """``body`` over all key columns at once (dense) or in checkpointed blocks (chunked)."""
    if block_size is None:
        columns = jnp.arange(keys.shape[0])
        valid = jnp.ones((keys.shape[0],), jnp.bool_)
        return body(init, keys, columns, valid, *extras)
    if axis_name is not None:
        # Under shard_map the carry depends on the local rows: it varies over the axis.
        init = jax.tree.map(lambda c: jax.lax.pcast(c, axis_name, to="varying"), init)
    return _common.scan_column_blocks(body, init, keys, block_size=block_size, extras=extras)


def _check_block_size(block_size: int | None) -> int | None:
    if block_size is None:
        return None
    return _checks.static_int(block_size, "block_size", low=1)


def _positive_hyperparameter(value: ArrayLike, name: str, dtype: jnp.dtype) -> Array:
    _checks.check_range(value, name, low=0.0, low_inclusive=False)
    return _checks.hyperparameter(value, name, dtype)


def _second_view(embeddings: Array, other: ArrayLike, name: str, other_name: str,
                 ) -> tuple[Array, Array, jnp.dtype]:
    """Validates a float ``(N, d)`` pair of views; both in the compute dtype."""
    embeddings = _checks.float_input(embeddings, name)
    _checks.check_rank(embeddings, name, rank=2)
    other = _checks.float_input(other, other_name)
    _checks.check_same_shape(other, other_name, embeddings, name)
    compute, dtype = _checks.compute_dtype(embeddings, other)
    return embeddings.astype(compute), other.astype(compute), dtype


# --------------------------------------------------------------------------------------
# NT-Xent / InfoNCE.
# --------------------------------------------------------------------------------------


def _ntxent_per_anchor(queries: Array, query_labels: Array, query_index: Array, keys: Array,
                       key_labels: Array, key_present: Array, inv_temperature: Array,
                       block_size: int | None, axis_name: str | None) -> tuple[Array, Array]:
    """Per anchor: the sum over its positive pairs of PML's NT-Xent term, and their count.

    Pass 1 is the log-sum-exp over the anchor's negatives (different label);
    pass 2 sums ``softplus(lse_neg - s_ap) = -log(e^s_ap / (e^s_ap + sum_n e^s_an))``
    over its positives (same label, not itself).
    """
    rows = queries.shape[0]

    def negatives(state, key_block, columns, valid, labels_block, present_block):
        logits = (queries @ key_block.T) * inv_temperature                 # [rows, b]
        mask = ((valid & present_block)[None, :]
                & (query_labels[:, None] != labels_block[None, :]))
        return _common.logsumexp_update(state, logits, mask)

    extras = (key_labels, key_present)
    lse_state = _over_columns(negatives, _common.logsumexp_init(rows, queries.dtype), keys,
                              extras, block_size, axis_name)
    lse_neg = _common.logsumexp_finish(lse_state)                          # [rows]
    has_negative = jnp.isfinite(lse_neg)
    safe_lse = jnp.where(has_negative, lse_neg, jnp.zeros_like(lse_neg))

    def positives(carry, key_block, columns, valid, labels_block, present_block):
        total, count = carry
        logits = (queries @ key_block.T) * inv_temperature                 # [rows, b]
        mask = ((valid & present_block)[None, :]
                & (query_labels[:, None] == labels_block[None, :])
                & (query_index[:, None] != columns[None, :]))
        terms = jax.nn.softplus(safe_lse[:, None] - logits)
        # Without negatives the term is -log(1) = 0.
        mask_terms = mask & has_negative[:, None]
        total = total + jnp.sum(jnp.where(mask_terms, terms, jnp.zeros_like(terms)), axis=-1)
        return total, count + jnp.sum(mask.astype(count.dtype), axis=-1)

    init = (jnp.zeros((rows,), queries.dtype), jnp.zeros((rows,), queries.dtype))
    return _over_columns(positives, init, keys, extras, block_size, axis_name)


def _ntxent(embeddings: ArrayLike, labels: ArrayLike, *, temperature: ArrayLike,
            block_size: int | None, axis_name: str | None, where: ArrayLike | None,
            weights: ArrayLike | None, reduction: str) -> Array:
    _checks.check_reduction(reduction)
    block_size = _check_block_size(block_size)
    labels_array = jnp.asarray(labels)
    if jnp.issubdtype(labels_array.dtype, jnp.floating):
        return _ntxent_two_view(embeddings, labels_array, temperature=temperature,
                                block_size=block_size, axis_name=axis_name, where=where,
                                weights=weights, reduction=reduction)
    x, labels_array, dtype = _common.embeddings_and_labels(embeddings, labels_array)
    rows = x.shape[0]
    inv_t = 1 / _positive_hyperparameter(temperature, "temperature", x.dtype)
    present = _presence(where, weights, rows)
    x = _common.l2_normalize(_sanitize(x, present))
    keys = _common.gather_batch(x, axis_name)
    key_labels = _common.gather_batch(labels_array, axis_name)
    key_present = _common.gather_batch(_ones_if_none(present, rows), axis_name)
    index = _common.shard_offset(rows, axis_name) + jnp.arange(rows)
    total, count = _ntxent_per_anchor(x, labels_array, index, keys, key_labels, key_present,
                                      inv_t, block_size, axis_name)
    return _finish(total, reduction=reduction, where=where, weights=weights, normalizer=count,
                   axis_name=axis_name, dtype=dtype)


def _ntxent_two_view(embeddings: ArrayLike, view: Array, *, temperature: ArrayLike,
                     block_size: int | None, axis_name: str | None,
                     where: ArrayLike | None, weights: ArrayLike | None,
                     reduction: str) -> Array:
    a, b, dtype = _second_view(embeddings, view, "embeddings", "labels")
    rows = a.shape[0]
    inv_t = 1 / _positive_hyperparameter(temperature, "temperature", a.dtype)
    present = _presence(where, weights, rows)
    a = _common.l2_normalize(_sanitize(a, present))
    b = _common.l2_normalize(_sanitize(b, present))
    global_a = _common.gather_batch(a, axis_name)
    global_b = _common.gather_batch(b, axis_name)
    total_rows = global_a.shape[0]
    # The 2M keys: all first views, then all second views; the label of a key is its
    # pair index, so each anchor's only positive is the other view of its own pair.
    keys = jnp.concatenate([global_a, global_b], axis=0)                  # [2M, d]
    pair = jnp.arange(total_rows)
    key_labels = jnp.concatenate([pair, pair])
    key_present = _common.gather_batch(_ones_if_none(present, rows), axis_name)
    key_present = jnp.concatenate([key_present, key_present])
    offset = _common.shard_offset(rows, axis_name)
    local_pair = offset + jnp.arange(rows)
    queries = jnp.concatenate([a, b], axis=0)                              # [2N, d]
    query_labels = jnp.concatenate([local_pair, local_pair])
    query_index = jnp.concatenate([local_pair, total_rows + local_pair])
    total, _ = _ntxent_per_anchor(queries, query_labels, query_index, keys, key_labels,
                                  key_present, inv_t, block_size, axis_name)
    values = 0.5 * (total[:rows] + total[rows:])                            # [N]
    return _finish(values, reduction=reduction, where=where, weights=weights, normalizer=None,
                   axis_name=axis_name, dtype=dtype)


_NTXENT_DOC = r"""NT-Xent (normalised temperature-scaled cross-entropy), a.k.a. InfoNCE.

    With cosine similarities :math:`s_{ij}` and temperature :math:`\tau`, every
    positive pair :math:`(a, p)` (same label, :math:`p \ne a`) contributes

    .. math::
        \ell_{ap} = -\log \frac{e^{s_{ap}/\tau}}
                    {e^{s_{ap}/\tau} + \sum_{n:\, y_n \ne y_a} e^{s_{an}/\tau}}

    (other positives of :math:`a` are not in the denominator), and the loss is
    the mean over all positive pairs, as PML's ``NTXentLoss`` and optax's
    ``ntxent``, which agree.

    Two-view (SimCLR) form: when the second argument is a *floating* ``(N, d)``
    array it is a second view, row ``i`` of both views being a positive pair;
    the batch is the ``2N`` rows of both views and every other row is a
    negative. This equals the labelled form on
    ``concatenate([embeddings, labels])`` with labels ``[0..N-1, 0..N-1]``
    (SimCLR's loss over the ``2N`` anchors).

    ``ntxent_loss`` and ``info_nce_loss`` are the same loss.

    Args:
      embeddings: float ``(N, d)``.
      labels: int ``(N,)`` class labels (rows with equal labels are positives,
        others negatives); or a float ``(N, d)`` second view (two-view form).
      temperature: :math:`\tau > 0`; Python float or traced scalar.
      block_size: ``None`` (dense) or a static int: process the key columns in
        blocks of that size, never holding the ``N x N`` similarities.
      axis_name: the ``shard_map``/``pmap`` axis the batch is split over; the
        keys are gathered over it (see the module docstring).
      where: ``(N,)`` boolean; False rows are removed from the batch (as
        anchors and as keys). In the two-view form it masks pair ``i`` in
        both views.
      weights: ``(N,)`` per-row weights of the anchor's loss; a zero weight
        removes the row like ``where``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss. ``reduction="none"`` gives ``(N,)``: labelled form, the
      *sum* of the anchor's terms over its positive pairs (0 for an anchor
      without positives), and ``"mean"`` divides the total by the number of
      positive pairs (PML/optax; so it is not the mean of ``"none"``);
      two-view form, the mean of the pair's two anchors' terms, and ``"mean"``
      is the mean of ``"none"``. No positive pair at all gives 0.

    Raises:
      TypeError: integer ``embeddings``, or labels neither integer nor float.
      ValueError: wrong shapes, ``temperature <= 0``, unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
      >>> # PML NTXentLoss(0.5) on the same batch gives 0.43019
      >>> round(float(jaxloss.{name}(x, jnp.array([0, 0, 1, 1]), temperature=0.5)), 4)
      0.4302
      >>> # PML NTXentLoss(0.5)(x, labels=[0, 1, 0, 1]) gives 2.03019
      >>> round(float(jaxloss.{name}(x[:2], x[2:], temperature=0.5)), 4)
      2.0302

    References:
      Chen et al., `A Simple Framework for Contrastive Learning of Visual
      Representations <https://arxiv.org/abs/2002.05709>`_, 2020; van den Oord
      et al., `Representation Learning with Contrastive Predictive Coding
      <https://arxiv.org/abs/1807.03748>`_, 2018. Equivalent to
      ``pytorch_metric_learning.losses.NTXentLoss(temperature)(embeddings, labels)``
      and ``optax.losses.ntxent(embeddings, labels, temperature)``.
    """


@_builtin("metric")
def ntxent_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: ArrayLike = 0.07,
    block_size: int | None = None,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    return _ntxent(embeddings, labels, temperature=temperature, block_size=block_size,
                   axis_name=axis_name, where=where, weights=weights, reduction=reduction)


@_builtin("metric")
def info_nce_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: ArrayLike = 0.07,
    block_size: int | None = None,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    return _ntxent(embeddings, labels, temperature=temperature, block_size=block_size,
                   axis_name=axis_name, where=where, weights=weights, reduction=reduction)


ntxent_loss.__doc__ = _NTXENT_DOC.replace("{name}", "ntxent_loss")
info_nce_loss.__doc__ = _NTXENT_DOC.replace("{name}", "info_nce_loss")


# --------------------------------------------------------------------------------------
# Supervised contrastive.
# --------------------------------------------------------------------------------------


@_builtin("metric")
def supcon_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: ArrayLike = 0.1,
    block_size: int | None = None,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Supervised contrastive loss (SupCon, "L_out" form).

    With cosine similarities :math:`s_{ij}`, temperature :math:`\tau`, the
    positives :math:`P(i)` (same label, not :math:`i`) and all other rows
    :math:`A(i)`:

    .. math::
        \ell_i = -\frac{1}{|P(i)|} \sum_{p \in P(i)}
                 \Big(s_{ip}/\tau - \log \sum_{a \in A(i)} e^{s_{ia}/\tau}\Big)

    Anchors without positives are excluded: their unreduced value is 0 and
    ``"mean"`` averages over the anchors that have a positive (PML). PML's
    ``AvgNonZeroReducer`` also drops anchors whose loss is exactly 0 (one
    positive and no negative) and returns 0 for a batch without any negative
    pair; here such anchors count (with their value).

    Args:
      embeddings: float ``(N, d)``.
      labels: int ``(N,)``.
      temperature: :math:`\tau > 0`; Python float or traced scalar.
      block_size: ``None`` (dense) or a static int: blockwise over the key
        columns (online log-sum-exp), never holding ``N x N``.
      axis_name: the axis the batch is split over (keys gathered).
      where: ``(N,)`` boolean; False rows are removed from the batch.
      weights: ``(N,)`` per-anchor weights; a zero weight removes the row.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; ``reduction="none"`` gives ``(N,)`` per anchor.
      ``"mean"`` is over anchors with positives (not the mean of ``"none"``).

    Raises:
      TypeError: integer ``embeddings`` or non-integer ``labels``.
      ValueError: wrong shapes, ``temperature <= 0``, unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
      >>> # PML SupConLoss(0.5) gives 0.43019 (one positive per anchor: NT-Xent's value)
      >>> round(float(jaxloss.supcon_loss(x, jnp.array([0, 0, 1, 1]), temperature=0.5)), 4)
      0.4302

    References:
      Khosla et al., `Supervised Contrastive Learning
      <https://arxiv.org/abs/2004.11362>`_, 2020. Equivalent to
      ``pytorch_metric_learning.losses.SupConLoss(temperature)(embeddings, labels)``.
    """
    _checks.check_reduction(reduction)
    block_size = _check_block_size(block_size)
    x, labels, dtype = _common.embeddings_and_labels(embeddings, labels)
    rows = x.shape[0]
    inv_t = 1 / _positive_hyperparameter(temperature, "temperature", x.dtype)
    present = _presence(where, weights, rows)
    x = _common.l2_normalize(_sanitize(x, present))
    keys = _common.gather_batch(x, axis_name)
    key_labels = _common.gather_batch(labels, axis_name)
    key_present = _common.gather_batch(_ones_if_none(present, rows), axis_name)
    index = _common.shard_offset(rows, axis_name) + jnp.arange(rows)

    def body(carry, key_block, columns, valid, labels_block, present_block):
        state, positive_sum, count = carry
        logits = (x @ key_block.T) * inv_t                                # [rows, b]
        others = (valid & present_block)[None, :] & (index[:, None] != columns[None, :])
        positive = others & (labels[:, None] == labels_block[None, :])
        state = _common.logsumexp_update(state, logits, others)
        positive_sum = positive_sum + jnp.sum(
            jnp.where(positive, logits, jnp.zeros_like(logits)), axis=-1)
        return state, positive_sum, count + jnp.sum(positive.astype(count.dtype), axis=-1)

    init = (_common.logsumexp_init(rows, x.dtype), jnp.zeros((rows,), x.dtype),
            jnp.zeros((rows,), x.dtype))
    state, positive_sum, count = _over_columns(body, init, keys, (key_labels, key_present),
                                               block_size, axis_name)
    has_positive = count > 0
    lse = _common.logsumexp_finish(state)
    safe_lse = jnp.where(has_positive, lse, jnp.zeros_like(lse))
    values = jnp.where(has_positive, safe_lse - safe_div(positive_sum, count),
                       jnp.zeros_like(lse))
    return _finish(values, reduction=reduction, where=where, weights=weights,
                   normalizer=has_positive.astype(values.dtype), axis_name=axis_name,
                   dtype=dtype)


# --------------------------------------------------------------------------------------
# CLIP and SigLIP.
# --------------------------------------------------------------------------------------


def _lse_rows(queries: Array, keys: Array, key_present: Array, inv_temperature: Array,
              block_size: int | None, axis_name: str | None) -> Array:
    """``logsumexp_j(q_i . k_j / tau)`` over the present keys."""
    def body(state, key_block, columns, valid, present_block):
        logits = (queries @ key_block.T) * inv_temperature               # [rows, b]
        mask = jnp.broadcast_to((valid & present_block)[None, :], logits.shape)
        return _common.logsumexp_update(state, logits, mask)

    init = _common.logsumexp_init(queries.shape[0], queries.dtype)
    return _common.logsumexp_finish(_over_columns(body, init, keys, (key_present,), block_size,
                                                  axis_name))


@_builtin("metric")
def clip_loss(
    image: ArrayLike,
    text: ArrayLike,
    *,
    temperature: ArrayLike = 0.07,
    block_size: int | None = None,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""CLIP's symmetric contrastive loss between paired image and text embeddings.

    With cosine logits :math:`z_{ij} = \cos(x_i, y_j)/\tau`:

    .. math::
        \ell_i = \tfrac12\Big(\operatorname{CE}(z_{i,:}, i) + \operatorname{CE}(z_{:,i}, i)\Big)
               = \tfrac12\Big(\log\sum_j e^{z_{ij}} + \log\sum_j e^{z_{ji}}\Big) - z_{ii}

    and the loss is the mean over pairs: the image-to-text and text-to-image
    cross-entropies averaged. ``temperature`` may be a traced, learned scalar
    (CLIP learns :math:`\log(1/\tau)`; pass ``temperature=jnp.exp(-t)``).

    Args:
      image: float ``(N, d)`` image embeddings.
      text: float ``(N, d)`` text embeddings; row ``i`` is the caption of
        image ``i``.
      temperature: :math:`\tau > 0`; default 0.07 (CLIP's initial value).
      block_size: ``None`` (dense) or a static int: blockwise over the
        columns (both directions), never holding ``N x N``.
      axis_name: the axis the batch is split over (the other tower's
        embeddings are gathered).
      where: ``(N,)`` boolean; False pairs are removed from the batch.
      weights: ``(N,)`` per-pair weights; a zero weight removes the pair.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; ``reduction="none"`` gives ``(N,)`` per pair.

    Raises:
      TypeError: integer ``image`` or ``text``.
      ValueError: shapes differ or are not ``(N, d)``, ``temperature <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> image = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> text = jnp.array([[1.0, 0.2], [0.1, 1.0], [0.5, 0.6]])
      >>> # the torch cross-entropy form in References gives 0.13801
      >>> round(float(jaxloss.clip_loss(image, text, temperature=0.1)), 4)
      0.138

    References:
      Radford et al., `Learning Transferable Visual Models From Natural
      Language Supervision <https://arxiv.org/abs/2103.00020>`_, 2021 (its
      Figure 3 pseudocode). Equivalent to ``(F.cross_entropy(z, arange(N)) +
      F.cross_entropy(z.T, arange(N))) / 2`` with ``z = normalize(image) @
      normalize(text).T / temperature`` in torch (open_clip ``ClipLoss``).
    """
    _checks.check_reduction(reduction)
    block_size = _check_block_size(block_size)
    x, y, dtype = _second_view(image, text, "image", "text")
    rows = x.shape[0]
    inv_t = 1 / _positive_hyperparameter(temperature, "temperature", x.dtype)
    present = _presence(where, weights, rows)
    x = _common.l2_normalize(_sanitize(x, present))
    y = _common.l2_normalize(_sanitize(y, present))
    key_present = _common.gather_batch(_ones_if_none(present, rows), axis_name)
    lse_image = _lse_rows(x, _common.gather_batch(y, axis_name), key_present, inv_t, block_size,
                          axis_name)
    lse_text = _lse_rows(y, _common.gather_batch(x, axis_name), key_present, inv_t, block_size,
                          axis_name)
    diagonal = jnp.sum(x * y, axis=-1) * inv_t                             # [N]
    # Each present row sees at least its own pair, so the log-sum-exps are finite there.
    valid = _ones_if_none(present, rows)
    lse_image = jnp.where(valid, lse_image, jnp.zeros_like(lse_image))
    lse_text = jnp.where(valid, lse_text, jnp.zeros_like(lse_text))
    values = 0.5 * (lse_image + lse_text) - diagonal
    return _finish(values, reduction=reduction, where=where, weights=weights, normalizer=None,
                   axis_name=axis_name, dtype=dtype)


@_builtin("metric")
def siglip_loss(
    image: ArrayLike,
    text: ArrayLike,
    *,
    scale: ArrayLike = 10.0,
    bias: ArrayLike = -10.0,
    block_size: int | None = None,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""SigLIP's pairwise sigmoid loss between paired image and text embeddings.

    With :math:`z_{ij} = +1` for :math:`i = j` and :math:`-1` otherwise:

    .. math::
        \ell_i = -\sum_j \log \sigma\big(z_{ij}\,(t \cos(x_i, y_j) + b)\big),
        \qquad L = \frac1N \sum_i \ell_i

    (Zhai et al., Algorithm 1: the sum over all :math:`N^2` pairs divided by
    :math:`N`). ``scale`` :math:`t` and ``bias`` :math:`b` may be traced,
    learned scalars (the paper learns :math:`t = e^{t'}`, initialised at 10,
    and :math:`b` initialised at -10). No log-sum-exp is needed, so the chunked
    path is a blockwise sum of softplus terms.

    Args:
      image: float ``(N, d)`` image embeddings.
      text: float ``(N, d)`` text embeddings; row ``i`` pairs with image ``i``.
      scale: :math:`t`, Python float or traced scalar (default 10).
      bias: :math:`b`, Python float or traced scalar (default -10).
      block_size: ``None`` (dense) or a static int: blockwise over the text
        columns, never holding ``N x N``.
      axis_name: the axis the batch is split over (the texts are gathered).
      where: ``(N,)`` boolean; False pairs are removed from the batch.
      weights: ``(N,)`` per-image weights; a zero weight removes the pair.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; ``reduction="none"`` gives ``(N,)``, image ``i``'s sum
      over all texts; ``"mean"`` is the paper's loss.

    Raises:
      TypeError: integer ``image`` or ``text``.
      ValueError: shapes differ or are not ``(N, d)``, unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> image = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> text = jnp.array([[1.0, 0.2], [0.1, 1.0], [0.5, 0.6]])
      >>> # the torch logsigmoid form in References gives 0.87290
      >>> round(float(jaxloss.siglip_loss(image, text)), 4)
      0.8729

    References:
      Zhai et al., `Sigmoid Loss for Language Image Pre-Training
      <https://arxiv.org/abs/2303.15343>`_, 2023. Equivalent to
      ``-F.logsigmoid(z * (t * normalize(image) @ normalize(text).T + b)).sum() / N``
      in torch (big_vision's / open_clip's ``SigLipLoss``).
    """
    _checks.check_reduction(reduction)
    block_size = _check_block_size(block_size)
    x, y, dtype = _second_view(image, text, "image", "text")
    rows = x.shape[0]
    _checks.check_range(scale, "scale")
    _checks.check_range(bias, "bias")
    t = _checks.hyperparameter(scale, "scale", x.dtype)
    b = _checks.hyperparameter(bias, "bias", x.dtype)
    present = _presence(where, weights, rows)
    x = _common.l2_normalize(_sanitize(x, present))
    y = _common.l2_normalize(_sanitize(y, present))
    keys = _common.gather_batch(y, axis_name)
    key_present = _common.gather_batch(_ones_if_none(present, rows), axis_name)
    index = _common.shard_offset(rows, axis_name) + jnp.arange(rows)

    def body(total, key_block, columns, valid, present_block):
        logits = t * (x @ key_block.T) + b                                # [rows, b]
        sign = jnp.where(index[:, None] == columns[None, :], 1.0, -1.0).astype(logits.dtype)
        terms = jax.nn.softplus(-sign * logits)                           # -log sigmoid
        mask = jnp.broadcast_to((valid & present_block)[None, :], terms.shape)
        return total + jnp.sum(jnp.where(mask, terms, jnp.zeros_like(terms)), axis=-1)

    values = _over_columns(body, jnp.zeros((rows,), x.dtype), keys, (key_present,), block_size,
                           axis_name)
    return _finish(values, reduction=reduction, where=where, weights=weights, normalizer=None,
                   axis_name=axis_name, dtype=dtype)


# --------------------------------------------------------------------------------------
# BYOL and SimSiam (per-sample, stop-gradient on the target).
# --------------------------------------------------------------------------------------


def _stopped_cosine(predictions: ArrayLike, targets: ArrayLike, predictions_name: str,
                    targets_name: str, where: ArrayLike | None) -> tuple[Array, jnp.dtype]:
    p, z, dtype = _second_view(predictions, targets, predictions_name, targets_name)
    present = _checks.broadcast_mask(where, (p.shape[0],), "where")
    p = _sanitize(p, present)
    z = jax.lax.stop_gradient(_sanitize(z, present))
    cosine = jnp.sum(_common.l2_normalize(p) * _common.l2_normalize(z), axis=-1)   # [N]
    return cosine, dtype


@_builtin("metric")
def byol_loss(
    online_predictions: ArrayLike,
    target_projections: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""BYOL's regression loss: the squared distance of the L2-normalised vectors.

    .. math:: \ell_i = \Big\|\frac{q_i}{\|q_i\|} - \frac{z'_i}{\|z'_i\|}\Big\|^2
                     = 2 - 2\cos(q_i, z'_i)

    Stop-gradient: the target projection :math:`z'` comes from the momentum
    (EMA) target network and gets no gradient; the loss applies
    ``lax.stop_gradient`` to ``target_projections`` itself, so the gradient
    with respect to it is 0 (callers need not stop it). BYOL symmetrises by
    adding the loss with the views swapped: ``byol_loss(q1, z2') +
    byol_loss(q2, z1')``.

    Args:
      online_predictions: float ``(N, d)``, the online network's predictions.
      target_projections: float ``(N, d)``, the target network's projections.
      where: ``(N,)`` boolean mask of rows.
      weights: ``(N,)`` per-row weights.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; ``reduction="none"`` gives ``(N,)`` per row.

    Raises:
      TypeError: integer inputs.
      ValueError: shapes differ or are not ``(N, d)``, unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> q = jnp.array([[1.0, 0.0], [0.0, 2.0]])
      >>> z = jnp.array([[1.0, 1.0], [0.0, 3.0]])
      >>> round(float(jaxloss.byol_loss(q, z)), 4)  # (2 - sqrt(2) + 0) / 2
      0.2929

    References:
      Grill et al., `Bootstrap Your Own Latent
      <https://arxiv.org/abs/2006.07733>`_, 2020 (eq. 2). Equivalent to
      ``2 - 2 * (F.normalize(q, dim=-1) * F.normalize(z.detach(), dim=-1)).sum(-1)``
      in torch.
    """
    _checks.check_reduction(reduction)
    cosine, dtype = _stopped_cosine(online_predictions, target_projections,
                                    "online_predictions", "target_projections", where)
    return _reduce.reduce_loss(2 - 2 * cosine, reduction=reduction, where=where,
                               weights=weights, dtype=dtype)


@_builtin("metric")
def simsiam_loss(
    predictions: ArrayLike,
    projections: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""SimSiam's negative cosine similarity, with a stop-gradient on the projection.

    .. math:: \ell_i = -\cos\big(p_i, \operatorname{stopgrad}(z_i)\big)

    Stop-gradient: applied inside the loss to ``projections`` (the paper's
    :math:`D(p_1, \mathrm{stopgrad}(z_2))`), so the gradient with respect to
    it is 0. The symmetric SimSiam loss is ``0.5 * (simsiam_loss(p1, z2) +
    simsiam_loss(p2, z1))``.

    Args:
      predictions: float ``(N, d)``, the predictor's outputs :math:`p`.
      projections: float ``(N, d)``, the other view's projections :math:`z`.
      where: ``(N,)`` boolean mask of rows.
      weights: ``(N,)`` per-row weights.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; ``reduction="none"`` gives ``(N,)`` per row, in
      ``[-1, 1]``. A zero-norm row has cosine 0.

    Raises:
      TypeError: integer inputs.
      ValueError: shapes differ or are not ``(N, d)``, unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[1.0, 0.0], [0.0, 2.0]])
      >>> z = jnp.array([[1.0, 1.0], [0.0, -3.0]])
      >>> round(float(jaxloss.simsiam_loss(p, z)), 4)  # (-1/sqrt(2) + 1) / 2
      0.1464

    References:
      Chen & He, `Exploring Simple Siamese Representation Learning
      <https://arxiv.org/abs/2011.10566>`_, 2021 (Algorithm 1). Equivalent to
      ``-F.cosine_similarity(p, z.detach(), dim=-1)`` in torch.
    """
    _checks.check_reduction(reduction)
    cosine, dtype = _stopped_cosine(predictions, projections, "predictions", "projections",
                                    where)
    return _reduce.reduce_loss(-cosine, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


# --------------------------------------------------------------------------------------
# Barlow Twins and VICReg (batch statistics).
# --------------------------------------------------------------------------------------


def _batch_sum(x: Array, axis_name: str | None) -> Array:
    total = jnp.sum(x, axis=0)
    return total if axis_name is None else jax.lax.psum(total, axis_name)


def _centered(x: Array, weight: Array, count: Array, axis_name: str | None) -> Array:
    """Rows minus the (masked, global) batch mean; absent rows set to 0."""
    mean = safe_div(_batch_sum(x, axis_name), count)                      # [d]
    return (x - mean[None, :]) * weight[:, None]


def _pair_statistics_setup(a: ArrayLike, b: ArrayLike, names: tuple[str, str],
                           where: ArrayLike | None, weights: ArrayLike | None,
                           axis_name: str | None):
    x, y, dtype = _second_view(a, b, *names)
    rows = x.shape[0]
    present = _presence(where, weights, rows)
    x, y = _sanitize(x, present), _sanitize(y, present)
    weight = _ones_if_none(present, rows).astype(x.dtype)                 # [N]
    count = _batch_sum(weight, axis_name)                                 # global n
    return x, y, weight, count, dtype


@_builtin("metric")
def barlow_twins_loss(
    embeddings_a: ArrayLike,
    embeddings_b: ArrayLike,
    *,
    lambd: ArrayLike = 5e-3,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Barlow Twins: drive the cross-correlation of two views towards the identity.

    Each feature is standardised over the batch (MONAI: unbiased standard
    deviation, :math:`\hat z = (z - \mu)/(\sigma + 10^{-6})`), then with
    :math:`C = \hat z_a^\top \hat z_b / n`:

    .. math:: L = \sum_k (1 - C_{kk})^2 + \lambda \sum_{k \ne l} C_{kl}^2

    The loss is a property of the whole batch. ``reduction="none"`` gives
    ``(N,)`` with :math:`L` on every present row (0 on masked rows), so
    ``"mean"`` is :math:`L` and ``"sum"`` is :math:`n L`; ``where`` and zero
    weights remove rows from the batch statistics, other weights do not
    change ``"mean"``. With ``axis_name`` the means, variances and
    cross-correlation are ``psum``-ed over the devices, so the sharded loss
    equals the global-batch loss. A batch of one (MONAI raises) gives
    :math:`\sigma = 0` and the finite value :math:`d`.

    Args:
      embeddings_a: float ``(N, d)`` projections of the first view.
      embeddings_b: float ``(N, d)`` projections of the second view.
      lambd: :math:`\lambda \ge 0`, weight of the off-diagonal (redundancy)
        terms; MONAI's name and default 5e-3. Python float or traced scalar.
      axis_name: the axis the batch is split over.
      where: ``(N,)`` boolean; False rows are removed from the batch.
      weights: ``(N,)``; a zero weight removes the row, others leave ``"mean"``
        unchanged.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; ``reduction="none"`` gives ``(N,)`` (see above).

    Raises:
      TypeError: integer inputs.
      ValueError: shapes differ or are not ``(N, d)``, ``lambd < 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> a = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> b = jnp.array([[1.0, 0.2], [0.1, 1.0], [0.5, 0.6]])
      >>> # MONAI BarlowTwinsLoss() gives 0.38027
      >>> round(float(jaxloss.barlow_twins_loss(a, b)), 4)
      0.3803

    References:
      Zbontar et al., `Barlow Twins: Self-Supervised Learning via Redundancy
      Reduction <https://arxiv.org/abs/2103.03230>`_, 2021. Equivalent to
      ``monai.losses.BarlowTwinsLoss(lambd)(embeddings_a, embeddings_b)``.
    """
    _checks.check_reduction(reduction)
    x, y, weight, count, dtype = _pair_statistics_setup(
        embeddings_a, embeddings_b, ("embeddings_a", "embeddings_b"), where, weights, axis_name)
    _checks.check_range(lambd, "lambd", low=0.0)
    lam = _checks.hyperparameter(lambd, "lambd", x.dtype)

    def standardize(z: Array) -> Array:
        centered = _centered(z, weight, count, axis_name)
        variance = safe_div(_batch_sum(jnp.square(centered), axis_name), count - 1)
        return centered / (safe_sqrt(variance) + 1e-6)[None, :]

    za, zb = standardize(x), standardize(y)
    cross = za.T @ zb                                                     # [d, d]
    if axis_name is not None:
        cross = jax.lax.psum(cross, axis_name)
    cross = safe_div(cross, count)                                        # [d, d]
    eye = jnp.eye(cross.shape[0], dtype=jnp.bool_)
    off_diagonal = jnp.where(eye, jnp.zeros_like(cross), cross)
    total = (jnp.sum(jnp.square(1 - jnp.diagonal(cross)))
             + lam * jnp.sum(jnp.square(off_diagonal)))
    values = jnp.broadcast_to(total, weight.shape)
    return _finish(values, reduction=reduction, where=where, weights=weights, normalizer=None,
                   axis_name=axis_name, dtype=dtype)


@_builtin("metric")
def vicreg_loss(
    embeddings_a: ArrayLike,
    embeddings_b: ArrayLike,
    *,
    invariance_lambda: ArrayLike = 25.0,
    variance_mu: ArrayLike = 25.0,
    covariance_v: ArrayLike = 1.0,
    eps: ArrayLike = 1e-4,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""VICReg: variance-invariance-covariance regularisation of two views.

    With the unbiased per-feature variance :math:`\operatorname{Var}` and
    covariance :math:`\operatorname{Cov}` over the batch (:math:`n` rows,
    :math:`d` features):

    .. math::
        L = \lambda \frac1n \sum_i \frac1d \|a_i - b_i\|^2
          + \mu \frac1d \sum_k \Big[\tfrac12\operatorname{relu}(1 - \sqrt{\operatorname{Var}(a)_k
            + \epsilon}) + \tfrac12\operatorname{relu}(1 - \sqrt{\operatorname{Var}(b)_k
            + \epsilon})\Big]
          + \nu \frac1d \sum_{k \ne l} \big(\operatorname{Cov}(a)_{kl}^2
            + \operatorname{Cov}(b)_{kl}^2\big)

    as PML's ``VICRegLoss`` with its ``MeanReducer`` (defaults
    :math:`\lambda = \mu = 25`, :math:`\nu = 1`, :math:`\epsilon = 10^{-4}`).
    ``reduction="none"`` gives ``(N,)``: row ``i``'s invariance term plus the
    batch's variance and covariance terms, so ``"mean"`` is :math:`L`; masked
    and zero-weight rows are removed from the batch statistics. With
    ``axis_name`` the statistics are ``psum``-ed over the devices.

    Args:
      embeddings_a: float ``(N, d)`` first view.
      embeddings_b: float ``(N, d)`` second view.
      invariance_lambda, variance_mu, covariance_v: the three weights (PML's
        names); Python floats or traced scalars.
      eps: added to the variance inside the square root, > 0.
      axis_name: the axis the batch is split over.
      where: ``(N,)`` boolean; False rows are removed from the batch.
      weights: ``(N,)`` weights of the rows' invariance terms; a zero weight
        removes the row.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; ``reduction="none"`` gives ``(N,)`` (see above).

    Raises:
      TypeError: integer inputs.
      ValueError: shapes differ or are not ``(N, d)``, ``eps <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> a = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> b = jnp.array([[1.0, 0.2], [0.1, 1.0], [0.5, 0.6]])
      >>> # PML VICRegLoss() gives 14.43913
      >>> round(float(jaxloss.vicreg_loss(a, b)), 4)
      14.4391

    References:
      Bardes et al., `VICReg: Variance-Invariance-Covariance Regularization for
      Self-Supervised Learning <https://arxiv.org/abs/2105.04906>`_, 2022.
      Equivalent to ``pytorch_metric_learning.losses.VICRegLoss()(embeddings_a,
      ref_emb=embeddings_b)``.
    """
    _checks.check_reduction(reduction)
    x, y, weight, count, dtype = _pair_statistics_setup(
        embeddings_a, embeddings_b, ("embeddings_a", "embeddings_b"), where, weights, axis_name)
    _checks.check_range(eps, "eps", low=0.0, low_inclusive=False)
    lam = _checks.hyperparameter(invariance_lambda, "invariance_lambda", x.dtype)
    mu = _checks.hyperparameter(variance_mu, "variance_mu", x.dtype)
    nu = _checks.hyperparameter(covariance_v, "covariance_v", x.dtype)
    epsilon = _checks.hyperparameter(eps, "eps", x.dtype)
    features = x.shape[1]

    def variance_and_covariance(z: Array) -> tuple[Array, Array]:
        centered = _centered(z, weight, count, axis_name)
        covariance = centered.T @ centered                                # [d, d]
        if axis_name is not None:
            covariance = jax.lax.psum(covariance, axis_name)
        covariance = safe_div(covariance, count - 1)
        variance = jnp.diagonal(covariance)
        std = jnp.sqrt(variance + epsilon)
        variance_term = jnp.mean(jax.nn.relu(1 - std) / 2)
        eye = jnp.eye(features, dtype=jnp.bool_)
        off_diagonal = jnp.where(eye, jnp.zeros_like(covariance), covariance)
        return variance_term, jnp.sum(jnp.square(off_diagonal)) / features

    variance_a, covariance_a = variance_and_covariance(x)
    variance_b, covariance_b = variance_and_covariance(y)
    batch_terms = mu * (variance_a + variance_b) + nu * (covariance_a + covariance_b)
    invariance = lam * jnp.mean(jnp.square(x - y), axis=-1)                # [N]
    values = invariance + batch_terms
    return _finish(values, reduction=reduction, where=where, weights=weights, normalizer=None,
                   axis_name=axis_name, dtype=dtype)

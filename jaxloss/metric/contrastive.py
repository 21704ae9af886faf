"""Contrastive losses with in-batch negatives: NT-Xent/InfoNCE, SupCon, CLIP and SigLIP.

Conventions:

* Embeddings are float ``(N, d)``; labels are int ``(N,)``. Similarities are
  cosine similarities (rows L2-normalised with ``_common.l2_normalize``, so a
  zero-norm embedding has similarity 0 to everything and finite gradients).
* ``where`` and ``weights`` are per row ``(N,)``. A row with ``where=False``
  *or a weight of exactly 0* is removed from the batch: it is neither an
  anchor nor a key (positive or negative) of any other row. ``where``
  therefore equals slicing the batch, and a zero weight equals masking.
  Nonzero weights only weigh each row's own loss term (they do not re-weight
  it as a key).
* Every loss here takes ``block_size=None``: with a block size the ``N x N``
  similarity matrix is never held; columns are processed in blocks of
  ``block_size`` inside a checkpointed ``lax.scan`` with an online
  log-sum-exp (``_common.scan_column_blocks``), so memory grows as
  ``O(N (d + block_size))``. The value and gradient equal the dense path.
* ``axis_name=None``: inside ``shard_map`` with the batch split over
  ``axis_name`` the local rows are the anchors, the keys are gathered over the
  axis, and the ``"mean"``/``"sum"`` reductions are ``psum``-ed, so
  ``loss(x_local, ..., axis_name="data")`` with ``out_specs=P()`` returns
  exactly the loss of the global batch (``reduction="none"`` returns the local
  rows' values).
* Half-precision inputs are computed in float32 and the result is returned in
  the input dtype.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import safe_div
from jaxloss.metric import _common
from jaxloss.registry import _builtin

__all__ = [
    "clip_loss",
    "info_nce_loss",
    "ntxent_loss",
    "siglip_loss",
    "supcon_loss",
]


_P = ParamSpec("_P")
_R = TypeVar("_R")


# --------------------------------------------------------------------------------------
# NT-Xent / InfoNCE.
# --------------------------------------------------------------------------------------


def _ntxent_per_anchor(queries: Array, query_labels: Array, query_index: Array, keys: Array,
                       key_labels: Array, key_present: Array, inv_temperature: Array,
                       block_size: int | None, axis_name: str | None,
                       pairs: Array | None = None) -> tuple[Array, Array]:
    """Per anchor: the sum over its positive pairs of PML's NT-Xent term, and their count.

    Pass 1 is the log-sum-exp over the anchor's negatives (different label);
    pass 2 sums ``softplus(lse_neg - s_ap) = -log(e^s_ap / (e^s_ap + sum_n e^s_an))``
    over its positives (same label, not itself). ``pairs`` ``(rows, M)`` (a reference
    set's) restricts both to the pairs it holds.
    """
    rows = queries.shape[0]
    extras = (key_labels, key_present) + (() if pairs is None else (pairs.T,))

    def pair_mask(valid, present_block, pairs_block):
        mask = (valid & present_block)[None, :]
        return mask if not pairs_block else mask & pairs_block[0].T

    def negatives(state, key_block, columns, valid, labels_block, present_block, *pairs_block):
        logits = (queries @ key_block.T) * inv_temperature                 # [rows, b]
        mask = (pair_mask(valid, present_block, pairs_block)
                & (query_labels[:, None] != labels_block[None, :]))
        return _common.logsumexp_update(state, logits, mask)

    lse_state = _common.over_columns(negatives, _common.logsumexp_init(rows, queries.dtype), keys,
                              extras, block_size, axis_name)
    lse_neg = _common.logsumexp_finish(lse_state)                          # [rows]
    has_negative = jnp.isfinite(lse_neg)
    safe_lse = jnp.where(has_negative, lse_neg, jnp.zeros_like(lse_neg))

    def positives(carry, key_block, columns, valid, labels_block, present_block, *pairs_block):
        total, count = carry
        logits = (queries @ key_block.T) * inv_temperature                 # [rows, b]
        mask = (pair_mask(valid, present_block, pairs_block)
                & (query_labels[:, None] == labels_block[None, :])
                & (query_index[:, None] != columns[None, :]))
        terms = jax.nn.softplus(safe_lse[:, None] - logits)
        # Without negatives the term is -log(1) = 0.
        mask_terms = mask & has_negative[:, None]
        total = total + jnp.sum(jnp.where(mask_terms, terms, jnp.zeros_like(terms)), axis=-1)
        return total, count + jnp.sum(mask.astype(count.dtype), axis=-1)

    init = (jnp.zeros((rows,), queries.dtype), jnp.zeros((rows,), queries.dtype))
    return _common.over_columns(positives, init, keys, extras, block_size, axis_name)


def _ntxent_values(x: Array, labels: Array, kept: Array | None, inv_temperature: Array,
                   block_size: int | None, axis_name: str | None,
                   ref: _common.References | None) -> tuple[Array, Array]:
    """Labelled form, per anchor: the sum of its positive pairs' terms, and their number."""
    x = _common.l2_normalize(x)
    batch = _common.contrastive_keys(x, labels, kept, axis_name, ref)
    assert batch.labels is not None  # contrastive_keys keeps the given labels
    return _ntxent_per_anchor(x, labels, batch.index, batch.keys, batch.labels, batch.present,
                              inv_temperature, block_size, axis_name, batch.pairs)


def _two_view_values(a: Array, b: Array, kept: Array | None, inv_temperature: Array,
                     block_size: int | None, axis_name: str | None) -> Array:
    """Two-view form, per pair: the mean of its two anchors' terms, ``(N,)``."""
    rows = a.shape[0]
    a, b = _common.l2_normalize(a), _common.l2_normalize(b)
    first = _common.batch_keys(a, None, kept, axis_name)
    total_rows = first.keys.shape[0]
    # The 2M keys: all first views, then all second views; the label of a key is its
    # pair index, so each anchor's only positive is the other view of its own pair.
    keys = jnp.concatenate([first.keys, _common.gather_batch(b, axis_name)], axis=0)  # [2M, d]
    pair = jnp.arange(total_rows)
    key_labels = jnp.concatenate([pair, pair])
    key_present = jnp.concatenate([first.present, first.present])
    queries = jnp.concatenate([a, b], axis=0)                              # [2N, d]
    query_labels = jnp.concatenate([first.index, first.index])
    query_index = jnp.concatenate([first.index, total_rows + first.index])
    total, _ = _ntxent_per_anchor(queries, query_labels, query_index, keys, key_labels,
                                  key_present, inv_temperature, block_size, axis_name)
    return 0.5 * (total[:rows] + total[rows:])                             # [N]


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
      ref_embeddings: optional float ``(M, d)`` reference set (a cross-batch
        memory, :class:`jaxloss.CrossBatchMemory`): the anchors (labelled form) meet their
        positives and negatives among the references instead of the batch
        (PML's ``ref_emb``; no pair is a self-comparison).
      ref_labels: int ``(M,)`` labels of the references.
      ref_where: boolean broadcastable to ``(N, M)``: the (anchor, reference)
        pairs that take part, e.g. from
        :meth:`jaxloss.CrossBatchMemory.references`.
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
    ref_embeddings: ArrayLike | None = None,
    ref_labels: ArrayLike | None = None,
    ref_where: ArrayLike | None = None,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    _checks.check_reduction(reduction)
    block_size = _common.check_block_size(block_size)
    second = jnp.asarray(labels)
    two_view = jnp.issubdtype(second.dtype, jnp.floating)
    if two_view:
        x, second, kept, dtype = _common.masked_views(embeddings, second,
                                                      ("embeddings", "labels"), where, weights)
    else:
        x, second, dtype = _common.embeddings_and_labels(embeddings, second)
        kept = _reduce.rows_kept(where, weights, x.shape[:1])
        (x,) = _reduce.mask_rows(kept, x)
    inv_t = 1 / _common.positive_hyperparameter(temperature, "temperature", x.dtype)
    ref = _common.references(ref_embeddings, ref_labels, ref_where, x)
    if two_view:
        if ref is not None:
            raise ValueError("ref_embeddings needs the labelled form (integer labels); the "
                             "two-view form pairs each row with its second view.")
        values = _two_view_values(x, second, kept, inv_t, block_size, axis_name)
        normalizer = None
    else:
        values, normalizer = _ntxent_values(x, second, kept, inv_t, block_size, axis_name, ref)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               normalizer=normalizer, axis_name=axis_name, dtype=dtype)


def _alias(fn: Callable[_P, _R], name: str) -> Callable[_P, _R]:
    """``fn`` under another name (its own registry entry, signature and docstring)."""

    @functools.wraps(fn)
    def alias(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return fn(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = name
    return alias


info_nce_loss = _builtin("metric")(_alias(ntxent_loss, "info_nce_loss"))
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
    ref_embeddings: ArrayLike | None = None,
    ref_labels: ArrayLike | None = None,
    ref_where: ArrayLike | None = None,
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
      ref_embeddings: optional float ``(M, d)`` reference set (a cross-batch
        memory, :class:`jaxloss.CrossBatchMemory`): the anchors meet their
        positives and negatives among the references instead of the batch
        (PML's ``ref_emb``; no pair is a self-comparison).
      ref_labels: int ``(M,)`` labels of the references.
      ref_where: boolean broadcastable to ``(N, M)``: the (anchor, reference)
        pairs that take part, e.g. from
        :meth:`jaxloss.CrossBatchMemory.references`.
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
    block_size = _common.check_block_size(block_size)
    x, labels, dtype = _common.embeddings_and_labels(embeddings, labels)
    inv_t = 1 / _common.positive_hyperparameter(temperature, "temperature", x.dtype)
    kept = _reduce.rows_kept(where, weights, x.shape[:1])
    (x,) = _reduce.mask_rows(kept, x)
    ref = _common.references(ref_embeddings, ref_labels, ref_where, x)
    values, has_positive = _supcon_values(x, labels, kept, inv_t, block_size, axis_name, ref)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               normalizer=has_positive.astype(values.dtype),
                               axis_name=axis_name, dtype=dtype)


def _supcon_values(x: Array, labels: Array, kept: Array | None, inv_temperature: Array,
                   block_size: int | None, axis_name: str | None,
                   ref: _common.References | None) -> tuple[Array, Array]:
    """Per anchor ``(N,)``: SupCon's loss (0 without positives), and whether it has one."""
    rows = x.shape[0]
    x = _common.l2_normalize(x)
    batch = _common.contrastive_keys(x, labels, kept, axis_name, ref)
    assert batch.labels is not None  # contrastive_keys keeps the given labels
    index = batch.index
    extras = (batch.labels, batch.present) + (() if batch.pairs is None else (batch.pairs.T,))

    def body(carry, key_block, columns, valid, labels_block, present_block, *pairs_block):
        state, positive_sum, count = carry
        logits = (x @ key_block.T) * inv_temperature                      # [rows, b]
        others = (valid & present_block)[None, :] & (index[:, None] != columns[None, :])
        if pairs_block:
            others = others & pairs_block[0].T
        positive = others & (labels[:, None] == labels_block[None, :])
        state = _common.logsumexp_update(state, logits, others)
        positive_sum = positive_sum + jnp.sum(
            jnp.where(positive, logits, jnp.zeros_like(logits)), axis=-1)
        return state, positive_sum, count + jnp.sum(positive.astype(count.dtype), axis=-1)

    init = (_common.logsumexp_init(rows, x.dtype), jnp.zeros((rows,), x.dtype),
            jnp.zeros((rows,), x.dtype))
    state, positive_sum, count = _common.over_columns(
        body, init, batch.keys, extras, block_size, axis_name)
    has_positive = count > 0
    lse = _common.logsumexp_finish(state)
    safe_lse = jnp.where(has_positive, lse, jnp.zeros_like(lse))
    values = jnp.where(has_positive, safe_lse - safe_div(positive_sum, count),
                       jnp.zeros_like(lse))
    return values, has_positive


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
    return _common.logsumexp_finish(_common.over_columns(body, init, keys, (key_present,),
                                                         block_size, axis_name))


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
    block_size = _common.check_block_size(block_size)
    x, y, kept, dtype = _common.masked_views(image, text, ("image", "text"), where, weights)
    inv_t = 1 / _common.positive_hyperparameter(temperature, "temperature", x.dtype)
    values = _clip_values(x, y, kept, inv_t, block_size, axis_name)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               axis_name=axis_name, dtype=dtype)


def _clip_values(x: Array, y: Array, kept: Array | None, inv_temperature: Array,
                 block_size: int | None, axis_name: str | None) -> Array:
    """Per pair ``(N,)``: the mean of the image-to-text and text-to-image cross-entropies."""
    x, y = _common.l2_normalize(x), _common.l2_normalize(y)
    images = _common.batch_keys(x, None, kept, axis_name)
    texts = _common.gather_batch(y, axis_name)
    lse_image = _lse_rows(x, texts, images.present, inv_temperature, block_size, axis_name)
    lse_text = _lse_rows(y, images.keys, images.present, inv_temperature, block_size,
                         axis_name)
    diagonal = jnp.sum(x * y, axis=-1) * inv_temperature                   # [N]
    # Each present row sees at least its own pair, so the log-sum-exps are finite there.
    valid = _common.all_rows_if_none(kept, x.shape[0])
    lse_image = jnp.where(valid, lse_image, jnp.zeros_like(lse_image))
    lse_text = jnp.where(valid, lse_text, jnp.zeros_like(lse_text))
    return 0.5 * (lse_image + lse_text) - diagonal


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
    block_size = _common.check_block_size(block_size)
    x, y, kept, dtype = _common.masked_views(image, text, ("image", "text"), where, weights)
    _checks.check_range(scale, "scale")
    _checks.check_range(bias, "bias")
    t = _checks.hyperparameter(scale, "scale", x.dtype)
    b = _checks.hyperparameter(bias, "bias", x.dtype)
    values = _siglip_values(x, y, kept, t, b, block_size, axis_name)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               axis_name=axis_name, dtype=dtype)


def _siglip_values(x: Array, y: Array, kept: Array | None, scale: Array, bias: Array,
                   block_size: int | None, axis_name: str | None) -> Array:
    """Per image ``(N,)``: the sum of its sigmoid terms over all present texts."""
    x = _common.l2_normalize(x)
    texts = _common.batch_keys(_common.l2_normalize(y), None, kept, axis_name)
    index = texts.index

    def body(total, key_block, columns, valid, present_block):
        logits = scale * (x @ key_block.T) + bias                         # [rows, b]
        sign = jnp.where(index[:, None] == columns[None, :], 1.0, -1.0).astype(logits.dtype)
        terms = jax.nn.softplus(-sign * logits)                           # -log sigmoid
        mask = jnp.broadcast_to((valid & present_block)[None, :], terms.shape)
        return total + jnp.sum(jnp.where(mask, terms, jnp.zeros_like(terms)), axis=-1)

    return _common.over_columns(body, jnp.zeros((x.shape[0],), x.dtype), texts.keys,
                                (texts.present,), block_size, axis_name)

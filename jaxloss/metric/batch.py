"""Batch-wide pair losses: every pair of the batch, from the labels.

Conventions: embeddings are float ``(N, d)`` (rows are samples), labels are
integer ``(N,)`` identities (only their equality matters: they are not class
indices and have no range). Distances follow pytorch-metric-learning (PML):
by default the embeddings are L2-normalised first (PML's ``LpDistance``
default), ``distance="euclidean"`` is ``||a - b||``, ``"squared"`` its square
and ``"cosine"`` is ``1 - cos(a, b)`` (PML's ``CosineSimilarity``, written as
a distance). ``where``/``weights`` are per anchor ``(N,)``. A row that
``where`` drops is removed from the batch entirely, as an anchor and as a
positive or negative of the other rows, so ``where`` equals slicing; a weight
(also 0) only scales the row's own loss. Every loss takes ``axis_name``:
inside ``shard_map`` the local rows are the anchors, the gathered global
batch the keys, and the numerator and denominator of the mean are
``psum``-ed, so that ``loss(x_local, labels_local, axis_name="data")`` is the
loss of the global batch on every device.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import NonZeroReduction, Reduction
from jaxloss.metric import _common
from jaxloss.registry import _builtin

__all__ = [
    "batch_triplet_loss",
    "circle_loss",
    "multi_similarity_loss",
    "npair_loss",
]

Mining = Literal["all", "hard", "semihard"]
_MININGS: tuple[str, ...] = ("all", "hard", "semihard")


# --------------------------------------------------------------------------------------
# Private helpers.
# --------------------------------------------------------------------------------------


def _distances(queries: Array, keys: Array, *, distance: str, normalize: bool) -> Array:
    """``(n, M)`` distances between query and key rows (PML's LpDistance / cosine)."""
    _checks.check_choice(distance, "distance", _common.DISTANCES)
    if normalize and distance != "cosine":
        queries, keys = _common.l2_normalize(queries), _common.l2_normalize(keys)
    return _common.distance_matrix(queries, keys, distance=distance)


def _cosine_similarity(queries: Array, keys: Array) -> Array:
    """``(n, M)`` cosine similarities (zero-norm rows: 0, with a finite gradient)."""
    return _common.l2_normalize(queries) @ _common.l2_normalize(keys).T


# Elements of the (rows, M, M) triplet block that batch-all / semi-hard mining evaluates at
# once; larger batches go through a checkpointed map over row blocks (memory O(block M^2)).
_TRIPLET_BLOCK_ELEMENTS = 1 << 22


def _triplet_block(d: Array, positive: Array, negative: Array, margin: Array, semihard: bool,
                   ) -> tuple[Array, Array, Array]:
    """Per-anchor (sum of losses, number of triplets, number of non-zero losses)."""
    triplets = positive[:, :, None] & negative[:, None, :]               # [b, M(p), M(n)]
    gap = d[:, None, :] - d[:, :, None]                                  # d_an - d_ap
    if semihard:
        triplets = triplets & (gap > 0) & (gap <= margin)
    per_triplet = jnp.where(triplets, jax.nn.relu(margin - gap), 0.0)
    return (jnp.sum(per_triplet, axis=(1, 2)), jnp.sum(triplets, axis=(1, 2)),
            jnp.sum(per_triplet > 0, axis=(1, 2)))


def _triplet_sums(d: Array, positive: Array, negative: Array, margin: Array, *,
                  semihard: bool) -> tuple[Array, Array, Array]:
    """:func:`_triplet_block` over all anchors, in checkpointed row blocks when large."""
    n, total = d.shape
    rows = max(1, _TRIPLET_BLOCK_ELEMENTS // max(1, total * total))
    if rows >= n:
        return _triplet_block(d, positive, negative, margin, semihard)
    pad = (-n) % rows

    def split(array: Array) -> Array:
        padded = jnp.pad(array, ((0, pad), (0, 0)))
        return padded.reshape(-1, rows, total)                           # [blocks, b, M]

    @jax.checkpoint
    def block(args: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        return _triplet_block(*args, margin, semihard)

    out = jax.lax.map(block, (split(d), split(positive), split(negative)))
    return tuple(o.reshape(-1)[:n] for o in out)


def _hard_triplets(d: Array, positive: Array, negative: Array, margin: Array,
                   ) -> tuple[Array, Array, Array]:
    """Batch-hard mining: per anchor its farthest positive and nearest negative's loss, whether
    it has that triplet, and whether the loss is positive."""
    hardest_positive = jnp.max(jnp.where(positive, d, -jnp.inf), axis=-1)
    hardest_negative = jnp.min(jnp.where(negative, d, jnp.inf), axis=-1)
    valid = jnp.any(positive, axis=-1) & jnp.any(negative, axis=-1)
    violation = jnp.where(valid, hardest_positive - hardest_negative, 0.0)
    values = jnp.where(valid, jax.nn.relu(violation + margin), 0.0)
    return values, valid, values > 0


def _npair_values(batch: _common.PairBatch, *, normalize: bool) -> tuple[Array, Array]:
    """Per row ``(n,)``: the N-pair loss of the anchors (0 elsewhere), and which rows are
    anchors (PML's pairing: a label's first row in the global batch, if it has a second)."""
    x, keys, key_valid, rows = batch.queries, batch.keys, batch.key_valid, batch.rows
    key_labels = batch.key_labels
    total = keys.shape[0]
    index = jnp.arange(total)
    same = _common.same_label(key_labels, key_labels) & key_valid[:, None] & key_valid[None, :]
    earlier = same & (index[None, :] < index[:, None])                 # [M, M]: j before k
    is_anchor = key_valid & ~jnp.any(earlier, axis=-1) & (jnp.sum(same, axis=-1) >= 2)
    later = same & (index[None, :] > index[:, None])
    positive_of = jnp.min(jnp.where(later, index[None, :], total - 1), axis=-1)  # [M]
    if normalize:
        x, keys = _common.l2_normalize(x), _common.l2_normalize(keys)
    positives = jnp.take(keys, positive_of, axis=0)                     # [M, d]
    logits = x @ positives.T                                            # [n, M]
    row_is_anchor = jnp.take(is_anchor, rows)
    column_mask = jnp.broadcast_to(is_anchor[None, :], logits.shape)
    target = jnp.take_along_axis(logits, rows[:, None], axis=-1)[:, 0]
    lse = _common.masked_logsumexp(logits, column_mask)
    values = jnp.where(row_is_anchor, jnp.where(row_is_anchor, lse, 0.0) - target, 0.0)
    return values, row_is_anchor


def _circle_values(batch: _common.PairBatch, margin: Array, gamma: Array) -> tuple[Array, Array]:
    """Per anchor ``(n,)``: the circle loss (0 without a positive or a negative), and whether
    it has both."""
    positive, negative = batch.positive, batch.negative
    s = _cosine_similarity(batch.queries, batch.keys)                   # [n, M]
    fixed = jax.lax.stop_gradient(s)
    pos_logits = -gamma * jax.nn.relu(1 + margin - fixed) * (s - (1 - margin))
    neg_logits = gamma * jax.nn.relu(fixed + margin) * (s - margin)
    valid = jnp.any(positive, axis=-1) & jnp.any(negative, axis=-1)
    z = (_common.masked_logsumexp(pos_logits, positive)
         + _common.masked_logsumexp(neg_logits, negative))
    z = jnp.where(valid, z, 0.0)
    return jnp.where(valid, jax.nn.softplus(z), 0.0), valid


def _multi_similarity_values(batch: _common.PairBatch, alpha: Array, beta: Array,
                             base: Array) -> Array:
    """Per anchor ``(n,)``: the multi-similarity loss over all its positives and negatives."""
    s = _cosine_similarity(batch.queries, batch.keys)                   # [n, M]
    pos = _common.masked_logsumexp(alpha * (base - s), batch.positive, add_one=True) / alpha
    neg = _common.masked_logsumexp(beta * (s - base), batch.negative, add_one=True) / beta
    return pos + neg


# --------------------------------------------------------------------------------------
# Public losses.
# --------------------------------------------------------------------------------------


@_builtin("metric")
def batch_triplet_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 0.05,
    mining: Mining = "all",
    distance: _common.Distance = "euclidean",
    normalize: bool = True,
    ref_embeddings: ArrayLike | None = None,
    ref_labels: ArrayLike | None = None,
    ref_where: ArrayLike | None = None,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: NonZeroReduction = "mean",
) -> Array:
    r"""Triplet loss over the triplets mined in the batch (batch-all, batch-hard, semi-hard).

    .. math::

        \ell_{apn} = [d_{ap} - d_{an} + \text{margin}]_+, \qquad
        L_a = \sum_{(p, n) \in T_a} \ell_{apn}

    where :math:`T_a` holds the triplets of anchor ``a`` (``p`` shares its
    label, ``p != a``; ``n`` has another label) kept by ``mining``:

    - ``"all"``: every such triplet (PML ``TripletMarginLoss`` without a miner);
    - ``"hard"``: one triplet per anchor, its farthest positive and nearest
      negative (PML ``BatchHardMiner``); anchors without a positive or a
      negative have none;
    - ``"semihard"``: the triplets with
      :math:`0 < d_{an} - d_{ap} \le \text{margin}` (PML
      ``TripletMarginMiner(margin, type_of_triplets="semihard")``).

    Mining runs inside ``jit`` on the ``(N, N)`` distance matrix with boolean
    masks. ``"all"``/``"semihard"`` evaluate every ``(a, p, n)`` triplet
    (``O(N^3)`` work); beyond ``N ~ 160`` they do so in checkpointed blocks of
    anchors, so memory stays about ``16 MiB`` plus ``O(N^2)``. Ties of the hard mining split
    the gradient between the tied entries (PML picks one of them; the value is
    the same).

    Reductions (weights are per anchor and weight all its triplets):
    ``"mean"`` is the mean over the mined triplets, ``sum(w L) / sum(w |T|)``
    (PML's ``MeanReducer``); ``"avg_non_zero"`` divides by the number of
    triplets with a positive loss instead (PML's default ``AvgNonZeroReducer``:
    the value of PML's ``TripletMarginLoss``); ``"sum"`` is the sum over all
    triplets; 0 when there is none. The mean is therefore not the mean of the
    ``"none"`` output.

    Args:
      embeddings: float ``(N, d)``.
      labels: int ``(N,)`` class labels.
      margin: ``>= 0`` (PML's default 0.05 suits normalised embeddings); also
        the semi-hard window. Python float or traced scalar.
      mining: ``"all"``, ``"hard"`` or ``"semihard"`` (static).
      distance: ``"euclidean"`` (PML ``LpDistance``), ``"squared"``
        (``LpDistance(power=2)``) or ``"cosine"`` (``1 - cos``: the same
        losses as PML's ``CosineSimilarity``).
      normalize: L2-normalise the embeddings first (PML's default; ignored by
        ``"cosine"``).
      ref_embeddings: optional float ``(M, d)`` reference set (a cross-batch
        memory, :class:`jaxloss.CrossBatchMemory`): the anchors (the rows of
        ``embeddings``) meet their positives and negatives among the
        references instead of the batch (PML's ``ref_emb``); no gradient
        reaches the references unless they carry one.
      ref_labels: int ``(M,)`` labels of the references (with ``ref_embeddings``).
      ref_where: boolean broadcastable to ``(N, M)``: the (anchor, reference)
        pairs that take part (``(M,)``: the filled slots of a memory), e.g.
        :meth:`jaxloss.CrossBatchMemory.references`, which also drops each
        anchor's own copy.
      axis_name: mapped axis of ``shard_map``/``pmap`` over which the batch is
        split; the result is the loss of the global batch.
      where: boolean ``(N,)``: rows to keep (a dropped row is neither anchor,
        positive nor negative).
      weights: per-anchor weights ``(N,)``.
      reduction: ``"mean"``, ``"sum"``, ``"none"`` or ``"avg_non_zero"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-anchor sums ``L_a``,
      ``(N,)``.

    Raises:
      ValueError: unknown ``mining``, ``distance`` or ``reduction``; wrong
        shapes; negative ``margin``.
      TypeError: integer ``embeddings`` or non-integer ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> labels = jnp.array([0, 0, 1])
      >>> loss = jaxloss.batch_triplet_loss(x, labels, margin=0.5, mining="hard",
      ...                                   reduction="none")
      >>> [round(float(v), 4) for v in loss]
      [1.1488, 1.1488, 0.0]

    References:
      Schroff et al., `FaceNet <https://arxiv.org/abs/1503.03832>`_, 2015;
      Hermans et al., `In Defense of the Triplet Loss for Person
      Re-Identification <https://arxiv.org/abs/1703.07737>`_, 2017.
      ``reduction="avg_non_zero"`` equals
      ``pytorch_metric_learning.losses.TripletMarginLoss(margin)(x, labels,
      miner(x, labels))`` with ``miner`` ``None``, ``BatchHardMiner()`` or
      ``TripletMarginMiner(margin, type_of_triplets="semihard")``.
    """
    _checks.check_reduction(reduction, _checks.NON_ZERO_REDUCTIONS)
    _checks.check_choice(mining, "mining", _MININGS)
    _checks.check_choice(distance, "distance", _common.DISTANCES)
    _checks.check_range(margin, "margin", low=0.0)
    batch = _common.pair_batch(embeddings, labels, where, axis_name,
                               (ref_embeddings, ref_labels, ref_where))
    margin = _checks.hyperparameter(margin, "margin", batch.queries.dtype)
    d = _distances(batch.queries, batch.keys, distance=distance, normalize=normalize)  # [n, M]
    if mining == "hard":
        values, counts, nonzero = _hard_triplets(d, batch.positive, batch.negative, margin)
    else:
        values, counts, nonzero = _triplet_sums(d, batch.positive, batch.negative, margin,
                                                semihard=mining == "semihard")
    # "mean" divides by the number of triplets, PML's "avg_non_zero" by the number of
    # triplets with a positive loss: that count is the normaliser (reduce_loss's factor
    # values > 0 leaves it as it is: an anchor with such a triplet has a positive sum).
    normalizer = nonzero if reduction == "avg_non_zero" else counts
    return _reduce.reduce_loss(values, reduction=reduction, where=batch.mask, weights=weights,
                               normalizer=normalizer.astype(values.dtype),
                               axis_name=axis_name, dtype=batch.dtype,
                               reductions=_checks.NON_ZERO_REDUCTIONS)


@_builtin("metric")
def npair_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    normalize: bool = True,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Multi-class N-pair loss: each class's anchor against every class's positive.

    .. math::

        \ell_i = \log \sum_{k \in A} e^{s(x_i, x_{p(k)})} - s(x_i, x_{p(i)})
        \quad (i \in A)

    PML's pairing: for each label with at least two rows the anchor is its
    first row (in batch order) and the positive its second; :math:`A` is the
    set of anchors, :math:`s` the dot product, of L2-normalised embeddings by
    default (PML's ``NPairsLoss`` uses ``DotProductSimilarity``, which
    normalises). Other rows have no loss. ``reduction="mean"`` is the mean
    over the anchors (PML's ``MeanReducer``), so it is not the mean of the
    ``"none"`` output.

    Args:
      embeddings: float ``(N, d)``.
      labels: int ``(N,)``.
      normalize: L2-normalise the embeddings first (``False``: Sohn's raw
        inner products).
      axis_name: mapped axis over which the batch is split (the pairing is
        that of the global batch).
      where: boolean ``(N,)``: rows to keep (dropped rows take no part in the
        pairing).
      weights: per-row weights ``(N,)`` (only anchors' count).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` ``(N,)``: the anchors' losses,
      0 for the other rows.

    Raises:
      ValueError: wrong shapes or unknown ``reduction``.
      TypeError: integer ``embeddings`` or non-integer ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
      >>> labels = jnp.array([0, 0, 1, 1])
      >>> round(float(jaxloss.npair_loss(x, labels)), 4)
      0.3133

    References:
      Sohn, `Improved Deep Metric Learning with Multi-class N-pair Loss
      Objective <https://papers.nips.cc/paper/6200>`_, 2016. Equivalent to
      ``pytorch_metric_learning.losses.NPairsLoss()(embeddings, labels)``.
    """
    _checks.check_reduction(reduction)
    batch = _common.pair_batch(embeddings, labels, where, axis_name)
    values, is_anchor = _npair_values(batch, normalize=normalize)
    return _reduce.reduce_loss(values, reduction=reduction, where=batch.mask, weights=weights,
                               normalizer=is_anchor.astype(values.dtype),
                               axis_name=axis_name, dtype=batch.dtype)


@_builtin("metric")
def circle_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 0.4,
    gamma: ArrayLike = 80.0,
    ref_embeddings: ArrayLike | None = None,
    ref_labels: ArrayLike | None = None,
    ref_where: ArrayLike | None = None,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: NonZeroReduction = "mean",
) -> Array:
    r"""Circle loss (pair form, cosine similarity), per anchor.

    .. math::

        \ell_i = \operatorname{softplus}\Big(
          \log \sum_{p} e^{-\gamma\,\alpha_p (s_p - \Delta_p)} +
          \log \sum_{n} e^{\gamma\,\alpha_n (s_n - \Delta_n)}\Big)

    with :math:`\alpha_p = [1 + m - s_p]_+`, :math:`\alpha_n = [s_n + m]_+`
    (no gradient through them, as in the paper and PML),
    :math:`\Delta_p = 1 - m`, :math:`\Delta_n = m`; ``p`` runs over the other
    rows of the anchor's label, ``n`` over the rows of other labels, ``s`` is
    the cosine similarity. Anchors without a positive or a negative have no
    loss. ``reduction="mean"`` is the mean over anchors that have both;
    ``"avg_non_zero"`` the mean over anchors with a positive loss (PML's
    ``AvgNonZeroReducer``; the two differ only if a softplus underflows to 0).

    Args:
      embeddings: float ``(N, d)``.
      labels: int ``(N,)``.
      margin: the relaxation ``m`` (PML's ``m``); Python float or traced scalar.
      gamma: the scale, ``> 0``.
      ref_embeddings: optional float ``(M, d)`` reference set (a cross-batch
        memory, :class:`jaxloss.CrossBatchMemory`): the anchors (the rows of
        ``embeddings``) meet their positives and negatives among the
        references instead of the batch (PML's ``ref_emb``); no gradient
        reaches the references unless they carry one.
      ref_labels: int ``(M,)`` labels of the references (with ``ref_embeddings``).
      ref_where: boolean broadcastable to ``(N, M)``: the (anchor, reference)
        pairs that take part (``(M,)``: the filled slots of a memory), e.g.
        :meth:`jaxloss.CrossBatchMemory.references`, which also drops each
        anchor's own copy.
      axis_name: mapped axis over which the batch is split.
      where: boolean ``(N,)``: rows to keep.
      weights: per-anchor weights ``(N,)``.
      reduction: ``"mean"``, ``"sum"``, ``"none"`` or ``"avg_non_zero"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-anchor losses ``(N,)``.

    Raises:
      ValueError: wrong shapes, ``gamma <= 0`` or unknown ``reduction``.
      TypeError: integer ``embeddings`` or non-integer ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
      >>> labels = jnp.array([0, 0, 1])
      >>> round(float(jaxloss.circle_loss(x, labels, gamma=10.0)), 3)
      0.04

    References:
      Sun et al., `Circle Loss: A Unified Perspective of Pair Similarity
      Optimization <https://arxiv.org/abs/2002.10857>`_, 2020. Equivalent to
      ``pytorch_metric_learning.losses.CircleLoss(m=margin, gamma=gamma)``
      (``reduction="avg_non_zero"``; ``"mean"`` in practice).
    """
    _checks.check_reduction(reduction, _checks.NON_ZERO_REDUCTIONS)
    _checks.check_range(gamma, "gamma", low=0.0, low_inclusive=False)
    _checks.check_range(margin, "margin")
    batch = _common.pair_batch(embeddings, labels, where, axis_name,
                               (ref_embeddings, ref_labels, ref_where))
    values, valid = _circle_values(batch,
                                   _checks.hyperparameter(margin, "margin", batch.queries.dtype),
                                   _checks.hyperparameter(gamma, "gamma", batch.queries.dtype))
    # "mean" over anchors with a positive and a negative; "avg_non_zero" (PML) over those
    # with a positive loss: reduce_loss multiplies this normaliser by values > 0.
    return _reduce.reduce_loss(values, reduction=reduction, where=batch.mask, weights=weights,
                               normalizer=valid.astype(values.dtype), axis_name=axis_name,
                               dtype=batch.dtype, reductions=_checks.NON_ZERO_REDUCTIONS)


@_builtin("metric")
def multi_similarity_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: ArrayLike = 2.0,
    beta: ArrayLike = 50.0,
    base: ArrayLike = 0.5,
    ref_embeddings: ArrayLike | None = None,
    ref_labels: ArrayLike | None = None,
    ref_where: ArrayLike | None = None,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Multi-similarity loss (cosine similarity), per anchor.

    .. math::

        \ell_i = \frac{1}{\alpha} \log\Big(1 + \sum_{p} e^{-\alpha (s_{ip} - \lambda)}\Big)
               + \frac{1}{\beta} \log\Big(1 + \sum_{n} e^{\beta (s_{in} - \lambda)}\Big)

    over the positives ``p`` (other rows of the anchor's label) and the
    negatives ``n`` (rows of other labels), ``s`` the cosine similarity,
    :math:`\lambda` = ``base``. As PML's ``MultiSimilarityLoss``, all pairs
    enter (the paper's pair mining is a separate miner); the mean is over all
    rows (PML's ``MeanReducer``).

    Args:
      embeddings: float ``(N, d)``.
      labels: int ``(N,)``.
      alpha: weight of the positive pairs, ``> 0``; float or traced scalar.
      beta: weight of the negative pairs, ``> 0``.
      base: the similarity offset :math:`\lambda`.
      ref_embeddings: optional float ``(M, d)`` reference set (a cross-batch
        memory, :class:`jaxloss.CrossBatchMemory`): the anchors (the rows of
        ``embeddings``) meet their positives and negatives among the
        references instead of the batch (PML's ``ref_emb``); no gradient
        reaches the references unless they carry one.
      ref_labels: int ``(M,)`` labels of the references (with ``ref_embeddings``).
      ref_where: boolean broadcastable to ``(N, M)``: the (anchor, reference)
        pairs that take part (``(M,)``: the filled slots of a memory), e.g.
        :meth:`jaxloss.CrossBatchMemory.references`, which also drops each
        anchor's own copy.
      axis_name: mapped axis over which the batch is split.
      where: boolean ``(N,)``: rows to keep.
      weights: per-anchor weights ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-anchor losses ``(N,)``.

    Raises:
      ValueError: wrong shapes, ``alpha <= 0``, ``beta <= 0`` or unknown
        ``reduction``.
      TypeError: integer ``embeddings`` or non-integer ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
      >>> labels = jnp.array([0, 0, 1])
      >>> round(float(jaxloss.multi_similarity_loss(x, labels, beta=2.0)), 4)
      0.3007

    References:
      Wang et al., `Multi-Similarity Loss with General Pair Weighting for Deep
      Metric Learning <https://arxiv.org/abs/1904.06627>`_, 2019. Equivalent
      to ``pytorch_metric_learning.losses.MultiSimilarityLoss(alpha, beta,
      base)(embeddings, labels)``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(alpha, "alpha", low=0.0, low_inclusive=False)
    _checks.check_range(beta, "beta", low=0.0, low_inclusive=False)
    _checks.check_range(base, "base")
    batch = _common.pair_batch(embeddings, labels, where, axis_name,
                               (ref_embeddings, ref_labels, ref_where))
    compute = batch.queries.dtype
    values = _multi_similarity_values(batch, _checks.hyperparameter(alpha, "alpha", compute),
                                      _checks.hyperparameter(beta, "beta", compute),
                                      _checks.hyperparameter(base, "base", compute))
    return _reduce.reduce_loss(values, reduction=reduction, where=batch.mask, weights=weights,
                               axis_name=axis_name, dtype=batch.dtype)

"""Pair, triplet and batch-wide metric-learning losses.

Conventions: embeddings are float ``(N, d)`` (rows are samples), labels are
integer ``(N,)``. Distances follow pytorch-metric-learning (PML): by default
the embeddings are L2-normalised first (PML's ``LpDistance`` default),
``distance="euclidean"`` is ``||a - b||``, ``"squared"`` its square and
``"cosine"`` is ``1 - cos(a, b)`` (PML's ``CosineSimilarity``, written as a
distance). ``where``/``weights`` are per row (per pair for
:func:`contrastive_loss` and :func:`triplet_margin_loss`, per anchor for the
batch-wide losses). A row that ``where`` drops is removed from the batch
entirely, as an anchor and as a positive or negative of the other rows, so
``where`` equals slicing. Batch-wide losses take ``axis_name``: inside
``shard_map`` the local rows are the anchors, the gathered global batch the
keys, and the numerator and denominator of the mean are ``psum``-ed, so that
``loss(x_local, labels_local, axis_name="data")`` is the loss of the global
batch on every device.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import safe_div, safe_pow, safe_sqrt
from jaxloss.metric import _common
from jaxloss.registry import _builtin

__all__ = [
    "batch_triplet_loss",
    "center_loss",
    "circle_loss",
    "contrastive_loss",
    "multi_similarity_loss",
    "npair_loss",
    "triplet_margin_loss",
]

PairReduction = Literal["mean", "sum", "none", "avg_non_zero"]
_NON_ZERO_REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none", "avg_non_zero")
Mining = Literal["all", "hard", "semihard"]
_MININGS: tuple[str, ...] = ("all", "hard", "semihard")


# --------------------------------------------------------------------------------------
# Private helpers.
# --------------------------------------------------------------------------------------


def _check_reduction(reduction: object, choices: tuple[str, ...]) -> None:
    if not isinstance(reduction, str) or reduction not in choices:
        raise ValueError(
            f"reduction must be one of {choices}; got {reduction!r}. "
            "Pass reduction='none' for the unreduced loss."
        )


def _row_mask(where: ArrayLike | None, shape: tuple[int, ...]) -> Array | None:
    """``where`` as a boolean mask of the per-row shape (no class/feature axis)."""
    mask = _checks.broadcast_mask(where, shape, "where")
    return None if mask is None else mask.astype(jnp.bool_)


def _sanitise_rows(x: Array, mask: Array | None) -> Array:
    """Zeroes the masked rows of ``x (..., d)`` (first half of the double where)."""
    if mask is None:
        return x
    return jnp.where(mask[..., None], x, jnp.zeros((), x.dtype))


def _reduce_rows(
    values: Array,
    counts: Array | None,
    *,
    reduction: str,
    where: Array | None,
    weights: ArrayLike | None,
    axis_name: str | None,
    dtype: jnp.dtype,
) -> Array:
    """Reduces per-row ``values``: ``mean`` is sum(w * values) / sum(w * counts).

    ``counts`` is what each row contributes to the mean's denominator (the
    number of its triplets, 1 for a valid anchor, ...); ``None`` means 1 per
    row. With ``axis_name`` the numerator and denominator are ``psum``-ed.
    """
    if reduction == "none":
        return _reduce.reduce_loss(values, reduction="none", where=where, weights=weights,
                                   dtype=dtype)
    total = _reduce.reduce_loss(values, reduction="sum", where=where, weights=weights)
    if axis_name is not None:
        total = jax.lax.psum(total, axis_name)
    if reduction == "sum":
        return total.astype(dtype)
    counts = jnp.ones_like(values) if counts is None else counts.astype(values.dtype)
    denominator = _reduce.reduce_loss(counts, reduction="sum", where=where, weights=weights)
    if axis_name is not None:
        denominator = jax.lax.psum(denominator, axis_name)
    return safe_div(total, denominator).astype(dtype)


class _Batch(NamedTuple):
    queries: Array      # [n, d] local rows, masked rows zeroed
    keys: Array         # [M, d] the gathered global batch
    key_labels: Array   # [M]
    key_valid: Array    # [M] rows of the global batch that ``where`` keeps
    rows: Array         # [n] global indices of the local rows
    positive: Array     # [n, M] same label, not the row itself, both kept
    negative: Array     # [n, M] different label, both kept
    mask: Array | None  # [n] ``where`` as booleans
    dtype: jnp.dtype    # result dtype


def _pair_masks(
    embeddings: ArrayLike, labels: ArrayLike, where: ArrayLike | None, axis_name: str | None,
) -> _Batch:
    """The common set-up of the batch-wide losses (validation, masking, gather, pair masks)."""
    x, labels, dtype = _common.embeddings_and_labels(embeddings, labels)
    n = x.shape[0]
    mask = _row_mask(where, (n,))
    x = _sanitise_rows(x, mask)
    valid = jnp.ones((n,), jnp.bool_) if mask is None else mask
    keys = _common.gather_batch(x, axis_name)
    key_labels = _common.gather_batch(labels, axis_name)
    key_valid = _common.gather_batch(valid, axis_name)
    rows = _common.shard_offset(n, axis_name) + jnp.arange(n)
    columns = jnp.arange(keys.shape[0])
    pair_valid = valid[:, None] & key_valid[None, :]                  # [n, M]
    same = _common.same_label(labels, key_labels)
    positive = same & (rows[:, None] != columns[None, :]) & pair_valid
    negative = ~same & pair_valid
    return _Batch(x, keys, key_labels, key_valid, rows, positive, negative, mask, dtype)


def _distances(queries: Array, keys: Array, *, distance: str, normalize: bool) -> Array:
    """``(n, M)`` distances between query and key rows (PML's LpDistance / cosine)."""
    _checks.check_choice(distance, "distance", _common.DISTANCES)
    if normalize and distance != "cosine":
        queries, keys = _common.l2_normalize(queries), _common.l2_normalize(keys)
    return _common.distance_matrix(queries, keys, distance=distance)


def _cosine_similarity(queries: Array, keys: Array) -> Array:
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


# --------------------------------------------------------------------------------------
# Pairs and triplets given explicitly.
# --------------------------------------------------------------------------------------


@_builtin("metric")
def contrastive_loss(
    x1: ArrayLike,
    x2: ArrayLike,
    is_similar: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    pos_margin: ArrayLike = 0.0,
    squared: bool = False,
    distance: _common.Distance = "euclidean",
    normalize: bool = True,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: PairReduction = "mean",
) -> Array:
    r"""Contrastive loss of explicit pairs: pull similar pairs together, push others apart.

    .. math::

        \ell_i = \begin{cases} [d_i - m_+]_+ & \text{similar} \\
                 [m - d_i]_+ & \text{dissimilar} \end{cases}
        \qquad d_i = \operatorname{dist}(x_{1,i}, x_{2,i})

    and with ``squared=True`` Hadsell's form :math:`\tfrac12 [d_i - m_+]_+^2`,
    :math:`\tfrac12 [m - d_i]_+^2`.

    Convention: PML's ``ContrastiveLoss`` per-pair terms (``margin`` is its
    ``neg_margin``, ``pos_margin`` its ``pos_margin``), the distance not
    squared. The embeddings are L2-normalised first (``normalize=True``, PML's
    default ``LpDistance``); ``normalize=False`` gives Hadsell's loss on raw
    embeddings. ``distance="cosine"`` uses ``d = 1 - cos``, which equals PML
    with ``CosineSimilarity``, ``pos_margin=1 - pos_margin`` and
    ``neg_margin=1 - margin``. ``reduction="mean"`` is the mean over pairs;
    ``reduction="avg_non_zero"`` is PML's default reducer: the mean of the
    non-zero similar-pair terms plus the mean of the non-zero dissimilar-pair
    terms (each 0 when there is none).

    Args:
      x1: float ``(..., d)`` first embeddings of the pairs.
      x2: float ``(..., d)`` second embeddings, same shape as ``x1``.
      is_similar: bool or int ``(...)``: nonzero for similar (positive) pairs.
      margin: distance beyond which dissimilar pairs cost nothing, ``>= 0``;
        Python float or traced scalar.
      pos_margin: distance below which similar pairs cost nothing, ``>= 0``.
      squared: Hadsell's ``1/2 [.]_+^2`` terms instead of the linear ones.
      distance: ``"euclidean"``, ``"squared"`` (squared Euclidean) or
        ``"cosine"`` (``1 - cos``).
      normalize: L2-normalise the embeddings first (ignored by ``"cosine"``).
      where: boolean mask of the pairs, broadcastable to ``(...)``.
      weights: per-pair weights broadcastable to ``(...)``.
      reduction: ``"mean"``, ``"sum"``, ``"none"`` or ``"avg_non_zero"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-pair losses ``(...)``.

    Raises:
      ValueError: shapes differ, a margin is negative, or ``reduction`` or
        ``distance`` is unknown.
      TypeError: integer ``x1`` or ``x2``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x1 = jnp.array([[1.0, 0.0], [1.0, 0.0]])
      >>> x2 = jnp.array([[0.0, 1.0], [0.0, 1.0]])
      >>> loss = jaxloss.contrastive_loss(x1, x2, jnp.array([True, False]), margin=2.0,
      ...                                 reduction="none")
      >>> [round(float(v), 4) for v in loss]
      [1.4142, 0.5858]

    References:
      Hadsell et al., `Dimensionality Reduction by Learning an Invariant
      Mapping <https://doi.org/10.1109/CVPR.2006.100>`_, 2006. Equivalent to
      ``pytorch_metric_learning.losses.ContrastiveLoss(pos_margin, neg_margin)``
      called on the stacked embeddings with
      ``indices_tuple=(a1, p, a2, n)`` of the pairs, and
      ``reduction="avg_non_zero"``.
    """
    _check_reduction(reduction, _NON_ZERO_REDUCTIONS)
    _checks.check_choice(distance, "distance", _common.DISTANCES)
    _checks.check_range(margin, "margin", low=0.0)
    _checks.check_range(pos_margin, "pos_margin", low=0.0)
    a = _checks.float_input(x1, "x1")
    b = _checks.float_input(x2, "x2")
    _checks.check_rank(a, "x1", min_rank=1)
    _checks.check_same_shape(b, "x2", a, "x1")
    similar = jnp.asarray(is_similar)
    batch_shape = a.shape[:-1]
    if similar.shape != batch_shape:
        raise ValueError(
            f"is_similar must have shape {batch_shape}, one flag per pair (x1 without its "
            f"last axis); got {similar.shape}."
        )
    similar = similar.astype(jnp.bool_) if similar.dtype == jnp.bool_ else similar != 0
    compute, dtype = _checks.compute_dtype(a, b)
    mask = _row_mask(where, batch_shape)
    a = _sanitise_rows(a.astype(compute), mask)
    b = _sanitise_rows(b.astype(compute), mask)
    margin = _checks.hyperparameter(margin, "margin", compute)
    pos_margin = _checks.hyperparameter(pos_margin, "pos_margin", compute)

    if distance == "cosine":
        d = 1 - jnp.sum(_common.l2_normalize(a) * _common.l2_normalize(b), axis=-1)
    else:
        if normalize:
            a, b = _common.l2_normalize(a), _common.l2_normalize(b)
        d = jnp.sum(jnp.square(a - b), axis=-1)
        if distance == "euclidean":
            d = safe_sqrt(d)
    hinge = jnp.where(similar, jax.nn.relu(d - pos_margin), jax.nn.relu(margin - d))
    values = 0.5 * jnp.square(hinge) if squared else hinge

    if reduction != "avg_non_zero":
        return _reduce.reduce_loss(values, reduction=reduction, where=mask, weights=weights,
                                   dtype=dtype)
    # PML: AvgNonZeroReducer on the positive and on the negative sub-loss, summed.
    nonzero = values > 0
    total = jnp.zeros((), compute)
    for group in (similar, ~similar):
        keep = group if mask is None else group & mask
        numerator = _reduce.reduce_loss(values, reduction="sum", where=keep, weights=weights)
        count = _reduce.reduce_loss(nonzero.astype(compute), reduction="sum", where=keep,
                                    weights=weights)
        total = total + safe_div(numerator, count)
    return total.astype(dtype)


def _lp_distance(x: Array, y: Array, *, p: float, eps: Array) -> Array:
    """torch ``pairwise_distance``: ``||x - y + eps||_p`` over the last axis, finite gradient."""
    diff = x - y + eps
    if p == 2:
        return safe_sqrt(jnp.sum(jnp.square(diff), axis=-1))
    magnitude = jnp.maximum(diff, -diff)  # |diff| with a 0 derivative at 0
    if p == 1:
        return jnp.sum(magnitude, axis=-1)
    return safe_pow(jnp.sum(safe_pow(magnitude, p), axis=-1), 1.0 / p)


@_builtin("metric")
def triplet_margin_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    p: float = 2.0,
    eps: ArrayLike = 1e-6,
    swap: bool = False,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Triplet margin loss of explicit triplets, exactly torch's.

    .. math::

        \ell_i = \max(d(a_i, p_i) - d(a_i, n_i) + \text{margin}, 0),
        \qquad d(x, y) = \lVert x - y + \epsilon \rVert_p

    With ``swap=True`` the negative distance is
    :math:`\min(d(a_i, n_i), d(p_i, n_i))` (Balntas et al.).

    Convention: ``torch.nn.functional.triplet_margin_loss``, including the
    ``eps`` added inside the difference and ``|.|`` for every ``p`` (optax's
    ``triplet_margin_loss`` has no ``abs``). The gradient is finite everywhere,
    also where ``x - y + eps = 0`` (0 there, as torch) and for ``p < 1``.

    Args:
      anchor: float ``(..., d)``.
      positive: float ``(..., d)``, same shape.
      negative: float ``(..., d)``, same shape.
      margin: ``> 0`` (torch's check); Python float or traced scalar.
      p: static norm degree, ``> 0``.
      eps: added to every difference, ``>= 0``.
      swap: use the positive-negative distance when it is smaller.
      where: boolean mask of the triplets, broadcastable to ``(...)``.
      weights: per-triplet weights broadcastable to ``(...)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-triplet losses ``(...)``.

    Raises:
      ValueError: shapes differ, ``margin <= 0``, ``p <= 0``, or ``reduction``
        is unknown.
      TypeError: integer inputs.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> a = jnp.array([[0.0, 0.0]])
      >>> pos = jnp.array([[3.0, 4.0]])
      >>> neg = jnp.array([[1.0, 0.0]])
      >>> round(float(jaxloss.triplet_margin_loss(a, pos, neg, eps=0.0)), 4)
      5.0

    References:
      Schroff et al., `FaceNet <https://arxiv.org/abs/1503.03832>`_, 2015;
      Balntas et al., `Learning local feature descriptors with triplets and
      shallow convolutional neural networks
      <https://doi.org/10.5244/C.30.119>`_, 2016 (swap). Equivalent to
      ``torch.nn.functional.triplet_margin_loss(anchor, positive, negative,
      margin=margin, p=p, eps=eps, swap=swap)``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(margin, "margin", low=0.0, low_inclusive=False)
    _checks.check_range(eps, "eps", low=0.0)
    if _checks.is_traced(p) or not isinstance(p, (int, float)) or isinstance(p, bool):
        raise TypeError(f"p must be a static Python number; got {p!r}.")
    if not (_checks.finite_float(float(p)) and p > 0):
        raise ValueError(f"p must be a finite number > 0; got {p}.")
    a = _checks.float_input(anchor, "anchor")
    pos = _checks.float_input(positive, "positive")
    neg = _checks.float_input(negative, "negative")
    _checks.check_rank(a, "anchor", min_rank=1)
    _checks.check_same_shape(pos, "positive", a, "anchor")
    _checks.check_same_shape(neg, "negative", a, "anchor")
    compute, dtype = _checks.compute_dtype(a, pos, neg)
    mask = _row_mask(where, a.shape[:-1])
    a, pos, neg = (_sanitise_rows(t.astype(compute), mask) for t in (a, pos, neg))
    margin = _checks.hyperparameter(margin, "margin", compute)
    eps = _checks.hyperparameter(eps, "eps", compute)

    d_ap = _lp_distance(a, pos, p=float(p), eps=eps)
    d_an = _lp_distance(a, neg, p=float(p), eps=eps)
    if swap:
        d_an = jnp.minimum(d_an, _lp_distance(pos, neg, p=float(p), eps=eps))
    values = jax.nn.relu(d_ap - d_an + margin)
    return _reduce.reduce_loss(values, reduction=reduction, where=mask, weights=weights,
                               dtype=dtype)


# --------------------------------------------------------------------------------------
# Batch-wide losses (labels).
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
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: PairReduction = "mean",
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
    ``"mean"`` is the mean over the mined triplets, sum(w L) / sum(w |T|)
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
    _check_reduction(reduction, _NON_ZERO_REDUCTIONS)
    _checks.check_choice(mining, "mining", _MININGS)
    _checks.check_choice(distance, "distance", _common.DISTANCES)
    _checks.check_range(margin, "margin", low=0.0)
    batch = _pair_masks(embeddings, labels, where, axis_name)
    positive, negative = batch.positive, batch.negative
    margin = _checks.hyperparameter(margin, "margin", batch.queries.dtype)
    d = _distances(batch.queries, batch.keys, distance=distance, normalize=normalize)  # [n, M]

    if mining == "hard":
        hardest_positive = jnp.max(jnp.where(positive, d, -jnp.inf), axis=-1)
        hardest_negative = jnp.min(jnp.where(negative, d, jnp.inf), axis=-1)
        valid = jnp.any(positive, axis=-1) & jnp.any(negative, axis=-1)
        violation = jnp.where(valid, hardest_positive - hardest_negative, 0.0)
        values = jnp.where(valid, jax.nn.relu(violation + margin), 0.0)
        counts = valid
        nonzero = values > 0
    else:
        values, counts, nonzero = _triplet_sums(d, positive, negative, margin,
                                                semihard=mining == "semihard")
    return _reduce_rows(values, nonzero if reduction == "avg_non_zero" else counts,
                        reduction="mean" if reduction == "avg_non_zero" else reduction,
                        where=batch.mask, weights=weights, axis_name=axis_name,
                        dtype=batch.dtype)


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
    batch = _pair_masks(embeddings, labels, where, axis_name)
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
    return _reduce_rows(values, row_is_anchor, reduction=reduction, where=batch.mask,
                        weights=weights, axis_name=axis_name, dtype=batch.dtype)


@_builtin("metric")
def circle_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 0.4,
    gamma: ArrayLike = 80.0,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: PairReduction = "mean",
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
    _check_reduction(reduction, _NON_ZERO_REDUCTIONS)
    _checks.check_range(gamma, "gamma", low=0.0, low_inclusive=False)
    _checks.check_range(margin, "margin")
    batch = _pair_masks(embeddings, labels, where, axis_name)
    positive, negative = batch.positive, batch.negative
    m = _checks.hyperparameter(margin, "margin", batch.queries.dtype)
    gamma = _checks.hyperparameter(gamma, "gamma", batch.queries.dtype)
    s = _cosine_similarity(batch.queries, batch.keys)                   # [n, M]
    fixed = jax.lax.stop_gradient(s)
    pos_logits = -gamma * jax.nn.relu(1 + m - fixed) * (s - (1 - m))
    neg_logits = gamma * jax.nn.relu(fixed + m) * (s - m)
    valid = jnp.any(positive, axis=-1) & jnp.any(negative, axis=-1)
    z = (_common.masked_logsumexp(pos_logits, positive)
         + _common.masked_logsumexp(neg_logits, negative))
    z = jnp.where(valid, z, 0.0)
    values = jnp.where(valid, jax.nn.softplus(z), 0.0)
    counts = (values > 0) if reduction == "avg_non_zero" else valid
    return _reduce_rows(values, counts,
                        reduction="mean" if reduction == "avg_non_zero" else reduction,
                        where=batch.mask, weights=weights, axis_name=axis_name,
                        dtype=batch.dtype)


@_builtin("metric")
def multi_similarity_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: ArrayLike = 2.0,
    beta: ArrayLike = 50.0,
    base: ArrayLike = 0.5,
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
    batch = _pair_masks(embeddings, labels, where, axis_name)
    compute = batch.queries.dtype
    alpha = _checks.hyperparameter(alpha, "alpha", compute)
    beta = _checks.hyperparameter(beta, "beta", compute)
    base = _checks.hyperparameter(base, "base", compute)
    s = _cosine_similarity(batch.queries, batch.keys)                   # [n, M]
    pos = _common.masked_logsumexp(alpha * (base - s), batch.positive, add_one=True) / alpha
    neg = _common.masked_logsumexp(beta * (s - base), batch.negative, add_one=True) / beta
    return _reduce_rows(pos + neg, None, reduction=reduction, where=batch.mask,
                        weights=weights, axis_name=axis_name, dtype=batch.dtype)


@_builtin("metric")
def center_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    centers: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Center loss: half the squared distance of each embedding to its class centre.

    .. math:: \ell_i = \tfrac12 \lVert x_i - c_{y_i} \rVert_2^2

    Wen et al. sum this over the mini-batch (``reduction="sum"``); the
    default ``"mean"`` divides by the number of samples. The centres are an
    ordinary array argument, so ``jax.grad`` gives their gradient
    :math:`\sum_{i: y_i = j} (c_j - x_i)` and an optimizer can learn them
    (the paper's own update divides this by :math:`1 + n_j` and scales it by
    its rate :math:`\alpha`). Labels outside ``[0, C)`` raise eagerly; under
    ``jit`` they are clipped to the valid range.

    Args:
      embeddings: float ``(N, d)``.
      labels: int ``(N,)`` in ``[0, C)``.
      centers: float ``(C, d)`` class centres (learnable).
      where: boolean ``(N,)``.
      weights: per-sample weights ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-sample losses ``(N,)``.

    Raises:
      ValueError: wrong shapes, out-of-range labels, unknown ``reduction``.
      TypeError: integer ``embeddings`` or ``centers``, non-integer labels.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 2.0], [0.0, 0.0]])
      >>> centers = jnp.array([[0.0, 0.0], [1.0, 1.0]])
      >>> float(jaxloss.center_loss(x, jnp.array([0, 1]), centers))
      1.75

    References:
      Wen et al., `A Discriminative Feature Learning Approach for Deep Face
      Recognition <https://doi.org/10.1007/978-3-319-46478-7_31>`_, 2016.
      No reference library implements it; tests compare with the formula in
      torch.
    """
    _checks.check_reduction(reduction)
    x, labels, _ = _common.embeddings_and_labels(embeddings, labels)
    c = _checks.float_input(centers, "centers")
    _checks.check_rank(c, "centers", rank=2)
    if c.shape[1] != x.shape[1]:
        raise ValueError(
            f"centers must have shape (C, {x.shape[1]}) to match embeddings of dimension "
            f"{x.shape[1]}; got {c.shape}."
        )
    _checks.check_labels_in_range(labels, c.shape[0], "labels")
    compute, dtype = _checks.compute_dtype(jnp.asarray(embeddings), c)
    mask = _row_mask(where, (x.shape[0],))
    x = _sanitise_rows(x.astype(compute), mask)
    own = jnp.take(c.astype(compute), labels, axis=0, mode="clip")      # [N, d]
    own = _sanitise_rows(own, mask)
    values = 0.5 * jnp.sum(jnp.square(x - own), axis=-1)
    return _reduce.reduce_loss(values, reduction=reduction, where=mask, weights=weights,
                               dtype=dtype)

"""Metric losses of explicit pairs and triplets, and the center loss.

Conventions: the two (three) arrays are float ``(..., d)`` embeddings of the
same shape, row ``i`` of each being one pair (triplet); ``where``/``weights``
are per pair (per triplet), broadcastable to ``(...)``. Distances follow
pytorch-metric-learning (PML) for :func:`contrastive_loss` (by default the
embeddings are L2-normalised first, PML's ``LpDistance`` default;
``distance="euclidean"`` is ``||a - b||``, ``"squared"`` its square and
``"cosine"`` is ``1 - cos(a, b)``) and torch for
:func:`triplet_margin_loss`. :func:`center_loss` takes ``(N, d)`` embeddings,
int labels ``(N,)`` and the ``(C, d)`` class centres.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _classes, _reduce
from jaxloss._checks import NonZeroReduction, Reduction
from jaxloss._numerics import safe_pow, safe_sqrt
from jaxloss.metric import _common
from jaxloss.registry import _builtin

__all__ = [
    "center_loss",
    "contrastive_loss",
    "triplet_margin_loss",
]


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
    reduction: NonZeroReduction = "mean",
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
    _checks.check_reduction(reduction, _checks.NON_ZERO_REDUCTIONS)
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
    mask = _pair_mask(where, batch_shape)
    a, b = _reduce.mask_rows(mask, a.astype(compute), b.astype(compute))
    values = _contrastive_values(
        a, b, similar, _checks.hyperparameter(margin, "margin", compute),
        _checks.hyperparameter(pos_margin, "pos_margin", compute), squared=squared,
        distance=distance, normalize=normalize)
    if reduction != "avg_non_zero":
        return _reduce.reduce_loss(values, reduction=reduction, where=mask, weights=weights,
                                   dtype=dtype)
    # PML: two sub-losses (similar and dissimilar pairs), each reduced by its
    # AvgNonZeroReducer, summed.
    positive, negative = (
        _reduce.reduce_loss(values, reduction="avg_non_zero",
                            where=group if mask is None else group & mask,
                            weights=weights, reductions=_checks.NON_ZERO_REDUCTIONS)
        for group in (similar, ~similar))
    return (positive + negative).astype(dtype)


def _pair_mask(where: ArrayLike | None, shape: tuple[int, ...]) -> Array | None:
    """A per-pair ``where`` broadcast (NumPy rules) to the pairs' ``shape``, as booleans."""
    mask = _reduce.align_mask(where, shape, "where")
    return None if mask is None else mask.astype(jnp.bool_)


def _contrastive_values(a: Array, b: Array, similar: Array, margin: Array, pos_margin: Array,
                        *, squared: bool, distance: str, normalize: bool) -> Array:
    """Per pair ``(...)``: the hinge on the distance of similar and of dissimilar pairs."""
    if distance == "cosine":
        d = 1 - jnp.sum(_common.l2_normalize(a) * _common.l2_normalize(b), axis=-1)
    else:
        if normalize:
            a, b = _common.l2_normalize(a), _common.l2_normalize(b)
        d = jnp.sum(jnp.square(a - b), axis=-1)
        if distance == "euclidean":
            d = safe_sqrt(d)
    hinge = jnp.where(similar, jax.nn.relu(d - pos_margin), jax.nn.relu(margin - d))
    return 0.5 * jnp.square(hinge) if squared else hinge


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
    mask = _pair_mask(where, a.shape[:-1])
    a, pos, neg = _reduce.mask_rows(mask, *(t.astype(compute) for t in (a, pos, neg)))
    margin = _checks.hyperparameter(margin, "margin", compute)
    eps = _checks.hyperparameter(eps, "eps", compute)
    values = _triplet_margin_values(a, pos, neg, margin, p=float(p), eps=eps, swap=swap)
    return _reduce.reduce_loss(values, reduction=reduction, where=mask, weights=weights,
                               dtype=dtype)


def _triplet_margin_values(a: Array, pos: Array, neg: Array, margin: Array, *, p: float,
                           eps: Array, swap: bool) -> Array:
    """Per triplet ``(...)``: torch's ``max(d(a, p) - d(a, n) + margin, 0)``."""
    d_ap = _lp_distance(a, pos, p=p, eps=eps)
    d_an = _lp_distance(a, neg, p=p, eps=eps)
    if swap:
        d_an = jnp.minimum(d_an, _lp_distance(pos, neg, p=p, eps=eps))
    return jax.nn.relu(d_ap - d_an + margin)


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
    ``jit`` the loss is NaN at their rows (and in any reduction over them).

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
    mask = _reduce.rows_kept(where, None, x.shape[:1])
    own = jnp.take(c.astype(compute), labels, axis=0, mode="clip")      # [N, d]
    x, own = _reduce.mask_rows(mask, x.astype(compute), own)
    values = 0.5 * jnp.sum(jnp.square(x - own), axis=-1)                # [N]
    if _checks.is_traced(labels):
        # Under jit a label outside [0, C) was clipped for the gather: NaN, not its loss.
        values = _classes.poison(values, _classes.out_of_range(labels, c.shape[0]))
    return _reduce.reduce_loss(values, reduction=reduction, where=mask, weights=weights,
                               dtype=dtype)

"""Batch losses over the ranking of the whole batch: lifted structure and FastAP.

Conventions: embeddings are float ``(N, d)``, labels int ``(N,)`` identities
(only their equality matters). Both losses L2-normalise the embeddings, as
pytorch-metric-learning's ``LpDistance`` default does. ``where`` ``(N,)``
removes rows from the batch (as anchors and as positives or negatives of the
other rows, so ``where`` equals slicing); ``weights`` ``(N,)`` weigh each
anchor's loss, and a weight of exactly 0 removes the row like ``where``. Both
are batch losses whose ``"mean"`` is PML's value; it is not the mean of the
``(N,)`` unreduced form. Both take ``axis_name``: inside ``shard_map`` the
local rows are the anchors, the gathered global batch the keys, and the
numerator and denominator of the mean are ``psum``-ed, so that
``loss(x_local, labels_local, axis_name="data")`` is the loss of the global
batch on every device (``"none"``: the local anchors' values).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import safe_div
from jaxloss.metric import _common
from jaxloss.registry import _builtin

__all__ = ["fast_ap_loss", "lifted_structure_loss"]


def _kept(embeddings: ArrayLike, where: ArrayLike | None, weights: ArrayLike | None,
          ) -> Array | None:
    """Rows in the batch: ``where`` True and a nonzero weight (None: all)."""
    return _reduce.rows_kept(where, weights, jnp.shape(embeddings)[:1])


def _lifted_values(d: Array, positive: Array, negative: Array, pos_margin: Array,
                   neg_margin: Array, axis_name: str | None) -> Array:
    """Per local anchor ``(n,)`` (``d`` is ``(n, M)``, anchors against the gathered batch):
    the sum over its positive pairs of ``relu(J_ap)^2 / 2``."""
    own = _common.masked_logsumexp(neg_margin - d, negative)             # [n], -inf: none
    has_negative = jnp.isfinite(own)
    # A finite stand-in for -inf: exp(-1e30 - x) is 0 with a 0 gradient in logaddexp.
    finite = jnp.where(has_negative, own, -1e30)
    finite_keys = _common.gather_batch(finite, axis_name)                # [M]
    key_has_negative = _common.gather_batch(has_negative, axis_name)
    pair_negatives = jnp.logaddexp(finite[:, None], finite_keys[None, :])  # [n, M]
    none = ~(has_negative[:, None] | key_has_negative[None, :])
    pair_negatives = jnp.where(none, 0.0, pair_negatives)                # PML: 0 if none
    j = pair_negatives + d - pos_margin
    terms = 0.5 * jnp.square(jax.nn.relu(j))
    return jnp.sum(jnp.where(positive, terms, 0.0), axis=-1)


@_builtin("metric")
def lifted_structure_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    pos_margin: ArrayLike = 0.0,
    neg_margin: ArrayLike = 1.0,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Lifted structured loss: each positive pair against all negatives of both its ends.

    .. math::

        J_{ap} = \log \Big(\sum_{n \in N(a)} e^{m_- - d_{an}}
                          + \sum_{n \in N(p)} e^{m_- - d_{pn}}\Big) + d_{ap} - m_+,
        \qquad \ell_{ap} = \tfrac12 [J_{ap}]_+^2

    over the ordered positive pairs :math:`(a, p)` (same label, :math:`p \ne a`),
    with :math:`N(i)` the rows of other labels, :math:`d` the Euclidean
    distance of the L2-normalised embeddings, :math:`m_+` = ``pos_margin``,
    :math:`m_-` = ``neg_margin``. A pair whose ends have no negative gets a
    log-sum-exp of 0 (PML).

    Convention: PML's ``LiftedStructureLoss`` (each unordered pair counted in
    both directions, hence the 1/2). ``"mean"`` is the mean over the ordered
    positive pairs (PML's value); ``"none"`` gives each anchor's sum over its
    positive pairs, ``(N,)``. With ``axis_name`` the pairs are those of the
    global batch and ``"none"`` gives the local anchors' sums.

    Args:
      embeddings: float ``(N, d)``.
      labels: int ``(N,)``.
      pos_margin: :math:`m_+`; float or traced scalar.
      neg_margin: :math:`m_-`; float or traced scalar.
      axis_name: mapped axis of ``shard_map``/``pmap`` over which the batch
        is split; ``None`` on one device.
      where: boolean ``(N,)``: rows to keep in the batch.
      weights: per-anchor weights ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-anchor sums ``(N,)``.

    Raises:
      TypeError: integer ``embeddings`` or non-integer ``labels``.
      ValueError: wrong shapes or an unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
      >>> # PML LiftedStructureLoss() on the same batch gives 1.43282
      >>> round(float(jaxloss.lifted_structure_loss(x, jnp.array([0, 0, 1, 1]))), 4)
      1.4328

    References:
      Oh Song et al., `Deep Metric Learning via Lifted Structured Feature
      Embedding <https://arxiv.org/abs/1511.06452>`_, 2016. Equivalent to
      ``pytorch_metric_learning.losses.LiftedStructureLoss(neg_margin,
      pos_margin)(embeddings, labels)``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(pos_margin, "pos_margin")
    _checks.check_range(neg_margin, "neg_margin")
    batch = _common.pair_batch(embeddings, labels, _kept(embeddings, where, weights),
                               axis_name)
    x = _common.l2_normalize(batch.queries)
    keys = _common.l2_normalize(batch.keys)
    d = _common.distance_matrix(x, keys, distance="euclidean")            # [n, M]
    compute = x.dtype
    values = _lifted_values(d, batch.positive, batch.negative,
                            _checks.hyperparameter(pos_margin, "pos_margin", compute),
                            _checks.hyperparameter(neg_margin, "neg_margin", compute),
                            axis_name)
    count = jnp.sum(batch.positive.astype(compute), axis=-1)
    return _reduce.reduce_loss(values, reduction=reduction, where=batch.mask, weights=weights,
                               normalizer=count, axis_name=axis_name, dtype=batch.dtype)


def _fast_ap_values(d2: Array, positive: Array, negative: Array, num_bins: int,
                    ) -> tuple[Array, Array]:
    """Per anchor ``(N,)``: ``1 - FastAP`` (0 without positives), and whether it has one."""
    delta = 4.0 / num_bins
    centres = jnp.linspace(0.0, 4.0, num_bins + 1, dtype=d2.dtype)          # [K+1]
    pulse = jax.nn.relu(1 - jnp.abs(d2[..., None] - centres[None, None, :]) / delta)  # [N,N,K+1]
    pos_hist = jnp.sum(jnp.where(positive[..., None], pulse, 0.0), axis=1)  # [N, K+1]
    neg_hist = jnp.sum(jnp.where(negative[..., None], pulse, 0.0), axis=1)
    pos_cum = jnp.cumsum(pos_hist, axis=-1)
    all_cum = jnp.cumsum(pos_hist + neg_hist, axis=-1)
    product = pos_hist * pos_cum
    kept = (product > 0) & (all_cum > 0)
    precision = jnp.sum(jnp.where(kept, safe_div(product, jnp.where(kept, all_cum, 0.0)),
                                  0.0), axis=-1)
    count = jnp.sum(positive.astype(d2.dtype), axis=-1)
    has_positive = count > 0
    return jnp.where(has_positive, 1 - safe_div(precision, count), 0.0), has_positive


@_builtin("metric")
def fast_ap_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    num_bins: int = 10,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""FastAP: 1 - a histogram (soft-binned) approximation of average precision.

    For anchor :math:`a`, the squared distances :math:`d^2 \in [0, 4]` of the
    L2-normalised embeddings are soft-assigned to ``num_bins + 1`` bin centres
    :math:`z_k = 4k/K` by the triangular kernel
    :math:`\delta_k(d^2) = [1 - |d^2 - z_k| / \Delta]_+` (:math:`\Delta = 4/K`),
    giving histograms :math:`h^+_k` of its positives and :math:`h_k` of all
    other rows, with cumulative sums :math:`H^+_k`, :math:`H_k`:

    .. math::

        \ell_a = 1 - \frac{1}{|P(a)|} \sum_k \frac{h^+_k H^+_k}{H_k}

    Convention: PML's ``FastAPLoss`` (bins with :math:`h^+_k H^+_k = 0` skipped);
    anchors without a positive have no loss, and ``"mean"`` is the mean over
    the anchors with one (PML's value). ``"none"`` gives ``(N,)``. Memory is
    ``O(N^2 K)``. With ``axis_name`` each local anchor ranks the global batch
    (``O(n N K)`` per device) and ``"none"`` gives the local anchors' losses.

    Args:
      embeddings: float ``(N, d)``.
      labels: int ``(N,)``.
      num_bins: ``K``, a static int ``>= 1``.
      axis_name: mapped axis of ``shard_map``/``pmap`` over which the batch
        is split; ``None`` on one device.
      where: boolean ``(N,)``: rows to keep in the batch.
      weights: per-anchor weights ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-anchor losses ``(N,)``.

    Raises:
      TypeError: integer ``embeddings``, non-integer ``labels`` or a non-int
        ``num_bins``.
      ValueError: wrong shapes, ``num_bins < 1`` or an unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
      >>> # PML FastAPLoss() on the same batch gives 0.58333
      >>> round(float(jaxloss.fast_ap_loss(x, jnp.array([0, 1, 1, 0]))), 4)
      0.5833

    References:
      Cakir et al., `Deep Metric Learning to Rank
      <https://openaccess.thecvf.com/content_CVPR_2019/papers/Cakir_Deep_Metric_Learning_to_Rank_CVPR_2019_paper.pdf>`_,
      2019. Equivalent to
      ``pytorch_metric_learning.losses.FastAPLoss(num_bins)(embeddings, labels)``.
    """
    _checks.check_reduction(reduction)
    bins = _checks.static_int(num_bins, "num_bins", low=1)
    batch = _common.pair_batch(embeddings, labels, _kept(embeddings, where, weights),
                               axis_name)
    x = _common.l2_normalize(batch.queries)
    d2 = _common.squared_distance_matrix(x, _common.l2_normalize(batch.keys))  # [n, M]
    values, has_positive = _fast_ap_values(d2, batch.positive, batch.negative, bins)
    return _reduce.reduce_loss(values, reduction=reduction, where=batch.mask, weights=weights,
                               normalizer=has_positive.astype(values.dtype),
                               axis_name=axis_name, dtype=batch.dtype)

"""Proxy-based metric losses: ProxyAnchor, ProxyNCA, SoftTriple and normalised softmax.

Conventions: ``embeddings`` are float ``(N, d)``, ``labels`` int ``(N,)`` in
``[0, C)``; the learnable class matrix (proxies, SoftTriple's centres, the
normalised-softmax kernel) is in the Flax kernel layout ``(d, C)``
(SoftTriple: ``(d, C * K)``, column ``c * K + k`` is centre ``k`` of class
``c``), the transpose of pytorch-metric-learning's ``(C, d)`` proxies. As in
PML, embeddings and class columns are L2-normalised (a zero vector has cosine
0 with everything, with a finite gradient). ``block_size`` scans over blocks
of that many classes with the machinery of the margin-softmax losses
(``jaxloss.metric.margin``), so the ``(N, C)`` cosines are never held; the
value and gradient equal the dense path. Labels outside ``[0, C)`` raise when
concrete and give NaN at their rows under ``jit``.

ProxyNCA, SoftTriple and normalised softmax are per-row cross-entropies:
``reduction="none"`` gives ``(N,)`` and ``"mean"`` is their mean. ProxyAnchor
is a batch loss over the proxies (see its docstring for its ``(N,)``
unreduced form); it takes ``axis_name`` so that a sharded call equals the
single-device call on the global batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _classes, _reduce
from jaxloss._checks import Reduction
from jaxloss.metric import _class_softmax as _cs
from jaxloss.metric._common import all_rows_if_none, check_block_size, l2_normalize, varying
from jaxloss.registry import _builtin

__all__ = [
    "normalized_softmax_loss",
    "proxy_anchor_loss",
    "proxy_nca_loss",
    "soft_triple_loss",
]


def _identity_target(cos: Array, x: Array) -> Array:
    return cos


def _column_lse(logits: Array, mask: Array, axis_name: str | None) -> Array:
    """``log sum_i exp(logits[i, c])`` over the rows ``mask`` selects: ``(b,)``, ``-inf``
    (zero gradient) for a column with no row. Entries outside ``mask`` never reach the
    exponential. With ``axis_name`` the rows are those of every device (the column
    maximum is ``pmax``-ed and the sums ``psum``-ed)."""
    masked = jnp.where(mask, logits, -jnp.inf)
    top = jax.lax.stop_gradient(jnp.max(masked, axis=0))
    if axis_name is not None:
        top = jax.lax.pmax(top, axis_name)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    total = jnp.sum(jnp.exp(masked - top[None, :]), axis=0)
    if axis_name is not None:
        total = jax.lax.psum(total, axis_name)
    safe = jnp.where(total > 0, total, 1.0)
    return jnp.where(total > 0, jnp.log(safe) + top, -jnp.inf)


def _shares_and_terms(logits: Array, mask: Array, axis_name: str | None,
                      ) -> tuple[Array, Array, Array]:
    """For each column ``c``: ``log(1 + sum_{i in mask} e^{logits[i, c]})`` ``(b,)``, each
    row's share of the sum, ``e^{logits[i, c]} / sum_{j in mask} e^{logits[j, c]}``
    ``(N, b)`` (0 outside ``mask``; the shares of a column with a row sum to 1), and
    whether the column has a row ``(b,)`` (on any device with ``axis_name``)."""
    lse = _column_lse(logits, mask, axis_name)                        # [b]
    has_row = jnp.isfinite(lse)
    safe_lse = jnp.where(has_row, lse, 0.0)
    term = jnp.where(has_row, jax.nn.softplus(safe_lse), 0.0)         # log(1 + e^lse)
    shifted = jnp.where(mask, logits - safe_lse[None, :], -jnp.inf)   # double where
    return jnp.exp(shifted), term, has_row


def _proxy_anchor_values(inputs: _cs.Inputs, kept: Array, margin: Array, alpha: Array,
                         block_size: int | None, axis_name: str | None,
                         ) -> tuple[Array, Array]:
    """Per row ``(N,)``: its share of the positive and negative proxy terms (see
    :func:`proxy_anchor_loss`), and its share of the positive proxies (the mean's count).
    With ``axis_name`` each proxy's sums run over the rows of every device."""
    x, labels, kernel = inputs.x, inputs.labels, inputs.kernel
    n, num_classes = x.shape[0], kernel.shape[1]
    x_hat = l2_normalize(x)

    def fold(carry, columns, class_ids, valid):
        pos_part, neg_part, count, present = carry
        cos = x_hat @ l2_normalize(columns, axis=0)                    # [N, b]
        same = labels[:, None] == class_ids[None, :]
        rows = kept[:, None] & valid[None, :]
        pos_share, pos_term, positive = _shares_and_terms(-alpha * (cos - margin),
                                                          same & rows, axis_name)
        neg_share, neg_term, _ = _shares_and_terms(alpha * (cos + margin), ~same & rows,
                                                   axis_name)
        pos_part = pos_part + pos_share @ pos_term                     # [N]
        neg_part = neg_part + neg_share @ neg_term
        count = count + jnp.sum(pos_share, axis=-1)
        present = present + jnp.sum(positive.astype(present.dtype))
        return pos_part, neg_part, count, present

    zeros = jnp.zeros((n,), x.dtype)
    carry = (zeros, zeros, zeros, jnp.zeros((), x.dtype))
    if block_size is None:
        carry = fold(carry, kernel, jnp.arange(num_classes), jnp.ones((num_classes,), bool))
    else:
        carry = _cs.scan_class_blocks(fold, varying(carry, axis_name), kernel,
                                      block_size=block_size, subcenters=1)
    pos_part, neg_part, count, present = carry
    # The negative terms are averaged over all C proxies, the positive ones over the
    # |P+| proxies with a positive: scaled by |P+| / C they share the mean's count.
    values = pos_part + neg_part * (present / num_classes)
    if inputs.bad is not None:
        values = _classes.poison(values, inputs.bad)
    return values, jax.lax.stop_gradient(count)


@_builtin("metric")
def proxy_anchor_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    proxies: ArrayLike,
    *,
    margin: ArrayLike = 0.1,
    alpha: ArrayLike = 32.0,
    block_size: int | None = None,
    axis_name: str | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Proxy-Anchor loss: each proxy is an anchor against all the batch's embeddings.

    .. math::

        L = \frac{1}{|P^+|} \sum_{c \in P^+}
              \log\Big(1 + \sum_{i \in X_c^+} e^{-\alpha(s_{ic} - \delta)}\Big)
          + \frac{1}{C} \sum_{c=1}^{C}
              \log\Big(1 + \sum_{i \in X_c^-} e^{\alpha(s_{ic} + \delta)}\Big)

    with :math:`s_{ic}` the cosine between embedding :math:`i` and proxy
    :math:`c`, :math:`X_c^+` (:math:`X_c^-`) the rows of (not of) class
    :math:`c`, :math:`P^+` the proxies with at least one positive row,
    :math:`\delta` = ``margin``.

    Convention: a batch loss (``"mean"`` is :math:`L`, PML's value). Its
    unreduced form ``(N,)`` splits each proxy's term among the rows in its
    log-sum-exp in proportion to their exponentials (the shares of a term sum
    to 1), the negative terms scaled by :math:`|P^+|/C`, so that ``"sum"``
    is :math:`|P^+| L` and ``"mean"`` divides by the (weighted) sum of the
    rows' positive shares, :math:`|P^+|` without weights. ``where`` removes
    rows from the batch; ``weights`` scale a row's shares (a weight of exactly
    0 removes the row like ``where``). With ``axis_name`` (inside
    ``shard_map``/``pmap``, the batch split over that axis, the proxies
    replicated) each proxy's sums, :math:`|P^+|` and the mean's count run
    over the global batch: the reduced loss and its gradient equal the
    single-device loss of the global batch, and ``"none"`` gives the local
    rows' shares of it.

    Args:
      embeddings: float ``(N, d)``; need not be normalised.
      labels: int ``(N,)`` class indices in ``[0, C)``.
      proxies: float ``(d, C)``, the Flax kernel layout (PML's ``proxies.T``).
      margin: :math:`\delta`; float or traced scalar.
      alpha: the scale :math:`\alpha > 0`; float or traced scalar.
      block_size: ``None`` (dense) or a static int: scan over blocks of that
        many proxies, never holding the ``(N, C)`` cosines.
      axis_name: mapped axis of ``shard_map``/``pmap`` over which the batch
        is split; ``None`` on one device.
      where: boolean ``(N,)``: rows to keep in the batch.
      weights: per-row weights ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` each row's share ``(N,)``.

    Raises:
      TypeError: integer ``embeddings`` or ``proxies``, non-integer ``labels``.
      ValueError: mismatched shapes, ``alpha <= 0``, a label out of range or
        an unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
      >>> proxies = jnp.eye(2)
      >>> # PML ProxyAnchorLoss(2, 2, alpha=4) with these proxies gives 1.98276
      >>> round(float(jaxloss.proxy_anchor_loss(x, jnp.array([0, 0, 1]), proxies,
      ...                                       alpha=4.0)), 4)
      1.9828

    References:
      Kim et al., `Proxy Anchor Loss for Deep Metric Learning
      <https://arxiv.org/abs/2003.13911>`_, 2020. Equivalent to
      ``pytorch_metric_learning.losses.ProxyAnchorLoss(C, d, margin=margin,
      alpha=alpha)`` with ``proxies = proxies.T``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(alpha, "alpha", low=0.0, low_inclusive=False)
    _checks.check_range(margin, "margin")
    in_batch = _reduce.rows_kept(where, weights, jnp.shape(embeddings)[:1])
    inputs = _cs.prepare(embeddings, labels, proxies, subcenters=1, where=in_batch,
                         kernel_name="proxies")
    kept = all_rows_if_none(in_batch, inputs.x.shape[0])
    values, count = _proxy_anchor_values(
        inputs, kept, _cs.scalar(margin, "margin", inputs.x),
        _cs.scalar(alpha, "alpha", inputs.x), check_block_size(block_size), axis_name)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               normalizer=count, axis_name=axis_name, dtype=inputs.dtype)


def _softmax_loss(embeddings: ArrayLike, labels: ArrayLike, kernel: ArrayLike, *,
                  kernel_name: str, scale, target_fn=_identity_target, subcenters: int = 1,
                  subcenters_name: str = "num_subcenters", pool=None,
                  block_size: int | None, where: ArrayLike | None,
                  weights: ArrayLike | None, reduction: str) -> Array:
    """Validation, the class-softmax kernel and the reduction of the per-row losses.
    ``scale(x)`` gives the logit scale in the compute dtype of ``x``."""
    _checks.check_reduction(reduction)
    inputs = _cs.prepare(embeddings, labels, kernel, subcenters=subcenters, where=where,
                         kernel_name=kernel_name, subcenters_name=subcenters_name)
    values = _cs.class_softmax_values(
        inputs, target_fn=target_fn,
        row_scale_fn=lambda x: jnp.broadcast_to(scale(x), x.shape[:1]),
        subcenters=subcenters, block_size=check_block_size(block_size), pool=pool)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=inputs.dtype)


@_builtin("metric")
def proxy_nca_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    proxies: ArrayLike,
    *,
    softmax_scale: ArrayLike = 1.0,
    block_size: int | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""ProxyNCA: NCA with one proxy per class, on normalised embeddings and proxies.

    .. math::

        \ell_i = -\log \frac{e^{-s \|\hat x_i - \hat p_{y_i}\|^2}}
                            {\sum_{c} e^{-s \|\hat x_i - \hat p_c\|^2}}
               = -\log \operatorname{softmax}_{y_i}(2 s \cos\theta_{i\cdot})

    (:math:`\|\hat x - \hat p\|^2 = 2 - 2\cos\theta`), ``s`` = ``softmax_scale``.

    Convention: PML's ``ProxyNCALoss`` (``LpDistance(power=2)`` on normalised
    vectors, the target proxy in the denominator). PML drops a row whose
    probability underflows to exactly 0; here the row keeps its (large,
    finite) loss.

    Args:
      embeddings: float ``(N, d)``; need not be normalised.
      labels: int ``(N,)`` class indices in ``[0, C)``.
      proxies: float ``(d, C)``, the Flax kernel layout (PML's ``proxies.T``).
      softmax_scale: ``s > 0``; float or traced scalar.
      block_size: ``None`` (dense) or a static int: scan over blocks of that
        many proxies.
      where: boolean ``(N,)``: rows to include.
      weights: per-row weights ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per row, ``(N,)``.

    Raises:
      TypeError: integer ``embeddings`` or ``proxies``, non-integer ``labels``.
      ValueError: mismatched shapes, ``softmax_scale <= 0``, a label out of
        range or an unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> # PML ProxyNCALoss(2, 2) with these proxies gives 0.12693
      >>> round(float(jaxloss.proxy_nca_loss(x, jnp.array([0, 1]), jnp.eye(2))), 4)
      0.1269

    References:
      Movshovitz-Attias et al., `No Fuss Distance Metric Learning using Proxies
      <https://arxiv.org/abs/1703.07464>`_, 2017. Equivalent to
      ``pytorch_metric_learning.losses.ProxyNCALoss(C, d,
      softmax_scale=softmax_scale)`` with ``proxies = proxies.T``.
    """
    _checks.check_range(softmax_scale, "softmax_scale", low=0.0, low_inclusive=False)
    return _softmax_loss(
        embeddings, labels, proxies, kernel_name="proxies",
        scale=lambda x: 2 * _cs.scalar(softmax_scale, "softmax_scale", x),
        block_size=block_size, where=where, weights=weights, reduction=reduction)


@_builtin("metric")
def normalized_softmax_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    kernel: ArrayLike,
    *,
    temperature: ArrayLike = 0.05,
    block_size: int | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Normalised softmax (NormFace): cross-entropy of cosine logits over a temperature.

    .. math::

        \ell_i = -\log \frac{e^{\cos\theta_{i y_i} / T}}{\sum_c e^{\cos\theta_{ic} / T}}

    with :math:`\cos\theta_{ic}` the cosine between embedding :math:`x_i` and
    kernel column :math:`w_c`.

    Convention: PML's ``NormalizedSoftmaxLoss`` (embeddings and columns of
    ``W`` normalised, default ``temperature = 0.05``); the same as
    :func:`jaxloss.cosface_loss` with ``margin = 0`` and ``scale = 1/T``.

    Args:
      embeddings: float ``(N, d)``; need not be normalised.
      labels: int ``(N,)`` class indices in ``[0, C)``.
      kernel: float ``(d, C)``, the Flax kernel layout (PML's ``W``).
      temperature: ``T > 0``; float or traced scalar.
      block_size: ``None`` (dense) or a static int: scan over blocks of that
        many classes.
      where: boolean ``(N,)``: rows to include.
      weights: per-row weights ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per row, ``(N,)``.

    Raises:
      TypeError: integer ``embeddings`` or ``kernel``, non-integer ``labels``.
      ValueError: mismatched shapes, ``temperature <= 0``, a label out of
        range or an unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [1.0, 1.0]])
      >>> # PML NormalizedSoftmaxLoss(2, 2, temperature=0.5) with this W gives 0.41004
      >>> round(float(jaxloss.normalized_softmax_loss(x, jnp.array([0, 1]), jnp.eye(2),
      ...                                             temperature=0.5)), 4)
      0.41

    References:
      Wang et al., `NormFace: L2 Hypersphere Embedding for Face Verification
      <https://arxiv.org/abs/1704.06369>`_, 2017; Zhai and Wu, `Classification
      is a Strong Baseline for Deep Metric Learning
      <https://arxiv.org/abs/1811.12649>`_, 2019. Equivalent to
      ``pytorch_metric_learning.losses.NormalizedSoftmaxLoss(C, d,
      temperature=temperature)`` with ``W = kernel``.
    """
    _checks.check_range(temperature, "temperature", low=0.0, low_inclusive=False)
    return _softmax_loss(
        embeddings, labels, kernel, kernel_name="kernel",
        scale=lambda x: 1 / _cs.scalar(temperature, "temperature", x),
        block_size=block_size, where=where, weights=weights, reduction=reduction)


@_builtin("metric")
def soft_triple_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    centers: ArrayLike,
    *,
    centers_per_class: int = 10,
    la: ArrayLike = 20.0,
    gamma: ArrayLike = 0.1,
    margin: ArrayLike = 0.01,
    block_size: int | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""SoftTriple: a softmax over classes, each class a soft mixture of ``K`` centres.

    .. math::

        S_{ic} = \sum_{k} \frac{e^{s_{ick}/\gamma}}{\sum_{k'} e^{s_{ick'}/\gamma}}
                 \, s_{ick}, \qquad
        \ell_i = -\log \frac{e^{\lambda (S_{i y_i} - \delta)}}
                 {e^{\lambda (S_{i y_i} - \delta)} + \sum_{c \ne y_i} e^{\lambda S_{ic}}}

    with :math:`s_{ick}` the cosine between embedding :math:`i` and centre
    :math:`k` of class :math:`c`, :math:`\lambda` = ``la``, :math:`\delta` =
    ``margin``.

    Convention: PML's ``SoftTripleLoss`` and its defaults; the paper's
    regulariser on the number of centres is not included (nor in PML).

    Args:
      embeddings: float ``(N, d)``; need not be normalised.
      labels: int ``(N,)`` class indices in ``[0, C)``.
      centers: float ``(d, C * K)``, column ``c * K + k`` (PML's ``fc``).
      centers_per_class: ``K``, a static int ``>= 1``.
      la: the logit scale :math:`\lambda > 0`; float or traced scalar.
      gamma: the temperature of the softmax over centres, ``> 0``.
      margin: :math:`\delta`; float or traced scalar.
      block_size: ``None`` (dense) or a static int: scan over blocks of that
        many classes (``block_size * K`` columns).
      where: boolean ``(N,)``: rows to include.
      weights: per-row weights ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per row, ``(N,)``.

    Raises:
      TypeError: integer ``embeddings`` or ``centers``, non-integer ``labels``
        or a non-int ``centers_per_class``.
      ValueError: mismatched shapes, a width not divisible by ``K``,
        ``la <= 0``, ``gamma <= 0``, a label out of range or an unknown
        ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> centers = jnp.array([[1.0, 0.6, 0.0, -0.6], [0.0, 0.8, 1.0, 0.8]])
      >>> # PML SoftTripleLoss(2, 2, centers_per_class=2, la=5) with this fc gives 0.18425
      >>> round(float(jaxloss.soft_triple_loss(x, jnp.array([0, 1]), centers,
      ...                                      centers_per_class=2, la=5.0)), 4)
      0.1843

    References:
      Qian et al., `SoftTriple Loss: Deep Metric Learning Without Triplet
      Sampling <https://arxiv.org/abs/1909.05235>`_, 2019. Equivalent to
      ``pytorch_metric_learning.losses.SoftTripleLoss(C, d, centers_per_class=K,
      la=la, gamma=gamma, margin=margin)`` with ``fc = centers``.
    """
    k = _checks.static_int(centers_per_class, "centers_per_class", low=1)
    _checks.check_range(la, "la", low=0.0, low_inclusive=False)
    _checks.check_range(gamma, "gamma", low=0.0, low_inclusive=False)
    _checks.check_range(margin, "margin")

    def pool(cos: Array) -> Array:                                    # [N, b, K] -> [N, b]
        inv_gamma = 1 / _checks.hyperparameter(gamma, "gamma", cos.dtype)
        return jnp.sum(jax.nn.softmax(cos * inv_gamma, axis=-1) * cos, axis=-1)

    return _softmax_loss(
        embeddings, labels, centers, kernel_name="centers", subcenters=k,
        subcenters_name="centers_per_class", pool=pool,
        target_fn=lambda cos, x: cos - _cs.scalar(margin, "margin", x),
        scale=lambda x: _cs.scalar(la, "la", x),
        block_size=block_size, where=where, weights=weights, reduction=reduction)

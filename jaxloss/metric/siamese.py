"""Siamese self-supervised losses without negatives: BYOL, SimSiam, Barlow Twins and VICReg.

Conventions:

* The two arguments are float ``(N, d)`` arrays with the same shape, row ``i``
  of both being the same sample (two views, or a prediction and its target).
* ``where`` and ``weights`` are per row ``(N,)``. BYOL and SimSiam are
  per-sample losses: ``where`` drops a row, ``weights`` weigh it. Barlow Twins
  and VICReg are properties of the whole batch: a row with ``where=False``
  *or a weight of exactly 0* is removed from the batch statistics, so
  ``where`` equals slicing the batch and a zero weight equals masking.
* Batch statistics take ``axis_name=None``: inside ``shard_map`` with the
  batch split over ``axis_name`` the means, variances and cross-correlations
  and the ``"mean"``/``"sum"`` reductions are ``psum``-ed, so the sharded
  loss equals the loss of the global batch (``reduction="none"`` returns the
  local rows' values).
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
    "simsiam_loss",
    "vicreg_loss",
]



# --------------------------------------------------------------------------------------
# BYOL and SimSiam (per-sample, stop-gradient on the target).
# --------------------------------------------------------------------------------------


def _stopped_cosine(p: Array, z: Array) -> Array:
    """``cos(p_i, stop_gradient(z_i))`` per row ``(N,)``; a zero-norm row gives 0."""
    z = jax.lax.stop_gradient(z)
    return jnp.sum(_common.l2_normalize(p) * _common.l2_normalize(z), axis=-1)


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
    q, z, _, dtype = _common.masked_views(online_predictions, target_projections,
                                          ("online_predictions", "target_projections"),
                                          where, None)
    return _reduce.reduce_loss(2 - 2 * _stopped_cosine(q, z), reduction=reduction,
                               where=where, weights=weights, dtype=dtype)


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
    p, z, _, dtype = _common.masked_views(predictions, projections,
                                          ("predictions", "projections"), where, None)
    return _reduce.reduce_loss(-_stopped_cosine(p, z), reduction=reduction, where=where,
                               weights=weights, dtype=dtype)


# --------------------------------------------------------------------------------------
# Barlow Twins and VICReg (batch statistics).
# --------------------------------------------------------------------------------------


def _batch_sum(x: Array, axis_name: str | None) -> Array:
    total = jnp.sum(x, axis=0)
    return total if axis_name is None else jax.lax.psum(total, axis_name)


def _row_weights(kept: Array | None, x: Array, axis_name: str | None) -> tuple[Array, Array]:
    """Per row 1 (kept) or 0 ``(N,)`` in ``x``'s dtype, and the global number of rows."""
    weight = _common.all_rows_if_none(kept, x.shape[0]).astype(x.dtype)   # [N]
    return weight, _batch_sum(weight, axis_name)


def _centered(x: Array, weight: Array, count: Array, axis_name: str | None) -> Array:
    """Rows minus the (masked, global) batch mean; absent rows set to 0."""
    mean = safe_div(_batch_sum(x, axis_name), count)                      # [d]
    return (x - mean[None, :]) * weight[:, None]


def _batch_gram(a: Array, b: Array, axis_name: str | None) -> Array:
    """``a^T b`` ``(d, d)`` summed over the rows of the global batch."""
    gram = a.T @ b
    return gram if axis_name is None else jax.lax.psum(gram, axis_name)


def _off_diagonal(matrix: Array) -> Array:
    """``matrix`` with its diagonal set to 0."""
    eye = jnp.eye(matrix.shape[0], dtype=jnp.bool_)
    return jnp.where(eye, jnp.zeros_like(matrix), matrix)


def _barlow_twins_values(x: Array, y: Array, kept: Array | None, lambd: Array,
                         axis_name: str | None) -> Array:
    """The batch's Barlow Twins loss on every row ``(N,)``."""
    weight, count = _row_weights(kept, x, axis_name)

    def standardize(z: Array) -> Array:
        centered = _centered(z, weight, count, axis_name)
        variance = safe_div(_batch_sum(jnp.square(centered), axis_name), count - 1)
        return centered / (safe_sqrt(variance) + 1e-6)[None, :]

    cross = safe_div(_batch_gram(standardize(x), standardize(y), axis_name), count)  # [d, d]
    total = (jnp.sum(jnp.square(1 - jnp.diagonal(cross)))
             + lambd * jnp.sum(jnp.square(_off_diagonal(cross))))
    return jnp.broadcast_to(total, weight.shape)


def _vicreg_values(x: Array, y: Array, kept: Array | None, invariance_lambda: Array,
                   variance_mu: Array, covariance_v: Array, eps: Array,
                   axis_name: str | None) -> Array:
    """Per row ``(N,)``: its invariance term plus the batch's variance and covariance terms."""
    weight, count = _row_weights(kept, x, axis_name)
    features = x.shape[1]

    def variance_and_covariance(z: Array) -> tuple[Array, Array]:
        centered = _centered(z, weight, count, axis_name)
        covariance = safe_div(_batch_gram(centered, centered, axis_name), count - 1)  # [d, d]
        std = jnp.sqrt(jnp.diagonal(covariance) + eps)
        variance_term = jnp.mean(jax.nn.relu(1 - std) / 2)
        return variance_term, jnp.sum(jnp.square(_off_diagonal(covariance))) / features

    variance_a, covariance_a = variance_and_covariance(x)
    variance_b, covariance_b = variance_and_covariance(y)
    batch_terms = (variance_mu * (variance_a + variance_b)
                   + covariance_v * (covariance_a + covariance_b))
    return invariance_lambda * jnp.mean(jnp.square(x - y), axis=-1) + batch_terms


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
    x, y, kept, dtype = _common.masked_views(embeddings_a, embeddings_b,
                                             ("embeddings_a", "embeddings_b"), where, weights)
    _checks.check_range(lambd, "lambd", low=0.0)
    lam = _checks.hyperparameter(lambd, "lambd", x.dtype)
    values = _barlow_twins_values(x, y, kept, lam, axis_name)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
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
    x, y, kept, dtype = _common.masked_views(embeddings_a, embeddings_b,
                                             ("embeddings_a", "embeddings_b"), where, weights)
    _checks.check_range(eps, "eps", low=0.0, low_inclusive=False)
    values = _vicreg_values(
        x, y, kept,
        _checks.hyperparameter(invariance_lambda, "invariance_lambda", x.dtype),
        _checks.hyperparameter(variance_mu, "variance_mu", x.dtype),
        _checks.hyperparameter(covariance_v, "covariance_v", x.dtype),
        _checks.hyperparameter(eps, "eps", x.dtype), axis_name)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               axis_name=axis_name, dtype=dtype)

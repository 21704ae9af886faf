"""Long-tailed classification: seesaw, LDAM, logit adjustment, class-balanced weights, OHEM.

Conventions (see the package docstring): logits carry the class axis at
``axis`` (last by default); labels are integer class indices of the logits'
shape without the class axis; ``ignore_index`` (torch's -100 by default)
drops a position from the value and from the mean's denominator, as in
``cross_entropy_loss``. ``class_counts`` are the caller's per-class sample
counts ``(C,)`` (accumulated over the training set, or over the batches seen
so far as mmdet's seesaw loss does); a count of 0 is treated as 1, so that an
empty class gives a finite loss. ``reduction="none"`` is per position.
Half-precision inputs are computed in float32 and returned in their dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._classes import (
    ClassInputs,
    log_probabilities,
    log_probability_of,
    poison,
    prepare_class_inputs,
    take_class,
)
from jaxloss._numerics import one_hot, x_times
from jaxloss.classification.cross_entropy import (
    _broadcast_class_axis,
    _check_ignore_index,
    _class_vector,
    _gather_class,
)
from jaxloss.registry import _builtin

__all__ = [
    "class_balanced_weights",
    "ldam_loss",
    "logit_adjusted_loss",
    "ohem_cross_entropy_loss",
    "seesaw_loss",
]


def _index_inputs(logits: ArrayLike, labels: ArrayLike, *, axis: int, where: ArrayLike | None,
                  ignore_index: int | None, loss: str) -> ClassInputs:
    """Validated logits ``[..., C]`` and integer labels ``[...]`` of an index-only loss."""
    if not jnp.issubdtype(jnp.asarray(labels).dtype, jnp.integer):
        raise TypeError(
            f"{loss} takes integer class indices as labels; got dtype "
            f"{jnp.asarray(labels).dtype}. Pass labels.argmax(axis) for one-hot labels."
        )
    return prepare_class_inputs(logits, labels, axis=axis, where=where, targets_name="labels",
                                ignore_index=ignore_index)


def _log_counts(class_counts: ArrayLike, num_classes: int, dtype: jnp.dtype) -> Array:
    """``log(max(n_c, 1))`` of per-class counts ``(C,)`` (non-negative, checked when concrete)."""
    counts = _class_vector(class_counts, "class_counts", num_classes, dtype)
    return jnp.log(jnp.maximum(counts, 1.0))


def _ignored_cross_entropy(adjusted: Array, labels: Array, ignore_index: int | None,
                           class_weight: Array | None = None) -> tuple[Array, Array | None]:
    """Per-position ``-w_y log softmax(adjusted)_y`` and the mean's normalizer (torch's
    weighted, ignore-aware mean), 0 at positions labelled ``ignore_index``."""
    values = -log_probability_of(adjusted, labels, from_logits=True)
    normalizer = class_weight
    if class_weight is not None:
        values = class_weight * values
    if ignore_index is not None:
        valid = labels != ignore_index
        values = jnp.where(valid, values, jnp.zeros_like(values))
        kept = valid.astype(values.dtype)
        normalizer = kept if normalizer is None else jnp.where(valid, normalizer, 0.0 * kept)
    return values, normalizer


@_builtin("classification")
def seesaw_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    class_counts: ArrayLike,
    *,
    p: ArrayLike = 0.8,
    q: ArrayLike = 2.0,
    eps: ArrayLike = 1e-2,
    ignore_index: int | None = -100,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Seesaw loss: cross-entropy whose negative logits are re-weighted by class frequency.

    .. math::
        \ell_i = -\log \frac{e^{z_y}}{e^{z_y} + \sum_{j \ne y} S_{yj}\, e^{z_j}},
        \quad S_{yj} = M_{yj} C_{yj},\quad
        M_{yj} = \min\!\Big(1, \frac{n_j}{n_y}\Big)^{p},\quad
        C_{yj} = \max\!\Big(1, \frac{\sigma_j}{\max(\sigma_y, \epsilon)}\Big)^{q}

    with :math:`n` the class counts and :math:`\sigma = \mathrm{softmax}(z)`.
    The mitigation factor :math:`M` lowers the penalty a rare class receives
    from the samples of frequent ones; the compensation factor :math:`C`
    raises it again where the rare class wins a misclassification. Computed
    in log space (``z_j + log S_yj``), finite at any logits.

    Convention (mmdet ``seesaw_ce_loss``): counts are clamped at 1; the
    softmax inside :math:`C` carries no gradient (mmdet detaches it).
    ``mean`` is the mean over positions not labelled ``ignore_index``.

    Args:
      logits: floating ``[..., C, ...]`` with the class axis at ``axis``.
      labels: int ``[...]`` class indices in ``[0, C)`` or ``ignore_index``.
      class_counts: ``(C,)`` non-negative sample counts per class.
      p: mitigation exponent, ``>= 0`` (0 disables it).
      q: compensation exponent, ``>= 0`` (0 disables it).
      eps: floor of :math:`\sigma_y` in the compensation ratio, ``> 0``.
      ignore_index: static int label to ignore; ``None`` disables it.
      axis: the class axis (static).
      where: boolean mask broadcastable to the per-position shape.
      weights: per-position weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-position losses (the
      shape of ``logits`` without the class axis, 0 at ignored positions).

    Raises:
      ValueError: labels of the wrong shape or out of range (eager; NaN under
        ``jit``), ``class_counts`` not ``(C,)`` or negative, negative ``p``
        or ``q``, ``eps <= 0``, an unknown ``reduction``.
      TypeError: integer ``logits`` or floating ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
      >>> counts = jnp.array([100.0, 10.0, 1.0])
      >>> float(jaxloss.seesaw_loss(logits, jnp.array([0, 1]), counts, p=0.0, q=0.0))  # CE
      0.39637...
      >>> float(jaxloss.seesaw_loss(logits, jnp.array([0, 1]), counts))
      0.19548...

    References:
      Wang et al., `Seesaw Loss for Long-Tailed Instance Segmentation
      <https://arxiv.org/abs/2008.10032>`_, CVPR 2021. Equivalent to mmdet
      ``seesaw_ce_loss(cls_score, labels, None, cum_samples=class_counts,
      num_classes=C, p=p, q=q, eps=eps, reduction="none")`` (mmdet's
      ``models/losses/seesaw_loss.py``).
    """
    _checks.check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index)
    inputs = _index_inputs(logits, labels, axis=axis, where=where, ignore_index=ignore_index,
                           loss="seesaw_loss")
    compute = inputs.scores.dtype
    _checks.check_range(p, "p", low=0.0)
    _checks.check_range(q, "q", low=0.0)
    _checks.check_range(eps, "eps", low=0.0, low_inclusive=False)
    p = _checks.hyperparameter(p, "p", compute)
    q = _checks.hyperparameter(q, "q", compute)
    eps = _checks.hyperparameter(eps, "eps", compute)
    log_n = _log_counts(class_counts, inputs.num_classes, compute)             # [C]
    scores, y = inputs.scores, inputs.targets
    log_n_y = _gather_class(log_n, y)[..., None]                               # [..., 1]
    log_n = _broadcast_class_axis(log_n, scores.shape)                          # [..., C]
    log_mitigation = p * jnp.minimum(log_n - log_n_y, 0.0)                     # [..., C]
    log_sigma = jax.lax.stop_gradient(log_probabilities(scores, from_logits=True))
    log_sigma_y = jnp.maximum(take_class(log_sigma, y), jnp.log(eps))[..., None]
    log_compensation = q * jnp.maximum(log_sigma - log_sigma_y, 0.0)           # [..., C]
    is_label = one_hot(y, inputs.num_classes, jnp.bool_)
    shift = jnp.where(is_label, 0.0, log_mitigation + log_compensation)
    values, normalizer = _ignored_cross_entropy(scores + shift, y, ignore_index)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               normalizer=normalizer, dtype=inputs.dtype)


@_builtin("classification")
def ldam_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    class_counts: ArrayLike,
    *,
    max_margin: ArrayLike = 0.5,
    scale: ArrayLike = 30.0,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = -100,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""LDAM: cross-entropy with a label-distribution-aware margin on the true class.

    .. math::
        \ell_i = -w_y \log \frac{e^{s (z_y - \Delta_y)}}
                                 {e^{s (z_y - \Delta_y)} + \sum_{j \ne y} e^{s z_j}},
        \qquad \Delta_c = m_{\max} \Big(\frac{\min_k n_k}{n_c}\Big)^{1/4}

    so the rarest class gets the largest margin :math:`m_{\max}` and the
    margins fall as :math:`n_c^{-1/4}`. For deferred re-weighting (LDAM-DRW)
    pass ``class_weights`` (e.g. :func:`class_balanced_weights`) after the
    first stage of training.

    Convention (the authors' code): the logits are expected to be cosine
    similarities (a normalised last layer), hence the ``scale``; counts are
    clamped at 1. With ``class_weights``, ``mean`` divides by the sum of
    the labels' class weights (torch ``cross_entropy(weight=)``).

    Args:
      logits: floating ``[..., C, ...]`` with the class axis at ``axis``.
      labels: int ``[...]`` class indices in ``[0, C)`` or ``ignore_index``.
      class_counts: ``(C,)`` non-negative sample counts per class.
      max_margin: the margin of the rarest class, ``>= 0``.
      scale: the factor ``s`` applied to the margined logits, ``> 0``.
      class_weights: ``(C,)`` non-negative per-class weights, or ``None``.
      ignore_index: static int label to ignore; ``None`` disables it.
      axis: the class axis (static).
      where: boolean mask broadcastable to the per-position shape.
      weights: per-position weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-position losses.

    Raises:
      ValueError: labels of the wrong shape or out of range (eager; NaN under
        ``jit``), ``class_counts`` or ``class_weights`` not ``(C,)`` or
        negative, negative ``max_margin``, ``scale <= 0``, an unknown
        ``reduction``.
      TypeError: integer ``logits`` or floating ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[0.9, 0.1], [0.2, 0.6]])
      >>> counts = jnp.array([1000.0, 10.0])
      >>> float(jaxloss.ldam_loss(logits, jnp.array([0, 1]), counts, max_margin=0.0,
      ...                         scale=1.0))  # plain cross-entropy
      0.44205...
      >>> float(jaxloss.ldam_loss(logits, jnp.array([0, 1]), counts))
      1.5242...

    References:
      Cao et al., `Learning Imbalanced Datasets with Label-Distribution-Aware
      Margin Loss <https://arxiv.org/abs/1906.07413>`_, NeurIPS 2019. The
      authors' ``LDAMLoss(cls_num_list=class_counts, max_m=max_margin,
      weight=class_weights, s=scale)(x, target)`` (kaidic/LDAM-DRW
      ``losses.py``) equals ``reduction="mean"``.
    """
    _checks.check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index)
    inputs = _index_inputs(logits, labels, axis=axis, where=where, ignore_index=ignore_index,
                           loss="ldam_loss")
    compute = inputs.scores.dtype
    _checks.check_range(max_margin, "max_margin", low=0.0)
    _checks.check_range(scale, "scale", low=0.0, low_inclusive=False)
    max_margin = _checks.hyperparameter(max_margin, "max_margin", compute)
    scale = _checks.hyperparameter(scale, "scale", compute)
    log_n = _log_counts(class_counts, inputs.num_classes, compute)             # [C]
    margins = max_margin * jnp.exp(0.25 * (jnp.min(log_n) - log_n))            # [C]
    y = inputs.targets
    is_label = one_hot(y, inputs.num_classes, jnp.bool_)
    margined = jnp.where(is_label, inputs.scores - _gather_class(margins, y)[..., None],
                         inputs.scores)
    class_weight = None
    if class_weights is not None:
        w = _class_vector(class_weights, "class_weights", inputs.num_classes, compute)
        class_weight = _gather_class(w, y)
    values, normalizer = _ignored_cross_entropy(scale * margined, y, ignore_index, class_weight)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               normalizer=normalizer, dtype=inputs.dtype)


@_builtin("classification")
def logit_adjusted_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    class_priors: ArrayLike,
    *,
    tau: ArrayLike = 1.0,
    ignore_index: int | None = -100,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Logit-adjusted cross-entropy: the cross-entropy of ``logits + tau * log(priors)``.

    .. math::
        \ell_i = -\log \frac{\pi_y^{\tau} e^{z_y}}{\sum_j \pi_j^{\tau} e^{z_j}}

    Training with the class priors added to the logits makes the plain
    ``argmax(logits)`` at test time the balanced-error classifier. At
    ``tau = 1`` it is the balanced softmax (Ren et al. 2020). Only the
    ratios of the priors matter, so class counts may be passed as they are.

    Convention: a prior of 0 is replaced by the smallest normal number of
    the compute dtype (about ``1.2e-38`` in float32), so the shift stays
    finite (about ``-87 tau``) and so do value and gradient; an integer
    target of such a class then costs about ``87 tau`` more.
    ``ignore_index`` applies to index targets.

    Args:
      logits: floating ``[..., C, ...]`` with the class axis at ``axis``.
      targets: int ``[...]`` class indices (or ``ignore_index``), or floating
        per-class probabilities of the shape of ``logits``.
      class_priors: ``(C,)`` non-negative class priors or counts.
      tau: the scaling of the adjustment (1 in the paper); any real value.
      ignore_index: static int label to ignore; ``None`` disables it.
      axis: the class axis (static).
      where: boolean mask broadcastable to the per-position shape.
      weights: per-position weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-position losses.

    Raises:
      ValueError: targets of the wrong shape or out of range (eager; NaN
        under ``jit``), ``class_priors`` not ``(C,)`` or negative, an unknown
        ``reduction``.
      TypeError: integer ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[1.0, 1.0]])
      >>> priors = jnp.array([0.75, 0.25])
      >>> float(jaxloss.logit_adjusted_loss(logits, jnp.array([1]), priors))  # -log(1/4)
      1.3862...

    References:
      Menon et al., `Long-tail learning via logit adjustment
      <https://arxiv.org/abs/2007.07314>`_, ICLR 2021 (logit-adjusted loss);
      Ren et al., `Balanced Meta-Softmax for Long-Tailed Visual Recognition
      <https://arxiv.org/abs/2007.10740>`_, NeurIPS 2020 (``tau = 1``).
      Equivalent to ``torch.nn.functional.cross_entropy(logits + tau *
      torch.log(priors), target)``.
    """
    _checks.check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index)
    inputs = prepare_class_inputs(logits, targets, axis=axis, where=where,
                                  ignore_index=ignore_index)
    compute = inputs.scores.dtype
    tau = _checks.hyperparameter(tau, "tau", compute)
    priors = _class_vector(class_priors, "class_priors", inputs.num_classes, compute)
    log_prior = jnp.log(jnp.maximum(priors, jnp.finfo(compute).tiny))          # [C]
    adjusted = inputs.scores + tau * _broadcast_class_axis(log_prior, inputs.scores.shape)
    normalizer = None
    if inputs.is_index:
        values, normalizer = _ignored_cross_entropy(adjusted, inputs.targets, ignore_index)
    else:
        log_p = log_probabilities(adjusted, from_logits=True)
        values = -jnp.sum(x_times(inputs.targets, log_p), axis=-1)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               normalizer=normalizer, dtype=inputs.dtype)


def class_balanced_weights(class_counts: ArrayLike, *, beta: ArrayLike = 0.9999) -> Array:
    r"""Class-balanced weights from the effective number of samples, for ``class_weights=``.

    .. math::
        w_c \propto \frac{1 - \beta}{1 - \beta^{n_c}}, \qquad \sum_c w_c = C

    :math:`(1 - \beta^{n}) / (1 - \beta)` is the effective number of samples
    of a class with :math:`n` samples: ``beta = 0`` weights every present
    class equally, ``beta -> 1`` approaches inverse frequency. Computed as
    ``(1 - beta) / -expm1(n log1p(-(1 - beta)))``; a Python ``beta`` has its
    ``1 - beta`` taken in double precision first (``0.9999`` is not exact in
    float32).

    Convention: a class with count 0 gets weight 0 (it has no samples to
    weigh), and the weights of the others sum to ``C`` (Cui et al.'s code).
    All counts 0 gives all weights 0.

    Args:
      class_counts: ``(C,)`` non-negative sample counts (integer or float).
      beta: in ``[0, 1)``; Python float or JAX scalar.

    Returns:
      float32 (or the counts' floating dtype) weights ``(C,)``.

    Raises:
      ValueError: ``class_counts`` not one-dimensional, negative counts or
        ``beta`` outside ``[0, 1)`` (when concrete).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> jaxloss.class_balanced_weights(jnp.array([10, 10, 0]), beta=0.5)
      Array([1.5, 1.5, 0. ], dtype=float32)

    References:
      Cui et al., `Class-Balanced Loss Based on Effective Number of Samples
      <https://arxiv.org/abs/1901.05555>`_, CVPR 2019 (the authors'
      ``CB_loss``: ``weights / sum(weights) * no_of_classes``).
    """
    counts = jnp.asarray(class_counts)
    if counts.ndim != 1:
        raise ValueError(
            f"class_counts must hold one count per class, shape (C,); got shape {counts.shape}."
        )
    _checks.check_range(class_counts, "class_counts", low=0.0)
    _checks.check_range(beta, "beta", low=0.0, high=1.0, high_inclusive=False)
    dtype = counts.dtype if jnp.issubdtype(counts.dtype, jnp.floating) else jnp.float32
    dtype, result = _checks.compute_dtype(counts.astype(dtype))
    counts = counts.astype(dtype)
    if isinstance(beta, (int, float)):
        one_minus_beta = jnp.asarray(1.0 - beta, dtype)
    else:
        one_minus_beta = 1.0 - _checks.hyperparameter(beta, "beta", dtype)
    present = counts > 0
    # 1 - beta^n, with the n = 0 classes replaced by 1 (double where: no 0/0 in the gradient).
    n = jnp.where(present, counts, jnp.ones_like(counts))
    denominator = -jnp.expm1(n * jnp.log1p(-one_minus_beta))
    raw = jnp.where(present, one_minus_beta / denominator, jnp.zeros_like(counts))
    total = jnp.sum(raw)
    safe_total = jnp.where(total > 0, total, jnp.ones_like(total))
    return (raw * (counts.shape[0] / safe_total)).astype(result)


@_builtin("classification")
def ohem_cross_entropy_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    threshold: ArrayLike = 0.7,
    min_kept: ArrayLike = 100000,
    ignore_index: int | None = -100,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Online hard example mining: cross-entropy over the pixels the model finds hardest.

    A pixel is kept when the probability of its true class is below

    .. math::
        \max\big(\text{threshold},\ p_{(k)}\big), \qquad
        k = \min(\text{min\_kept} \cdot N,\ n - 1)

    where :math:`p_{(k)}` is the :math:`k`-th smallest (from 0) true-class
    probability among the :math:`n` valid pixels of the whole batch and
    :math:`N` is the batch size (``logits.shape[0]``). The loss is the
    cross-entropy of the kept pixels; ``mean`` is their mean (``weights``:
    their weighted mean). The selection carries no gradient.

    Convention (mmseg ``OHEMPixelSampler`` with its threshold): pixels
    labelled ``ignore_index``, masked by ``where`` or weighted 0 are not
    valid pixels (they leave the batch before the ranking); nothing valid
    gives 0. mmseg's decode head then averages over all pixels; here
    ``mean`` averages over the kept ones. Batch-wide: ``reduction="none"``
    gives each pixel's cross-entropy, 0 where not kept.

    Args:
      logits: floating ``[N, ..., C, ...]`` with the class axis at ``axis``
        (e.g. ``(N, H, W, C)``).
      labels: int ``[N, ...]`` class indices in ``[0, C)`` or ``ignore_index``.
      threshold: probability below which a pixel is always kept, in ``[0, 1]``.
      min_kept: the number of pixels per image kept at least (``>= 0``;
        Python int or JAX integer scalar).
      ignore_index: static int label to ignore; ``None`` disables it.
      axis: the class axis (static).
      where: boolean mask broadcastable to the per-pixel shape.
      weights: per-pixel weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-pixel losses (the
      shape of ``logits`` without the class axis), 0 at pixels not kept.

    Raises:
      ValueError: labels of the wrong shape or out of range (eager; NaN under
        ``jit``), ``threshold`` outside ``[0, 1]``, negative ``min_kept``, an
        unknown ``reduction``.
      TypeError: integer ``logits`` or floating ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[4.0, 0.0], [0.0, 0.0], [0.0, 4.0]])
      >>> # p_true: 0.98, 0.5, 0.018: only the last two are below 0.7
      >>> float(jaxloss.ohem_cross_entropy_loss(logits, jnp.array([0, 0, 0]), min_kept=0))
      2.3556...

    References:
      Shrivastava et al., `Training Region-based Object Detectors with Online
      Hard Example Mining <https://arxiv.org/abs/1604.03540>`_, CVPR 2016.
      mmseg ``OHEMPixelSampler(thresh=threshold, min_kept=min_kept)``
      (``mmseg/structures/sampler/ohem_pixel_sampler.py``) gives the kept
      pixels; the loss is their mean cross-entropy.
    """
    _checks.check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index)
    inputs = _index_inputs(logits, labels, axis=axis, where=where, ignore_index=ignore_index,
                           loss="ohem_cross_entropy_loss")
    compute = inputs.scores.dtype
    _checks.check_range(threshold, "threshold", low=0.0, high=1.0)
    _checks.check_range(min_kept, "min_kept", low=0)
    threshold = _checks.hyperparameter(threshold, "threshold", compute)
    min_kept = jnp.asarray(min_kept)
    if min_kept.ndim != 0 or not jnp.issubdtype(min_kept.dtype, jnp.integer):
        raise TypeError(f"min_kept must be an integer scalar; got {min_kept!r}.")
    y = inputs.targets
    shape = inputs.position_shape
    if not shape:
        raise ValueError("logits must have a batch axis besides the class axis; got a single "
                         f"position of shape {jnp.shape(logits)}.")
    log_p_true = log_probability_of(inputs.scores, y, from_logits=True)      # [N, ...]
    valid = jnp.ones(shape, jnp.bool_) if ignore_index is None else y != ignore_index
    rows = _reduce.rows_kept(where, weights, shape)
    if rows is not None:
        valid = valid & rows
    p_true = jax.lax.stop_gradient(jnp.exp(log_p_true))
    # The k-th smallest valid probability: invalid pixels sort last (as +inf).
    ranked = jnp.sort(jnp.where(valid, p_true, jnp.inf).reshape(-1))
    count = jnp.sum(valid.astype(jnp.int32))
    k = jnp.minimum(min_kept.astype(jnp.int32) * shape[0], count - 1)
    kth = jnp.take(ranked, jnp.clip(k, 0, ranked.shape[0] - 1))
    cut = jnp.maximum(jnp.where(count > 0, kth, jnp.zeros_like(kth)), threshold)
    kept = valid & (p_true < cut)
    values = jnp.where(kept, -log_p_true, jnp.zeros_like(log_p_true))
    if inputs.bad is not None:  # out-of-range labels under jit: NaN, also in the mean
        kept = kept | inputs.bad
        values = poison(values, inputs.bad)
    return _reduce.reduce_loss(values, reduction=reduction, where=kept, weights=weights,
                               dtype=inputs.dtype, align="leading")

"""Distillation and consistency losses: knowledge distillation, AugMix's JSD, cosine distance.

Conventions (see the package docstring): the class (or feature) axis is
``axis`` (last by default); every array has the same shape; ``reduction="none"``
is per position (that axis reduced). Half-precision inputs are computed in
float32 and returned in their dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._classes import log_probabilities, prepare_class_inputs
from jaxloss._numerics import safe_div, safe_sqrt, x_times
from jaxloss.registry import _builtin

__all__ = ["cosine_distance_loss", "distillation_loss", "jsd_consistency_loss"]

# timm's JsdCrossEntropy clamps the mixture distribution at 1e-7 before its log.
_MIXTURE_FLOOR = 1e-7


@_builtin("classification")
def distillation_loss(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    *,
    temperature: ArrayLike = 4.0,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Knowledge distillation: the KL divergence between softened teacher and student.

    .. math::
        \ell_i = T^2\, \mathrm{KL}\big(\mathrm{softmax}(t_i / T)\,\big\|\,
                 \mathrm{softmax}(s_i / T)\big)
               = T^2 \sum_c q_{ic} (\log q_{ic} - \log p_{ic})

    summed over the class axis. The factor :math:`T^2` keeps the gradient's
    magnitude independent of the temperature (Hinton et al.), so the loss
    can be added to the hard-label cross-entropy with a fixed weight. Both
    log-softmaxes are computed stably; a teacher probability that underflows
    to 0 contributes 0 (value and gradient finite at any logits).

    Convention: the teacher carries no gradient (``stop_gradient``, mmdet's
    ``detach_target=True``); the sum over classes is timm's; mmdet's
    ``KnowledgeDistillationKLDivLoss`` averages over classes (divide by
    ``C`` to get it).

    Args:
      student_logits: floating ``[..., C, ...]`` with the class axis at ``axis``.
      teacher_logits: floating, the same shape.
      temperature: ``T > 0`` (Python float or JAX scalar).
      axis: the class axis (static).
      where: boolean mask broadcastable to the per-position shape.
      weights: per-position weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` the per-position losses (the
      shape of the logits without the class axis).

    Raises:
      ValueError: shapes differ, ``temperature <= 0``, an unknown ``reduction``.
      TypeError: integer logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> student = jnp.array([[0.0, 0.0]])
      >>> teacher = jnp.array([[8.0, -8.0]])  # 16 KL((0.982, 0.018) || (0.5, 0.5))
      >>> float(jaxloss.distillation_loss(student, teacher))
      9.6488...

    References:
      Hinton et al., `Distilling the Knowledge in a Neural Network
      <https://arxiv.org/abs/1503.02531>`_, 2015. Equivalent to
      ``T**2 * torch.nn.functional.kl_div(log_softmax(s / T), softmax(t /
      T), reduction="none").sum(-1)`` (timm's distillation; mmdet
      ``knowledge_distillation_kl_div_loss(s, t, T, class_reduction="sum")``).
    """
    _checks.check_reduction(reduction)
    _checks.float_input(teacher_logits, "teacher_logits")
    inputs = prepare_class_inputs(student_logits, teacher_logits, axis=axis, where=where,
                                  logits_name="student_logits", targets_name="teacher_logits")
    compute = inputs.scores.dtype
    _checks.check_range(temperature, "temperature", low=0.0, low_inclusive=False)
    temperature = _checks.hyperparameter(temperature, "temperature", compute)
    log_p = log_probabilities(inputs.scores / temperature, from_logits=True)
    log_q = log_probabilities(jax.lax.stop_gradient(inputs.targets) / temperature,
                              from_logits=True)
    q = jnp.exp(log_q)
    values = temperature**2 * jnp.sum(x_times(q, log_q - log_p), axis=-1)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=inputs.dtype)


@_builtin("classification")
def jsd_consistency_loss(
    clean_logits: ArrayLike,
    aug1_logits: ArrayLike,
    aug2_logits: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""AugMix's Jensen-Shannon consistency between a clean image and two augmentations.

    .. math::
        \ell_i = \frac13 \sum_{k=1}^{3} \mathrm{KL}(p^{(k)}_i \,\|\, M_i),
        \qquad M_i = \mathrm{clip}\Big(\frac13 \sum_k p^{(k)}_i,\ 10^{-7},\ 1\Big)

    with :math:`p^{(k)} = \mathrm{softmax}` of the clean, first and second
    augmented logits. It is the consistency term only: add the cross-entropy
    of the clean logits (and the weight, 12 in the paper) yourself.

    Convention (timm ``JsdCrossEntropy``): the mixture is clamped at
    ``1e-7`` before its log (the gradient flows through it where it is not
    clamped); :math:`0 \log 0 = 0`.

    Args:
      clean_logits: floating ``[..., C, ...]`` with the class axis at ``axis``.
      aug1_logits: floating, the same shape.
      aug2_logits: floating, the same shape.
      axis: the class axis (static).
      where: boolean mask broadcastable to the per-sample shape.
      weights: per-sample weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per sample (the
      shape of the logits without the class axis, ``(N,)`` for ``(N, C)``).

    Raises:
      ValueError: shapes differ, an unknown ``reduction``.
      TypeError: integer logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> same = jnp.array([[1.0, 2.0, 3.0]])
      >>> float(jaxloss.jsd_consistency_loss(same, same, same))  # identical: 0
      0.0

    References:
      Hendrycks et al., `AugMix: A Simple Data Processing Method to Improve
      Robustness and Uncertainty <https://arxiv.org/abs/1912.02781>`_, ICLR
      2020. timm ``JsdCrossEntropy(num_splits=3, alpha=1)`` minus its
      cross-entropy term equals ``reduction="mean"`` here
      (``timm/loss/jsd.py``).
    """
    _checks.check_reduction(reduction)
    clean = _checks.float_input(clean_logits, "clean_logits")
    aug1 = _checks.float_input(aug1_logits, "aug1_logits")
    aug2 = _checks.float_input(aug2_logits, "aug2_logits")
    _checks.check_same_shape(aug1, "aug1_logits", clean, "clean_logits")
    _checks.check_same_shape(aug2, "aug2_logits", clean, "clean_logits")
    _checks.check_rank(clean, "clean_logits", min_rank=1)
    axis = _checks.normalize_axis(axis, clean.ndim)
    compute, dtype = _checks.compute_dtype(clean, aug1, aug2)
    stacked = jnp.moveaxis(jnp.stack([clean, aug1, aug2]), axis + 1, -1).astype(compute)
    if where is not None:  # [3, ..., C]: sanitise the masked positions of all three
        positions = _checks.broadcast_mask(where, stacked.shape[1:-1], "where")
        (stacked,) = _reduce.mask_inputs(positions[None, ..., None], stacked)
    log_p = log_probabilities(stacked, from_logits=True)                     # [3, ..., C]
    p = jnp.exp(log_p)
    mixture = jnp.mean(p, axis=0, keepdims=True)                               # [1, ..., C]
    log_m = jnp.log(jnp.clip(mixture, _MIXTURE_FLOOR, 1.0))
    values = jnp.sum(x_times(p, log_p - log_m), axis=(0, -1)) / 3.0           # [...]
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("classification")
def cosine_distance_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    eps: ArrayLike = 1e-8,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Cosine distance: one minus the cosine similarity over ``axis``.

    .. math::
        \ell_i = 1 - \frac{\langle x_i, y_i \rangle}
                 {\sqrt{\max(\|x_i\|^2, \epsilon)}\,\sqrt{\max(\|y_i\|^2, \epsilon)}}

    in ``[0, 2]``. Convention (optax): ``eps`` clips each *squared* norm, so
    a zero vector has similarity 0 and distance 1, with a finite gradient;
    ``eps = 0`` is allowed and still finite (the zero vector is then taken as
    similarity 0, with a zero gradient).

    Args:
      predictions: floating ``[..., D, ...]`` with the vector axis at ``axis``.
      targets: floating, the same shape.
      eps: floor of the squared norms, ``>= 0``.
      axis: the vector axis (static).
      where: boolean mask broadcastable to the per-vector shape.
      weights: per-vector weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per vector (the
      shape without ``axis``).

    Raises:
      ValueError: shapes differ, negative ``eps``, an unknown ``reduction``.
      TypeError: integer ``predictions`` or ``targets``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [1.0, 1.0]])
      >>> y = jnp.array([[0.0, 2.0], [2.0, 2.0]])
      >>> jaxloss.cosine_distance_loss(x, y, reduction="none")
      Array([1., 0.], dtype=float32)

    References:
      Equivalent to ``optax.losses.cosine_distance(predictions, targets,
      epsilon=eps)`` (optax 0.2.8), and to ``1 -
      torch.nn.functional.cosine_similarity`` up to where the floor goes.
    """
    _checks.check_reduction(reduction)
    x, y, dtype = _checks.elementwise_pair(predictions, targets)
    _checks.check_rank(x, "predictions", min_rank=1)
    axis = _checks.normalize_axis(axis, x.ndim)
    _checks.check_range(eps, "eps", low=0.0)
    eps = _checks.hyperparameter(eps, "eps", x.dtype)
    x, y = jnp.moveaxis(x, axis, -1), jnp.moveaxis(y, axis, -1)
    if where is not None:
        positions = _checks.broadcast_mask(where, x.shape[:-1], "where")
        x, y = _reduce.mask_inputs(positions[..., None], x, y)
    x_norm = safe_sqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps))
    y_norm = safe_sqrt(jnp.maximum(jnp.sum(y * y, axis=-1, keepdims=True), eps))
    values = 1.0 - jnp.sum(safe_div(x, x_norm) * safe_div(y, y_norm), axis=-1)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)

"""Margin-softmax losses: ArcFace, CosFace, SphereFace and sub-centre ArcFace.

Conventions: ``embeddings`` are float ``(N, d)``, ``labels`` int ``(N,)`` in
``[0, C)``, and ``kernel`` is the class matrix in the Flax kernel layout
``(d, C)`` (``(d, C * K)`` for sub-centres, column ``c * K + k``), the same
layout as pytorch-metric-learning's ``W``. Embeddings and kernel columns are
L2-normalised (torch's ``F.normalize``, ``eps = 1e-12``: a zero vector gives
cosines of 0), the target class's cosine gets the margin, every logit is
multiplied by ``scale``, and the loss is the softmax cross-entropy of the
target, one value per row: ``reduction="none"`` gives ``(N,)`` and ``"mean"``
is the mean over rows (PML's ``MeanReducer``).

Margins are in radians (PML's ArcFace takes degrees). ``scale`` and the
additive margins are Python floats or traced JAX scalars, differentiable.
The target's modified cosine is computed without ``arccos`` (``cos(theta + m)
= cos t cos m - sin t sin m`` with ``sin t = sqrt(1 - cos^2 t)`` through a
safe square root), so gradients stay finite at ``cos theta = +-1``, e.g. for an
embedding exactly on its class weight, where PML's ``arccos`` gives a
non-finite gradient.

With ``block_size`` the ``(N, C)`` logits are never held: a checkpointed scan
over blocks of ``block_size`` classes (``dynamic_slice``-s of the kernel in
its own layout: no transposed or padded copy) folds each block into an online
log-sum-exp of the non-target logits and picks up each row's target cosine
from the block that holds it; the margin is applied once per row after the
scan. Memory is ``O(N * block_size + N * d)`` beside the kernel itself and its
gradient: ArcFace with 10^6 classes, ``N = 1024``, ``d = 512`` and
``block_size=8192`` compiles ``value_and_grad`` (embeddings and kernel) with
~131 MiB of XLA temp memory on CPU, where the dense logits alone are 4 GiB.
The dense path (``block_size=None``) is the same computation as one block.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import safe_sqrt
from jaxloss.metric import _class_softmax as _cs
from jaxloss.metric._common import check_block_size
from jaxloss.registry import _builtin

__all__ = [
    "arcface_loss",
    "cosface_loss",
    "sphereface_loss",
    "subcenter_arcface_loss",
]

# PML's ArcFaceLoss default, 28.6 degrees (~ the paper's 0.5 rad), in radians.
_ARCFACE_MARGIN = math.radians(28.6)


def _clip_unit(c: Array) -> Array:
    """``c`` clamped to ``[-1, 1]`` with torch's clamp gradient (1 at the bounds, 0 beyond)."""
    one = jnp.ones_like(c)
    return jnp.where(c > 1, one, jnp.where(c < -1, -one, c))


def _arcface_target(margin: ArrayLike) -> Callable[[Array, Array], Array]:
    """PML's ArcFace target: ``cos(theta + m)`` while ``theta <= pi - m``, else
    ``cos theta - m sin m`` (keeps the logit decreasing in theta), without ``arccos``."""

    def target(cos: Array, x: Array) -> Array:
        m = _cs.scalar(margin, "margin", x)
        c = _clip_unit(cos)
        # sin(theta) >= 0 for theta in [0, pi]; the safe root has a 0 (not inf) gradient
        # at |c| = 1, so an embedding on its class weight has a finite gradient.
        sin_theta = safe_sqrt((1 - c) * (1 + c))
        cos_m, sin_m = jnp.cos(m), jnp.sin(m)
        # theta <= pi - m  <=>  cos(theta) >= cos(pi - m) = -cos(m)   (theta, m in [0, pi])
        return jnp.where(c >= -cos_m, c * cos_m - sin_theta * sin_m, c - m * sin_m)

    return target


# --------------------------------------------------------------------------------------
# Public losses.
# --------------------------------------------------------------------------------------


@_builtin("metric")
def arcface_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    kernel: ArrayLike,
    *,
    scale: ArrayLike = 64.0,
    margin: ArrayLike = _ARCFACE_MARGIN,
    block_size: int | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""ArcFace: softmax cross-entropy with an additive angular margin on the target.

    .. math::

        \ell_i = -\log \frac{e^{s\,\psi(\theta_{i y_i})}}
                 {e^{s\,\psi(\theta_{i y_i})} + \sum_{j \ne y_i} e^{s \cos\theta_{ij}}},
        \qquad
        \psi(\theta) = \begin{cases} \cos(\theta + m) & \theta \le \pi - m \\
                       \cos\theta - m \sin m & \text{otherwise} \end{cases}

    with :math:`\cos\theta_{ij}` the cosine between embedding :math:`x_i` and
    kernel column :math:`w_j`.

    Convention: PML's ``ArcFaceLoss`` (its fallback branch past
    :math:`\pi - m`, its defaults ``scale = 64`` and ``margin = 28.6`` degrees,
    here in radians: ``math.radians(28.6) = 0.4992``). :math:`\cos(\theta + m)`
    is computed as :math:`\cos\theta\cos m - \sin\theta \sin m` with a safe
    square root for :math:`\sin\theta`, so the gradient is finite at
    :math:`\cos\theta = \pm 1` (there :math:`d\psi/d\cos\theta` is taken as
    :math:`\cos m`; the exact one-sided derivative is infinite).

    Args:
      embeddings: float ``(N, d)``; need not be normalised.
      labels: int ``(N,)`` class indices in ``[0, C)`` (checked when concrete;
        under ``jit`` an out-of-range label gives NaN at its row).
      kernel: float ``(d, C)`` class weights, Flax kernel layout (PML's ``W``).
      scale: logit scale ``s > 0``; float or traced scalar (differentiable).
      margin: additive angular margin ``m`` in radians, in ``[0, pi)``; float
        or traced scalar (differentiable).
      block_size: ``None`` computes the ``(N, C)`` logits at once; an int
        scans over blocks of that many classes and never holds them (same
        value and gradient; use it for many classes).
      where: boolean ``(N,)``: rows to include.
      weights: per-row weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per row, ``(N,)``.

    Raises:
      TypeError: integer ``embeddings`` or ``kernel``, or non-integer ``labels``.
      ValueError: mismatched shapes, ``scale <= 0``, ``margin`` outside
        ``[0, pi)``, a label out of range, or an unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [1.0, 1.0]])
      >>> kernel = jnp.eye(2)
      >>> round(float(jaxloss.arcface_loss(x, jnp.array([0, 1]), kernel,
      ...                                  scale=2.0, margin=0.5)), 4)
      0.6831

    References:
      Deng et al., `ArcFace: Additive Angular Margin Loss for Deep Face
      Recognition <https://arxiv.org/abs/1801.07698>`_, 2019. Equivalent to
      ``pytorch_metric_learning.losses.ArcFaceLoss(C, d, margin=degrees(margin),
      scale=scale)`` with ``W = kernel``.
    """
    _checks.check_range(scale, "scale", low=0.0, low_inclusive=False)
    _checks.check_range(margin, "margin", low=0.0, high=math.pi, high_inclusive=False)
    _checks.check_reduction(reduction)
    inputs = _cs.prepare(embeddings, labels, kernel, subcenters=1, where=where)
    values = _cs.class_softmax_values(inputs, target_fn=_arcface_target(margin),
                                      row_scale_fn=_cs.constant_scale(scale), subcenters=1,
                                      block_size=check_block_size(block_size))
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=inputs.dtype)


@_builtin("metric")
def cosface_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    kernel: ArrayLike,
    *,
    scale: ArrayLike = 64.0,
    margin: ArrayLike = 0.35,
    block_size: int | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""CosFace (large margin cosine loss): an additive cosine margin on the target.

    .. math::

        \ell_i = -\log \frac{e^{s(\cos\theta_{i y_i} - m)}}
                 {e^{s(\cos\theta_{i y_i} - m)} + \sum_{j \ne y_i} e^{s \cos\theta_{ij}}}

    Convention: PML's ``CosFaceLoss`` and its defaults (``scale = 64``,
    ``margin = 0.35``).

    Args:
      embeddings: float ``(N, d)``; need not be normalised.
      labels: int ``(N,)`` class indices in ``[0, C)`` (checked when concrete;
        under ``jit`` an out-of-range label gives NaN at its row).
      kernel: float ``(d, C)`` class weights, Flax kernel layout (PML's ``W``).
      scale: logit scale ``s > 0``; float or traced scalar (differentiable).
      margin: cosine margin ``m >= 0``; float or traced scalar (differentiable).
      block_size: ``None`` computes the ``(N, C)`` logits at once; an int
        scans over blocks of that many classes and never holds them.
      where: boolean ``(N,)``: rows to include.
      weights: per-row weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per row, ``(N,)``.

    Raises:
      TypeError: integer ``embeddings`` or ``kernel``, or non-integer ``labels``.
      ValueError: mismatched shapes, ``scale <= 0``, ``margin < 0``, a label
        out of range, or an unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [1.0, 1.0]])
      >>> kernel = jnp.eye(2)
      >>> round(float(jaxloss.cosface_loss(x, jnp.array([0, 1]), kernel,
      ...                                  scale=2.0, margin=0.5)), 4)
      0.8133

    References:
      Wang et al., `CosFace: Large Margin Cosine Loss for Deep Face Recognition
      <https://arxiv.org/abs/1801.09414>`_, 2018. Equivalent to
      ``pytorch_metric_learning.losses.CosFaceLoss(C, d, margin=margin,
      scale=scale)`` with ``W = kernel``.
    """
    _checks.check_range(scale, "scale", low=0.0, low_inclusive=False)
    _checks.check_range(margin, "margin", low=0.0)

    def target(cos: Array, x: Array) -> Array:
        return cos - _cs.scalar(margin, "margin", x)

    _checks.check_reduction(reduction)
    inputs = _cs.prepare(embeddings, labels, kernel, subcenters=1, where=where)
    values = _cs.class_softmax_values(inputs, target_fn=target,
                                      row_scale_fn=_cs.constant_scale(scale), subcenters=1,
                                      block_size=check_block_size(block_size))
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=inputs.dtype)


def _chebyshev(c: Array, degree: int) -> Array:
    """``T_degree(c) = cos(degree * arccos c)`` by the three-term recurrence: a polynomial,
    smooth at ``c = +-1`` (``degree`` is a small static integer)."""
    previous, current = jnp.ones_like(c), c
    for _ in range(degree - 1):
        previous, current = current, 2 * c * current - previous
    return current


@_builtin("metric")
def sphereface_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    kernel: ArrayLike,
    *,
    scale: ArrayLike = 1.0,
    margin: int = 4,
    block_size: int | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""SphereFace (A-Softmax): a multiplicative angular margin on the target.

    .. math::

        \ell_i = -\log \frac{e^{s \|x_i\| \psi(\theta_{i y_i})}}
                 {e^{s \|x_i\| \psi(\theta_{i y_i})}
                  + \sum_{j \ne y_i} e^{s \|x_i\| \cos\theta_{ij}}},
        \qquad \psi(\theta) = (-1)^k \cos(m\theta) - 2k,\;
        k = \lfloor m\theta / \pi \rfloor

    Convention: PML's ``SphereFaceLoss``: logits are cosines times the
    embedding's norm (kernel columns normalised) times ``scale``; its defaults
    ``margin = 4``, ``scale = 1``. :math:`\cos(m\theta)` is the Chebyshev
    polynomial :math:`T_m(\cos\theta)` (PML's multiple-angle sum), so the
    gradient is finite at :math:`\cos\theta = \pm 1`; :math:`k` carries no
    gradient.

    Args:
      embeddings: float ``(N, d)``; their norms scale the logits.
      labels: int ``(N,)`` class indices in ``[0, C)`` (checked when concrete;
        under ``jit`` an out-of-range label gives NaN at its row).
      kernel: float ``(d, C)`` class weights, Flax kernel layout (PML's ``W``).
      scale: logit scale ``s > 0``; float or traced scalar (differentiable).
      margin: the angle multiplier ``m``, a static Python int ``>= 1``
        (structural: it is the degree of a polynomial; PML truncates it to an
        int too).
      block_size: ``None`` computes the ``(N, C)`` logits at once; an int
        scans over blocks of that many classes and never holds them.
      where: boolean ``(N,)``: rows to include.
      weights: per-row weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per row, ``(N,)``.

    Raises:
      TypeError: integer ``embeddings`` or ``kernel``, non-integer ``labels``,
        or a ``margin`` that is not a static int.
      ValueError: mismatched shapes, ``scale <= 0``, ``margin < 1``, a label
        out of range, or an unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [1.0, 1.0]])
      >>> kernel = jnp.eye(2)
      >>> round(float(jaxloss.sphereface_loss(x, jnp.array([0, 1]), kernel,
      ...                                     margin=2)), 4)
      0.8133

    References:
      Liu et al., `SphereFace: Deep Hypersphere Embedding for Face Recognition
      <https://arxiv.org/abs/1704.08063>`_, 2017. Equivalent to
      ``pytorch_metric_learning.losses.SphereFaceLoss(C, d, margin=margin,
      scale=scale)`` with ``W = kernel``.
    """
    _checks.check_range(scale, "scale", low=0.0, low_inclusive=False)
    m = _checks.static_int(margin, "margin", low=1)

    def target(cos: Array, x: Array) -> Array:
        theta = jnp.arccos(jax.lax.stop_gradient(_clip_unit(cos)))
        k = jax.lax.stop_gradient(jnp.floor(theta * m / math.pi))  # theta in [k pi/m, ...)
        sign = 1 - 2 * jnp.mod(k, 2)                                  # (-1)^k
        return sign * _chebyshev(cos, m) - 2 * k

    def row_scale(x: Array) -> Array:
        norm = safe_sqrt(jnp.sum(jnp.square(x), axis=-1))           # [N], finite grad at 0
        return _cs.scalar(scale, "scale", x) * norm

    _checks.check_reduction(reduction)
    inputs = _cs.prepare(embeddings, labels, kernel, subcenters=1, where=where)
    values = _cs.class_softmax_values(inputs, target_fn=target, row_scale_fn=row_scale,
                                      subcenters=1, block_size=check_block_size(block_size))
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=inputs.dtype)


@_builtin("metric")
def subcenter_arcface_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    kernel: ArrayLike,
    *,
    num_subcenters: int = 3,
    scale: ArrayLike = 64.0,
    margin: ArrayLike = _ARCFACE_MARGIN,
    block_size: int | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Sub-centre ArcFace: ArcFace on each class's closest of ``K`` sub-centres.

    .. math::

        \cos\theta_{ij} = \max_{k < K} \cos(x_i, w_{jK + k}),

    then :func:`arcface_loss`'s formula with those class cosines.

    Convention: PML's ``SubCenterArcFaceLoss`` (``sub_centers = 3``,
    ``scale = 64``, ``margin = 28.6`` degrees, here ``math.radians(28.6)``
    radians). Kernel column ``c * K + k`` is sub-centre ``k`` of class ``c``
    (PML's ``W`` layout). Ties in the max share the gradient (torch picks one).

    Args:
      embeddings: float ``(N, d)``; need not be normalised.
      labels: int ``(N,)`` class indices in ``[0, C)`` (checked when concrete;
        under ``jit`` an out-of-range label gives NaN at its row).
      kernel: float ``(d, C * K)``, Flax kernel layout.
      num_subcenters: ``K``, a static int ``>= 1``.
      scale: logit scale ``s > 0``; float or traced scalar (differentiable).
      margin: additive angular margin in radians, in ``[0, pi)``; float or
        traced scalar (differentiable).
      block_size: ``None`` computes the ``(N, C * K)`` cosines at once; an int
        scans over blocks of that many classes (``block_size * K`` columns).
      where: boolean ``(N,)``: rows to include.
      weights: per-row weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per row, ``(N,)``.

    Raises:
      TypeError: integer ``embeddings`` or ``kernel``, non-integer ``labels``,
        or a non-int ``num_subcenters``.
      ValueError: mismatched shapes, a kernel width not divisible by ``K``,
        ``scale <= 0``, ``margin`` outside ``[0, pi)``, a label out of range,
        or an unknown ``reduction``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[1.0, 0.0], [1.0, 1.0]])
      >>> kernel = jnp.array([[1.0, 0.0, 0.0, 1.0], [0.0, -1.0, 1.0, 0.0]])
      >>> round(float(jaxloss.subcenter_arcface_loss(
      ...     x, jnp.array([0, 1]), kernel, num_subcenters=2, scale=2.0, margin=0.5)), 4)
      1.0148

    References:
      Deng et al., `Sub-center ArcFace: Boosting Face Recognition by Large-scale
      Noisy Web Faces <https://www.ecva.net/papers/eccv_2020/papers_ECCV/papers/
      123560715.pdf>`_, 2020. Equivalent to
      ``pytorch_metric_learning.losses.SubCenterArcFaceLoss(num_classes=C,
      embedding_size=d, sub_centers=K, margin=degrees(margin), scale=scale)``
      with ``W = kernel``.
    """
    k = _checks.static_int(num_subcenters, "num_subcenters", low=1)
    _checks.check_range(scale, "scale", low=0.0, low_inclusive=False)
    _checks.check_range(margin, "margin", low=0.0, high=math.pi, high_inclusive=False)
    _checks.check_reduction(reduction)
    inputs = _cs.prepare(embeddings, labels, kernel, subcenters=k, where=where)
    values = _cs.class_softmax_values(inputs, target_fn=_arcface_target(margin),
                                      row_scale_fn=_cs.constant_scale(scale), subcenters=k,
                                      block_size=check_block_size(block_size))
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=inputs.dtype)

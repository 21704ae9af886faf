"""Weightings without an adaptive history: static weights, uncertainty, geometric mean."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._numerics import safe_div
from jaxloss.weighting._common import F32, float_hyperparameter, num_tasks_of, task_losses
from jaxloss.weighting.base import EmptyState, LossWeighting

__all__ = [
    "geometric_mean",
    "static",
    "uncertainty",
]


def static(weights: ArrayLike | Sequence[float]) -> LossWeighting:
    r"""Fixed task weights: the weighted sum of the task losses.

    .. math:: \text{total} = \sum_k w_k L_k

    Args:
      weights: float ``(K,)``, non-negative (a Python sequence or an array; a
        traced array works, e.g. a schedule evaluated inside ``jit``).

    Returns:
      A :class:`LossWeighting` with ``params = ()`` and an :class:`EmptyState`;
      ``update`` returns ``weights`` as the weights.

    Raises:
      ValueError: ``weights`` is not a non-empty vector, is negative, or its
        length differs from ``num_tasks`` / the number of losses.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss.weighting as weighting
      >>> w = weighting.static([1.0, 0.5])
      >>> params, state = w.init(2)
      >>> total, weights, state = w.update(jnp.array([2.0, 4.0]), params, state)
      >>> float(total)  # 1 * 2 + 0.5 * 4
      4.0

    References:
      The linear-scalarisation baseline of every multi-task paper; LibMTL
      ``EW`` (equal weights, all ones).
    """
    _checks.check_range(weights, "weights", low=0.0)
    weights = _checks.hyperparameter(jnp.asarray(weights), "weights", F32, scalar=False)
    if weights.ndim != 1 or weights.shape[0] == 0:
        raise ValueError(f"weights must be a non-empty vector (K,); got shape {weights.shape}.")
    num = weights.shape[0]

    def init(num_tasks: int) -> tuple[tuple[()], EmptyState]:
        if num_tasks_of(num_tasks) != num:
            raise ValueError(f"static weighting has {num} weights but num_tasks={num_tasks}.")
        return (), EmptyState()

    def update(losses: ArrayLike, params: Any, state: EmptyState,
               **extra: Any) -> tuple[Array, Array, EmptyState]:
        del params, extra
        losses = task_losses(losses, num)
        return jnp.sum(weights * losses), weights, state

    return LossWeighting(init, update)


def uncertainty(*, half: bool = False, init_log_variance: ArrayLike = 0.0) -> LossWeighting:
    r"""Homoscedastic uncertainty weighting with learnable log-variances.

    With :math:`s_k = \log \sigma_k^2` learned jointly with the model:

    .. math:: \text{total} = \sum_k e^{-s_k} L_k + s_k \quad (\text{default}),
       \qquad \text{total} = \sum_k \tfrac12 e^{-s_k} L_k + \tfrac12 s_k
       \quad (\text{half=True})

    ``half=True`` is the Gaussian-likelihood form of Kendall et al. (their
    regression case, :math:`\frac{1}{2\sigma^2} L + \log\sigma`) and LibMTL's
    ``UW``; the default is the form most re-implementations use. Both have the
    same optimum :math:`s_k = \log L_k` and differ only by the factor 1/2. The
    gradients are :math:`\partial/\partial s_k = 1 - e^{-s_k} L_k` (times 1/2)
    and :math:`\partial/\partial L_k = e^{-s_k}` (times 1/2).

    Args:
      half: use the 1/2 form.
      init_log_variance: initial :math:`s_k` (scalar or ``(K,)``); 0 gives
        weights 1.

    Returns:
      A :class:`LossWeighting` whose ``params`` are the float32 ``(K,)``
      log-variances (train them with the model's optimizer: differentiate
      ``total`` with respect to them) and whose state is an
      :class:`EmptyState`. ``weights`` are :math:`e^{-s_k}` (or half that).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss.weighting as weighting
      >>> w = weighting.uncertainty()
      >>> log_vars, state = w.init(2)
      >>> losses = jnp.array([1.0, 3.0])
      >>> grad = jax.grad(lambda s: w.update(losses, s, state)[0])(log_vars)
      >>> grad.tolist()  # 1 - exp(0) * L
      [0.0, -2.0]

    References:
      Kendall, Gal and Cipolla, `Multi-Task Learning Using Uncertainty to
      Weigh Losses for Scene Geometry and Semantics
      <https://arxiv.org/abs/1705.07115>`_, CVPR 2018. LibMTL
      ``weighting.UW`` (the ``half=True`` form).
    """
    if not isinstance(half, bool):
        raise TypeError(f"half must be a static bool; got {half!r}.")
    _checks.check_range(init_log_variance, "init_log_variance")
    scale = 0.5 if half else 1.0

    def init(num_tasks: int) -> tuple[Array, EmptyState]:
        num = num_tasks_of(num_tasks)
        start = _checks.hyperparameter(init_log_variance, "init_log_variance", F32, scalar=False)
        if start.ndim > 1 or (start.ndim == 1 and start.shape[0] != num):
            raise ValueError(
                f"init_log_variance must be a scalar or have shape ({num},); got {start.shape}."
            )
        return jnp.broadcast_to(start, (num,)), EmptyState()

    def update(losses: ArrayLike, params: ArrayLike, state: EmptyState,
               **extra: Any) -> tuple[Array, Array, EmptyState]:
        del extra
        log_vars = _checks.float_input(params, "params (the log-variances)").astype(F32)
        losses = task_losses(losses, None)
        if log_vars.shape != losses.shape:
            raise ValueError(
                f"params (the log-variances) must have shape {losses.shape}; got {log_vars.shape}."
            )
        precision = scale * jnp.exp(-log_vars)
        total = jnp.sum(precision * losses + scale * log_vars)
        return total, jax.lax.stop_gradient(precision), state

    return LossWeighting(init, update)


def geometric_mean(*, eps: ArrayLike = 0.0) -> LossWeighting:
    r"""Geometric-mean loss: the K-th root of the product of the task losses.

    .. math:: \text{total} = \Bigl(\prod_k (L_k + \epsilon)\Bigr)^{1/K}
       = \exp\Bigl(\tfrac1K \sum_k \log(L_k + \epsilon)\Bigr)

    computed in log space (no overflow or underflow of the product). Its
    gradient weights each task by :math:`\text{total} / (K (L_k + \epsilon))`,
    which is what ``weights`` returns: a task's weight grows as its loss
    falls relative to the others, so the scale of each loss does not matter.

    Convention at zero: the losses must be non-negative. If any
    :math:`L_k + \epsilon \le 0` the total is 0 with a zero gradient (the
    exact gradient there is 0 for the other tasks and infinite for that one).
    Pass ``eps > 0`` for a total that stays positive and differentiable.

    Args:
      eps: :math:`\epsilon \ge 0` added to every loss.

    Returns:
      A :class:`LossWeighting` with ``params = ()`` and an :class:`EmptyState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss.weighting as weighting
      >>> w = weighting.geometric_mean()
      >>> params, state = w.init(2)
      >>> total, weights, _ = w.update(jnp.array([1.0, 4.0]), params, state)
      >>> round(float(total), 5), [round(v, 5) for v in weights.tolist()]  # sqrt(4)
      (2.0, [1.0, 0.25])

    References:
      Chennupati et al., `MultiNet++: Multi-Stream Feature Aggregation and
      Geometric Loss Strategy for Multi-Task Learning
      <https://arxiv.org/abs/1904.08492>`_, CVPR Workshops 2019. LibMTL
      ``weighting.GLS``.
    """
    eps = float_hyperparameter(eps, "eps", low=0.0)

    def init(num_tasks: int) -> tuple[tuple[()], EmptyState]:
        num_tasks_of(num_tasks)
        return (), EmptyState()

    def update(losses: ArrayLike, params: Any, state: EmptyState,
               **extra: Any) -> tuple[Array, Array, EmptyState]:
        del params, extra
        losses = task_losses(losses, None) + eps
        positive = jnp.all(losses > 0)
        safe = jnp.where(losses > 0, losses, jnp.ones_like(losses))
        total = jnp.where(positive, jnp.exp(jnp.mean(jnp.log(safe))), 0.0)
        weights = safe_div(jax.lax.stop_gradient(total) * jnp.ones_like(losses),
                           losses.shape[0] * jax.lax.stop_gradient(losses))
        return total, weights, state

    return LossWeighting(init, update)

"""Weightings that balance the scales of the losses: DB-MTL and smooth Tchebycheff (STCH)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._numerics import safe_div
from jaxloss.weighting._common import (
    F32,
    float_hyperparameter,
    grad_norms,
    num_tasks_of,
    require_shared_grads,
    task_losses,
)
from jaxloss.weighting.base import LossWeighting

__all__ = [
    "DBMTLState",
    "STCHState",
    "db_mtl",
    "stch",
]


class DBMTLState(NamedTuple):
    """DB-MTL's moving average of the log-loss gradient norms and its step count.

    Example:
      >>> import jaxloss.weighting as weighting
      >>> weighting.db_mtl().init(2)[1].norms.tolist()
      [0.0, 0.0]

    References:
      See :func:`db_mtl`.
    """

    norms: Array  # (K,) float32: the moving average of ||grad_W log(L_k + eps)||
    steps: Array  # int32: updates taken


class STCHState(NamedTuple):
    """STCH's step count and the sum and number of the losses averaged into the nadir point.

    Example:
      >>> import jaxloss.weighting as weighting
      >>> weighting.stch().init(2)[1].steps.tolist()
      0

    References:
      See :func:`stch`.
    """

    nadir_sum: Array  # (K,) float32: sum of the losses seen in the nadir window
    nadir_count: Array  # int32: how many
    steps: Array  # int32: updates taken


def db_mtl(*, beta: ArrayLike = 0.9, beta_sigma: ArrayLike = 0.0,
           eps: ArrayLike = 1e-8) -> LossWeighting:
    r"""DB-MTL: log losses (scale balance) weighted to equal gradient norms (magnitude balance).

    .. math:: \text{total} = \sum_k \alpha_k \log(L_k + \epsilon), \qquad
       \alpha_k = \frac{\max_j \hat n_j}{\hat n_k + \epsilon}, \qquad
       \hat n_k \leftarrow n_k + \beta_t(\hat n_k - n_k),\ \beta_t = \beta / t^{\sigma}

    with :math:`n_k = \lVert \nabla_W \log(L_k + \epsilon) \rVert =
    \lVert \nabla_W L_k \rVert / (L_k + \epsilon)` on the shared parameters
    ``W`` (:math:`\hat n` starts at 0, the step ``t`` at 1). The logarithm
    makes the loss scale irrelevant (:math:`\nabla \log L = \nabla L / L`);
    :math:`\alpha` then scales every task's log-gradient up to the largest
    norm, so each task moves the shared parameters as much as the strongest.
    The :math:`\alpha_k` are constants of the step (no gradient).

    ``update(losses, params, state, *, shared_grads)`` needs
    ``shared_grads``: the Jacobian of the raw task losses with respect to the
    shared parameters (leaves with a leading task axis ``K``, what
    ``jax.jacrev(task_losses)(shared_params)`` gives), as :func:`gradnorm`.

    **Deviation, documented:** LibMTL keeps the moving average of the
    log-loss gradient *vectors* (``K x P`` floats) and steps along
    :math:`\sum_k \alpha_k \hat g_k`; a loss weighting cannot step along
    past gradients, so here the moving average is of their norms and the
    step is along this batch's log-loss gradients (the model optimizer's
    momentum averages them). With ``beta = 0`` the two are identical.

    Args:
      beta: the moving-average rate :math:`\beta` in [0, 1) (LibMTL's
        ``DB_beta``, 0.9).
      beta_sigma: :math:`\sigma \ge 0`, the decay of the rate with the step
        (LibMTL's ``DB_beta_sigma``, 0).
      eps: :math:`\epsilon > 0` inside the logarithm and the ratio (LibMTL's 1e-8).

    Returns:
      A :class:`LossWeighting` with ``params = ()`` and a :class:`DBMTLState`;
      ``weights`` are :math:`\alpha_k / (L_k + \epsilon)`.

    Raises:
      TypeError: ``shared_grads`` is missing.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss.weighting as weighting
      >>> w = weighting.db_mtl(beta=0.0, eps=0.0)
      >>> params, state = w.init(2)
      >>> jac = jnp.array([[30.0, 40.0], [0.0, 0.1]])   # |grad L| = 50 and 0.1
      >>> total, weights, state = w.update(jnp.array([100.0, 0.5]), params, state,
      ...                                  shared_grads=jac)
      >>> [round(v, 4) for v in weights.tolist()]  # |grad log L| = 0.5, 0.2: alpha = 1, 2.5
      [0.01, 5.0]

    References:
      Lin et al., `Dual-Balancing for Multi-Task Learning
      <https://arxiv.org/abs/2308.12029>`_, 2023, Algorithm 1. LibMTL
      ``weighting.DB_MTL`` (``DB_beta``, ``DB_beta_sigma``).
    """
    _checks.check_range(beta, "beta", low=0.0, high=1.0, high_inclusive=False)
    beta = _checks.hyperparameter(beta, "beta", F32)
    beta_sigma = float_hyperparameter(beta_sigma, "beta_sigma", low=0.0)
    eps = float_hyperparameter(eps, "eps", low=0.0)

    def init(num_tasks: int) -> tuple[tuple[()], DBMTLState]:
        num = num_tasks_of(num_tasks)
        return (), DBMTLState(norms=jnp.zeros((num,), F32), steps=jnp.zeros((), jnp.int32))

    def update(losses: ArrayLike, params: Any, state: DBMTLState, *,
               shared_grads: Any = None, **extra: Any) -> tuple[Array, Array, DBMTLState]:
        del params, extra
        require_shared_grads(shared_grads, "db_mtl")
        num = state.norms.shape[0]
        losses = task_losses(losses, num)
        shifted = losses + eps
        observed = jax.lax.stop_gradient(shifted)
        norms = safe_div(grad_norms(shared_grads, num), observed)   # ||grad log(L_k + eps)||
        steps = state.steps + 1
        rate = beta / steps.astype(F32) ** beta_sigma
        averaged = norms + rate * (state.norms - norms)
        alpha = jnp.max(averaged) / (averaged + eps)
        alpha = jnp.where(jnp.max(averaged) > 0, alpha, jnp.ones_like(alpha))
        total = jnp.sum(alpha * jnp.log(shifted))
        weights = safe_div(alpha, observed)
        return total, weights, DBMTLState(norms=averaged, steps=steps)

    return LossWeighting(init, update)


def stch(*, mu: ArrayLike = 1.0, warmup_steps: int = 0, nadir_steps: int | None = None,
         eps: ArrayLike = 1e-20) -> LossWeighting:
    r"""Smooth Tchebycheff scalarisation: a soft maximum of the normalised log losses.

    .. math:: \text{total} = K\mu \log \sum_k \exp\Big(\frac{\log(L_k / z_k + \epsilon)}{\mu}\Big)

    a smooth version of :math:`\max_k \log(L_k / z_k)` (the Tchebycheff
    scalarisation; :math:`\mu \to 0` gives the maximum): the task furthest
    above its reference point :math:`z_k` gets most of the weight. The
    reference ``z`` (the *nadir* point) is the mean of the losses over the
    last ``nadir_steps`` of ``warmup_steps`` warm-up steps, during which the
    total is :math:`\sum_k \log(L_k + \epsilon)` (LibMTL's warm-up epochs,
    counted here in calls to ``update``); without warm-up ``z = 1``. The
    state counts the steps and accumulates the nadir point.

    Args:
      mu: the smoothing :math:`\mu > 0` (LibMTL's ``STCH_mu``, 1).
      warmup_steps: warm-up calls (static int >= 0; LibMTL: ``STCH_warmup_epoch``
        epochs, plus the one its nadir point is averaged over).
      nadir_steps: the last warm-up calls averaged into ``z`` (static,
        1..warmup_steps); default all of them.
      eps: :math:`\epsilon` inside the logarithms (LibMTL's 1e-20).

    Returns:
      A :class:`LossWeighting` with ``params = ()`` and a :class:`STCHState`;
      ``weights`` are ``d total / d losses``:
      :math:`K \operatorname{softmax}_k(\cdot/\mu) / (L_k + \epsilon z_k)` after
      the warm-up.

    Raises:
      ValueError: ``nadir_steps`` outside ``1..warmup_steps``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss.weighting as weighting
      >>> w = weighting.stch(mu=1.0)
      >>> params, state = w.init(2)
      >>> total, weights, state = w.update(jnp.array([1.0, 3.0]), params, state)
      >>> round(float(total), 4), [round(v, 4) for v in weights.tolist()]  # 2 log(1 + 3)
      (2.7726, [0.5, 0.5])

    References:
      Lin et al., `Smooth Tchebycheff Scalarization for Multi-Objective
      Optimization <https://arxiv.org/abs/2402.19078>`_, ICML 2024. LibMTL
      ``weighting.STCH`` (``STCH_mu``, ``STCH_warmup_epoch``); the authors'
      ``Xi-L/STCH``.
    """
    mu = float_hyperparameter(mu, "mu", low=0.0, low_inclusive=False)
    warmup = _checks.static_int(warmup_steps, "warmup_steps", low=0)
    window = warmup if nadir_steps is None else _checks.static_int(nadir_steps, "nadir_steps",
                                                                   low=1)
    if warmup and window > warmup:
        raise ValueError(f"nadir_steps must lie in 1..warmup_steps={warmup}; got {window}.")
    if not warmup and nadir_steps is not None:
        raise ValueError("nadir_steps needs warmup_steps >= 1: the nadir point is averaged "
                         "over the last warm-up steps.")
    eps = float_hyperparameter(eps, "eps", low=0.0)

    def init(num_tasks: int) -> tuple[tuple[()], STCHState]:
        num = num_tasks_of(num_tasks)
        return (), STCHState(nadir_sum=jnp.zeros((num,), F32),
                             nadir_count=jnp.zeros((), jnp.int32),
                             steps=jnp.zeros((), jnp.int32))

    def update(losses: ArrayLike, params: Any, state: STCHState,
               **extra: Any) -> tuple[Array, Array, STCHState]:
        del params, extra
        num = state.nadir_sum.shape[0]
        losses = task_losses(losses, num)
        observed = jax.lax.stop_gradient(losses)
        in_warmup = state.steps < warmup
        # warm-up: the sum of the log losses
        warm_total = jnp.sum(jnp.log(losses + eps))
        warm_weights = 1.0 / (observed + eps)
        # after: the smooth maximum of the normalised log losses
        nadir = jnp.where(state.nadir_count > 0,
                          state.nadir_sum / jnp.maximum(state.nadir_count, 1).astype(F32), 1.0)
        scaled = jnp.log(losses / nadir + eps) / mu
        smooth_total = num * mu * jax.nn.logsumexp(scaled)
        share = jax.nn.softmax(jax.lax.stop_gradient(scaled))
        smooth_weights = num * share / (observed + eps * nadir)
        total = jnp.where(in_warmup, warm_total, smooth_total)
        weights = jnp.where(in_warmup, warm_weights, smooth_weights)
        averaged = in_warmup & (state.steps >= warmup - window)
        new_state = STCHState(
            nadir_sum=jnp.where(averaged, state.nadir_sum + observed, state.nadir_sum),
            nadir_count=state.nadir_count + averaged.astype(jnp.int32),
            steps=state.steps + 1)
        return total, weights, new_state

    return LossWeighting(init, update)

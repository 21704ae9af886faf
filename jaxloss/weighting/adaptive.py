"""Weightings that adapt from the losses' history: DWA, GradNorm, random weighting, FAMO."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._numerics import safe_div
from jaxloss.weighting._common import (
    F32,
    InitFn,
    UpdateFn,
    float_hyperparameter,
    grad_norms,
    num_tasks_of,
    require_shared_grads,
    task_losses,
)
from jaxloss.weighting.base import LossWeighting

# torch.optim.Adam's defaults, which FAMO's official code uses for its logits
_ADAM_B1, _ADAM_B2, _ADAM_EPS = 0.9, 0.999, 1e-8

__all__ = [
    "DWAState",
    "FamoState",
    "FamoWeighting",
    "GradNormState",
    "RandomWeightingState",
    "dwa",
    "famo",
    "gradnorm",
    "random_weighting",
]


class DWAState(NamedTuple):
    """DWA's history: ``previous[0]`` is ``L(t-1)``, ``previous[1]`` is ``L(t-2)``.

    Example:
      >>> import jaxloss.weighting as weighting
      >>> weighting.dwa().init(3)[1].previous.shape
      (2, 3)

    References:
      See :func:`dwa`.
    """

    previous: Array  # (2, K) float32: the last two period-mean losses
    accumulated: Array  # (K,) float32: sum of the losses in the current period
    in_period: Array  # int32: calls accumulated in the current period
    periods: Array  # int32: completed periods (history entries recorded)


class GradNormState(NamedTuple):
    """GradNorm's task weights ``w(t)``, the initial losses ``L(0)`` and the step.

    Example:
      >>> import jaxloss.weighting as weighting
      >>> weighting.gradnorm().init(2)[1].weights.tolist()
      [1.0, 1.0]

    References:
      See :func:`gradnorm`.
    """

    weights: Array  # (K,) float32, sum K
    initial_losses: Array  # (K,) float32
    count: Array  # type: ignore[assignment]  # public field shadows tuple.count; int32


class RandomWeightingState(NamedTuple):
    """Random loss weighting's PRNG key.

    Example:
      >>> import jaxloss.weighting as weighting
      >>> weighting.random_weighting(key=0).init(2)[1]._fields
      ('key',)

    References:
      See :func:`random_weighting`.
    """

    key: Array


class FamoState(NamedTuple):
    """FAMO's task logits ``xi``, the last losses, whether they await a logit step, and the
    logit optimizer's moments and its step count (Adam's; the moments unused by
    ``optimizer="sgd"``).

    Example:
      >>> import jaxloss.weighting as weighting
      >>> weighting.famo().init(2)[1].logits.tolist()
      [0.0, 0.0]

    References:
      See :func:`famo`.
    """

    logits: Array  # (K,) float32
    previous_losses: Array  # (K,) float32
    pending: Array  # bool: previous_losses not yet used for a logit step
    mu: Array  # (K,) float32: Adam's first moment of the logits' gradient
    nu: Array  # (K,) float32: Adam's second moment
    steps: Array  # int32: logit steps taken


class FamoWeighting(NamedTuple):
    """FAMO's :class:`LossWeighting`, plus ``update_logits(losses_after, state) -> state``.

    Example:
      >>> import jaxloss.weighting as weighting
      >>> sorted(weighting.famo()._fields)
      ['init', 'update', 'update_logits']

    References:
      See :func:`famo`.
    """

    init: InitFn
    update: UpdateFn
    update_logits: Callable[[ArrayLike, Any], Any]


def dwa(*, temperature: ArrayLike = 2.0, period: int = 1) -> LossWeighting:
    r"""Dynamic weight average: weight each task by its recent rate of descent.

    .. math:: w_k(t) = K\,\frac{\exp(r_k(t-1)/T)}{\sum_i \exp(r_i(t-1)/T)},
       \qquad r_k(t-1) = \frac{L_k(t-1)}{L_k(t-2)},
       \qquad \text{total} = \sum_k w_k(t) L_k(t)

    ``L_k(t)`` is the mean of task ``k``'s losses over one *period* of
    ``period`` calls to ``update`` (the paper uses one epoch; the default,
    1, is the per-step variant). While fewer than two periods have completed,
    :math:`w_k = 1`. A zero ``L_k(t-2)`` gives :math:`r_k = 0` (no division
    by zero). The weights are constants (no gradient flows through the
    history).

    Args:
      temperature: :math:`T > 0`; larger is closer to equal weights.
      period: calls per history entry (static int >= 1), e.g. the steps per
        epoch.

    Returns:
      A :class:`LossWeighting` with ``params = ()`` and a :class:`DWAState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss.weighting as weighting
      >>> w = weighting.dwa(temperature=1.0)
      >>> params, state = w.init(2)
      >>> for losses in ([1.0, 1.0], [0.5, 1.0]):  # the first two steps: w = 1
      ...     _, weights, state = w.update(jnp.array(losses), params, state)
      >>> _, weights, state = w.update(jnp.array([0.4, 0.9]), params, state)
      >>> [round(v, 4) for v in weights.tolist()]  # 2 * softmax([0.5, 1.0])
      [0.7551, 1.2449]

    References:
      Liu, Johns and Davison, `End-to-End Multi-Task Learning with Attention
      <https://arxiv.org/abs/1803.10704>`_, CVPR 2019, eq. 7. LibMTL
      ``weighting.DWA`` (per epoch, ``T=2``).
    """
    temperature = float_hyperparameter(temperature, "temperature", low=0.0,
                                        low_inclusive=False)
    period = _checks.static_int(period, "period", low=1)

    def init(num_tasks: int) -> tuple[tuple[()], DWAState]:
        num = num_tasks_of(num_tasks)
        return (), DWAState(previous=jnp.ones((2, num), F32),
                            accumulated=jnp.zeros((num,), F32),
                            in_period=jnp.zeros((), jnp.int32),
                            periods=jnp.zeros((), jnp.int32))

    def update(losses: ArrayLike, params: Any, state: DWAState,
               **extra: Any) -> tuple[Array, Array, DWAState]:
        del params, extra
        num = state.previous.shape[-1]
        losses = task_losses(losses, num)
        ratio = safe_div(state.previous[0], state.previous[1])
        adaptive = num * jax.nn.softmax(ratio / temperature)
        weights = jnp.where(state.periods >= 2, adaptive, jnp.ones_like(adaptive))
        total = jnp.sum(weights * losses)

        # record this call; roll the history when the period is complete
        accumulated = state.accumulated + jax.lax.stop_gradient(losses)
        in_period = state.in_period + 1
        complete = in_period >= period
        mean = accumulated / period
        previous = jnp.where(complete, jnp.stack([mean, state.previous[0]]), state.previous)
        new_state = DWAState(
            previous=previous,
            accumulated=jnp.where(complete, jnp.zeros_like(accumulated), accumulated),
            in_period=jnp.where(complete, jnp.zeros_like(in_period), in_period),
            periods=state.periods + complete.astype(jnp.int32),
        )
        return total, weights, new_state

    return LossWeighting(init, update)


def gradnorm(*, alpha: ArrayLike = 1.5, lr: ArrayLike = 0.025) -> LossWeighting:
    r"""GradNorm: learn task weights that balance the gradient norms on a shared layer.

    With weights :math:`w_k(t)` (initially 1), the model minimises
    :math:`\sum_k w_k(t) L_k(t)`, and the weights take one gradient step on

    .. math:: L_\text{grad} = \sum_k \bigl| G_k - \bar G\, r_k^\alpha \bigr|,
       \quad G_k = \lVert \nabla_W\, w_k L_k \rVert_2 = w_k \lVert \nabla_W L_k \rVert_2,
       \quad r_k = \frac{L_k(t)/L_k(0)}{\operatorname{mean}_i L_i(t)/L_i(0)}

    (the targets :math:`\bar G r_k^\alpha`, :math:`\bar G = \operatorname{mean}_k G_k`,
    held constant), i.e. :math:`w_k \leftarrow w_k - \eta\,
    \operatorname{sign}(G_k - \bar G r_k^\alpha) \lVert\nabla_W L_k\rVert`,
    and are then renormalised to sum to :math:`K`. ``W`` is the shared
    parameter subtree the user chooses (the paper: the last shared layer).
    ``L(0)`` is recorded at the first call.

    ``update(losses, params, state, *, shared_grads)`` needs ``shared_grads``:
    the Jacobian of the *unweighted* task losses with respect to the shared
    subtree, a pytree whose leaves have a leading task axis ``K`` (what
    ``jax.jacrev(task_losses)(shared_params)`` returns). ``total`` and
    ``weights`` use :math:`w(t)`; the state carries :math:`w(t+1)`.

    Deviation, documented: a weight the step would make negative is clipped to
    0 before the renormalisation (the paper's small learning rates never get
    there; a weight at 0 grows again at the next step since its
    :math:`G_k = 0` is below its target).

    Args:
      alpha: the asymmetry :math:`\alpha \ge 0` (0: equal gradient norms).
      lr: the weights' learning rate :math:`\eta > 0` (plain gradient
        descent, as in the paper's Algorithm 1).

    Returns:
      A :class:`LossWeighting` with ``params = ()`` and a
      :class:`GradNormState`.

    Raises:
      TypeError: ``shared_grads`` is missing.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss.weighting as weighting
      >>> w = weighting.gradnorm(alpha=1.0, lr=0.1)
      >>> params, state = w.init(2)
      >>> jac = jnp.array([[3.0, 4.0], [0.0, 1.0]])  # gradient norms 5 and 1
      >>> total, weights, state = w.update(jnp.array([1.0, 2.0]), params, state,
      ...                                  shared_grads=jac)
      >>> float(total), weights.tolist()
      (3.0, [1.0, 1.0])
      >>> [round(v, 4) for v in state.weights.tolist()]  # (1 - 0.5, 1 + 0.1) renormalised
      [0.6250, 1.3750]

    References:
      Chen et al., `GradNorm: Gradient Normalization for Adaptive Loss
      Balancing in Deep Multitask Networks <https://arxiv.org/abs/1711.02257>`_,
      ICML 2018, Algorithm 1. LibMTL ``weighting.GradNorm`` (which
      parameterises the weights with a softmax and trains them with the model
      optimizer).
    """
    alpha = float_hyperparameter(alpha, "alpha", low=0.0)
    lr = float_hyperparameter(lr, "lr", low=0.0, low_inclusive=False)

    def init(num_tasks: int) -> tuple[tuple[()], GradNormState]:
        num = num_tasks_of(num_tasks)
        return (), GradNormState(weights=jnp.ones((num,), F32),
                                 initial_losses=jnp.ones((num,), F32),
                                 count=jnp.zeros((), jnp.int32))

    def update(losses: ArrayLike, params: Any, state: GradNormState, *,
               shared_grads: Any = None, **extra: Any) -> tuple[Array, Array, GradNormState]:
        del params, extra
        require_shared_grads(shared_grads, "gradnorm")
        num = state.weights.shape[0]
        losses = task_losses(losses, num)
        weights = state.weights
        total = jnp.sum(weights * losses)

        observed = jax.lax.stop_gradient(losses)
        initial = jnp.where(state.count == 0, observed, state.initial_losses)
        norms = grad_norms(shared_grads, num)  # ||grad_W L_k||
        g = weights * norms  # ||grad_W w_k L_k||
        relative = safe_div(observed, initial)  # L_k(t) / L_k(0)
        rate = safe_div(relative, jnp.mean(relative))
        target = jnp.mean(g) * rate**alpha
        step = jnp.sign(g - target) * norms  # d L_grad / d w_k, targets held constant
        stepped = jnp.maximum(weights - lr * step, 0.0)
        total_weight = jnp.sum(stepped)
        renormalised = jnp.where(total_weight > 0, num * safe_div(stepped, total_weight),
                                 jnp.ones_like(stepped))
        new_state = GradNormState(weights=renormalised, initial_losses=initial,
                                  count=state.count + 1)
        return total, weights, new_state

    return LossWeighting(init, update)


def random_weighting(*, key: ArrayLike | int = 0) -> LossWeighting:
    r"""Random loss weighting: fresh random weights at every step.

    .. math:: w = \operatorname{softmax}(\lambda),\quad
       \lambda \sim \mathcal N(0, I_K),\quad \text{total} = \sum_k w_k L_k

    The weights sum to 1 (as in the paper and LibMTL, not to ``K``). The PRNG
    key lives in the state and is split at every call, so the sequence of
    weights is reproducible from ``key``.

    Args:
      key: a ``jax.random.key``/``PRNGKey`` or an int seed.

    Returns:
      A :class:`LossWeighting` with ``params = ()`` and a
      :class:`RandomWeightingState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss.weighting as weighting
      >>> w = weighting.random_weighting(key=0)
      >>> params, state = w.init(3)
      >>> total, weights, state = w.update(jnp.ones(3), params, state)
      >>> round(float(weights.sum()), 6), round(float(total), 6)  # all losses 1: total 1
      (1.0, 1.0)

    References:
      Lin et al., `Reasonable Effectiveness of Random Weighting: A Litmus Test
      for Multi-Task Learning <https://arxiv.org/abs/2111.10603>`_, TMLR 2022
      (arXiv 2021). LibMTL ``weighting.RLW``.
    """
    if isinstance(key, bool):
        raise TypeError(f"key must be a PRNG key or an int seed; got {key!r}.")
    start = jax.random.PRNGKey(key) if isinstance(key, int) else jnp.asarray(key)

    def init(num_tasks: int) -> tuple[tuple[()], RandomWeightingState]:
        num_tasks_of(num_tasks)
        return (), RandomWeightingState(key=start)

    def update(losses: ArrayLike, params: Any, state: RandomWeightingState,
               **extra: Any) -> tuple[Array, Array, RandomWeightingState]:
        del params, extra
        losses = task_losses(losses, None)
        key, sample = jax.random.split(state.key)
        weights = jax.nn.softmax(jax.random.normal(sample, losses.shape, F32))
        return jnp.sum(weights * losses), weights, RandomWeightingState(key=key)

    return LossWeighting(init, update)


def famo(*, lr: ArrayLike = 0.025, weight_decay: ArrayLike = 1e-3,
         min_losses: ArrayLike = 0.0, eps: ArrayLike = 1e-8,
         optimizer: Literal["adam", "sgd"] = "adam") -> FamoWeighting:
    r"""FAMO: fast adaptive multitask optimisation, O(1) per step in the number of tasks.

    Task logits :math:`\xi` (initially 0) give :math:`z = \operatorname{softmax}(\xi)`.
    With shifted losses :math:`\ell_k = \max(L_k - L_k^*, 0) + \epsilon` the
    model step follows

    .. math:: d_t = c_t \nabla \sum_k z_k \log \ell_k
       = \sum_k \frac{c_t z_k}{\ell_k} \nabla L_k, \qquad
       c_t = \Bigl(\sum_k \frac{z_k}{\ell_k}\Bigr)^{-1}

    and, once the losses after the step :math:`\ell_{t+1}` are known, the
    logits take an optimizer step on the gradient

    .. math:: \delta_t = J_z(\xi_t)^\top (\log \ell_t - \log \ell_{t+1}) + \gamma \xi_t

    where :math:`J_z` is the Jacobian of the softmax (Algorithm 1 of the
    paper; :math:`L^*` and :math:`\epsilon` as in the official code). The
    default step is the authors' code's: Adam at rate :math:`\beta`
    (``torch.optim.Adam(lr=beta, weight_decay=gamma)``: moments 0.9 and
    0.999, epsilon 1e-8, bias-corrected, the decay added to the gradient),
    whose steps are about :math:`\beta` per logit whatever the scale of
    :math:`\delta_t`. ``optimizer="sgd"`` takes the paper's plain step
    :math:`\xi_{t+1} = \xi_t - \beta\delta_t`, which at
    :math:`\beta = 0.025` barely moves the logits (the log-loss changes
    between steps are small).
    ``total`` is :math:`\sum_k \operatorname{sg}(c_t z_k / \ell_k)\, \ell_k`:
    its gradient is exactly :math:`d_t`, and its value is :math:`c_t`, the
    :math:`z`-weighted harmonic mean of the shifted losses (a positive number
    that falls as the losses fall, unlike :math:`c_t \sum_k z_k \log
    \ell_k`). ``weights`` are :math:`c_t z_k / \ell_k`.

    Two schedules for the logit step:

    * default: each ``update`` first takes the logit step with the losses it
      is given as :math:`\ell_{t+1}` and the previous call's as
      :math:`\ell_t` (the next batch stands in for the same batch after the
      step: no extra forward pass), then weights the losses;
    * exact: after the model step, call ``update_logits(losses_after,
      state)`` with the losses re-evaluated on the same batch; the next
      ``update`` then takes no logit step of its own.

    Args:
      lr: the logits' learning rate :math:`\beta > 0` (the official code's
        0.025).
      weight_decay: :math:`\gamma \ge 0`.
      min_losses: :math:`L^*`, scalar or ``(K,)``: lower bounds of the losses
        (0 for non-negative losses). Losses below it count as :math:`L^*`.
      eps: :math:`\epsilon > 0`, keeps the logarithms finite at a zero loss.
      optimizer: ``"adam"`` (default, the authors' code) or ``"sgd"`` (the
        paper's Algorithm 1) for the logit step.

    Returns:
      A :class:`FamoWeighting` with ``params = ()`` (the logits are not
      trained by the model's optimizer) and a :class:`FamoState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss.weighting as weighting
      >>> w = weighting.famo(lr=0.5, weight_decay=0.0, eps=0.0)
      >>> params, state = w.init(2)
      >>> total, weights, state = w.update(jnp.array([1.0, 4.0]), params, state)
      >>> float(total), weights.tolist()  # z = 1/2: c = 1 / (0.5/1 + 0.5/4)
      (1.6, [0.8, 0.2])
      >>> state = w.update_logits(jnp.array([0.5, 4.0]), state)  # task 0 fell by log 2
      >>> [round(v, 4) for v in state.logits.tolist()]  # Adam's first step: -0.5 sign(delta)
      [-0.5, 0.5]
      >>> sgd = weighting.famo(lr=0.5, weight_decay=0.0, eps=0.0, optimizer="sgd")
      >>> state = sgd.update(jnp.array([1.0, 4.0]), *sgd.init(2))[2]
      >>> state = sgd.update_logits(jnp.array([0.5, 4.0]), state)
      >>> [round(v, 4) for v in state.logits.tolist()]  # -0.5 * 0.25 * (+-log 2)
      [-0.0866, 0.0866]

    References:
      Liu et al., `FAMO: Fast Adaptive Multitask Optimization
      <https://arxiv.org/abs/2306.03792>`_, NeurIPS 2023, Algorithm 1;
      official code ``Cranial-XIX/FAMO`` (``FAMO.get_weighted_loss``,
      ``FAMO.update``). LibMTL ``weighting.FAMO``.
    """
    lr = float_hyperparameter(lr, "lr", low=0.0, low_inclusive=False)
    weight_decay = float_hyperparameter(weight_decay, "weight_decay", low=0.0)
    _checks.check_range(min_losses, "min_losses")
    floor = _checks.hyperparameter(min_losses, "min_losses", F32, scalar=False)
    eps = float_hyperparameter(eps, "eps", low=0.0)
    _checks.check_choice(optimizer, "optimizer", ("adam", "sgd"))

    def shifted(losses: Array) -> Array:
        bound = jnp.broadcast_to(floor, losses.shape) if floor.ndim else floor
        return jnp.maximum(losses - bound, 0.0) + eps

    def logit_step(state: FamoState, before: Array, after: Array) -> FamoState:
        logits = state.logits
        z = jax.nn.softmax(logits)
        delta = jnp.log(shifted(before)) - jnp.log(shifted(after))
        # J_z^T delta with J_z = diag(z) - z z^T, the softmax's (symmetric) Jacobian
        grad = z * (delta - jnp.sum(z * delta)) + weight_decay * logits
        if optimizer == "sgd":
            return state._replace(logits=logits - lr * grad, steps=state.steps + 1)
        # torch.optim.Adam (the authors' code): L2 decay in the gradient, bias-corrected moments
        steps = state.steps + 1
        mu = _ADAM_B1 * state.mu + (1.0 - _ADAM_B1) * grad
        nu = _ADAM_B2 * state.nu + (1.0 - _ADAM_B2) * grad * grad
        t = steps.astype(F32)
        mu_hat = mu / (1.0 - _ADAM_B1**t)
        nu_hat = nu / (1.0 - _ADAM_B2**t)
        logits = logits - lr * mu_hat / (jnp.sqrt(nu_hat) + _ADAM_EPS)
        return state._replace(logits=logits, mu=mu, nu=nu, steps=steps)

    def init(num_tasks: int) -> tuple[tuple[()], FamoState]:
        num = num_tasks_of(num_tasks)
        if floor.ndim > 1 or (floor.ndim == 1 and floor.shape[0] != num):
            raise ValueError(f"min_losses must be a scalar or have shape ({num},); got "
                             f"{floor.shape}.")
        zeros = jnp.zeros((num,), F32)
        return (), FamoState(logits=zeros, previous_losses=jnp.ones((num,), F32),
                             pending=jnp.zeros((), bool), mu=zeros, nu=zeros,
                             steps=jnp.zeros((), jnp.int32))

    def step_if_pending(state: FamoState, after: Array) -> FamoState:
        stepped = logit_step(state, state.previous_losses, after)
        return jax.tree_util.tree_map(lambda new, old: jnp.where(state.pending, new, old),
                                      stepped, state)

    def update(losses: ArrayLike, params: Any, state: FamoState,
               **extra: Any) -> tuple[Array, Array, FamoState]:
        del params, extra
        losses = task_losses(losses, state.logits.shape[0])
        observed = jax.lax.stop_gradient(losses)
        state = step_if_pending(state, observed)
        z = jax.nn.softmax(state.logits)
        ell = shifted(losses)
        inverse = z / jax.lax.stop_gradient(ell)
        weights = inverse / jnp.sum(inverse)  # c_t z_k / l_k
        total = jnp.sum(jax.lax.stop_gradient(weights) * ell)
        new_state = state._replace(previous_losses=observed, pending=jnp.ones((), bool))
        return total, jax.lax.stop_gradient(weights), new_state

    def update_logits(losses_after: ArrayLike, state: FamoState) -> FamoState:
        after = jax.lax.stop_gradient(task_losses(losses_after, state.logits.shape[0]))
        return step_if_pending(state, after)._replace(pending=jnp.zeros((), bool))

    return FamoWeighting(init, update, update_logits)

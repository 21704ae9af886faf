r"""Loss-level multi-task weighting: turn a vector of task losses into one scalar.

A multi-task model produces ``K`` scalar task losses per step, stacked into a
float vector ``losses`` of shape ``(K,)``. A *weighting* decides how they are
combined into the one scalar the model is trained on. Each strategy here is an
optax-like pair of pure functions, bundled in a :class:`LossWeighting`:

.. code-block:: python

    weighting = jaxloss.weighting.uncertainty()
    wparams, wstate = weighting.init(num_tasks)                   # both pytrees
    total, weights, wstate = weighting.update(losses, wparams, wstate, **extra)

Conventions, shared by every strategy:

* ``init(num_tasks) -> (params, state)``. ``params`` holds what the *model's
  optimizer* learns jointly with the model (only :func:`uncertainty` has any:
  the log-variances; every other strategy returns the empty tuple ``()``).
  ``state`` holds everything the strategy updates by its own rule: loss
  histories (:func:`dwa`), GradNorm's weights and initial losses, a PRNG key
  (:func:`random_weighting`), FAMO's task logits. Both are pytrees of arrays,
  so they go through ``jax.jit`` and ``lax.scan`` and can be checkpointed.
* ``update(losses, params, state, **extra) -> (total, weights, new_state)``.
  ``total`` is the float32 scalar to differentiate, with respect to the model
  parameters *and* ``params`` (differentiate ``(model_params, params)``
  jointly, as in the example below). ``weights`` (float32, ``(K,)``) are
  ``d total / d losses``, the factors the task gradients get in the model's
  gradient: ``grad(total) == sum_k weights[k] * grad(losses[k])``.
  ``weights`` carry no gradient; use them for logging. ``new_state`` replaces
  ``state``. Keyword arguments a strategy does not use are ignored, so generic
  code may pass the same ones to every strategy (only :func:`gradnorm` needs
  one: ``shared_grads``).
* Everything is traced: no Python control flow on values, the first steps of
  a history are handled with ``jnp.where`` on a step counter held in the
  state. Losses of any floating dtype are computed in float32; ``total`` and
  ``weights`` are float32. ``losses`` must have the static shape ``(K,)`` that
  ``init`` was given.
* No gradient flows into a strategy's own state: DWA's history, GradNorm's
  weights and FAMO's ``c_t`` and logits are constants of the model step
  (``stop_gradient``), as in the papers. The losses receive gradients only
  through ``total`` (for :func:`geometric_mean` and :func:`uncertainty` the
  total is itself a function of the losses and, for the latter, ``params``).

:func:`famo` returns a :class:`FamoWeighting`, which has a third function,
``update_logits(losses_after, state)``, for the paper's exact schedule
(logits updated from the losses re-evaluated after the model step on the same
batch); without it FAMO updates its logits at the next ``update`` from the
next batch's losses, which costs no extra forward pass.

Gradient-level alternatives (PCGrad, MGDA, ...) are optax transformations in
``jaxloss.aggregate``. None of these functions is a loss: they are not in the
loss registry.

Example (a two-task linear model trained with uncertainty weighting; the same
step works for every strategy, :func:`gradnorm` also taking ``shared_grads=``):

  >>> import jax, jax.numpy as jnp, optax
  >>> import jaxloss.weighting as weighting
  >>> x = jnp.linspace(-1.0, 1.0, 16).reshape(8, 2)
  >>> y = {"a": x @ jnp.array([1.0, -1.0]), "b": x @ jnp.array([2.0, 0.5])}
  >>> def task_losses(model, x):
  ...     return jnp.stack([jnp.mean((x @ model["a"] - y["a"]) ** 2),
  ...                       jnp.mean((x @ model["b"] - y["b"]) ** 2)])
  >>> strategy = weighting.uncertainty()
  >>> wparams, wstate = strategy.init(2)
  >>> params = {"model": {"a": jnp.zeros(2), "b": jnp.zeros(2)}, "weighting": wparams}
  >>> optimizer = optax.rmsprop(0.05)  # trains the model and the log-variances
  >>> opt_state = optimizer.init(params)
  >>> @jax.jit
  ... def train_step(params, opt_state, wstate):
  ...     def objective(params):
  ...         losses = task_losses(params["model"], x)
  ...         total, weights, new_wstate = strategy.update(losses, params["weighting"], wstate)
  ...         return total, (losses, new_wstate)
  ...     (total, (losses, wstate)), grads = jax.value_and_grad(objective, has_aux=True)(params)
  ...     updates, opt_state = optimizer.update(grads, opt_state, params)
  ...     return optax.apply_updates(params, updates), opt_state, wstate, losses
  >>> for _ in range(100):
  ...     params, opt_state, wstate, losses = train_step(params, opt_state, wstate)
  >>> bool(jnp.all(losses < 1e-2)), bool(jnp.all(params["weighting"] < -3.0))  # s_k -> log L_k
  (True, True)

With Flax NNX, split the model (``graphdef, model_params = nnx.split(model)``)
and merge it inside the objective, as above; or hold ``params`` in the model
as an ``nnx.Param`` and pass ``model.task_log_vars.value`` to ``update``
(``tests/test_weighting.py`` does both).

References:
  See each strategy. LibMTL (``LibMTL.weighting``) implements the same
  strategies for PyTorch as loss-weighting classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._numerics import safe_div, safe_sqrt

__all__ = [
    "DWAState",
    "EmptyState",
    "FamoState",
    "FamoWeighting",
    "GradNormState",
    "LossWeighting",
    "RandomWeightingState",
    "dwa",
    "famo",
    "geometric_mean",
    "gradnorm",
    "random_weighting",
    "static",
    "uncertainty",
]

_F32 = jnp.float32

InitFn = Callable[[int], tuple[Any, Any]]
UpdateFn = Callable[..., tuple[Array, Array, Any]]


class LossWeighting(NamedTuple):
    """A multi-task loss weighting: ``init(num_tasks) -> (params, state)`` and
    ``update(losses, params, state, **extra) -> (total, weights, new_state)``.

    See the module docstring for the contract. A custom strategy is two
    functions following it.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.weighting import EmptyState, LossWeighting
      >>> def update(losses, params, state, **extra):  # the largest loss only
      ...     weights = (losses == jnp.max(losses)).astype(losses.dtype)
      ...     return jnp.sum(weights * losses), weights, state
      >>> worst = LossWeighting(lambda k: ((), EmptyState()), update)
      >>> float(worst.update(jnp.array([1.0, 3.0]), *worst.init(2))[0])
      3.0

    References:
      optax's ``GradientTransformation`` (``init``/``update`` pair), which
      this mirrors for loss vectors.
    """

    init: InitFn
    update: UpdateFn


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


class EmptyState(NamedTuple):
    """The state of a strategy that keeps none.

    Example:
      >>> import jaxloss.weighting as weighting
      >>> weighting.geometric_mean().init(3)
      ((), EmptyState())

    References:
      optax's ``EmptyState``.
    """


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
    count: Array  # int32


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
    """FAMO's task logits ``xi``, the last losses and whether they await a logit step.

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


def _num_tasks(num_tasks: Any) -> int:
    return _checks.static_int(num_tasks, "num_tasks", low=1)


def _task_losses(losses: ArrayLike, num_tasks: int | None) -> Array:
    """``losses`` as a float32 ``(K,)`` vector, checked against ``num_tasks``."""
    losses = _checks.float_input(losses, "losses")
    if losses.ndim != 1 or (num_tasks is not None and losses.shape[0] != num_tasks):
        expected = "(K,)" if num_tasks is None else f"({num_tasks},)"
        raise ValueError(
            f"losses must be a vector of task losses of shape {expected}; got shape "
            f"{losses.shape}. Stack the scalar task losses with jnp.stack([...])"
            + ("." if num_tasks is None else " in the order init was given.")
        )
    return losses.astype(_F32)


def _float_hyperparameter(value: ArrayLike, name: str, *, low: float | None = None,
                          low_inclusive: bool = True) -> Array:
    _checks.check_range(value, name, low=low, low_inclusive=low_inclusive)
    return _checks.hyperparameter(value, name, _F32)


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
    weights = _checks.hyperparameter(weights, "weights", _F32, scalar=False)
    if weights.ndim != 1 or weights.shape[0] == 0:
        raise ValueError(f"weights must be a non-empty vector (K,); got shape {weights.shape}.")
    num = weights.shape[0]

    def init(num_tasks: int) -> tuple[tuple[()], EmptyState]:
        if _num_tasks(num_tasks) != num:
            raise ValueError(f"static weighting has {num} weights but num_tasks={num_tasks}.")
        return (), EmptyState()

    def update(losses: ArrayLike, params: Any, state: EmptyState,
               **extra: Any) -> tuple[Array, Array, EmptyState]:
        del params, extra
        losses = _task_losses(losses, num)
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
        num = _num_tasks(num_tasks)
        start = _checks.hyperparameter(init_log_variance, "init_log_variance", _F32, scalar=False)
        if start.ndim > 1 or (start.ndim == 1 and start.shape[0] != num):
            raise ValueError(
                f"init_log_variance must be a scalar or have shape ({num},); got {start.shape}."
            )
        return jnp.broadcast_to(start, (num,)), EmptyState()

    def update(losses: ArrayLike, params: ArrayLike, state: EmptyState,
               **extra: Any) -> tuple[Array, Array, EmptyState]:
        del extra
        log_vars = _checks.float_input(params, "params (the log-variances)").astype(_F32)
        losses = _task_losses(losses, None)
        if log_vars.shape != losses.shape:
            raise ValueError(
                f"params (the log-variances) must have shape {losses.shape}; got {log_vars.shape}."
            )
        precision = scale * jnp.exp(-log_vars)
        total = jnp.sum(precision * losses + scale * log_vars)
        return total, jax.lax.stop_gradient(precision), state

    return LossWeighting(init, update)


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
    temperature = _float_hyperparameter(temperature, "temperature", low=0.0,
                                        low_inclusive=False)
    period = _checks.static_int(period, "period", low=1)

    def init(num_tasks: int) -> tuple[tuple[()], DWAState]:
        num = _num_tasks(num_tasks)
        return (), DWAState(previous=jnp.ones((2, num), _F32),
                            accumulated=jnp.zeros((num,), _F32),
                            in_period=jnp.zeros((), jnp.int32),
                            periods=jnp.zeros((), jnp.int32))

    def update(losses: ArrayLike, params: Any, state: DWAState,
               **extra: Any) -> tuple[Array, Array, DWAState]:
        del params, extra
        num = state.previous.shape[-1]
        losses = _task_losses(losses, num)
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


def _grad_norms(shared_grads: Any, num: int) -> Array:
    """Per-task L2 norms of a Jacobian pytree whose leaves have a leading task axis."""
    leaves = jax.tree_util.tree_leaves(shared_grads)
    if not leaves:
        raise ValueError("shared_grads has no arrays; pass the Jacobian of the task losses.")
    squares = jnp.zeros((num,), _F32)
    for leaf in leaves:  # static loop over the parameter leaves of the shared subtree
        leaf = jnp.asarray(leaf)
        if leaf.ndim == 0 or leaf.shape[0] != num:
            raise ValueError(
                f"every leaf of shared_grads needs a leading task axis of size {num}; got a "
                f"leaf of shape {leaf.shape}. Use jax.jacrev(task_losses)(shared_params)."
            )
        leaf = jax.lax.stop_gradient(leaf).astype(_F32).reshape(num, -1)
        squares = squares + jnp.sum(leaf * leaf, axis=1)
    return safe_sqrt(squares)


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
    alpha = _float_hyperparameter(alpha, "alpha", low=0.0)
    lr = _float_hyperparameter(lr, "lr", low=0.0, low_inclusive=False)

    def init(num_tasks: int) -> tuple[tuple[()], GradNormState]:
        num = _num_tasks(num_tasks)
        return (), GradNormState(weights=jnp.ones((num,), _F32),
                                 initial_losses=jnp.ones((num,), _F32),
                                 count=jnp.zeros((), jnp.int32))

    def update(losses: ArrayLike, params: Any, state: GradNormState, *,
               shared_grads: Any = None, **extra: Any) -> tuple[Array, Array, GradNormState]:
        del params, extra
        if shared_grads is None:
            raise TypeError(
                "gradnorm's update needs shared_grads=: the Jacobian of the unweighted task "
                "losses with respect to the shared parameters, e.g. "
                "jax.jacrev(task_losses)(shared_params), leaves of shape (K, ...)."
            )
        num = state.weights.shape[0]
        losses = _task_losses(losses, num)
        weights = state.weights
        total = jnp.sum(weights * losses)

        observed = jax.lax.stop_gradient(losses)
        initial = jnp.where(state.count == 0, observed, state.initial_losses)
        norms = _grad_norms(shared_grads, num)  # ||grad_W L_k||
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
    start = jax.random.PRNGKey(key) if isinstance(key, int) else key

    def init(num_tasks: int) -> tuple[tuple[()], RandomWeightingState]:
        _num_tasks(num_tasks)
        return (), RandomWeightingState(key=start)

    def update(losses: ArrayLike, params: Any, state: RandomWeightingState,
               **extra: Any) -> tuple[Array, Array, RandomWeightingState]:
        del params, extra
        losses = _task_losses(losses, None)
        key, sample = jax.random.split(state.key)
        weights = jax.nn.softmax(jax.random.normal(sample, losses.shape, _F32))
        return jnp.sum(weights * losses), weights, RandomWeightingState(key=key)

    return LossWeighting(init, update)


def famo(*, lr: ArrayLike = 0.025, weight_decay: ArrayLike = 1e-3,
         min_losses: ArrayLike = 0.0, eps: ArrayLike = 1e-8) -> FamoWeighting:
    r"""FAMO: fast adaptive multitask optimisation, O(1) per step in the number of tasks.

    Task logits :math:`\xi` (initially 0) give :math:`z = \operatorname{softmax}(\xi)`.
    With shifted losses :math:`\ell_k = \max(L_k - L_k^*, 0) + \epsilon` the
    model step follows

    .. math:: d_t = c_t \nabla \sum_k z_k \log \ell_k
       = \sum_k \frac{c_t z_k}{\ell_k} \nabla L_k, \qquad
       c_t = \Bigl(\sum_k \frac{z_k}{\ell_k}\Bigr)^{-1}

    and, once the losses after the step :math:`\ell_{t+1}` are known, the
    logits follow

    .. math:: \xi_{t+1} = \xi_t - \beta\bigl(J_z(\xi_t)^\top
       (\log \ell_t - \log \ell_{t+1}) + \gamma \xi_t\bigr)

    where :math:`J_z` is the Jacobian of the softmax (Algorithm 1 of the
    paper; :math:`L^*` and :math:`\epsilon` as in the official code).
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
      lr: the logits' learning rate :math:`\beta > 0` (plain gradient steps,
        as in the paper; the official code uses Adam with this rate).
      weight_decay: :math:`\gamma \ge 0`.
      min_losses: :math:`L^*`, scalar or ``(K,)``: lower bounds of the losses
        (0 for non-negative losses). Losses below it count as :math:`L^*`.
      eps: :math:`\epsilon > 0`, keeps the logarithms finite at a zero loss.

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
      >>> [round(v, 4) for v in state.logits.tolist()]  # -0.5 * 0.25 * (+-log 2)
      [-0.0866, 0.0866]

    References:
      Liu et al., `FAMO: Fast Adaptive Multitask Optimization
      <https://arxiv.org/abs/2306.03792>`_, NeurIPS 2023, Algorithm 1;
      official code ``Cranial-XIX/FAMO`` (``FAMO.get_weighted_loss``,
      ``FAMO.update``). LibMTL ``weighting.FAMO``.
    """
    lr = _float_hyperparameter(lr, "lr", low=0.0, low_inclusive=False)
    weight_decay = _float_hyperparameter(weight_decay, "weight_decay", low=0.0)
    _checks.check_range(min_losses, "min_losses")
    floor = _checks.hyperparameter(min_losses, "min_losses", _F32, scalar=False)
    eps = _float_hyperparameter(eps, "eps", low=0.0)

    def shifted(losses: Array) -> Array:
        bound = jnp.broadcast_to(floor, losses.shape) if floor.ndim else floor
        return jnp.maximum(losses - bound, 0.0) + eps

    def logit_step(logits: Array, before: Array, after: Array) -> Array:
        z = jax.nn.softmax(logits)
        delta = jnp.log(shifted(before)) - jnp.log(shifted(after))
        # J_z^T delta with J_z = diag(z) - z z^T, the softmax's (symmetric) Jacobian
        grad = z * (delta - jnp.sum(z * delta))
        return logits - lr * (grad + weight_decay * logits)

    def init(num_tasks: int) -> tuple[tuple[()], FamoState]:
        num = _num_tasks(num_tasks)
        if floor.ndim > 1 or (floor.ndim == 1 and floor.shape[0] != num):
            raise ValueError(f"min_losses must be a scalar or have shape ({num},); got "
                             f"{floor.shape}.")
        return (), FamoState(logits=jnp.zeros((num,), _F32),
                             previous_losses=jnp.ones((num,), _F32),
                             pending=jnp.zeros((), bool))

    def update(losses: ArrayLike, params: Any, state: FamoState,
               **extra: Any) -> tuple[Array, Array, FamoState]:
        del params, extra
        losses = _task_losses(losses, state.logits.shape[0])
        observed = jax.lax.stop_gradient(losses)
        stepped = logit_step(state.logits, state.previous_losses, observed)
        logits = jnp.where(state.pending, stepped, state.logits)
        z = jax.nn.softmax(logits)
        ell = shifted(losses)
        inverse = z / jax.lax.stop_gradient(ell)
        weights = inverse / jnp.sum(inverse)  # c_t z_k / l_k
        total = jnp.sum(jax.lax.stop_gradient(weights) * ell)
        new_state = FamoState(logits=logits, previous_losses=observed,
                              pending=jnp.ones((), bool))
        return total, jax.lax.stop_gradient(weights), new_state

    def update_logits(losses_after: ArrayLike, state: FamoState) -> FamoState:
        after = jax.lax.stop_gradient(_task_losses(losses_after, state.logits.shape[0]))
        stepped = logit_step(state.logits, state.previous_losses, after)
        return FamoState(logits=jnp.where(state.pending, stepped, state.logits),
                         previous_losses=state.previous_losses,
                         pending=jnp.zeros((), bool))

    return FamoWeighting(init, update, update_logits)


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
    eps = _float_hyperparameter(eps, "eps", low=0.0)

    def init(num_tasks: int) -> tuple[tuple[()], EmptyState]:
        _num_tasks(num_tasks)
        return (), EmptyState()

    def update(losses: ArrayLike, params: Any, state: EmptyState,
               **extra: Any) -> tuple[Array, Array, EmptyState]:
        del params, extra
        losses = _task_losses(losses, None) + eps
        positive = jnp.all(losses > 0)
        safe = jnp.where(losses > 0, losses, jnp.ones_like(losses))
        total = jnp.where(positive, jnp.exp(jnp.mean(jnp.log(safe))), 0.0)
        weights = safe_div(jax.lax.stop_gradient(total) * jnp.ones_like(losses),
                           losses.shape[0] * jax.lax.stop_gradient(losses))
        return total, weights, state

    return LossWeighting(init, update)

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
  code may pass the same ones to every strategy (only :func:`gradnorm` and
  :func:`db_mtl` need one: ``shared_grads``).
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
step works for every strategy, :func:`gradnorm` and :func:`db_mtl` also taking
``shared_grads=``):

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
(``tests/weighting/test_fixed.py`` and ``test_strategies.py`` do both).

References:
  See each strategy. LibMTL (``LibMTL.weighting``) implements the same
  strategies for PyTorch as loss-weighting classes.

Layout: ``base`` (the :class:`LossWeighting` contract and :class:`EmptyState`),
``fixed`` (static, uncertainty, geometric mean), ``adaptive`` (DWA, GradNorm,
random weighting, FAMO and their states), ``balanced`` (DB-MTL, STCH and their
states); ``_common`` holds the shared
private helpers. Every public name is re-exported here.
"""

from jaxloss.weighting.adaptive import DWAState as DWAState
from jaxloss.weighting.adaptive import FamoState as FamoState
from jaxloss.weighting.adaptive import FamoWeighting as FamoWeighting
from jaxloss.weighting.adaptive import GradNormState as GradNormState
from jaxloss.weighting.adaptive import RandomWeightingState as RandomWeightingState
from jaxloss.weighting.adaptive import dwa as dwa
from jaxloss.weighting.adaptive import famo as famo
from jaxloss.weighting.adaptive import gradnorm as gradnorm
from jaxloss.weighting.adaptive import random_weighting as random_weighting
from jaxloss.weighting.balanced import DBMTLState as DBMTLState
from jaxloss.weighting.balanced import STCHState as STCHState
from jaxloss.weighting.balanced import db_mtl as db_mtl
from jaxloss.weighting.balanced import stch as stch
from jaxloss.weighting.base import EmptyState as EmptyState
from jaxloss.weighting.base import LossWeighting as LossWeighting
from jaxloss.weighting.fixed import geometric_mean as geometric_mean
from jaxloss.weighting.fixed import static as static
from jaxloss.weighting.fixed import uncertainty as uncertainty

__all__ = [
    "DBMTLState",
    "DWAState",
    "EmptyState",
    "FamoState",
    "FamoWeighting",
    "GradNormState",
    "LossWeighting",
    "RandomWeightingState",
    "STCHState",
    "db_mtl",
    "dwa",
    "famo",
    "geometric_mean",
    "gradnorm",
    "random_weighting",
    "static",
    "stch",
    "uncertainty",
]

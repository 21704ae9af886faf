"""The weighting contract: :class:`LossWeighting` and :class:`EmptyState`."""

from __future__ import annotations

from typing import NamedTuple

from jaxloss.weighting._common import InitFn, UpdateFn

__all__ = [
    "EmptyState",
    "LossWeighting",
]


class LossWeighting(NamedTuple):
    """A multi-task loss weighting: ``init(num_tasks) -> (params, state)`` and
    ``update(losses, params, state, **extra) -> (total, weights, new_state)``.

    See the ``jaxloss.weighting`` package docstring for the contract. A
    custom strategy is two functions following it.

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


class EmptyState(NamedTuple):
    """The state of a strategy that keeps none.

    Example:
      >>> import jaxloss.weighting as weighting
      >>> weighting.geometric_mean().init(3)
      ((), EmptyState())

    References:
      optax's ``EmptyState``.
    """

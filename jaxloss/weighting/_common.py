"""Private helpers shared by the loss weightings (see the package docstring for the contract)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._numerics import safe_sqrt

F32 = jnp.float32

InitFn = Callable[[int], tuple[Any, Any]]
UpdateFn = Callable[..., tuple[Array, Array, Any]]


def num_tasks_of(num_tasks: Any) -> int:
    return _checks.static_int(num_tasks, "num_tasks", low=1)


def task_losses(losses: ArrayLike, num_tasks: int | None) -> Array:
    """``losses`` as a float32 ``(K,)`` vector, checked against ``num_tasks``."""
    losses = _checks.float_input(losses, "losses")
    if losses.ndim != 1 or (num_tasks is not None and losses.shape[0] != num_tasks):
        expected = "(K,)" if num_tasks is None else f"({num_tasks},)"
        raise ValueError(
            f"losses must be a vector of task losses of shape {expected}; got shape "
            f"{losses.shape}. Stack the scalar task losses with jnp.stack([...])"
            + ("." if num_tasks is None else " in the order init was given.")
        )
    return losses.astype(F32)


def float_hyperparameter(value: ArrayLike, name: str, *, low: float | None = None,
                          low_inclusive: bool = True) -> Array:
    _checks.check_range(value, name, low=low, low_inclusive=low_inclusive)
    return _checks.hyperparameter(value, name, F32)


def grad_norms(shared_grads: Any, num: int) -> Array:
    """Per-task L2 norms of a Jacobian pytree whose leaves have a leading task axis."""
    leaves = jax.tree_util.tree_leaves(shared_grads)
    if not leaves:
        raise ValueError("shared_grads has no arrays; pass the Jacobian of the task losses.")
    squares = jnp.zeros((num,), F32)
    for leaf in leaves:  # static loop over the parameter leaves of the shared subtree
        leaf = jnp.asarray(leaf)
        if leaf.ndim == 0 or leaf.shape[0] != num:
            raise ValueError(
                f"every leaf of shared_grads needs a leading task axis of size {num}; got a "
                f"leaf of shape {leaf.shape}. Use jax.jacrev(task_losses)(shared_params)."
            )
        leaf = jax.lax.stop_gradient(leaf).astype(F32).reshape(num, -1)
        squares = squares + jnp.sum(leaf * leaf, axis=1)
    return safe_sqrt(squares)


def require_shared_grads(shared_grads: Any, strategy: str) -> None:
    """The error of a strategy called without its ``shared_grads=``."""
    if shared_grads is None:
        raise TypeError(
            f"{strategy}'s update needs shared_grads=: the Jacobian of the unweighted task "
            "losses with respect to the shared parameters, e.g. "
            "jax.jacrev(task_losses)(shared_params), leaves of shape (K, ...)."
        )

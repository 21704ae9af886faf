"""Name -> loss lookup, and registration of a user's own losses.

Names map to Python functions in a dictionary: no ``eval``, no pickle.

Example:
  >>> import jax.numpy as jnp
  >>> import jaxloss
  >>> loss = jaxloss.get("huber_loss", delta=0.5)
  >>> float(loss(jnp.array([0.0, 2.0]), jnp.array([0.0, 0.0])))
  0.4375
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _reduce

F = TypeVar("F", bound=Callable[..., Any])

_LOSSES: dict[str, Callable[..., Array]] = {}
_FAMILIES: dict[str, str] = {}
_BUILTIN: set[str] = set()

FAMILIES: tuple[str, ...] = (
    "regression",
    "classification",
    "segmentation",
    "detection",
    "metric",
    "image",
    "custom",
)


def _builtin(family: str) -> Callable[[F], F]:
    """Records a jaxloss loss under its own ``__name__`` (internal decorator)."""

    def decorate(fn: F) -> F:
        name = fn.__name__
        if name in _LOSSES:
            raise ValueError(f"loss {name!r} is registered twice")
        _LOSSES[name] = fn
        _FAMILIES[name] = family
        _BUILTIN.add(name)
        return fn

    return decorate


def register(
    fn: Callable[..., ArrayLike] | None = None,
    *,
    name: str | None = None,
    family: str = "custom",
    overwrite: bool = False,
) -> Any:
    """Registers a user's loss so that it behaves like a jaxloss loss.

    ``fn(predictions, targets, *arrays, **hyperparameters)`` returns the
    *unreduced* loss. The registered function takes the same arguments plus
    the keyword-only ``where=None``, ``weights=None`` and ``reduction="mean"``
    that every jaxloss loss takes, and reduces through the same path
    (weighted mean over the selected entries; 0 when nothing is selected).
    ``where`` is applied to the output of ``fn``: masked entries contribute
    neither value nor gradient as long as ``fn`` itself is finite there.

    Can be used as ``@register``, ``@register(name=..., family=...)`` or
    ``register(fn, name=...)``.

    Args:
      fn: the unreduced loss function.
      name: registry name; default ``fn.__name__``.
      family: one of ``jaxloss.registry.FAMILIES``; default ``"custom"``.
      overwrite: allow replacing an earlier *user* registration of ``name``.
        Built-in losses can never be replaced.

    Returns:
      The wrapped loss (also available as ``jaxloss.get(name)``).

    Raises:
      ValueError: ``name`` is taken, or ``family`` is unknown.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> @jaxloss.register(name="doc_cubic_loss", overwrite=True)
      ... def cubic(predictions, targets, *, scale=1.0):
      ...     return scale * jnp.abs(predictions - targets) ** 3
      >>> float(cubic(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0]),
      ...             where=jnp.array([True, False])))
      1.0
      >>> jaxloss.get("doc_cubic_loss", scale=2.0)(jnp.array([1.0]), jnp.array([0.0]))
      Array(2., dtype=float32)

    References:
      The calling convention in DESIGN.md; optax's losses for the
      ``where=`` keyword.
    """

    def decorate(user_fn: Callable[..., ArrayLike]) -> Callable[..., Array]:
        loss_name = name or getattr(user_fn, "__name__", None)
        if not loss_name or not isinstance(loss_name, str) or not loss_name.isidentifier():
            raise ValueError(f"name must be a Python identifier; got {loss_name!r}")
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}; got {family!r}")
        if loss_name in _BUILTIN:
            raise ValueError(
                f"{loss_name!r} is a built-in jaxloss loss and cannot be replaced; "
                "register yours under another name."
            )
        if loss_name in _LOSSES and not overwrite:
            raise ValueError(
                f"a loss named {loss_name!r} is already registered; pass overwrite=True "
                "to replace it, or choose another name."
            )

        @functools.wraps(user_fn)
        def wrapped(
            *args: Any,
            where: ArrayLike | None = None,
            weights: ArrayLike | None = None,
            reduction: str = "mean",
            **hyperparameters: Any,
        ) -> Array:
            values = jnp.asarray(user_fn(*args, **hyperparameters))
            if not jnp.issubdtype(values.dtype, jnp.floating):
                raise TypeError(
                    f"loss {loss_name!r} returned dtype {values.dtype}; a loss must return "
                    "a floating array."
                )
            return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights)

        _LOSSES[loss_name] = wrapped
        _FAMILIES[loss_name] = family
        return wrapped

    if fn is None:
        return decorate
    return decorate(fn)


def unregister(name: str) -> None:
    """Removes a user-registered loss (built-in losses cannot be removed).

    Example:
      >>> import jaxloss
      >>> _ = jaxloss.register(lambda p, t: (p - t) ** 4, name="doc_quartic_loss")
      >>> jaxloss.unregister("doc_quartic_loss")
      >>> "doc_quartic_loss" in jaxloss.names()
      False

    References:
      DESIGN.md, ``registry.py``.
    """
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in jaxloss loss and cannot be unregistered.")
    if name not in _LOSSES:
        raise KeyError(f"no user loss named {name!r} is registered.")
    del _LOSSES[name]
    del _FAMILIES[name]


def get(name: str, **hyperparameters: Any) -> Callable[..., Array]:
    """The loss registered as ``name``, with ``hyperparameters`` bound.

    Args:
      name: a name from ``jaxloss.names()``.
      **hyperparameters: keyword arguments to bind (e.g. ``delta=0.5``).

    Returns:
      The loss function, or a ``functools.partial`` of it.

    Raises:
      KeyError: no loss of that name (the message lists close names).
      TypeError: a hyperparameter the loss does not take.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> mse = jaxloss.get("mse_loss")
      >>> float(mse(jnp.array([1.0, 3.0]), jnp.array([0.0, 0.0])))
      5.0

    References:
      DESIGN.md, ``registry.py``.
    """
    if name not in _LOSSES:
        import difflib

        close = difflib.get_close_matches(name, list(_LOSSES), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"no loss named {name!r} is registered.{hint} See jaxloss.names().")
    fn = _LOSSES[name]
    if not hyperparameters:
        return fn
    if name in _BUILTIN:
        params = inspect.signature(fn).parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        keyword_only = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        unknown = sorted(set(hyperparameters) - keyword_only)
        if unknown and not accepts_any:
            raise TypeError(
                f"{name} takes no hyperparameter(s) {unknown}; its keyword arguments are "
                f"{sorted(keyword_only)}."
            )
    return functools.partial(fn, **hyperparameters)


def names(*, family: str | None = None) -> list[str]:
    """Sorted names of the registered losses, optionally of one family.

    Example:
      >>> import jaxloss
      >>> "mse_loss" in jaxloss.names(family="regression")
      True

    References:
      DESIGN.md, ``registry.py``.
    """
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES} or None; got {family!r}")
    return sorted(n for n in _LOSSES if family is None or _FAMILIES[n] == family)


def family_of(name: str) -> str:
    """The family a registered loss belongs to.

    Example:
      >>> import jaxloss
      >>> jaxloss.registry.family_of("cross_entropy_loss")
      'classification'

    References:
      DESIGN.md, ``registry.py``.
    """
    if name not in _FAMILIES:
        raise KeyError(f"no loss named {name!r} is registered.")
    return _FAMILIES[name]

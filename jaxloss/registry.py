"""Name -> loss lookup, and registration of a user's own losses.

Names map to Python functions in a dictionary: no ``eval``, no pickle.

Every built-in loss goes through :func:`_builtin`, which records it and wraps it
in a thin keyword check: a PyTorch (or Keras) keyword that jaxloss spells
differently (``weight=``, ``target=``, ``input=``, ``size_average=``,
``reduce=``, ``dim=``, an unsupported ``ignore_index=``,
``reduction="batchmean"``) raises an error that names the jaxloss spelling,
before the loss runs. The check happens once per Python call (at trace time
under ``jit``), so it costs nothing in compiled code.

Example:
  >>> import jax.numpy as jnp
  >>> import jaxloss
  >>> loss = jaxloss.get("huber_loss", delta=0.5)
  >>> float(loss(jnp.array([0.0, 2.0]), jnp.array([0.0, 0.0])))
  0.4375
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar, overload

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce

P = ParamSpec("P")
R = TypeVar("R")

_LOSSES: dict[str, Callable[..., Any]] = {}
_FAMILIES: dict[str, str] = {}
_BUILTIN: set[str] = set()
_KEYWORD_CHECKS: dict[str, _KeywordCheck] = {}

FAMILIES: tuple[str, ...] = (
    "regression",
    "classification",
    "segmentation",
    "detection",
    "metric",
    "image",
    "keypoint",
    "geometry",
    "custom",
)

_PARAMETER_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_POSITIONAL_KINDS = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)

def _check_reduction(name: str, reduction: Any) -> None:
    """Raises for a reduction that another library spells differently (named in the hint)."""
    hint = _checks.reduction_hint(reduction, name)
    if hint:
        raise ValueError(
            f"{name}: {hint} reduction must be one of ('mean', 'sum', 'none'); "
            f"got {reduction!r}."
        )


def _keyword_hint(keyword: str, accepted: frozenset[str], positional: list[str]) -> str:
    """What to write instead of ``keyword``, a keyword argument the loss does not take."""
    first = f"the first array, {positional[0]}" if positional else "the first array"
    second = f"the second array, {positional[1]}" if len(positional) > 1 else "the second array"
    if keyword == "weight":
        hint = ("weight= is PyTorch's spelling: jaxloss takes weights= (per-entry weights, "
                "broadcastable to the unreduced loss)")
        if "class_weights" in accepted:
            hint += " or class_weights= (one weight per class, torch's weight= of cross_entropy)"
        if "kernel" in positional:
            hint += "; the class matrix is the positional argument kernel"
        return hint + "."
    if keyword in ("target", "targets", "label", "labels", "y_true", "y"):
        return (f"{keyword}= is not a keyword here: pass the targets positionally, as "
                f"{second}.")
    if keyword in ("input", "inputs", "prediction", "predictions", "y_pred", "logits", "preds"):
        return (f"{keyword}= is not a keyword here: pass the predictions positionally, as "
                f"{first}.")
    if keyword in ("size_average", "reduce"):
        return (f"{keyword}= is a deprecated PyTorch argument; use reduction= "
                "('mean', 'sum' or 'none').")
    if keyword == "ignore_index":
        return ("This loss takes no ignore_index=; drop those entries with where= "
                "(e.g. where=targets != ignore_index).")
    if keyword == "dim":
        if "axis" in accepted:
            return "dim= is PyTorch's spelling of axis=."
        return "dim= is PyTorch's spelling of axis=, which this loss does not take."
    if keyword == "sample_weight":
        return "sample_weight= is Keras's spelling of weights=."
    if keyword == "mask":
        return "mask= is spelled where= in jaxloss (True keeps an entry)."
    close = difflib.get_close_matches(keyword, sorted(accepted), n=1)
    return f"Did you mean {close[0]}=?" if close else ""


class _KeywordCheck:
    """The keywords a loss accepts, read once from its signature; raises with a hint otherwise."""

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        params = inspect.signature(fn).parameters
        self.name = name
        self.accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        self.accepted = frozenset(n for n, p in params.items() if p.kind in _PARAMETER_KINDS)
        self.keyword_only = sorted(
            n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY)
        self.positional = [n for n, p in params.items() if p.kind in _POSITIONAL_KINDS]

    def __call__(self, kwargs: Mapping[str, Any]) -> None:
        if "reduction" in kwargs:
            _check_reduction(self.name, kwargs["reduction"])
        if self.accepts_any:
            return
        unknown = [k for k in kwargs if k not in self.accepted]
        if unknown:
            hints = [_keyword_hint(k, self.accepted, self.positional) for k in unknown]
            raise TypeError(
                f"{self.name}() got unexpected keyword argument(s) {unknown}. "
                + " ".join(h for h in hints if h)
                + f" Its keyword arguments are {self.keyword_only}."
            )


def _builtin(family: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Records a jaxloss loss under its own ``__name__`` (internal decorator).

    The recorded (and returned) function is ``fn`` behind a keyword check
    (:class:`_KeywordCheck`); its signature, docstring and type are ``fn``'s.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}; got {family!r}")

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        name = fn.__name__
        if name in _LOSSES:
            raise ValueError(f"loss {name!r} is registered twice")
        check = _KeywordCheck(name, fn)

        @functools.wraps(fn)
        def loss(*args: P.args, **kwargs: P.kwargs) -> R:
            if kwargs:
                check(kwargs)
            return fn(*args, **kwargs)

        _LOSSES[name] = loss
        _FAMILIES[name] = family
        _BUILTIN.add(name)
        _KEYWORD_CHECKS[name] = check
        return loss

    return decorate


def _shape_of(value: Any) -> tuple[int, ...] | None:
    """The shape of an array or Python scalar; ``None`` for anything else (a pytree, ...)."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return tuple(value.shape)
    if isinstance(value, (int, float, bool)):
        return ()
    return None


def _array_parameters(fn: Callable[..., Any]) -> tuple[str, str]:
    """Names of ``fn``'s first two positional parameters (for messages and keyword lookup)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return "predictions", "targets"
    names = [n for n, p in params.items() if p.kind in _POSITIONAL_KINDS]
    names += ["predictions", "targets"][len(names):]
    return names[0], names[1]


UserLoss = Callable[..., ArrayLike]
RegisteredLoss = Callable[..., Array]


@overload
def register(fn: UserLoss, *, name: str | None = None, family: str = "custom",
             overwrite: bool = False, elementwise: bool = True) -> RegisteredLoss: ...


@overload
def register(fn: None = None, *, name: str | None = None, family: str = "custom",
             overwrite: bool = False,
             elementwise: bool = True) -> Callable[[UserLoss], RegisteredLoss]: ...


def register(
    fn: UserLoss | None = None,
    *,
    name: str | None = None,
    family: str = "custom",
    overwrite: bool = False,
    elementwise: bool = True,
) -> RegisteredLoss | Callable[[UserLoss], RegisteredLoss]:
    """Registers a user's loss so that it behaves like a jaxloss loss.

    ``fn(predictions, targets, *arrays, **hyperparameters)`` returns the
    *unreduced* loss. The registered function takes the same arguments plus
    the keyword-only ``where=None``, ``weights=None`` and ``reduction="mean"``
    that every jaxloss loss takes, and reduces through the same path
    (weighted mean over the selected entries; 0 when nothing is selected).
    ``where`` is applied to the output of ``fn``: masked entries contribute
    neither value nor gradient as long as ``fn`` itself is finite there.

    Shapes, as for the built-in losses: with ``elementwise=True`` (the
    default) the first two arrays (``predictions`` and ``targets``, found
    positionally or by ``fn``'s parameter names) must have the same shape,
    checked before ``fn`` runs (at trace time under ``jit``), so that a
    ``(N,)`` prediction is never silently broadcast against an ``(N, 1)``
    target into an ``(N, N)`` loss. A loss whose arrays legitimately differ
    in shape (logits ``(N, C)`` and integer labels ``(N,)``, embeddings and
    a class matrix, a deliberate broadcast) is registered with
    ``elementwise=False`` and checks its own shapes. Scalars (shape ``()``)
    and non-array arguments are not checked.

    Can be used as ``@register``, ``@register(name=..., family=...)`` or
    ``register(fn, name=...)``.

    Args:
      fn: the unreduced loss function.
      name: registry name; default ``fn.__name__``.
      family: one of ``jaxloss.registry.FAMILIES``; default ``"custom"``.
      overwrite: allow replacing an earlier *user* registration of ``name``.
        Built-in losses can never be replaced.
      elementwise: require ``predictions`` and ``targets`` of the same shape
        (see above); ``False`` turns the check off.

    Returns:
      The wrapped loss (also available as ``jaxloss.get(name)``).

    Raises:
      ValueError: ``name`` is taken, or ``family`` is unknown; when called,
        ``predictions`` and ``targets`` of different shapes (``elementwise=True``).

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
      >>> cubic(jnp.zeros(4), jnp.zeros((4, 1)))
      Traceback (most recent call last):
        ...
      ValueError: loss 'doc_cubic_loss' is registered as elementwise: ... got (4,) and (4, 1)...

    References:
      The calling convention (README, "A short tour"); optax's losses for the
      ``where=`` keyword.
    """
    if not isinstance(elementwise, bool):
        raise TypeError(f"elementwise must be a bool; got {elementwise!r}.")

    def decorate(user_fn: UserLoss) -> RegisteredLoss:
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
        first, second = _array_parameters(user_fn)

        def check_shapes(args: tuple[Any, ...], hyperparameters: Mapping[str, Any]) -> None:
            arrays = list(args[:2])
            for keyword in (first, second)[len(arrays):]:
                if keyword not in hyperparameters:
                    return
                arrays.append(hyperparameters[keyword])
            shapes = [_shape_of(a) for a in arrays]
            if None in shapes or () in shapes or shapes[0] == shapes[1]:
                return
            raise ValueError(
                f"loss {loss_name!r} is registered as elementwise: {first} and {second} must "
                f"have the same shape; got {shapes[0]} and {shapes[1]}. Reshape one of them "
                "(jaxloss never broadcasts (N,) against (N, 1) silently), or register the loss "
                "with elementwise=False if its arrays differ in shape by design (e.g. logits "
                "(N, C) and labels (N,))."
            )

        @functools.wraps(user_fn)
        def wrapped(
            *args: Any,
            where: ArrayLike | None = None,
            weights: ArrayLike | None = None,
            reduction: str = "mean",
            **hyperparameters: Any,
        ) -> Array:
            _check_reduction(loss_name, reduction)
            if elementwise:
                check_shapes(args, hyperparameters)
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
      The registry (``jaxloss/registry.py``) and README's catalogue.
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
      TypeError: a hyperparameter the loss does not take (the message names
        the jaxloss spelling of a PyTorch keyword such as ``weight=``).
      ValueError: a reduction another library spells differently
        (``reduction="batchmean"``).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> mse = jaxloss.get("mse_loss")
      >>> float(mse(jnp.array([1.0, 3.0]), jnp.array([0.0, 0.0])))
      5.0

    References:
      The registry (``jaxloss/registry.py``) and README's catalogue.
    """
    if name not in _LOSSES:
        close = difflib.get_close_matches(name, list(_LOSSES), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"no loss named {name!r} is registered.{hint} See jaxloss.names().")
    fn = _LOSSES[name]
    if not hyperparameters:
        return fn
    if "reduction" in hyperparameters:
        _check_reduction(name, hyperparameters["reduction"])
    if name in _BUILTIN:
        _KEYWORD_CHECKS[name](hyperparameters)
    return functools.partial(fn, **hyperparameters)


def names(*, family: str | None = None) -> list[str]:
    """Sorted names of the registered losses, optionally of one family.

    Example:
      >>> import jaxloss
      >>> "mse_loss" in jaxloss.names(family="regression")
      True

    References:
      The registry (``jaxloss/registry.py``) and README's catalogue.
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
      The registry (``jaxloss/registry.py``) and README's catalogue.
    """
    if name not in _FAMILIES:
        raise KeyError(f"no loss named {name!r} is registered.")
    return _FAMILIES[name]

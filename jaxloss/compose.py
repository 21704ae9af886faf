"""Composing losses into objectives: terms, weighted sums, deep supervision.

A :class:`Term` binds a loss (a function or a registry name), its
hyperparameters, a weight (a number or an optax schedule of the step), the
names of the prediction and target entries it reads, and a name for logging.
:func:`combine` turns terms into a pure ``(predictions, targets) -> (total,
parts)`` function; :func:`objective` puts a model's ``apply_fn`` in front of it
so that ``jax.value_and_grad(objective(apply_fn, loss), has_aux=True)`` feeds
any optax optimizer. Terms, combinations and objectives are frozen,
hashable dataclasses, so they can be static arguments of ``jax.jit``
(hyperparameters must then be hashable: numbers, strings, tuples).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, cast

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss import registry as _registry

__all__ = ["Combined", "Objective", "Term", "combine", "deep_supervision", "objective", "term"]

Weight = float | Callable[[ArrayLike], ArrayLike]


def _resolve(loss: Callable[..., Array] | str) -> Callable[..., Array]:
    return _registry.get(loss) if isinstance(loss, str) else loss


@dataclasses.dataclass(frozen=True)
class Term:
    """One weighted loss term of an objective (see :func:`term`)."""

    loss: Callable[..., Array] | str
    prediction: str
    target: str
    weight: Weight = 1.0
    name: str = ""
    hyperparameters: tuple[tuple[str, Any], ...] = ()
    extra: tuple[str, ...] = ()

    def weight_at(self, step: ArrayLike | None) -> ArrayLike:
        """The term's weight, evaluating a schedule at ``step``."""
        if callable(self.weight):
            if step is None:
                raise ValueError(
                    f"term {self.name!r} has a scheduled weight; call the combined loss with "
                    "step=... (the optimizer step count)."
                )
            return self.weight(step)
        return self.weight

    def value(self, predictions: Mapping[str, Array], targets: Mapping[str, Array]) -> Array:
        """The term's unweighted loss on ``predictions[prediction]``, ``targets[target]``."""
        for key, where, label in ((self.prediction, predictions, "predictions"),
                                  (self.target, targets, "targets")):
            if key not in where:
                raise KeyError(
                    f"term {self.name!r} reads {label}[{key!r}], but {label} has keys "
                    f"{sorted(where)}."
                )
        extra = [targets[key] for key in self.extra]
        fn = _resolve(self.loss)
        return fn(predictions[self.prediction], targets[self.target], *extra,
                  **dict(self.hyperparameters))


def term(
    loss: Callable[..., Array] | str,
    *,
    prediction: str,
    target: str,
    weight: Weight = 1.0,
    name: str | None = None,
    extra: Sequence[str] = (),
    **hyperparameters: Any,
) -> Term:
    """Binds a loss, its hyperparameters, a weight and the entries it reads.

    Args:
      loss: a loss function or a registry name (``"dice_loss"``).
      prediction: key of the predictions dict the loss takes first.
      target: key of the targets dict it takes second.
      weight: a number, or an optax schedule ``step -> weight``.
      name: the term's name in ``parts`` (default: ``prediction/loss name``).
      extra: keys of further target-dict arrays passed positionally after the
        target (e.g. paddings of ``ctc_loss``).
      **hyperparameters: keyword arguments of the loss.

    Returns:
      A hashable :class:`Term`.

    Example:
      >>> import jaxloss
      >>> t = jaxloss.compose.term("dice_loss", prediction="mask", target="mask", weight=0.5)
      >>> t.name
      'mask/dice_loss'

    References:
      README, "Multi-task objectives"; optax's loss and transform conventions.
    """
    loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "loss")
    if isinstance(loss, str):
        _registry.get(loss)  # unknown names fail here, not at the first step
    elif not callable(loss):
        raise TypeError(f"loss must be a callable or a registry name; got {loss!r}.")
    if not callable(weight):
        _checks.check_range(weight, "weight", low=0.0)
    return Term(loss=loss, prediction=prediction, target=target, weight=weight,
                name=name or f"{prediction}/{loss_name}",
                hyperparameters=tuple(sorted(hyperparameters.items())), extra=tuple(extra))


@dataclasses.dataclass(frozen=True)
class Combined:
    """A weighted sum of terms: ``(predictions, targets, *, step=None) -> (total, parts)``."""

    terms: tuple[Term, ...]

    def __call__(self, predictions: Mapping[str, Array], targets: Mapping[str, Array], *,
                 step: ArrayLike | None = None) -> tuple[Array, dict[str, Array]]:
        parts = {t.name: t.value(predictions, targets) for t in self.terms}
        total = sum(jnp.asarray(t.weight_at(step), jnp.float32) * parts[t.name].astype(
            jnp.float32) for t in self.terms)
        return jnp.asarray(total), parts


def combine(*terms: Term | Sequence[Term]) -> Combined:
    """The weighted sum of ``terms`` as a pure function with per-term logging.

    ``combined(predictions, targets, step=None)`` returns ``(total, parts)``:
    ``total = sum_k w_k(step) * loss_k`` (float32) and ``parts`` maps each
    term's name to its *unweighted* value.

    Args:
      *terms: :class:`Term` objects (or one sequence of them); names must be
        unique.

    Returns:
      A hashable :class:`Combined`.

    Raises:
      ValueError: no terms, or two terms with one name.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> from jaxloss.compose import combine, term
      >>> loss = combine(term("mse_loss", prediction="depth", target="depth", weight=2.0),
      ...                term("cross_entropy_loss", prediction="logits", target="label"))
      >>> total, parts = loss({"depth": jnp.ones(3), "logits": jnp.zeros((3, 4))},
      ...                     {"depth": jnp.zeros(3), "label": jnp.array([0, 1, 2])})
      >>> round(float(total), 4), sorted(parts)
      (3.3863, ['depth/mse_loss', 'logits/cross_entropy_loss'])

    References:
      README, "Multi-task objectives"; optax's loss and transform conventions.
    """
    if len(terms) == 1 and not isinstance(terms[0], Term):
        items = tuple(terms[0])
    else:  # several terms (a sequence among them fails on .name below)
        items = cast("tuple[Term, ...]", terms)
    if not items:
        raise ValueError("combine needs at least one term.")
    names = [t.name for t in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"term names must be unique; repeated: {duplicates}. Pass name=...")
    return Combined(items)


def _resize_target(target: Array, spatial: tuple[int, ...]) -> Array:
    """``target`` ``(N, *spatial[, C])`` resized to ``spatial``: nearest for integer labels,
    bilinear for floating maps."""
    target = jnp.asarray(target)
    integer = not jnp.issubdtype(target.dtype, jnp.floating)
    has_channels = target.ndim == len(spatial) + 2
    shape = (target.shape[0], *spatial) + ((target.shape[-1],) if has_channels else ())
    if tuple(target.shape) == shape:
        return target
    method = "nearest" if integer else "linear"
    return jax.image.resize(target, shape, method=method).astype(target.dtype)


@dataclasses.dataclass(frozen=True)
class DeepSupervision:
    """One loss over several output scales (see :func:`deep_supervision`)."""

    loss: Callable[..., Array] | str
    weights: str | tuple[float, ...]
    hyperparameters: tuple[tuple[str, Any], ...] = ()

    def scale_weights(self, count: int) -> tuple[float, ...]:
        if isinstance(self.weights, str):
            raw = [1.0] * count if self.weights == "same" else [0.5**i for i in range(count)]
        else:
            raw = list(self.weights)
            if len(raw) != count:
                raise ValueError(
                    f"deep_supervision has {len(raw)} weights but got {count} outputs."
                )
        total = sum(raw)
        return tuple(w / total for w in raw)

    def __call__(self, predictions: Sequence[Any], targets: Any,
                 **kwargs: Any) -> Array | tuple[Array, dict[str, Array]]:
        if isinstance(predictions, (jax.Array, jnp.ndarray)) or not len(predictions):
            raise TypeError("deep supervision takes a list of predictions, finest first.")
        fn = _resolve(self.loss)
        weights = self.scale_weights(len(predictions))
        values = []
        for output in predictions:  # static loop over the (few) output scales or layers
            if isinstance(output, (tuple, list)):
                # Several arrays per layer (a criterion such as detr_criterion): the targets
                # are passed as they are, after them (a tuple is spread).
                spread = targets if isinstance(targets, (tuple, list)) else (targets,)
                values.append(fn(*output, *spread, **dict(self.hyperparameters), **kwargs))
                continue
            spatial = tuple(output.shape[1:-1])
            values.append(fn(output, _resize_target(targets, spatial),
                             **dict(self.hyperparameters), **kwargs))
        if all(isinstance(v, tuple) for v in values):
            # Criteria returning (total, parts): the weighted totals, and every layer's parts
            # under "<part>_<layer>" (DETR's naming of its auxiliary losses).
            total = sum(w * v[0].astype(jnp.float32) for w, v in zip(weights, values,
                                                                     strict=True))
            parts = {f"{name}_{layer}": part for layer, (_, layer_parts) in enumerate(values)
                     for name, part in layer_parts.items()}
            return jnp.asarray(total), parts
        return jnp.asarray(sum(w * v.astype(jnp.float32)
                               for w, v in zip(weights, values, strict=True)))


def deep_supervision(
    loss: Callable[..., Array] | str,
    *,
    weights: Literal["same", "exp"] | Sequence[float] = "exp",
    **hyperparameters: Any,
) -> DeepSupervision:
    r"""Applies one loss to several output scales, resizing the target to each.

    .. math:: \ell = \sum_s \tilde w_s\, \mathcal{L}(\hat y_s, \operatorname{resize}_s(y)),
       \qquad \tilde w_s = w_s / \textstyle\sum_s w_s

    ``predictions`` is a list of ``(N, *spatial_s, C)`` outputs, finest first.
    Integer targets are resized with nearest neighbours, floating targets
    bilinearly. ``weights="exp"`` gives scale ``s`` the weight ``2^{-s}``
    (nnU-Net), ``"same"`` equal weights; both normalised to sum to 1.

    An output may also be a tuple of arrays (one decoder layer of a set
    predictor): the loss is then called as ``loss(*output, *targets)`` with
    ``targets`` a tuple, without resizing. A loss returning ``(total, parts)``
    (``detr_criterion``, a :class:`Combined`-like criterion) gives ``(total,
    parts)`` back: the weighted totals and each layer's parts as
    ``"<part>_<layer>"``.

    Args:
      loss: a loss function or registry name.
      weights: ``"exp"``, ``"same"`` or one weight per scale.
      **hyperparameters: keyword arguments of the loss.

    Returns:
      A hashable callable ``(predictions_list, targets) -> loss`` (or ``->
      (total, parts)`` for a criterion that returns them).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> ds = jaxloss.compose.deep_supervision("cross_entropy_loss", weights="same")
      >>> labels = jnp.zeros((2, 8, 8), jnp.int32)
      >>> outputs = [jnp.zeros((2, 8, 8, 3)), jnp.zeros((2, 4, 4, 3))]
      >>> round(float(ds(outputs, labels)), 4)  # log 3 at both scales
      1.0986

    References:
      Lee et al., `Deeply-Supervised Nets <https://arxiv.org/abs/1409.5185>`_,
      2015; Zhou et al., UNet++, 2018; Isensee et al., nnU-Net, 2021.
    """
    if isinstance(weights, str):
        _checks.check_choice(weights, "weights", ("same", "exp"))
        stored: str | tuple[float, ...] = weights
    else:
        stored = tuple(float(w) for w in weights)
        if not stored or min(stored) < 0 or sum(stored) <= 0:
            raise ValueError(f"weights must be non-negative with a positive sum; got {weights}.")
    return DeepSupervision(loss=loss, weights=stored,
                           hyperparameters=tuple(sorted(hyperparameters.items())))


@dataclasses.dataclass(frozen=True)
class Objective:
    """``(params, batch) -> (loss, aux)`` (see :func:`objective`)."""

    apply_fn: Callable[..., Any]
    loss: Callable[..., Any]
    inputs: str = "inputs"

    def __call__(self, params: Any, batch: Mapping[str, Array], *,
                 step: ArrayLike | None = None) -> tuple[Array, dict[str, Any]]:
        if self.inputs not in batch:
            raise KeyError(f"batch has no {self.inputs!r} entry; keys: {sorted(batch)}.")
        predictions = self.apply_fn(params, batch[self.inputs])
        if isinstance(self.loss, Combined):
            total, parts = self.loss(predictions, batch, step=step)
        else:
            total = self.loss(predictions, {k: v for k, v in batch.items() if k != self.inputs})
            parts = {}
        return total, {"parts": parts, "predictions": predictions}


def objective(apply_fn: Callable[..., Any], loss: Callable[..., Any], *,
              inputs: str = "inputs") -> Objective:
    """The training objective ``(params, batch) -> (loss, aux)`` of a model and a loss.

    ``predictions = apply_fn(params, batch[inputs])``; for a :class:`Combined`
    loss the targets are the batch itself (terms read their keys from it) and
    ``aux = {"parts": parts, "predictions": predictions}``. Ready for
    ``jax.value_and_grad(objective, has_aux=True)`` and any optax optimizer.

    Args:
      apply_fn: ``(params, inputs) -> predictions`` (a dict for combined
        losses).
      loss: a :class:`Combined`, or ``(predictions, targets_dict) -> loss``.
      inputs: the batch key of the model inputs.

    Returns:
      A hashable :class:`Objective`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> from jaxloss.compose import combine, objective, term
      >>> def apply_fn(params, x):
      ...     return {"y": x @ params}
      >>> obj = objective(apply_fn, combine(term("mse_loss", prediction="y", target="y")))
      >>> batch = {"inputs": jnp.eye(2), "y": jnp.array([1.0, 2.0])}
      >>> (value, aux), grad = jax.value_and_grad(obj, has_aux=True)(jnp.zeros(2), batch)
      >>> float(value), grad.tolist()
      (2.5, [-1.0, -2.0])

    References:
      optax's training-loop pattern; README, "Multi-task objectives".
    """
    if not callable(apply_fn):
        raise TypeError("apply_fn must be callable.")
    return Objective(apply_fn=apply_fn, loss=loss, inputs=inputs)

"""How a loss joins the shared test battery (tests/test_battery.py).

Each family has a module ``tests/cases_<family>.py`` with a ``CASES`` dict
mapping every registered loss name of that family to a :class:`Case`. The
battery fails for a registered loss without a case.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

Inputs = tuple[tuple[Any, ...], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Case:
    """Inputs and facts the battery needs to put one loss through its checks.

    Attributes:
      make: ``make(rng) -> (args, kwargs)``: random, legal float32/int numpy
        inputs (positional arrays) and hyperparameters (keyword arguments).
        Every positional array in ``batch_args`` has a leading batch axis of
        size >= 4, and the unreduced loss has that batch axis first.
      extremes: ``extremes() -> [(args, kwargs), ...]``: legal inputs at the
        extremes (logits of +-1e4, probabilities 0 and 1, zero residuals,
        huge residuals, ...); value and gradient must be finite.
      float_args: indices of the positional arrays that are floating inputs
        (cast to bfloat16/float16 in the dtype test). The gradient is taken
        with respect to ``args[0]``.
      batch_args: indices of the positional arrays with the leading batch axis
        (sliced in the where-equals-slicing test); default: all.
      elementwise: targets (``args[1]``) must have the shape of ``args[0]``;
        the battery checks that ``(N,)`` against ``(N, 1)`` is refused.
      mean_is_mean_of_none: ``reduction="mean"`` equals the mean of
        ``reduction="none"`` for the inputs ``make`` gives.
      half_rtol: relative tolerance of the half-precision comparison.
      adapt: for a loss whose leading positional argument is not an array
        (``gradient_penalty(critic_fn, inputs)``): ``adapt(loss)`` returns a
        function of arrays only, ``f(inputs, *arrays, **kwargs)``, that the
        battery runs in its place (e.g. binding a critic whose parameters
        are one of the arrays).
    """

    make: Callable[[np.random.Generator], Inputs]
    extremes: Callable[[], list[Inputs]] = lambda: []
    float_args: tuple[int, ...] = (0, 1)
    batch_args: tuple[int, ...] | None = None
    elementwise: bool = False
    mean_is_mean_of_none: bool = True
    half_rtol: float = 2e-2
    adapt: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None

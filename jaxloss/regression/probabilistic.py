"""Probabilistic regression losses: the Gaussian negative log-likelihood (torch's)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss.registry import _builtin

__all__ = ["gaussian_nll_loss"]


@_builtin("regression")
def gaussian_nll_loss(
    mean: ArrayLike,
    targets: ArrayLike,
    var: ArrayLike,
    *,
    full: bool = False,
    eps: ArrayLike = 1e-6,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Gaussian negative log-likelihood of ``targets`` under ``N(mean, var)``.

    .. math::

        \ell_i = \tfrac12\left(\log \max(v_i, \epsilon) + \frac{(m_i - t_i)^2}
                 {\max(v_i, \epsilon)}\right) \;\left[+ \tfrac12 \log 2\pi\right]

    Convention: torch's ``gaussian_nll_loss``, argument order included. The
    variance is clamped at ``eps`` as torch does it, outside autograd: the
    gradient with respect to ``var`` is that of the unclamped formula at the
    clamped value. ``full=True`` adds the constant ``0.5 log(2 pi)``.

    Args:
      mean: floating array of any shape, the predicted means.
      targets: floating array of the shape of ``mean``.
      var: floating, ``>= 0``, the predicted variances: the shape of ``mean``
        (heteroscedastic), or that shape with a last axis of size 1 (one
        variance per row, broadcast over the last axis).
      full: static bool, include the constant term.
      eps: lower clamp of ``var``, ``> 0``; a Python float or a JAX scalar
        (no gradient flows to it).
      where: boolean mask broadcastable to the shape of ``mean``.
      weights: per-element weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``mean``.

    Raises:
      ValueError: ``targets`` or ``var`` have another shape, ``var`` has a
        negative entry or ``eps <= 0`` (when concrete), or ``reduction`` is
        unknown.
      TypeError: integer ``mean`` or ``var``, or a non-bool ``full``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> m, t, v = jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0]), jnp.array([1.0, 2.0])
      >>> float(jaxloss.gaussian_nll_loss(m, t, v))  # (0.5 + 0.5 log 2) / 2
      0.42328...

    References:
      Nix and Weigend, `Estimating the mean and variance of the target
      probability distribution <https://doi.org/10.1109/ICNN.1994.374138>`_,
      1994. Equivalent to ``torch.nn.functional.gaussian_nll_loss(input,
      target, var, full=full, eps=eps)``.
    """
    _checks.check_reduction(reduction)
    if not isinstance(full, bool):
        raise TypeError(f"full must be a static Python bool; got {full!r}.")
    _checks.check_range(eps, "eps", low=0.0, low_inclusive=False)
    m, t, _ = _checks.elementwise_pair(mean, targets, predictions_name="mean")
    var = _checks.float_input(var, "var")
    compute, dtype = _checks.compute_dtype(jnp.asarray(mean), jnp.asarray(targets), var)
    homoscedastic = m.shape[:-1] + (1,) if m.ndim else None
    if var.shape != m.shape:
        if var.shape != homoscedastic:
            expected = f"{m.shape}" + ("" if homoscedastic is None else f" or {homoscedastic}")
            raise ValueError(
                    f"var has shape {var.shape} but mean has shape {m.shape}; expected var of "
                    f"shape {expected} (one variance per element, or one per row of the last "
                    "axis). Reshape var, e.g. var[..., None] for one variance per row."
            )
        var = jnp.broadcast_to(var, m.shape)  # homoscedastic: repeat over the last axis
    m, t, var = (a.astype(compute) for a in (m, t, var))
    m, t = _reduce.mask_inputs(where, m, t)
    (var,) = _reduce.mask_inputs(where, var, fill=1.0)
    _checks.check_range(var, "var", low=0.0)
    eps = _checks.hyperparameter(eps, "eps", compute)
    # torch clamps under no_grad: the value is max(var, eps), the gradient that of var.
    var = jax.lax.stop_gradient(jnp.maximum(var, eps)) + (var - jax.lax.stop_gradient(var))
    values = 0.5 * (jnp.log(var) + jnp.square(m - t) / var)
    if full:
        values = values + 0.5 * math.log(2.0 * math.pi)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)

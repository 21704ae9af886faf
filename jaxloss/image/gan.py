"""GAN objectives: generator and discriminator losses, and the gradient penalties.

Conventions: every array has its batch axis first. The GAN losses take raw
critic/discriminator outputs (logits, never probabilities) of any shape with
the batch first (``(N,)`` per sample, ``(N, H, W, 1)`` for a PatchGAN) and are
elementwise: the unreduced loss has the logits' shape. The penalties are per
sample, ``(N,)``. Half-precision inputs are computed in float32 and returned in
their dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import safe_sqrt
from jaxloss.registry import _builtin

__all__ = [
    "gan_discriminator_loss",
    "gan_generator_loss",
    "gradient_penalty",
    "r1_penalty",
]

GanKind = Literal["non_saturating", "minimax", "hinge", "wasserstein", "least_squares"]
_GAN_KINDS: tuple[str, ...] = ("non_saturating", "minimax", "hinge", "wasserstein",
                               "least_squares")


def _logits(value: ArrayLike, name: str) -> Array:
    array = _checks.float_input(value, name)
    _checks.check_rank(array, name, min_rank=1)
    return array


# --------------------------------------------------------------------------------------
# GAN losses.
# --------------------------------------------------------------------------------------


@_builtin("image")
def gan_generator_loss(
    fake_logits: ArrayLike,
    *,
    kind: GanKind = "non_saturating",
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Generator loss of a GAN, from the discriminator's raw outputs on generated samples.

    With :math:`f` the discriminator's logit on a generated sample and
    :math:`\operatorname{sp}(z) = \log(1 + e^z)`:

    .. math::

        \ell^{\text{non\_saturating}} = \operatorname{sp}(-f) = -\log\sigma(f), \quad
        \ell^{\text{minimax}} = -\operatorname{sp}(f) = \log(1 - \sigma(f)), \\
        \ell^{\text{hinge}} = \ell^{\text{wasserstein}} = -f, \quad
        \ell^{\text{least\_squares}} = \tfrac12 (f - 1)^2

    Convention: logits in, never probabilities; the log forms go through
    softplus, so logits of ``+-1e4`` give finite values and gradients.
    ``minimax`` is Goodfellow's original ``log(1 - D(G(z)))`` (negative, and
    it saturates when the discriminator wins); ``least_squares`` is Mao's
    LSGAN with ``a = 0, b = c = 1`` and the factor ``1/2``, on the raw output
    (no sigmoid).

    Args:
      fake_logits: floating, rank >= 1, batch first: the discriminator's
        outputs on generated samples, ``(N,)`` per sample or e.g.
        ``(N, H, W, 1)`` for a PatchGAN.
      kind: ``"non_saturating"`` (default), ``"minimax"``, ``"hinge"``,
        ``"wasserstein"`` or ``"least_squares"`` (static).
      where: boolean mask broadcastable to the shape of ``fake_logits``.
      weights: per-entry weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``fake_logits``.

    Raises:
      ValueError: unknown ``kind`` or ``reduction``, rank-0 ``fake_logits``.
      TypeError: integer ``fake_logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> fake = jnp.array([0.0, 2.0])
      >>> float(jaxloss.gan_generator_loss(fake))  # (log 2 + log(1 + e^-2)) / 2
      0.41003...
      >>> float(jaxloss.gan_generator_loss(fake, kind="least_squares"))  # (1/2 + 1/2) / 2
      0.5

    References:
      Goodfellow et al., `Generative Adversarial Nets
      <https://arxiv.org/abs/1406.2661>`_, 2014 (minimax, non-saturating);
      Arjovsky et al., `Wasserstein GAN <https://arxiv.org/abs/1701.07875>`_,
      2017; Lim and Ye, `Geometric GAN <https://arxiv.org/abs/1705.02894>`_,
      2017 and Miyato et al., `Spectral Normalization for GANs
      <https://arxiv.org/abs/1802.05957>`_, 2018 (hinge); Mao et al., `Least
      Squares GANs <https://arxiv.org/abs/1611.04076>`_, 2017. The log forms
      equal ``torch.nn.functional.binary_cross_entropy_with_logits(fake,
      ones)`` (non-saturating) and ``-binary_cross_entropy_with_logits(fake,
      zeros)`` (minimax), with ``reduction="none"``.
    """
    _checks.check_reduction(reduction)
    _checks.check_choice(kind, "kind", _GAN_KINDS)
    f = _logits(fake_logits, "fake_logits")
    compute, dtype = _checks.compute_dtype(f)
    (f,) = _reduce.mask_inputs(where, f.astype(compute))
    if kind == "non_saturating":
        values = jax.nn.softplus(-f)
    elif kind == "minimax":
        values = -jax.nn.softplus(f)
    elif kind in ("hinge", "wasserstein"):
        values = -f
    else:  # least_squares
        values = 0.5 * jnp.square(f - 1.0)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("image")
def gan_discriminator_loss(
    real_logits: ArrayLike,
    fake_logits: ArrayLike,
    *,
    kind: GanKind = "non_saturating",
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Discriminator (critic) loss of a GAN, from its raw outputs on real and generated samples.

    With :math:`r`, :math:`f` the logits on a real and a generated sample and
    :math:`\operatorname{sp}(z) = \log(1 + e^z)`:

    .. math::

        \ell^{\text{non\_saturating}} = \ell^{\text{minimax}}
            = \operatorname{sp}(-r) + \operatorname{sp}(f)
            = -\log\sigma(r) - \log(1 - \sigma(f)), \\
        \ell^{\text{hinge}} = \max(0, 1 - r) + \max(0, 1 + f), \quad
        \ell^{\text{wasserstein}} = f - r, \quad
        \ell^{\text{least\_squares}} = \tfrac12 (r - 1)^2 + \tfrac12 f^2

    Convention: elementwise in the pairs ``(r_i, f_i)``: ``real_logits`` and
    ``fake_logits`` must have the same shape (a batch of real and a batch of
    generated samples of the same size). Logits in; the log forms go through
    softplus (finite at ``+-1e4``). ``wasserstein`` is the critic loss
    without its Lipschitz constraint: add :func:`gradient_penalty` (WGAN-GP)
    or clip the weights. ``least_squares`` is Mao's LSGAN, ``a = 0, b = 1``,
    with the factor ``1/2``.

    Args:
      real_logits: floating, rank >= 1, batch first: outputs on real samples.
      fake_logits: floating, the shape of ``real_logits``: outputs on
        generated samples.
      kind: ``"non_saturating"`` (default), ``"minimax"`` (the same
        discriminator loss), ``"hinge"``, ``"wasserstein"`` or
        ``"least_squares"`` (static).
      where: boolean mask broadcastable to the shape of ``real_logits``.
      weights: per-entry weights broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of the shape of
      ``real_logits``.

    Raises:
      ValueError: shapes differ, unknown ``kind`` or ``reduction``, rank-0
        logits.
      TypeError: integer logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> real, fake = jnp.array([0.5]), jnp.array([0.0])
      >>> float(jaxloss.gan_discriminator_loss(real, fake))  # log(1 + e^-0.5) + log 2
      1.16722...
      >>> float(jaxloss.gan_discriminator_loss(real, fake, kind="hinge"))  # 0.5 + 1
      1.5

    References:
      Goodfellow et al., `Generative Adversarial Nets
      <https://arxiv.org/abs/1406.2661>`_, 2014; Arjovsky et al., `Wasserstein
      GAN <https://arxiv.org/abs/1701.07875>`_, 2017; Lim and Ye, `Geometric
      GAN <https://arxiv.org/abs/1705.02894>`_, 2017 and Miyato et al.,
      `Spectral Normalization for GANs <https://arxiv.org/abs/1802.05957>`_,
      2018 (hinge); Mao et al., `Least Squares GANs
      <https://arxiv.org/abs/1611.04076>`_, 2017. The log form equals
      ``binary_cross_entropy_with_logits(real, ones) +
      binary_cross_entropy_with_logits(fake, zeros)`` (torch.nn.functional,
      ``reduction="none"``).
    """
    _checks.check_reduction(reduction)
    _checks.check_choice(kind, "kind", _GAN_KINDS)
    r = _logits(real_logits, "real_logits")
    f = _checks.float_input(fake_logits, "fake_logits")
    _checks.check_same_shape(f, "fake_logits", r, "real_logits")
    compute, dtype = _checks.compute_dtype(r, f)
    r, f = _reduce.mask_inputs(where, r.astype(compute), f.astype(compute))
    if kind in ("non_saturating", "minimax"):
        values = jax.nn.softplus(-r) + jax.nn.softplus(f)
    elif kind == "hinge":
        values = jax.nn.relu(1.0 - r) + jax.nn.relu(1.0 + f)
    elif kind == "wasserstein":
        values = f - r
    else:  # least_squares
        values = 0.5 * jnp.square(r - 1.0) + 0.5 * jnp.square(f)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


# --------------------------------------------------------------------------------------
# Gradient penalties.
# --------------------------------------------------------------------------------------


def _input_gradient_sq_norm(
    critic_fn: Callable[[Array], ArrayLike], inputs: ArrayLike, where: ArrayLike | None,
) -> tuple[Array, jnp.dtype]:
    """``||grad_x sum D(x)||^2`` per sample ``(N,)`` in the compute dtype, and the result dtype.

    Masked samples are replaced by zeros before the critic sees them, so a NaN
    there reaches neither the value nor the gradient.
    """
    if not callable(critic_fn):
        raise TypeError(
                f"critic_fn must be a callable mapping inputs (N, ...) to critic outputs; got "
                f"{type(critic_fn).__name__}. Bind the parameters first, e.g. "
                "critic_fn=lambda x: model.apply(params, x)."
        )
    x = _checks.float_input(inputs, "inputs")
    _checks.check_rank(x, "inputs", min_rank=1)
    compute, dtype = _checks.compute_dtype(x)
    (x,) = _reduce.mask_rows(where, x)

    # The critic runs on the inputs in their own dtype (the user's network, the user's
    # precision). Its output's sum is differentiated, as torch.autograd.grad(D(x).sum(), x):
    # a vjp with a cotangent of ones.
    out, vjp = jax.vjp(critic_fn, x)
    if not isinstance(out, jax.Array) or not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(
                "critic_fn must return one floating array (the critic's outputs, batch "
                f"first); got {type(out).__name__}"
                + (f" of dtype {out.dtype}" if hasattr(out, "dtype") else "") + "."
        )
    (grad,) = vjp(jnp.ones_like(out))
    grad = grad.astype(compute)
    axes = tuple(range(1, grad.ndim))
    return jnp.sum(jnp.square(grad), axis=axes), dtype                # [N]


@_builtin("image")
def gradient_penalty(
    critic_fn: Callable[[Array], ArrayLike],
    inputs: ArrayLike,
    *,
    target_norm: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""WGAN-GP gradient penalty: (norm of the critic's input gradient - target)^2 per sample.

    .. math::

        \ell_i = \left(\lVert \nabla_{x_i} \textstyle\sum_j D(x_j) \rVert_2 - c\right)^2

    with the norm over all non-batch axes of sample ``i``.

    Convention: ``inputs`` are the points where the penalty is taken, given
    as they are: for WGAN-GP the random interpolates
    ``eps * real + (1 - eps) * fake`` (draw ``eps`` per sample yourself). The
    gradient is that of the critic outputs' sum, as
    ``torch.autograd.grad(D(x).sum(), x)``; it is sample ``i``'s own gradient
    only if ``critic_fn`` treats samples independently (no batch statistics,
    e.g. no batch norm, which Gulrajani et al. also exclude). The critic runs
    on ``inputs`` in their own dtype; the norm is accumulated in float32. At
    a zero gradient (a flat critic) the norm's derivative is taken as 0, so
    the value is ``c^2`` and every gradient finite. The result is
    differentiable with respect to the inputs and, through ``critic_fn``'s
    closure, the critic's parameters (double backprop): take ``jax.grad``
    of a function of the parameters that builds ``critic_fn`` from them.
    Multiply by ``lambda`` (10 in the paper) yourself.

    Args:
      critic_fn: callable ``critic_fn(x) -> outputs``, a floating array
        (e.g. ``(N,)`` or ``(N, 1)``), differentiable in ``x``.
      inputs: floating ``(N, ...)``, rank >= 1, batch first.
      target_norm: ``c >= 0`` (1 in WGAN-GP; some use the batch's typical
        norm); a Python float or a traced JAX scalar.
      where: boolean mask broadcastable to ``(N,)``; masked samples are
        zeroed before the critic sees them.
      weights: per-sample weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced penalty; for ``reduction="none"`` an array of shape ``(N,)``.

    Raises:
      ValueError: ``target_norm < 0`` (when concrete), rank-0 ``inputs``, a
        ``where``/``weights`` not broadcastable to ``(N,)``, or an unknown
        ``reduction``.
      TypeError: integer ``inputs``, a ``critic_fn`` that is not callable or
        does not return a floating array.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> critic = lambda x: x @ jnp.array([3.0, 4.0])  # input gradient (3, 4), norm 5
      >>> float(jaxloss.gradient_penalty(critic, jnp.zeros((2, 2))))  # (5 - 1)^2
      16.0

    References:
      Gulrajani et al., `Improved Training of Wasserstein GANs
      <https://arxiv.org/abs/1704.00028>`_, 2017, eq. 3. In torch:
      ``g, = torch.autograd.grad(D(x).sum(), x, create_graph=True)``;
      ``(g.flatten(1).norm(dim=1) - 1) ** 2``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(target_norm, "target_norm", low=0.0)
    sq_norm, dtype = _input_gradient_sq_norm(critic_fn, inputs, where)
    c = _checks.hyperparameter(target_norm, "target_norm", sq_norm.dtype)
    values = jnp.square(safe_sqrt(sq_norm) - c)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("image")
def r1_penalty(
    critic_fn: Callable[[Array], ArrayLike],
    inputs: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""R1 regulariser: squared norm of the discriminator's input gradient per sample.

    .. math:: \ell_i = \lVert \nabla_{x_i} \textstyle\sum_j D(x_j) \rVert_2^2

    with the norm over all non-batch axes of sample ``i``.

    Convention: pass the *real* samples as ``inputs`` for R1 (generated ones
    give R2). The returned value is the bare squared norm: Mescheder et al.'s
    regulariser is ``gamma / 2`` times its mean, so multiply by ``gamma / 2``
    yourself. The gradient is that of the outputs' sum, as
    ``torch.autograd.grad(D(x).sum(), x)`` (a per-sample gradient when the
    critic treats samples independently). The critic runs on ``inputs`` in
    their own dtype; the squared norm is accumulated in float32. The result
    is differentiable with respect to the inputs and, through
    ``critic_fn``'s closure, the critic's parameters (double backprop).

    Args:
      critic_fn: callable ``critic_fn(x) -> outputs``, a floating array
        (e.g. ``(N,)`` or ``(N, 1)``), differentiable in ``x``.
      inputs: floating ``(N, ...)``, rank >= 1, batch first.
      where: boolean mask broadcastable to ``(N,)``; masked samples are
        zeroed before the critic sees them.
      weights: per-sample weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced penalty; for ``reduction="none"`` an array of shape ``(N,)``.

    Raises:
      ValueError: rank-0 ``inputs``, a ``where``/``weights`` not
        broadcastable to ``(N,)``, or an unknown ``reduction``.
      TypeError: integer ``inputs``, a ``critic_fn`` that is not callable or
        does not return a floating array.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> critic = lambda x: x @ jnp.array([3.0, 4.0])  # input gradient (3, 4)
      >>> float(jaxloss.r1_penalty(critic, jnp.zeros((2, 2))))  # 3^2 + 4^2
      25.0

    References:
      Mescheder et al., `Which Training Methods for GANs do actually
      Converge? <https://arxiv.org/abs/1801.04406>`_, 2018, eq. 9. In torch:
      ``g, = torch.autograd.grad(D(x).sum(), x, create_graph=True)``;
      ``g.pow(2).flatten(1).sum(1)`` (StyleGAN2's ``r1_penalty`` before
      ``gamma / 2``).
    """
    _checks.check_reduction(reduction)
    values, dtype = _input_gradient_sq_norm(critic_fn, inputs, where)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)

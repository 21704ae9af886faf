"""Generative-model objectives: the VAE KL term and the diffusion loss (GANs are in ``gan``).

Conventions: every array has its batch axis first. The GAN losses take raw
critic/discriminator outputs (logits, never probabilities) of any shape with
the batch first (``(N,)`` per sample, ``(N, H, W, 1)`` for a PatchGAN) and are
elementwise: the unreduced loss has the logits' shape. The penalties, the KL
term and the diffusion loss are per sample, ``(N,)`` (the KL term: the shape
of ``mean`` without its last axis). Half-precision inputs are computed in
float32 and returned in their dtype.
"""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import safe_div
from jaxloss.registry import _builtin

__all__ = [
    "diffusion_loss",
    "gaussian_kl_loss",
]

Weighting = Literal["eps", "min_snr", "v"]
_WEIGHTINGS: tuple[str, ...] = ("eps", "min_snr", "v")


# --------------------------------------------------------------------------------------
# VAE and diffusion.
# --------------------------------------------------------------------------------------


@_builtin("image")
def gaussian_kl_loss(
    mean: ArrayLike,
    logvar: ArrayLike,
    *,
    free_bits: ArrayLike = 0.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""KL divergence of a diagonal Gaussian posterior from the standard normal prior (VAE).

    .. math::

        \ell = \sum_j \max\!\left(\kappa_j, \lambda\right), \qquad
        \kappa_j = \operatorname{KL}\!\left(\mathcal N(\mu_j, e^{v_j}) \,\|\,
                   \mathcal N(0, 1)\right)
                 = \tfrac12\left(e^{v_j} + \mu_j^2 - 1 - v_j\right)

    summed over the last (latent) axis, with :math:`v = \log\sigma^2`.

    Convention: per sample (summed over the latent axis, not averaged).
    ``e^v - 1 - v`` is evaluated as ``expm1(v) - v`` (exact near ``v = 0``).
    ``free_bits`` ``lambda`` floors each dimension's KL *per sample*
    (``lambda = 0``, the default, changes nothing; below the floor a
    dimension gets no gradient). Kingma et al. 2016's free bits instead
    floor the KL averaged over the minibatch (per group of dimensions): get
    the per-dimension KL with ``kl = gaussian_kl_loss(mean[..., None],
    logvar[..., None], reduction="none")`` (shape ``(N, D)``), then
    ``jnp.sum(jnp.maximum(kl.mean(0), lam))``. Legal range of ``logvar`` in
    float32: any value below ``log(3.4e38 / D) ~ 88.7 - log D`` (``e^v``
    summed over ``D`` dimensions must stay finite; e.g. ``v <= 80`` for ``D``
    up to 5000); very negative values (e.g. ``-1e4``) are fine. A
    float16 result overflows above 65504.

    Args:
      mean: floating ``(..., D)``, rank >= 1: the posterior means; the
        leading axes (batch first) index samples, or positions of a latent
        map ``(N, H, W, D)``.
      logvar: floating, the shape of ``mean``: the posterior log-variances.
      free_bits: ``lambda >= 0``, in nats per dimension; a Python float or a
        traced JAX scalar.
      where: boolean mask broadcastable to ``mean.shape[:-1]``.
      weights: weights broadcastable to ``mean.shape[:-1]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of shape
      ``mean.shape[:-1]``.

    Raises:
      ValueError: shapes differ, rank-0 inputs, ``free_bits < 0`` (when
        concrete), or an unknown ``reduction``.
      TypeError: integer ``mean`` or ``logvar``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> mean, logvar = jnp.array([[1.0, 0.0]]), jnp.array([[0.0, jnp.log(2.0)]])
      >>> float(jaxloss.gaussian_kl_loss(mean, logvar))  # 1/2 + (1 - log 2) / 2
      0.65342...
      >>> float(jaxloss.gaussian_kl_loss(mean, logvar, free_bits=0.25))  # 0.5 + 0.25
      0.75

    References:
      Kingma and Welling, `Auto-Encoding Variational Bayes
      <https://arxiv.org/abs/1312.6114>`_, 2014, appendix B; free bits:
      Kingma et al., `Improved Variational Inference with Inverse
      Autoregressive Flow <https://arxiv.org/abs/1606.04934>`_, 2016. Equals
      ``torch.distributions.kl_divergence(Normal(mean, (0.5 *
      logvar).exp()), Normal(0, 1)).sum(-1)``.
    """
    _checks.check_reduction(reduction)
    _checks.check_range(free_bits, "free_bits", low=0.0)
    m = _checks.float_input(mean, "mean")
    _checks.check_rank(m, "mean", min_rank=1)
    v = _checks.float_input(logvar, "logvar")
    _checks.check_same_shape(v, "logvar", m, "mean")
    compute, dtype = _checks.compute_dtype(m, v)
    m, v = m.astype(compute), v.astype(compute)
    if where is not None:
        mask = _checks.broadcast_mask(where, m.shape[:-1], "where")
        m, v = _reduce.mask_inputs(mask[..., None], m, v)
    lam = _checks.hyperparameter(free_bits, "free_bits", compute)
    kl = 0.5 * (jnp.expm1(v) - v + jnp.square(m))                     # [..., D]
    # The floor as torch's clamp(min=lambda): at a tie the gradient passes through.
    kl = jnp.where(kl >= lam, kl, jnp.broadcast_to(lam, kl.shape))
    values = jnp.sum(kl, axis=-1)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("image")
def diffusion_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    snr: ArrayLike | None = None,
    weighting: Weighting = "eps",
    gamma: ArrayLike = 5.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Denoising diffusion training loss: per-sample MSE, optionally Min-SNR-gamma weighted.

    .. math::

        \ell_i = w(\mathrm{snr}_i) \cdot \frac{1}{|x_i|} \sum (p_i - t_i)^2, \qquad
        w = \begin{cases}
            1 & \text{eps} \\
            \min(\mathrm{snr}, \gamma) / \mathrm{snr} & \text{min\_snr} \\
            \min(\mathrm{snr}, \gamma) / (\mathrm{snr} + 1) & \text{v}
        \end{cases}

    with the mean over all non-batch axes of sample ``i``.

    Convention: ``predictions`` is the network's output and ``targets``
    whatever it is trained to predict (the noise for eps-prediction, the
    velocity for v-prediction); ``snr`` is
    ``alpha_bar_t / (1 - alpha_bar_t)`` of each sample's timestep.
    ``"eps"`` is Ho et al.'s :math:`L_\text{simple}` (``snr`` unused);
    ``"min_snr"`` is Min-SNR-gamma for eps-prediction, evaluated as
    ``1 if snr < gamma else gamma / snr``, so ``snr = 0`` gives its limit 1
    (the diffusers formula ``min(snr, gamma) / snr`` gives NaN there);
    ``"v"`` is Min-SNR-gamma for v-prediction (0 at ``snr = 0``). ``snr`` may
    be ``inf`` (weight 0 for ``"min_snr"`` and ``"v"``).

    Args:
      predictions: floating ``(N, ...)``, rank >= 1, batch first.
      targets: floating, the shape of ``predictions``.
      snr: floating ``(N,)``, ``>= 0``: the signal-to-noise ratio of each
        sample's timestep; required for ``"min_snr"`` and ``"v"`` (checked
        but unused for ``"eps"``).
      weighting: ``"eps"`` (default), ``"min_snr"`` or ``"v"`` (static).
      gamma: ``gamma > 0`` (5 in the paper); a Python float or a traced JAX
        scalar.
      where: boolean mask broadcastable to ``(N,)``.
      weights: per-sample weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` an array of shape ``(N,)``.

    Raises:
      ValueError: shapes differ, ``snr`` missing for ``"min_snr"``/``"v"`` or
        not of shape ``(N,)``, negative ``snr`` or ``gamma <= 0`` (when
        concrete), unknown ``weighting`` or ``reduction``.
      TypeError: integer ``predictions`` or ``snr``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p, t = jnp.zeros((2, 3)), jnp.ones((2, 3))  # per-sample MSE 1
      >>> snr = jnp.array([1.0, 10.0])
      >>> float(jaxloss.diffusion_loss(p, t, snr=snr, weighting="min_snr"))  # (1 + 5/10) / 2
      0.75
      >>> float(jaxloss.diffusion_loss(p, t, snr=snr, weighting="v"))  # (1/2 + 5/11) / 2
      0.47727...

    References:
      Ho et al., `Denoising Diffusion Probabilistic Models
      <https://arxiv.org/abs/2006.11239>`_, 2020; Hang et al., `Efficient
      Diffusion Training via Min-SNR Weighting Strategy
      <https://arxiv.org/abs/2303.09556>`_, 2023. Equals the diffusers
      training scripts (``train_text_to_image.py`` with ``--snr_gamma``):
      ``mse_loss(pred, target, reduction="none").mean(non-batch axes) *
      min(snr, gamma) / snr`` (``/ (snr + 1)`` for v-prediction).
    """
    _checks.check_reduction(reduction)
    _checks.check_choice(weighting, "weighting", _WEIGHTINGS)
    _checks.check_range(gamma, "gamma", low=0.0, low_inclusive=False)
    p, t, dtype = _checks.elementwise_pair(predictions, targets)
    _checks.check_rank(p, "predictions", min_rank=1)
    n = p.shape[0]
    if snr is None and weighting != "eps":
        raise ValueError(
                f"snr is required for weighting={weighting!r}: pass the signal-to-noise ratio "
                f"of each sample's timestep, shape ({n},), e.g. "
                "alphas_cumprod[t] / (1 - alphas_cumprod[t]); or use weighting='eps'."
        )
    p, t = _reduce.mask_rows(where, p, t)
    axes = tuple(range(1, p.ndim))
    values = jnp.mean(jnp.square(p - t), axis=axes)                    # [N]
    if snr is not None:
        s = _checks.float_input(snr, "snr")
        if s.shape != (n,):
            raise ValueError(
                    f"snr has shape {s.shape}; expected ({n},), one signal-to-noise ratio per "
                    f"sample of predictions {p.shape}. Reshape it, e.g. snr.reshape({n})."
            )
        _checks.check_range(s, "snr", low=0.0)
        s = s.astype(values.dtype)
        (s,) = _reduce.mask_rows(where, s, fill=1.0)
        if weighting != "eps":
            g = _checks.hyperparameter(gamma, "gamma", values.dtype)
            below = s < g
            # Double where: gamma / snr only ever sees snr >= gamma > 0.
            capped = jnp.where(below, s, jnp.broadcast_to(g, s.shape))  # min(snr, gamma)
            if weighting == "min_snr":
                safe = jnp.where(below, jnp.ones_like(s), s)
                w = jnp.where(below, jnp.ones_like(s), safe_div(capped, safe))
            else:  # v
                w = capped / (s + 1.0)
            values = values * w
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)

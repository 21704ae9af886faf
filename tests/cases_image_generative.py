"""Battery cases for the generative part of the image family (see tests/_case.py).

``gradient_penalty`` and ``r1_penalty`` take a critic function first: their
cases ``adapt`` them to ``f(inputs, params)`` with a small tanh critic whose
weight matrix is the second array. ``diffusion_loss`` takes ``snr`` as a
keyword; its case adapts it to ``f(predictions, targets, snr)`` so that the
battery slices and vmaps ``snr`` with the batch.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from tests._case import Case

GAN_KINDS = ("non_saturating", "minimax", "hinge", "wasserstein", "least_squares")
_BIG = 1e4


def critic(params, x):
    """A per-sample critic: ``sum_h tanh(flatten(x) @ W)[h]``, shape ``(N,)``.

    The input is cast to the parameters' dtype (a float32 critic fed half
    precision inputs, as a mixed-precision model would be).
    """
    flat = x.reshape(x.shape[0], -1).astype(params.dtype)
    return jnp.sum(jnp.tanh(flat @ params), axis=-1)


def adapt_critic_loss(loss):
    """``loss(critic_fn, inputs, **kw)`` as ``f(inputs, params, **kw)`` with :func:`critic`."""

    def adapted(inputs, params, **kwargs):
        return loss(lambda x: critic(params, x), inputs, **kwargs)

    return adapted


def adapt_diffusion_loss(loss):
    """``diffusion_loss(p, t, snr=s, **kw)`` as ``f(p, t, s, **kw)``."""

    def adapted(predictions, targets, snr, **kwargs):
        return loss(predictions, targets, snr=snr, **kwargs)

    return adapted


# -- GAN losses ----------------------------------------------------------------------------


def _generator_make(rng):
    # PatchGAN-shaped logits (N, H, W, 1).
    return (rng.normal(scale=2.0, size=(6, 3, 3, 1)).astype(np.float32),), {}


def _generator_extremes():
    # One batch holds every extreme (saturated both ways, 0, tiny, large): one call per kind.
    logits = np.array([_BIG, -_BIG, 0.0, 1e-30, 30.0, -30.0], np.float32)
    return [((logits,), {"kind": kind}) for kind in GAN_KINDS]


def _discriminator_make(rng):
    real = rng.normal(scale=2.0, size=(6, 3)).astype(np.float32)
    fake = rng.normal(scale=2.0, size=(6, 3)).astype(np.float32)
    return (real, fake), {}


def _discriminator_extremes():
    # Pairs (real, fake): saturated agreeing/disagreeing both ways, zeros, mixed.
    real = np.array([_BIG, -_BIG, _BIG, -_BIG, 0.0, 1.0, 30.0, 1e-30], np.float32)
    fake = np.array([-_BIG, _BIG, _BIG, -_BIG, 0.0, -1.0, -30.0, _BIG], np.float32)
    return [((real, fake), {"kind": kind}) for kind in GAN_KINDS]


# -- gradient penalties --------------------------------------------------------------------


def _penalty_make(rng):
    inputs = rng.normal(size=(6, 2, 3)).astype(np.float32)
    params = rng.normal(scale=0.5, size=(6, 4)).astype(np.float32)
    return (inputs, params), {}


def _penalty_extremes(*settings):
    def extremes():
        rng = np.random.default_rng(0)
        x = rng.normal(size=(4, 2, 3)).astype(np.float32)
        x[1], x[2], x[3] = 0.0, _BIG, -_BIG  # a random, a zero and two saturating samples
        w = rng.normal(size=(6, 4)).astype(np.float32)
        flat = np.zeros((6, 4), np.float32)  # flat critic: zero input gradient
        return [((x, p), dict(kw)) for kw in settings for p in (flat, w, 1e3 * w)]

    return extremes


# -- VAE KL --------------------------------------------------------------------------------


def _kl_make(rng):
    mean = rng.normal(size=(6, 4)).astype(np.float32)
    logvar = rng.normal(size=(6, 4)).astype(np.float32)
    return (mean, logvar), {}


def _kl_extremes():
    # Rows: every (mean, logvar) combination of mean in {0, +-1e4} and logvar in
    # {0, 80, -80, -1e4}. logvar up to 80: e^80 summed over the latent axis stays far
    # below float32's max (the documented legal range).
    means, logvars = np.meshgrid([0.0, _BIG, -_BIG], [0.0, 80.0, -80.0, -_BIG])
    mean = np.repeat(means.reshape(-1, 1), 3, axis=1).astype(np.float32)      # (12, 3)
    logvar = np.repeat(logvars.reshape(-1, 1), 3, axis=1).astype(np.float32)
    return [((mean, logvar), {"free_bits": fb}) for fb in (0.0, 0.5)]


# -- diffusion -----------------------------------------------------------------------------


def _diffusion_make(rng):
    predictions = rng.normal(size=(6, 4, 4, 2)).astype(np.float32)
    targets = rng.normal(size=(6, 4, 4, 2)).astype(np.float32)
    snr = rng.uniform(0.05, 20.0, size=(6,)).astype(np.float32)  # below and above gamma
    return (predictions, targets, snr), {"weighting": "min_snr", "gamma": 5.0}


def _diffusion_extremes():
    # Rows: snr 0, tiny, exactly gamma, huge, inf, 1; residuals 0, +-2e4 and mixed.
    p = np.zeros((6, 3, 2), np.float32)
    p[1], p[2], p[4] = _BIG, -_BIG, 1.0
    t = np.zeros_like(p)
    t[1], t[3] = -_BIG, _BIG
    snr = np.array([0.0, 1e-30, 5.0, 1e30, np.inf, 1.0], np.float32)
    return [((p, t, snr), {"weighting": w, "gamma": 5.0}) for w in ("eps", "min_snr", "v")]


CASES = {
    "gan_generator_loss": Case(make=_generator_make, extremes=_generator_extremes,
                               float_args=(0,)),
    "gan_discriminator_loss": Case(make=_discriminator_make, extremes=_discriminator_extremes,
                                   elementwise=True),
    "gradient_penalty": Case(make=_penalty_make,
                             extremes=_penalty_extremes({}, {"target_norm": 0.0}),
                             float_args=(0,), batch_args=(0,), adapt=adapt_critic_loss),
    "r1_penalty": Case(make=_penalty_make, extremes=_penalty_extremes({}),
                       float_args=(0,), batch_args=(0,), adapt=adapt_critic_loss),
    "gaussian_kl_loss": Case(make=_kl_make, extremes=_kl_extremes, elementwise=True),
    "diffusion_loss": Case(make=_diffusion_make, extremes=_diffusion_extremes,
                           elementwise=True, adapt=adapt_diffusion_loss),
}

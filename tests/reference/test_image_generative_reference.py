"""jaxloss.image.generative against its references, value and gradient.

References:
  * GAN losses: their closed forms evaluated in float64 NumPy (softplus as
    ``np.logaddexp(0, z)``, derivatives by hand), and torch 2.13's
    ``binary_cross_entropy_with_logits`` for the log forms.
  * gradient_penalty / r1_penalty: torch autograd in float64,
    ``torch.autograd.grad(D(x).sum(), x, create_graph=True)``, on the same
    small critics (an MLP and a conv net, weights copied; torch is NCHW/OIHW,
    jaxloss NHWC/HWIO) -- value, gradient with respect to the inputs and with
    respect to every critic parameter (double backprop).
  * gaussian_kl_loss: ``torch.distributions.kl_divergence(Normal(mu,
    exp(logvar / 2)), Normal(0, 1)).sum(-1)`` in float64.
  * diffusion_loss: the diffusers training-script formula
    (``min(snr, gamma) / snr``, ``/ (snr + 1)`` for v-prediction, times the
    per-sample MSE) in float64 NumPy.

jaxloss runs in float32; the float64 references are the truth it is held to
at rtol 1e-5.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as tf
from scipy.special import expit

import jaxloss

RTOL, ATOL = 1e-5, 1e-6
KINDS = ("non_saturating", "minimax", "hinge", "wasserstein", "least_squares")


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _sp(z):
    return np.logaddexp(0.0, z)


# -- GAN losses: closed forms -----------------------------------------------------------------

def _generator_reference(f, kind):
    """(value, d value / d f) of the generator loss, elementwise, float64."""
    if kind == "non_saturating":
        return _sp(-f), -expit(-f)
    if kind == "minimax":
        return -_sp(f), -expit(f)
    if kind in ("hinge", "wasserstein"):
        return -f, -np.ones_like(f)
    return 0.5 * (f - 1.0) ** 2, f - 1.0


def _discriminator_reference(r, f, kind):
    """(value, d/dr, d/df) of the discriminator loss, elementwise, float64."""
    if kind in ("non_saturating", "minimax"):
        return _sp(-r) + _sp(f), -expit(-r), expit(f)
    if kind == "hinge":
        return (np.maximum(0.0, 1.0 - r) + np.maximum(0.0, 1.0 + f),
                -(1.0 - r > 0).astype(np.float64), (1.0 + f > 0).astype(np.float64))
    if kind == "wasserstein":
        return f - r, -np.ones_like(r), np.ones_like(f)
    return 0.5 * (r - 1.0) ** 2 + 0.5 * f**2, r - 1.0, f


def _logits(shape, seed, scale=3.0):
    x = (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)
    flat = x.reshape(-1)
    flat[:4] = [1e4, -1e4, 40.0, -40.0]  # saturated entries in every draw
    return x


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(7,), (3, 4, 4, 1)])
def test_gan_losses_match_closed_forms(kind, shape):
    f = _logits(shape, 0)
    r = _logits(shape, 1)
    n = f.size
    f64, r64 = f.astype(np.float64), r.astype(np.float64)

    value, grad = jax.jit(jax.value_and_grad(
            lambda x: jaxloss.gan_generator_loss(x, kind=kind)))(f)
    expected, expected_grad = _generator_reference(f64, kind)
    _close(jaxloss.gan_generator_loss(f, kind=kind, reduction="none"), expected)
    _close(value, expected.mean())
    _close(grad, expected_grad / n)

    fn = lambda a, b: jaxloss.gan_discriminator_loss(a, b, kind=kind)  # noqa: E731
    value, (grad_r, grad_f) = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(r, f)
    expected, d_r, d_f = _discriminator_reference(r64, f64, kind)
    _close(jaxloss.gan_discriminator_loss(r, f, kind=kind, reduction="none"), expected)
    _close(value, expected.mean())
    _close(grad_r, d_r / n)
    _close(grad_f, d_f / n)


def test_gan_log_forms_match_torch_bce_with_logits():
    f = _logits((5, 3), 2)
    r = _logits((5, 3), 3)
    ft = torch.tensor(f, requires_grad=True)
    rt = torch.tensor(r, requires_grad=True)
    ones, zeros = torch.ones_like(ft), torch.zeros_like(ft)

    # Non-saturating generator: BCE(f, 1).
    expected = tf.binary_cross_entropy_with_logits(ft, ones, reduction="none")
    expected.sum().backward()
    value, grad = jax.value_and_grad(
            lambda x: jaxloss.gan_generator_loss(x, reduction="sum"))(f)
    _close(jaxloss.gan_generator_loss(f, reduction="none"), expected.detach().numpy())
    _close(grad, ft.grad.numpy())
    _close(value, expected.sum().item(), atol=1e-4)

    # Minimax generator: -BCE(f, 0) = log(1 - sigmoid(f)).
    ft.grad = None
    expected = -tf.binary_cross_entropy_with_logits(ft, zeros, reduction="none")
    expected.sum().backward()
    grad = jax.grad(lambda x: jaxloss.gan_generator_loss(x, kind="minimax", reduction="sum"))(f)
    _close(jaxloss.gan_generator_loss(f, kind="minimax", reduction="none"),
           expected.detach().numpy())
    _close(grad, ft.grad.numpy())

    # Discriminator: BCE(r, 1) + BCE(f, 0).
    ft.grad = None
    expected = (tf.binary_cross_entropy_with_logits(rt, ones, reduction="none")
                + tf.binary_cross_entropy_with_logits(ft, zeros, reduction="none"))
    expected.sum().backward()
    grad_r, grad_f = jax.grad(
            lambda a, b: jaxloss.gan_discriminator_loss(a, b, reduction="sum"),
            argnums=(0, 1))(r, f)
    _close(jaxloss.gan_discriminator_loss(r, f, reduction="none"), expected.detach().numpy())
    _close(grad_r, rt.grad.numpy())
    _close(grad_f, ft.grad.numpy())


# -- gradient penalties: torch autograd (double backprop) --------------------------------------

def _mlp_params(rng):
    return {"w1": rng.normal(scale=0.6, size=(6, 8)), "b1": rng.normal(scale=0.3, size=(8,)),
            "w2": rng.normal(scale=0.6, size=(8, 1)), "b2": rng.normal(scale=0.3, size=(1,))}


def _mlp_jax(p, x):
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ p["w1"] + p["b1"][None, :])
    return (h @ p["w2"] + p["b2"][None, :])[:, 0]                         # [N]


def _mlp_torch(p, x):
    h = torch.tanh(x.reshape(x.shape[0], -1) @ p["w1"] + p["b1"])
    return (h @ p["w2"] + p["b2"])[:, 0]


def _conv_params(rng):
    # Conv weight stored HWIO (jax); torch gets it as OIHW.
    return {"k": rng.normal(scale=0.5, size=(3, 3, 2, 4)), "c": rng.normal(scale=0.2, size=(4,)),
            "w": rng.normal(scale=0.7, size=(4, 1))}


def _conv_jax(p, x):
    y = jax.lax.conv_general_dilated(x, p["k"], (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    h = jax.nn.softplus(y + p["c"][None, None, None, :])
    return (jnp.mean(h, axis=(1, 2)) @ p["w"])[:, 0]                     # [N]


def _conv_torch(p, x):
    y = tf.conv2d(x.permute(0, 3, 1, 2), p["k"].permute(3, 2, 0, 1), padding=1)
    h = tf.softplus(y + p["c"][None, :, None, None])
    return (h.mean(dim=(2, 3)) @ p["w"])[:, 0]


CRITICS = {"mlp": (_mlp_params, _mlp_jax, _mlp_torch, (5, 2, 3)),
           "conv": (_conv_params, _conv_jax, _conv_torch, (3, 5, 5, 2))}


def _torch_penalty(torch_critic, params, x, penalty, target_norm):
    """Per-sample penalty and the gradients of its sum w.r.t. x and every parameter."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    pt = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    (g,) = torch.autograd.grad(torch_critic(pt, xt).sum(), xt, create_graph=True)
    if penalty == "gp":
        values = (g.flatten(1).norm(dim=1) - target_norm) ** 2
    else:
        values = g.pow(2).flatten(1).sum(dim=1)
    values.sum().backward()
    return (values.detach().numpy(), xt.grad.numpy(),
            # A parameter the input gradient does not depend on (the last bias) gets None:
            # its true gradient is 0.
            {k: np.zeros(v.shape) if v.grad is None else v.grad.numpy() for k, v in pt.items()})


@pytest.mark.parametrize("critic", sorted(CRITICS))
@pytest.mark.parametrize("penalty,target_norm", [("gp", 1.0), ("gp", 0.3), ("r1", None)])
def test_penalties_match_torch_double_backprop(critic, penalty, target_norm):
    make_params, jax_critic, torch_critic, shape = CRITICS[critic]
    rng = np.random.default_rng(4)
    params = make_params(rng)
    x = rng.normal(size=shape)
    expected, expected_dx, expected_dp = _torch_penalty(torch_critic, params, x, penalty,
                                                        target_norm)

    def loss(p, inputs, reduction="sum"):
        fn = lambda z: jax_critic(p, z)  # noqa: E731
        if penalty == "gp":
            return jaxloss.gradient_penalty(fn, inputs, target_norm=target_norm,
                                            reduction=reduction)
        return jaxloss.r1_penalty(fn, inputs, reduction=reduction)

    p32 = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
    x32 = jnp.asarray(x, jnp.float32)
    _close(jax.jit(loss, static_argnames="reduction")(p32, x32, reduction="none"), expected)
    dp, dx = jax.jit(jax.grad(loss, argnums=(0, 1)))(p32, x32)
    _close(dx, expected_dx)
    for name in params:
        _close(dp[name], expected_dp[name])


# -- VAE KL: torch.distributions ---------------------------------------------------------------

def _torch_kl(mean, logvar, free_bits=0.0):
    m = torch.tensor(mean, dtype=torch.float64, requires_grad=True)
    v = torch.tensor(logvar, dtype=torch.float64, requires_grad=True)
    posterior = torch.distributions.Normal(m, torch.exp(0.5 * v))
    prior = torch.distributions.Normal(torch.zeros_like(m), torch.ones_like(m))
    kl = torch.distributions.kl_divergence(posterior, prior)
    values = kl.clamp(min=free_bits).sum(-1)
    values.sum().backward()
    return values.detach().numpy(), m.grad.numpy(), v.grad.numpy()


@pytest.mark.parametrize("shape,free_bits", [((5, 4), 0.0), ((2, 3, 3, 8), 0.0),
                                             ((6, 5), 0.3)])
def test_gaussian_kl_matches_torch(shape, free_bits):
    rng = np.random.default_rng(5)
    mean = (1.5 * rng.normal(size=shape)).astype(np.float32)
    logvar = (1.5 * rng.normal(size=shape)).astype(np.float32)
    expected, d_mean, d_logvar = _torch_kl(mean, logvar, free_bits)
    values = jaxloss.gaussian_kl_loss(mean, logvar, free_bits=free_bits, reduction="none")
    assert values.shape == shape[:-1]
    _close(values, expected)
    g_mean, g_logvar = jax.jit(jax.grad(
            lambda m, v: jaxloss.gaussian_kl_loss(m, v, free_bits=free_bits, reduction="sum"),
            argnums=(0, 1)))(mean, logvar)
    _close(g_mean, d_mean)
    _close(g_logvar, d_logvar)
    if free_bits:
        assert np.any(np.asarray(g_logvar) == 0.0)  # floored dimensions get no gradient


def test_gaussian_kl_legal_extremes_match_closed_form():
    # The documented legal range: logvar up to ~80 (e^80 summed over the latent axis
    # stays finite in float32) and arbitrarily negative (-1e4: torch's Normal refuses the
    # zero scale, so the reference is the closed form 0.5 (e^v + m^2 - 1 - v) and its
    # derivatives m and 0.5 (e^v - 1), in float64); means of 1e4; logvar near 0, where
    # e^v - 1 - v cancels (expm1 keeps it exact).
    mean = np.array([[0.0, 1e4, -3.0, 0.0], [0.5, 0.0, 0.0, 1e-3]], np.float32)
    logvar = np.array([[80.0, -80.0, -1e4, 0.0], [1e-4, -1e-3, 30.0, -30.0]], np.float32)
    m, v = mean.astype(np.float64), logvar.astype(np.float64)
    per_dim = 0.5 * (np.expm1(v) - v + m**2)
    value_and_grad = jax.jit(jax.value_and_grad(
            lambda a, b: jaxloss.gaussian_kl_loss(a, b, reduction="sum"), argnums=(0, 1)))
    value, (g_mean, g_logvar) = value_and_grad(mean, logvar)
    _close(jaxloss.gaussian_kl_loss(mean, logvar, reduction="none"), per_dim.sum(-1))
    _close(value, per_dim.sum())
    _close(g_mean, m)
    _close(g_logvar, 0.5 * np.expm1(v))
    # Per dimension (the free-bits recipe of the docstring: a trailing axis of size 1).
    _close(jaxloss.gaussian_kl_loss(mean[..., None], logvar[..., None], reduction="none"),
           per_dim)


# -- diffusion: the diffusers formula ----------------------------------------------------------

def _diffusers_weight(snr, weighting, gamma):
    """diffusers' train_text_to_image.py: min(snr, gamma) / snr (eps), / (snr + 1) (v)."""
    if weighting == "eps":
        return np.ones_like(snr)
    capped = np.minimum(snr, gamma)
    with np.errstate(divide="ignore", invalid="ignore"):
        if weighting == "min_snr":
            w = capped / snr
            # diffusers gives 0/0 = NaN at snr = 0; the documented convention is the
            # limit 1 (min(snr, gamma) = snr there).
            return np.where(snr == 0, 1.0, w)
        return capped / (snr + 1.0)


@pytest.mark.parametrize("weighting,gamma", [("eps", 5.0), ("min_snr", 5.0), ("v", 5.0),
                                             ("min_snr", 1.0)])
def test_diffusion_matches_diffusers_formula(weighting, gamma):
    rng = np.random.default_rng(6)
    shape = (8, 4, 4, 3)
    p = rng.normal(size=shape).astype(np.float32)
    t = rng.normal(size=shape).astype(np.float32)
    # snr = 0, tiny, exactly gamma, huge, and random values on both sides of gamma.
    snr = np.array([0.0, 1e-30, gamma, 1e30, 0.2, 3.0, 9.0, 40.0], np.float32)
    w = _diffusers_weight(snr.astype(np.float64), weighting, gamma)
    r = p.astype(np.float64) - t.astype(np.float64)
    mse = np.mean(r**2, axis=(1, 2, 3))
    expected = mse * w
    # d/dp of the batch mean: w_i * 2 r / (elements per sample) / N.
    expected_grad = (w[:, None, None, None] * 2.0 * r / r[0].size) / shape[0]

    values = jaxloss.diffusion_loss(p, t, snr=snr, weighting=weighting, gamma=gamma,
                                    reduction="none")
    _close(values, expected)
    value, grad = jax.jit(jax.value_and_grad(
            lambda x: jaxloss.diffusion_loss(x, t, snr=snr, weighting=weighting, gamma=gamma)
    ))(p)
    _close(value, expected.mean())
    _close(grad, expected_grad)

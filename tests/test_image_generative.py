"""jaxloss.image.generative: jit with traced hyperparameters, limits, extremes, errors.

Reference agreement (closed forms, torch autograd, torch.distributions, the
diffusers formula) lives in tests/reference/test_image_generative_reference.py;
the shared battery (tests/test_battery.py, cases in
tests/cases_image_generative.py) covers jit/vmap/dtypes/where/weights.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss
from tests.cases_image_generative import GAN_KINDS, critic


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


RNG = np.random.default_rng(0)
X = RNG.normal(size=(4, 2, 3)).astype(np.float32)
W = RNG.normal(scale=0.5, size=(6, 4)).astype(np.float32)


# -- jit with traced hyperparameters -------------------------------------------------------------

def test_jit_traced_hyperparameters_match_eager_without_retracing():
    traces = []

    @jax.jit
    def losses(target_norm, free_bits, gamma):
        traces.append(1)
        gp = jaxloss.gradient_penalty(lambda x: critic(W, x), X, target_norm=target_norm)
        kl = jaxloss.gaussian_kl_loss(X[..., 0], X[..., 1], free_bits=free_bits)
        snr = jnp.array([0.0, 1.0, 5.0, 30.0])
        diff = jaxloss.diffusion_loss(X, X[::-1], snr=snr, weighting="v", gamma=gamma)
        return gp, kl, diff

    for hyper in ((1.0, 0.0, 5.0), (0.5, 0.7, 2.0)):
        eager = (
                jaxloss.gradient_penalty(lambda x: critic(W, x), X, target_norm=hyper[0]),
                jaxloss.gaussian_kl_loss(X[..., 0], X[..., 1], free_bits=hyper[1]),
                jaxloss.diffusion_loss(X, X[::-1], snr=jnp.array([0.0, 1.0, 5.0, 30.0]),
                                       weighting="v", gamma=hyper[2]),
        )
        for jitted, expected in zip(losses(*(jnp.float32(h) for h in hyper)), eager, strict=True):
            _close(jitted, expected)
    assert len(traces) == 1


def test_gradient_penalty_wrt_critic_params_under_jit():
    """A WGAN-GP critic step: the penalty's gradient w.r.t. the critic's weights."""

    def critic_loss(params, real, fake, eps):
        mixed = eps[:, None, None] * real + (1.0 - eps[:, None, None]) * fake
        fn = lambda x: critic(params, x)  # noqa: E731
        wasserstein = jaxloss.gan_discriminator_loss(fn(real), fn(fake), kind="wasserstein")
        return wasserstein + 10.0 * jaxloss.gradient_penalty(fn, mixed)

    eps = jnp.array([0.1, 0.5, 0.9, 0.3])
    grad = jax.jit(jax.grad(critic_loss))(W, X, X[::-1] * 2.0, eps)
    assert grad.shape == W.shape
    assert np.all(np.isfinite(np.asarray(grad))) and np.any(np.asarray(grad) != 0)


# -- limits and extremes -------------------------------------------------------------------------

def test_flat_critic_is_finite():
    flat = jnp.zeros_like(W)  # D(x) = 0: zero input gradient, norm at its kink
    gp = jax.jit(jax.value_and_grad(
            lambda p, x, c: jaxloss.gradient_penalty(lambda z: critic(p, z), x, target_norm=c),
            argnums=(0, 1)))
    for target_norm in (1.0, 0.0):
        value, (dp, dx) = gp(flat, X, jnp.float32(target_norm))
        assert float(value) == target_norm**2
        assert np.all(np.asarray(dp) == 0) and np.all(np.asarray(dx) == 0)
    value, dp = jax.jit(jax.value_and_grad(
            lambda p: jaxloss.r1_penalty(lambda z: critic(p, z), X)))(flat)
    assert float(value) == 0.0 and np.all(np.asarray(dp) == 0)


def test_critic_output_shape_n1_equals_n():
    n1 = jaxloss.gradient_penalty(lambda x: critic(W, x)[:, None], X, reduction="none")
    _close(n1, jaxloss.gradient_penalty(lambda x: critic(W, x), X, reduction="none"))


def test_diffusion_snr_limits():
    p = jnp.asarray(X)
    t = jnp.zeros_like(p)
    snr = jnp.array([0.0, 5.0 * (1 - 1e-6), 5.0, jnp.inf])

    @jax.jit
    def losses(s):
        return [jaxloss.diffusion_loss(p, t, snr=s, weighting=w, reduction="none")
                for w in ("eps", "min_snr", "v")]

    eps, min_snr, v = losses(snr)
    # snr = 0: min_snr's limit 1 (= eps), v's 0; continuous at snr = gamma; inf: weight 0.
    _close(min_snr[:3], eps[:3])
    assert float(min_snr[3]) == 0.0 and float(v[3]) == 0.0 and float(v[0]) == 0.0
    _close(v[1:3], eps[1:3] * 5.0 / 6.0)
    grad = jax.jit(jax.grad(lambda s: sum(jnp.sum(x) for x in losses(s))))(snr)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_gaussian_kl_latent_map_where_blocks_nan():
    mean = RNG.normal(size=(2, 3, 3, 4)).astype(np.float32)
    logvar = RNG.normal(size=(2, 3, 3, 4)).astype(np.float32)
    keep = RNG.uniform(size=(2, 3, 3)) > 0.4
    mean[~keep] = np.nan
    value, grad = jax.jit(jax.value_and_grad(
            lambda m: jaxloss.gaussian_kl_loss(m, logvar, where=keep, reduction="sum")))(mean)
    expected = 0.5 * (np.exp(logvar) + mean**2 - 1.0 - logvar).sum(-1)[keep].sum()
    _close(value, expected, rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(np.asarray(grad))) and np.all(np.asarray(grad)[~keep] == 0)


# -- properties over wide ranges ----------------------------------------------------------------

def _gan_outputs(r, f, kind):
    """Per-element values of both losses and their elementwise derivatives."""
    g_sum = lambda x: jaxloss.gan_generator_loss(x, kind=kind, reduction="sum")  # noqa: E731
    d_sum = lambda a, b: jaxloss.gan_discriminator_loss(  # noqa: E731
            a, b, kind=kind, reduction="sum")
    return (jaxloss.gan_generator_loss(f, kind=kind, reduction="none"), jax.grad(g_sum)(f),
            jaxloss.gan_discriminator_loss(r, f, kind=kind, reduction="none"),
            jax.grad(d_sum, argnums=(0, 1))(r, f))


_gan_jit = jax.jit(_gan_outputs, static_argnums=2)
_logit = st.floats(-1e4, 1e4, allow_nan=False, width=32)


@settings(max_examples=20, deadline=None)
@given(kind=st.sampled_from(GAN_KINDS), r=st.lists(_logit, min_size=6, max_size=6),
       f=st.lists(_logit, min_size=6, max_size=6))
def test_gan_losses_finite_and_match_closed_form(kind, r, f):
    r, f = np.asarray(r, np.float32), np.asarray(f, np.float32)
    g, dg, d, (dd_r, dd_f) = _gan_jit(r, f, kind)
    r64, f64 = r.astype(np.float64), f.astype(np.float64)
    sig = lambda z: 0.5 * (1.0 + np.tanh(0.5 * z))  # noqa: E731  (stable sigmoid)
    sp = lambda z: np.logaddexp(0.0, z)  # noqa: E731
    ones = np.ones_like(f64)
    if kind == "non_saturating":
        expected = (sp(-f64), sig(f64) - 1.0, sp(-r64) + sp(f64), -sig(-r64), sig(f64))
    elif kind == "minimax":
        expected = (-sp(f64), -sig(f64), sp(-r64) + sp(f64), -sig(-r64), sig(f64))
    elif kind == "hinge":
        expected = (-f64, -ones, np.maximum(0, 1 - r64) + np.maximum(0, 1 + f64),
                    -(r64 < 1.0).astype(np.float64), (f64 > -1.0).astype(np.float64))
    elif kind == "wasserstein":
        expected = (-f64, -ones, f64 - r64, -ones, ones)
    else:
        expected = (0.5 * (f64 - 1) ** 2, f64 - 1.0, 0.5 * (r64 - 1) ** 2 + 0.5 * f64**2,
                    r64 - 1.0, f64)
    for actual, want in zip((g, dg, d, dd_r, dd_f), expected, strict=True):
        assert np.all(np.isfinite(np.asarray(actual)))
        _close(actual, want)


_diffusion_jit = jax.jit(
        lambda s, gamma: jnp.stack([
            jaxloss.diffusion_loss(jnp.ones((2, 3)), jnp.zeros((2, 3)), snr=s, weighting=w,
                                   gamma=gamma, reduction="none") for w in ("min_snr", "v")]))


@settings(max_examples=20, deadline=None)
@given(snr=st.lists(st.one_of(st.just(0.0), st.floats(0.0, 1e30)),
                    min_size=2, max_size=2),
       gamma=st.floats(1e-3, 1e3))
def test_diffusion_weights_match_formula(snr, gamma):
    s = np.asarray(snr, np.float32).astype(np.float64)
    g = float(np.float32(gamma))
    with np.errstate(divide="ignore", invalid="ignore"):
        min_snr = np.where(s == 0, 1.0, np.minimum(s, g) / s)
    v = np.minimum(s, g) / (s + 1.0)
    out = _diffusion_jit(jnp.asarray(s, jnp.float32), jnp.float32(g))
    _close(out, np.stack([min_snr, v]))


# -- errors --------------------------------------------------------------------------------------

F = np.zeros((4, 2), np.float32)
SNR = np.ones((4,), np.float32)


def _critic_w(x):
    return critic(W, x)


ERRORS = [
    (lambda: jaxloss.gan_generator_loss(F, kind="relativistic"), ValueError, "kind"),
    (lambda: jaxloss.gan_discriminator_loss(F, F, kind="bce"), ValueError, "kind"),
    (lambda: jaxloss.gan_discriminator_loss(F[:, 0], F[:, :1]), ValueError, "fake_logits"),
    (lambda: jaxloss.gan_discriminator_loss(F, F[:3]), ValueError, "fake_logits"),
    (lambda: jaxloss.gan_generator_loss(np.float32(1.0)), ValueError, "fake_logits"),
    (lambda: jaxloss.gan_generator_loss(F.astype(np.int32)), TypeError, "fake_logits"),
    (lambda: jaxloss.gan_discriminator_loss(F.astype(np.int32), F), TypeError, "real_logits"),
    (lambda: jaxloss.gan_discriminator_loss(F, F.astype(bool)), TypeError, "fake_logits"),
    (lambda: jaxloss.gradient_penalty(_critic_w, X.astype(np.int32)), TypeError, "inputs"),
    (lambda: jaxloss.r1_penalty(_critic_w, X.astype(np.int32)), TypeError, "inputs"),
    (lambda: jaxloss.gradient_penalty(W, X), TypeError, "critic_fn"),
    (lambda: jaxloss.r1_penalty(lambda x: jnp.ones(4, jnp.int32), X), TypeError, "critic_fn"),
    (lambda: jaxloss.gradient_penalty(_critic_w, X, target_norm=-1.0), ValueError,
     "target_norm"),
    (lambda: jaxloss.gradient_penalty(_critic_w, X, where=np.ones((4, 2), bool)), ValueError,
     "where"),
    (lambda: jaxloss.gaussian_kl_loss(F.astype(np.int32), F), TypeError, "mean"),
    (lambda: jaxloss.gaussian_kl_loss(F, F.astype(np.int32)), TypeError, "logvar"),
    (lambda: jaxloss.gaussian_kl_loss(F, F[:, :1]), ValueError, "logvar"),
    (lambda: jaxloss.gaussian_kl_loss(F, F, free_bits=-0.1), ValueError, "free_bits"),
    (lambda: jaxloss.diffusion_loss(F, F, snr=SNR, weighting="x0"), ValueError, "weighting"),
    (lambda: jaxloss.diffusion_loss(F, F, weighting="min_snr"), ValueError, "snr is required"),
    (lambda: jaxloss.diffusion_loss(F, F, weighting="v"), ValueError, "snr is required"),
    (lambda: jaxloss.diffusion_loss(F, F, snr=SNR[:, None], weighting="min_snr"), ValueError,
     r"snr has shape \(4, 1\)"),
    (lambda: jaxloss.diffusion_loss(F, F, snr=np.ones(5, np.float32), weighting="v"),
     ValueError, "snr has shape"),
    (lambda: jaxloss.diffusion_loss(F, F, snr=-SNR, weighting="v"), ValueError, "snr"),
    (lambda: jaxloss.diffusion_loss(F, F, snr=SNR.astype(np.int32), weighting="v"), TypeError,
     "snr"),
    (lambda: jaxloss.diffusion_loss(F.astype(np.int32), F), TypeError, "predictions"),
    (lambda: jaxloss.diffusion_loss(F, F[:, :1]), ValueError, "targets"),
    (lambda: jaxloss.diffusion_loss(F, F, snr=SNR, weighting="min_snr", gamma=0.0), ValueError,
     "gamma"),
]


@pytest.mark.parametrize("call,error,match", ERRORS)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()

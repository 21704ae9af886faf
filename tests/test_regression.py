"""Tests of jaxloss.regression beyond the battery and the reference comparisons.

Bad-input errors, the documented conventions (beta = 0, eps = 0, the variance
clamp), numerical stability at huge and tiny residuals, and the robust loss:
its special cases, continuity, eq. 1 in float64, and d/d(alpha), d/d(scale)
against finite differences. Expected values come from independent float64
NumPy formulas (written out here from the papers), never from jaxloss itself.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss
from jaxloss import regression

RTOL, ATOL = 1e-5, 1e-6


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _pair(seed=0, shape=(5, 7), spread=2.0):
    rng = np.random.default_rng(seed)
    p = (spread * rng.normal(size=shape)).astype(np.float32)
    t = (spread * rng.normal(size=shape)).astype(np.float32)
    return jnp.asarray(p), jnp.asarray(t)


def _barron_f64(r, alpha, scale):
    """Barron 2019 eq. 1 in float64, written from the paper (alpha not in {0, 2, +-inf}).

    ``(x/b + 1)^(a/2) - 1`` is written ``expm1(a/2 log1p(x/b))``: the literal power minus 1
    cancels in float64 too (relative error ~1e-16 / (a x / 2b), 1e-4 at x = 1e-8, a = 1e-3).
    """
    x = (np.asarray(r, np.float64) / np.asarray(scale, np.float64)) ** 2
    alpha = np.asarray(alpha, np.float64)
    b = np.abs(alpha - 2.0)
    return b / alpha * np.expm1(alpha / 2.0 * np.log1p(x / b))


# --------------------------------------------------------------------------------------
# API surface.
# --------------------------------------------------------------------------------------


def test_all_lists_every_regression_loss():
    assert sorted(regression.__all__) == jaxloss.names(family="regression")
    for name in regression.__all__:
        assert getattr(jaxloss, name) is getattr(regression, name)


# --------------------------------------------------------------------------------------
# Bad input: the message names the argument.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn, kwargs, name", [
    (jaxloss.huber_loss, {"delta": -1.0}, "delta"),
    (jaxloss.huber_loss, {"delta": 0.0}, "delta"),
    (jaxloss.smooth_l1_loss, {"beta": -0.5}, "beta"),
    (jaxloss.charbonnier_loss, {"eps": -1e-3}, "eps"),
    (jaxloss.cauchy_loss, {"scale": 0.0}, "scale"),
    (jaxloss.geman_mcclure_loss, {"scale": -2.0}, "scale"),
    (jaxloss.welsch_loss, {"scale": 0.0}, "scale"),
    (jaxloss.robust_loss, {"scale": -1.0}, "scale"),
    (jaxloss.robust_loss, {"alpha": float("nan")}, "alpha"),
    (jaxloss.quantile_loss, {"tau": -0.1}, "tau"),
    (jaxloss.quantile_loss, {"tau": 1.1}, "tau"),
])
def test_out_of_range_hyperparameter(fn, kwargs, name):
    p, t = _pair()
    with pytest.raises(ValueError, match=name):
        fn(p, t, **kwargs)


def test_robust_alpha_must_broadcast():
    p, t = _pair(shape=(5, 7))
    with pytest.raises(ValueError, match="alpha"):
        jaxloss.robust_loss(p, t, alpha=jnp.ones((5,)))
    with pytest.raises(ValueError, match="scale"):
        jaxloss.robust_loss(p, t, scale=jnp.ones((2, 5, 7)))


@pytest.mark.parametrize("var_shape", [(5,), (1, 7), (5, 7, 1), (5, 2), (7,), ()])
def test_gaussian_nll_wrong_var_shape(var_shape):
    p, t = _pair(shape=(5, 7))
    with pytest.raises(ValueError, match="var"):
        jaxloss.gaussian_nll_loss(p, t, jnp.ones(var_shape))


def test_gaussian_nll_bad_var_and_flags():
    p, t = _pair(shape=(5, 7))
    with pytest.raises(TypeError, match="var"):
        jaxloss.gaussian_nll_loss(p, t, jnp.ones((5, 7), jnp.int32))
    with pytest.raises(ValueError, match="var"):
        jaxloss.gaussian_nll_loss(p, t, -jnp.ones((5, 7)))
    with pytest.raises(ValueError, match="eps"):
        jaxloss.gaussian_nll_loss(p, t, jnp.ones((5, 7)), eps=0.0)
    with pytest.raises(TypeError, match="full"):
        jaxloss.gaussian_nll_loss(p, t, jnp.ones((5, 7)), full=1)
    with pytest.raises(TypeError, match="mean"):
        jaxloss.gaussian_nll_loss(jnp.ones((5, 7), jnp.int32), t, jnp.ones((5, 7)))


def test_traced_hyperparameters_skip_the_range_check():
    p, t = _pair()
    # Under jit the value is unknown at trace time: no error, the formula is evaluated.
    out = jax.jit(lambda d: jaxloss.huber_loss(p, t, delta=d))(jnp.float32(0.5))
    _close(out, jaxloss.huber_loss(p, t, delta=0.5))


# --------------------------------------------------------------------------------------
# Huber / smooth L1 / log-cosh / Charbonnier / quantile conventions.
# --------------------------------------------------------------------------------------


def test_huber_gradient_in_delta():
    p, t = _pair()
    r = np.asarray(p - t, np.float64)
    delta = 1.3
    # d/d(delta) of delta (|r| - delta / 2) is |r| - delta on the linear part, 0 elsewhere.
    expected = np.mean(np.where(np.abs(r) < delta, 0.0, np.abs(r) - delta))
    grad = jax.jit(jax.grad(lambda d: jaxloss.huber_loss(p, t, delta=d)))(jnp.float32(delta))
    _close(grad, expected)


def test_smooth_l1_beta_zero_is_l1_with_finite_gradients():
    p, t = _pair()
    p = p.at[0, :3].set(t[0, :3])  # some exact zeros of the residual
    _close(jaxloss.smooth_l1_loss(p, t, beta=0.0), jaxloss.mae_loss(p, t))

    def loss(x, beta):
        return jaxloss.smooth_l1_loss(x, t, beta=beta)

    gp, gb = jax.jit(jax.grad(loss, argnums=(0, 1)))(p, jnp.float32(0.0))
    assert np.all(np.isfinite(gp)) and np.isfinite(gb)
    _close(gp, jax.grad(jaxloss.mae_loss)(p, t))
    _close(gb, -0.5)  # d/d(beta) of |r| - beta/2


def test_smooth_l1_matches_huber_over_beta():
    p, t = _pair()
    for beta in (0.3, 1.0, 2.5):
        _close(jaxloss.smooth_l1_loss(p, t, beta=beta), jaxloss.huber_loss(p, t, delta=beta) / beta)


def test_log_cosh_stable_for_huge_and_tiny_residuals():
    r = np.array([-1e4, -88.0, -3.0, -1e-3, -1e-20, 0.0, 1e-7, 0.5, 1.0, 20.0, 1e4], np.float64)
    x = jnp.asarray(r, jnp.float32)
    values = jaxloss.log_cosh_loss(x, jnp.zeros_like(x), reduction="none")
    # Independent float64 reference: log(cosh r) = |r| + log1p(exp(-2|r|)) - log 2 for large |r|,
    # log1p(expm1(|r|)^2 / (2 e^|r|)) (= log cosh r exactly, no cancellation) elsewhere.
    a = np.abs(r)
    a_small = np.minimum(a, 1.0)
    expected = np.where(a > 1.0, a + np.log1p(np.exp(-2 * a)) - np.log(2.0),
                        np.log1p(np.expm1(a_small) ** 2 / (2 * np.exp(a_small))))
    # atol: the smallest normal float32; XLA on CPU flushes denormals (r^2/2 at r = 1e-20).
    np.testing.assert_allclose(np.asarray(values, np.float64), expected, rtol=2e-6, atol=1.2e-38)
    grad = jax.grad(lambda y: jnp.sum(jaxloss.log_cosh_loss(y, jnp.zeros_like(y),
                                                            reduction="none")))(x)
    _close(grad, np.tanh(r), rtol=2e-6, atol=1e-30)


def test_charbonnier_eps_zero_and_small_residuals():
    r = np.array([0.0, 1e-20, -1e-5, 3e-3, -2.0, 1e4], np.float32)
    x = jnp.asarray(r)
    zeros = jnp.zeros_like(x)
    _close(jaxloss.charbonnier_loss(x, zeros, eps=0.0, reduction="none"), np.abs(r),
           rtol=1e-6, atol=0)
    grad = jax.grad(lambda y: jaxloss.charbonnier_loss(y, zeros, eps=0.0, reduction="sum"))(x)
    _close(grad, np.sign(r), atol=0)  # 0 at r = 0, not NaN
    grad_eps = jax.grad(lambda e: jaxloss.charbonnier_loss(zeros, zeros, eps=e))(jnp.float32(0))
    assert np.isfinite(grad_eps)
    # No cancellation for residuals far below eps: float64 sqrt(r^2 + eps^2) - eps, rationalised.
    eps = 1e-3
    r64 = r.astype(np.float64)
    expected = r64**2 / (np.sqrt(r64**2 + eps**2) + eps)
    np.testing.assert_allclose(
        np.asarray(jaxloss.charbonnier_loss(x, zeros, eps=eps, reduction="none"), np.float64),
        expected, rtol=1e-6, atol=0)


def test_quantile_loss_formula_and_tau_half():
    p, t = _pair()
    r = np.asarray(t, np.float64) - np.asarray(p, np.float64)
    for tau in (0.0, 0.1, 0.5, 0.9, 1.0):
        expected = np.maximum(tau * r, (tau - 1.0) * r)
        _close(jaxloss.quantile_loss(p, t, tau=tau, reduction="none"), expected)
    _close(jaxloss.quantile_loss(p, t, tau=0.5), 0.5 * jaxloss.mae_loss(p, t))
    # d/d(tau) of the mean: mean(r) (both branches have slope r in tau).
    grad = jax.jit(jax.grad(lambda q: jaxloss.quantile_loss(p, t, tau=q)))(jnp.float32(0.3))
    _close(grad, np.mean(r))


@pytest.mark.parametrize("name, kwargs", [
    ("log_cosh_loss", {}), ("charbonnier_loss", {"eps": 0.5}), ("cauchy_loss", {"scale": 0.7}),
    ("geman_mcclure_loss", {}), ("welsch_loss", {}), ("robust_loss", {"alpha": -0.5}),
    ("robust_loss", {"alpha": 0.0}), ("mse_loss", {}),
])
def test_smooth_losses_have_hessians(name, kwargs):
    fn = jaxloss.get(name, **kwargs)
    p, t = _pair(shape=(6,))
    p = p.at[0].set(t[0])  # a zero residual
    forward = jax.hessian(lambda x: fn(x, t))(p)
    reverse = jax.jacrev(jax.jacrev(lambda x: fn(x, t)))(p)
    assert np.all(np.isfinite(forward))
    _close(forward, reverse)
    # Elementwise losses: the Hessian is diagonal.
    _close(forward - jnp.diag(jnp.diag(forward)), np.zeros((6, 6)), atol=0)
    if name == "log_cosh_loss":  # d^2/dr^2 log cosh r = 1 - tanh(r)^2, over n = 6
        r = np.asarray(p - t, np.float64)
        _close(jnp.diag(forward), (1.0 - np.tanh(r) ** 2) / 6.0)


# --------------------------------------------------------------------------------------
# Gaussian NLL.
# --------------------------------------------------------------------------------------


def test_gaussian_nll_homoscedastic_equals_broadcast():
    m, t = _pair(shape=(4, 3, 6))
    var = jnp.asarray(np.random.default_rng(1).uniform(0.2, 2.0, size=(4, 3, 1)), jnp.float32)
    for full in (False, True):
        _close(jaxloss.gaussian_nll_loss(m, t, var, full=full, reduction="none"),
               jaxloss.gaussian_nll_loss(m, t, jnp.broadcast_to(var, m.shape), full=full,
                                         reduction="none"))
    out = jaxloss.gaussian_nll_loss(m, t, var, reduction="none")
    assert out.shape == m.shape


def test_gaussian_nll_clamp_passes_the_gradient():
    m = jnp.array([0.0, 1.0, 2.0])
    t = jnp.array([0.5, 1.0, 1.0])
    var = jnp.array([1e-9, 0.0, 0.5])
    eps = 1e-3
    grad = jax.grad(lambda v: jaxloss.gaussian_nll_loss(m, t, v, eps=eps, reduction="sum"))(var)
    # Clamped entries: the derivative of 0.5 (log v + r^2 / v) at v = eps, as if unclamped.
    r2 = np.asarray(m - t, np.float64) ** 2
    v = np.maximum(np.asarray(var, np.float64), eps)
    _close(grad, 0.5 * (1.0 / v - r2 / v**2), rtol=1e-5, atol=1e-3)
    value = jaxloss.gaussian_nll_loss(m, t, var, eps=eps, full=True, reduction="none")
    _close(value, 0.5 * (np.log(v) + r2 / v) + 0.5 * np.log(2 * np.pi))


def test_gaussian_nll_where_blocks_nan_in_targets_and_var():
    m, t = _pair(shape=(6, 4))
    var = jnp.ones((6, 4))
    keep = jnp.arange(6)[:, None] % 2 == 0
    t_bad = jnp.where(keep, t, jnp.nan)
    var_bad = jnp.where(keep, var, jnp.nan)
    value, grads = jax.value_and_grad(
        lambda a, b: jaxloss.gaussian_nll_loss(a, t_bad, b, where=keep), argnums=(0, 1))(m, var_bad)
    _close(value, jaxloss.gaussian_nll_loss(m[::2], t[::2], var[::2]))
    assert all(np.all(np.isfinite(g)) for g in grads)


# --------------------------------------------------------------------------------------
# The robust loss.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 0.37, 4.0])
def test_robust_special_values(scale):
    p, t = _pair(spread=3.0)
    kw = dict(scale=scale, reduction="none")
    _close(jaxloss.robust_loss(p, t, alpha=0.0, **kw), jaxloss.cauchy_loss(p, t, **kw))
    _close(jaxloss.robust_loss(p, t, alpha=-2.0, **kw), jaxloss.geman_mcclure_loss(p, t, **kw))
    _close(jaxloss.robust_loss(p, t, alpha=-jnp.inf, **kw), jaxloss.welsch_loss(p, t, **kw))
    x = (np.asarray(p - t, np.float64) / scale) ** 2
    _close(jaxloss.robust_loss(p, t, alpha=2.0, **kw), 0.5 * x)
    _close(jaxloss.robust_loss(p, t, alpha=1.0, **kw),
           jaxloss.charbonnier_loss(p, t, eps=scale, reduction="none") / scale)
    small = jnp.clip(p - t, -2.0, 2.0)  # keep exp(x / 2) moderate for the +inf limit
    _close(jaxloss.robust_loss(small, jnp.zeros_like(small), alpha=jnp.inf, **kw),
           np.expm1(0.5 * (np.asarray(small, np.float64) / scale) ** 2))


def test_robust_continuity_at_the_limits():
    p, t = _pair(spread=2.0)
    r = np.asarray(p - t, np.float64)
    x = r**2
    cauchy = np.log1p(0.5 * x)
    for a in (1e-6, -1e-6, 1e-3):
        # Near 0 eq. 1 is evaluated without cancellation: it matches eq. 1 in float64 ...
        _close(jaxloss.robust_loss(p, t, alpha=a, reduction="none"), _barron_f64(r, a, 1.0))
    # ... and the Cauchy limit up to the O(alpha) change of the function itself.
    _close(jaxloss.robust_loss(p, t, alpha=1e-6, reduction="none"), cauchy, rtol=1e-5)
    for delta in (1e-3, 1e-5, -1e-5, -1e-3):
        a = 2.0 + delta
        # Near 2, b = |alpha - 2| is tiny: float32 loses ~ulp(2) / |delta| in alpha - 2 itself,
        # so compare with eq. 1 evaluated at the float32 alpha actually used.
        a32 = float(np.float32(a))
        _close(jaxloss.robust_loss(p, t, alpha=a, reduction="none"), _barron_f64(r, a32, 1.0),
               rtol=2e-5)
    # The L2 limit: eq. 1 differs from x / 2 by O(|delta| log(x / |delta|)) x / 4, ~5e-5
    # relative at |delta| = 1e-5 and x up to ~50 (our inputs).
    _close(jaxloss.robust_loss(p, t, alpha=2.0 - 1e-5, reduction="none"), 0.5 * x, rtol=1e-4)
    # The Welsch limit at alpha -> -inf: eq. 1 -> 1 - exp(-x/2) at rate O(1/|alpha|).
    _close(jaxloss.robust_loss(p, t, alpha=-1e6, reduction="none"), -np.expm1(-0.5 * x),
           rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_robust_matches_eq1_in_float64(seed):
    rng = np.random.default_rng(seed)
    r = (rng.standard_cauchy(size=(40,)) * rng.choice([1e-3, 1.0, 10.0], size=(40,)))
    r = r.astype(np.float32)
    alphas = np.concatenate([rng.uniform(-20, 20, size=6), [-1.0, 0.5, 1.5, 1e-3, -1e-3, 4.0]])
    scale = float(rng.uniform(0.2, 3.0))
    for a in alphas:
        a32 = float(np.float32(a))
        got = jaxloss.robust_loss(jnp.asarray(r), jnp.zeros_like(jnp.asarray(r)), alpha=a32,
                                  scale=scale, reduction="none")
        # the float32 residual divided by the float32 scale, then eq. 1 exactly
        expected = _barron_f64(r, a32, np.float32(scale))
        # Barron's clamp: where the exponent a/2 log(x/b + 1) passes 43, the loss is
        # (b/a) expm1(43) (huge residuals at large alpha), ~1e18 and flat.
        x = (r.astype(np.float64) / np.float32(scale)) ** 2
        b = abs(a32 - 2.0)
        clamped = 0.5 * a32 * np.log1p(x / b) > 43.0
        expected = np.where(clamped, b / a32 * np.expm1(43.0), expected)
        _close(got, expected, rtol=1e-5, atol=1e-30)


def _fd(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


def test_robust_gradients_match_finite_differences_in_float64():
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        r = jnp.asarray(rng.normal(size=(64,)) * 3.0, jnp.float64)

        def loss(x, a, c):
            return jaxloss.robust_loss(x, jnp.zeros_like(x), alpha=a, scale=c)

        value = jax.jit(loss)
        grads = jax.jit(jax.grad(loss, argnums=(1, 2)))
        grad_r = jax.jit(jax.grad(lambda x, a, c: jaxloss.robust_loss(
                x, jnp.zeros_like(x), alpha=a, scale=c, reduction="sum")))
        one = r[::16]  # d/dr_i from element i's own loss: FD of a sum adds others' rounding
        for alpha in (-30.0, -2.0, -0.4, -1e-4, 0.0, 1e-4, 0.7, 1.0, 1.9, 2.1, 3.5, 8.0):
            for scale in (0.5, 1.0, 2.3):
                a, c = jnp.float64(alpha), jnp.float64(scale)
                g_alpha, g_scale = grads(r, a, c)
                # central differences, step 1e-6: truncation ~1e-12, rounding ~1e-10 relative.
                np.testing.assert_allclose(
                    g_alpha, _fd(lambda v, c=c: value(r, v, c), a, 1e-6), rtol=1e-6, atol=1e-9)
                np.testing.assert_allclose(
                    g_scale, _fd(lambda v, a=a: value(r, a, v), c, 1e-6), rtol=1e-6, atol=1e-9)
                fd_r = (jaxloss.robust_loss(one + 1e-6, jnp.zeros_like(one), alpha=a, scale=c,
                                            reduction="none")
                        - jaxloss.robust_loss(one - 1e-6, jnp.zeros_like(one), alpha=a, scale=c,
                                              reduction="none")) / 2e-6
                # atol: where the loss saturates (alpha = -30) the float64 FD is 0, the
                # derivative ~1e-11.
                np.testing.assert_allclose(np.asarray(grad_r(r, a, c))[::16], fd_r, rtol=1e-6,
                                           atol=1e-10)


def test_robust_gradients_finite_at_special_alphas_and_zero_residual():
    p, t = _pair()
    p = p.at[0].set(t[0])  # a row of zero residuals
    grad = jax.jit(jax.grad(lambda x, a, c, y: jaxloss.robust_loss(x, y, alpha=a, scale=c),
                            argnums=(0, 1, 2)))
    for alpha in (0.0, 2.0, -2.0, 1.0, -jnp.inf, jnp.inf, 1e3, -1e3, 2.0 + 2.4e-7, 1e-30):
        for scale in (1e-2, 1.0, 1e2):
            gp, ga, gc = grad(p, jnp.float32(alpha), jnp.float32(scale), t)
            assert np.all(np.isfinite(gp)) and np.isfinite(ga) and np.isfinite(gc), (alpha, scale)
            assert np.all(np.asarray(gp)[0] == 0)
    # All residuals zero: the loss is 0 for every alpha, so are all gradients.
    z = jnp.zeros((3, 4))
    for alpha in (0.0, 2.0, -jnp.inf, jnp.inf, 0.5):
        gp, ga, gc = grad(z, jnp.float32(alpha), jnp.float32(1.0), z)
        assert float(ga) == 0.0 and float(gc) == 0.0 and np.all(np.asarray(gp) == 0)


def test_robust_alpha_gradient_at_zero_is_the_true_derivative():
    # alpha = 0 is not a branch: the formula is exact there, so d/d(alpha) is the derivative
    # of eq. 1, d/da [(2-a)/a ((x/(2-a) + 1)^(a/2) - 1)] at a = 0, which expands to
    # -L/2 + L^2/4 + x / (2 (x + 2)) with L = log(1 + x/2).
    p, t = _pair()
    x = np.asarray(p - t, np.float64) ** 2
    L = np.log1p(0.5 * x)
    expected = np.mean(-0.5 * L + 0.25 * L**2 + x / (2 * (x + 2)))
    grad = jax.jit(jax.grad(lambda a: jaxloss.robust_loss(p, t, alpha=a)))(jnp.float32(0.0))
    _close(grad, expected, rtol=1e-5)


def test_robust_per_element_alpha_and_scale():
    p, t = _pair(shape=(6, 4))
    alpha = jnp.array([-jnp.inf, 0.0, 1.0, 2.0])           # one alpha per column
    scale = jnp.array([[0.5], [1.0], [2.0], [0.5], [1.0], [3.0]])  # one scale per row
    full = jaxloss.robust_loss(p, t, alpha=alpha, scale=scale, reduction="none")
    for j in range(4):
        _close(full[:, j], jaxloss.robust_loss(p[:, j], t[:, j], alpha=alpha[j],
                                               scale=scale[:, 0], reduction="none"))
    # Learnable per-element alpha: d/d(alpha_j) is the column's d/d(alpha) of the sum.
    g = jax.grad(lambda a: jaxloss.robust_loss(p, t, alpha=a, reduction="sum"))(
        jnp.array([-1.0, 0.5, 1.0, 3.0]))
    for j, a in enumerate((-1.0, 0.5, 1.0, 3.0)):
        gj = jax.grad(lambda s, j=j: jaxloss.robust_loss(p[:, j], t[:, j], alpha=s,
                                                         reduction="sum"))(jnp.float32(a))
        _close(g[j], gj)


_alphas = st.one_of(st.floats(-1e3, 1e3, width=32), st.sampled_from([-np.inf, np.inf, 0.0, 2.0]))
# Fixed length, so that the jitted functions below compile once.
_residuals = st.lists(st.floats(-1e4, 1e4, width=32), min_size=12, max_size=12)


@jax.jit
def _robust_value_and_grads(r, alpha, scale):
    def total(x, a, c):
        return jaxloss.robust_loss(x, jnp.zeros_like(x), alpha=a, scale=c, reduction="sum")

    values = jaxloss.robust_loss(r, jnp.zeros_like(r), alpha=alpha, scale=scale, reduction="none")
    return values, jax.grad(total, argnums=(0, 1, 2))(r, alpha, scale)


@settings(max_examples=40, deadline=None)
@given(alpha=_alphas, residuals=_residuals, scale=st.floats(0.0625, 16.0, width=32))
def test_robust_properties(alpha, residuals, scale):
    r = np.array(residuals, np.float32)
    values, (gr, ga, gc) = _robust_value_and_grads(jnp.asarray(r), jnp.float32(alpha),
                                                   jnp.float32(scale))
    values = np.asarray(values, np.float64)
    assert np.all(np.isfinite(values))
    assert np.all(values >= 0.0)
    assert np.all(values[r == 0] == 0.0)
    # Monotone in |r| (up to float32 rounding of equal-valued neighbours).
    order = np.argsort(np.abs(r), kind="stable")
    sorted_values = values[order]
    assert np.all(np.diff(sorted_values) >= -1e-6 * np.abs(sorted_values[1:]))
    assert np.all(np.isfinite(gr)) and np.isfinite(ga) and np.isfinite(gc)
    assert np.all(np.asarray(gr)[r == 0] == 0.0)

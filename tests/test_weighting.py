"""Loss-level multi-task weighting (jaxloss.weighting) against references of the papers.

References used here, none of them jaxloss:
  * closed forms written out from the papers (uncertainty, geometric mean),
  * NumPy re-implementations of the papers' update rules (DWA, random weighting),
  * torch autograd replays of the papers' algorithms with the official code's
    structure (GradNorm's Algorithm 1; FAMO's Algorithm 1 / Cranial-XIX/FAMO
    ``get_weighted_loss`` and ``update`` with an SGD optimizer on the logits,
    whose ``weight_decay`` adds ``gamma * xi`` exactly as the paper's rule).
"""

from __future__ import annotations

import inspect
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import jaxloss
from jaxloss import weighting

RTOL, ATOL = 1e-5, 1e-6


def _f32(x):
    return jnp.asarray(np.asarray(x, np.float32))


def _all_strategies():
    return {
        "static": weighting.static([1.0, 0.5]),
        "uncertainty": weighting.uncertainty(),
        "uncertainty_half": weighting.uncertainty(half=True),
        "dwa": weighting.dwa(),
        "gradnorm": weighting.gradnorm(alpha=1.5, lr=0.01),
        "random": weighting.random_weighting(key=3),
        "famo": weighting.famo(),
        "geometric_mean": weighting.geometric_mean(),
    }


# ---------------------------------------------------------------------------- API rules


@pytest.mark.parametrize("name", weighting.__all__)
def test_public_names_have_examples_references_and_keyword_only_options(name):
    obj = getattr(weighting, name)
    doc = inspect.getdoc(obj) or ""
    assert ">>>" in doc and "References" in doc, name
    if inspect.isfunction(obj):
        for p in inspect.signature(obj).parameters.values():
            if p.default is not inspect.Parameter.empty:
                assert p.kind is inspect.Parameter.KEYWORD_ONLY, (name, p.name)
            assert p.annotation is not inspect.Parameter.empty, (name, p.name)


def test_every_public_strategy_is_in_the_shared_tests():
    # driven by the package's __all__: a new strategy fails here until _all_strategies (and
    # with it the jit/scan/half-precision and Flax training tests) includes it
    factories = {n for n in weighting.__all__ if inspect.isfunction(getattr(weighting, n))}
    covered = {s.update.__qualname__.split(".")[0] for s in _all_strategies().values()}
    assert factories == covered
    types = {n for n in weighting.__all__ if inspect.isclass(getattr(weighting, n))}
    assert types == set(weighting.__all__) - factories


# ---------------------------------------------------------------------------- static


def test_static_weighted_sum_and_gradient():
    rng = np.random.default_rng(0)
    for k in (1, 2, 5):
        w = rng.uniform(0, 2, size=k).astype(np.float32)
        losses = rng.uniform(0, 3, size=k).astype(np.float32)
        strategy = weighting.static(w)
        params, state = strategy.init(k)
        total, weights, _ = strategy.update(_f32(losses), params, state)
        np.testing.assert_allclose(total, np.sum(w.astype(np.float64) * losses), rtol=RTOL)
        np.testing.assert_allclose(weights, w)
        grad = jax.grad(lambda v, s=strategy, p=params, st=state: s.update(v, p, st)[0])(
            _f32(losses))
        np.testing.assert_allclose(grad, w, rtol=RTOL)


def test_static_errors():
    with pytest.raises(ValueError, match="weights must lie"):
        weighting.static([1.0, -1.0])
    with pytest.raises(ValueError, match="vector"):
        weighting.static(1.0)
    strategy = weighting.static([1.0, 2.0])
    with pytest.raises(ValueError, match="num_tasks"):
        strategy.init(3)
    params, state = strategy.init(2)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        strategy.update(jnp.ones(3), params, state)
    with pytest.raises(TypeError, match="floating"):
        strategy.update(jnp.ones(2, jnp.int32), params, state)
    with pytest.raises(TypeError, match="num_tasks"):
        strategy.init(2.0)


# ---------------------------------------------------------------------------- uncertainty


@pytest.mark.parametrize("half", [False, True])
@pytest.mark.parametrize("k", [1, 3, 6])
def test_uncertainty_value_and_gradients_match_closed_form(half, k):
    rng = np.random.default_rng(k)
    s = rng.normal(size=k)
    losses = rng.uniform(0, 4, size=k)
    scale = 0.5 if half else 1.0
    strategy = weighting.uncertainty(half=half)
    _, state = strategy.init(k)

    def total(log_vars, values):
        return strategy.update(values, log_vars, state)[0]

    value = total(_f32(s), _f32(losses))
    grad_s, grad_l = jax.grad(total, argnums=(0, 1))(_f32(s), _f32(losses))
    # Kendall et al. 2018 with s = log sigma^2: sum_k scale * (exp(-s) L + s)
    np.testing.assert_allclose(value, np.sum(scale * (np.exp(-s) * losses + s)), rtol=RTOL,
                               atol=ATOL)
    np.testing.assert_allclose(grad_s, scale * (1.0 - np.exp(-s) * losses), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grad_l, scale * np.exp(-s), rtol=RTOL)
    _, weights, _ = strategy.update(_f32(losses), _f32(s), state)
    np.testing.assert_allclose(weights, scale * np.exp(-s), rtol=RTOL)


def test_uncertainty_init_and_optimum():
    strategy = weighting.uncertainty(init_log_variance=[0.5, -1.0])
    log_vars, state = strategy.init(2)
    np.testing.assert_allclose(log_vars, [0.5, -1.0])
    with pytest.raises(ValueError, match="init_log_variance"):
        strategy.init(3)
    with pytest.raises(ValueError, match="log-variances"):
        strategy.update(jnp.ones(2), jnp.zeros(3), state)
    # the minimiser over s of exp(-s) L + s is s = log L: the gradient vanishes there
    losses = _f32([0.3, 2.0])
    grad = jax.grad(lambda s: strategy.update(losses, s, state)[0])(jnp.log(losses))
    np.testing.assert_allclose(grad, [0.0, 0.0], atol=1e-6)


# ---------------------------------------------------------------------------- DWA


def _dwa_reference(history, temperature, period):
    """Liu et al. 2019, eq. 7, with period-mean losses (LibMTL's per-epoch buffer)."""
    k = history.shape[1]
    means, pending, out = [], [], []
    for losses in history:
        if len(means) >= 2:
            r = means[-1] / means[-2]
            e = np.exp(r / temperature)
            out.append(k * e / e.sum())
        else:
            out.append(np.ones(k))
        pending.append(losses)
        if len(pending) == period:
            means.append(np.mean(pending, axis=0))
            pending = []
    return np.array(out)


@pytest.mark.parametrize(("temperature", "period", "k"), [(2.0, 1, 2), (0.5, 1, 4), (1.0, 3, 3)])
def test_dwa_weights_from_a_known_history(temperature, period, k):
    rng = np.random.default_rng(period + k)
    history = rng.uniform(0.1, 2.0, size=(12, k)).astype(np.float32)
    strategy = weighting.dwa(temperature=temperature, period=period)
    params, state = strategy.init(k)

    def body(state, losses):
        total, weights, state = strategy.update(losses, params, state)
        return state, (total, weights)

    _, (totals, weights) = jax.jit(lambda s, h: jax.lax.scan(body, s, h))(state, _f32(history))
    expected = _dwa_reference(history.astype(np.float64), temperature, period)
    np.testing.assert_allclose(weights, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(totals, np.sum(expected * history, axis=1), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.sum(weights, axis=1), k, rtol=RTOL)


def test_dwa_zero_loss_in_history_stays_finite():
    strategy = weighting.dwa()
    params, state = strategy.init(2)
    for losses in ([0.0, 1.0], [0.0, 1.0], [0.0, 0.5]):
        total, weights, state = strategy.update(_f32(losses), params, state)
    assert np.all(np.isfinite(weights)) and np.isfinite(total)
    with pytest.raises(ValueError, match="temperature"):
        weighting.dwa(temperature=0.0)
    with pytest.raises(ValueError, match="period"):
        weighting.dwa(period=0)


# ---------------------------------------------------------------------------- GradNorm


def _gradnorm_reference(losses_seq, jac_seq, alpha, lr):
    """Chen et al. 2018, Algorithm 1, replayed with torch autograd on L_grad."""
    k = losses_seq.shape[1]
    w = torch.ones(k, dtype=torch.float64)
    initial = None
    used, totals = [], []
    for losses, jac in zip(losses_seq, jac_seq, strict=True):
        losses = torch.tensor(losses, dtype=torch.float64)
        jac = torch.tensor(jac, dtype=torch.float64)  # (K, P): grad_W L_k
        initial = losses if initial is None else initial
        used.append(w.numpy().copy())
        totals.append(float((w * losses).sum()))
        wt = w.clone().requires_grad_(True)
        g = torch.linalg.norm(wt[:, None] * jac, dim=1)  # ||grad_W w_k L_k||
        relative = losses / initial
        r = relative / relative.mean()
        target = (g.mean() * r**alpha).detach()  # targets held constant
        l_grad = (g - target).abs().sum()
        (grad,) = torch.autograd.grad(l_grad, wt)
        w = w - lr * grad
        w = k * w / w.sum()  # renormalise to sum K
    return np.array(used), np.array(totals), w.numpy()


@pytest.mark.parametrize(("alpha", "k"), [(1.5, 2), (0.5, 3), (0.0, 4)])
def test_gradnorm_matches_the_papers_update(alpha, k):
    rng = np.random.default_rng(k)
    steps, lr = 15, 0.03
    losses_seq = rng.uniform(0.5, 2.0, size=(steps, k)).astype(np.float32)
    # per-task gradients of a shared subtree with two leaves: (K, 2, 3) and (K, 4)
    jac_a = rng.normal(size=(steps, k, 2, 3)).astype(np.float32)
    jac_b = rng.normal(size=(steps, k, 4)).astype(np.float32) * np.arange(1, k + 1)[:, None]
    flat = np.concatenate([jac_a.reshape(steps, k, -1), jac_b.astype(np.float32)], axis=2)
    used, totals, final = _gradnorm_reference(losses_seq.astype(np.float64),
                                              flat.astype(np.float64), alpha, lr)
    assert np.all(final > 0) and np.all(used > 0)  # the reference never needed the clipping

    strategy = weighting.gradnorm(alpha=alpha, lr=lr)
    params, state = strategy.init(k)
    step = jax.jit(lambda losses, state, grads: strategy.update(losses, params, state,
                                                                shared_grads=grads))
    for t in range(steps):
        grads = {"kernel": _f32(jac_a[t]), "bias": _f32(jac_b[t])}
        total, weights, state = step(_f32(losses_seq[t]), state, grads)
        np.testing.assert_allclose(weights, used[t], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(total, totals[t], rtol=RTOL)
    np.testing.assert_allclose(state.weights, final, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.sum(state.weights), k, rtol=RTOL)


def test_gradnorm_errors_and_large_steps():
    strategy = weighting.gradnorm(lr=100.0)
    params, state = strategy.init(2)
    with pytest.raises(TypeError, match="shared_grads"):
        strategy.update(jnp.ones(2), params, state)
    with pytest.raises(ValueError, match="leading task axis"):
        strategy.update(jnp.ones(2), params, state, shared_grads=jnp.ones((3, 4)))
    # a huge step would push a weight below 0: it is clipped, weights stay finite, sum K
    jac = _f32([[10.0, 0.0], [0.0, 0.1]])
    for _ in range(3):
        _, _, state = strategy.update(_f32([1.0, 2.0]), params, state, shared_grads=jac)
        assert np.all(np.isfinite(state.weights)) and np.all(state.weights >= 0)
        np.testing.assert_allclose(np.sum(state.weights), 2.0, rtol=RTOL)
    # zero gradients and zero losses: finite
    _, state = strategy.init(2)
    _, _, state = strategy.update(jnp.zeros(2), params, state,
                                  shared_grads=jnp.zeros((2, 3)))
    assert np.all(np.isfinite(state.weights))


# ---------------------------------------------------------------------------- random


def test_random_weighting_samples_softmax_of_normals():
    k, key = 4, jax.random.PRNGKey(7)
    strategy = weighting.random_weighting(key=key)
    params, state = strategy.init(k)
    losses = _f32([1.0, 2.0, 3.0, 4.0])
    expected_key = key
    seen = []
    for _ in range(3):
        total, weights, state = jax.jit(strategy.update)(losses, params, state)
        # Lin et al.: lambda ~ N(0, I), w = softmax(lambda); key split as (carry, sample)
        expected_key, sample = jax.random.split(expected_key)
        lam = np.asarray(jax.random.normal(sample, (k,), jnp.float32), np.float64)
        expected = np.exp(lam) / np.exp(lam).sum()
        np.testing.assert_allclose(weights, expected, rtol=RTOL)
        np.testing.assert_allclose(total, expected @ np.array([1.0, 2.0, 3.0, 4.0]), rtol=RTOL)
        seen.append(np.asarray(weights))
    assert not np.allclose(seen[0], seen[1])
    # many draws: exchangeable, so each task's mean weight is 1/K
    state = strategy.init(k)[1]

    def body(state, _):
        _, weights, state = strategy.update(losses, params, state)
        return state, weights

    _, draws = jax.lax.scan(body, state, None, length=4000)
    np.testing.assert_allclose(np.mean(draws, axis=0), 1 / k, atol=0.01)
    # an int seed is PRNGKey(seed)
    same = weighting.random_weighting(key=7)
    np.testing.assert_allclose(same.update(losses, *same.init(k))[1],
                               strategy.update(losses, *strategy.init(k))[1])


# ---------------------------------------------------------------------------- FAMO


class _TorchFamo:
    """Cranial-XIX/FAMO's FAMO class restated (min losses, eps 1e-8), with SGD on the logits.

    torch's SGD(weight_decay=gamma) steps xi -= lr * (grad + gamma * xi): the paper's rule.
    """

    def __init__(self, k, lr, gamma, min_losses, eps=1e-8):
        self.w = torch.zeros(k, dtype=torch.float64, requires_grad=True)
        self.opt = torch.optim.SGD([self.w], lr=lr, weight_decay=gamma)
        self.min_losses, self.eps = min_losses, eps

    def weighted_loss(self, losses):
        self.prev = losses.detach()
        z = torch.softmax(self.w, -1)
        d = losses - self.min_losses + self.eps
        c = (z / d).sum().detach()
        return (d.log() * z / c).sum()

    def update(self, curr):
        delta = ((self.prev - self.min_losses + self.eps).log()
                 - (curr - self.min_losses + self.eps).log())
        with torch.enable_grad():
            (d,) = torch.autograd.grad(torch.softmax(self.w, -1), self.w,
                                       grad_outputs=delta.detach())
        self.opt.zero_grad()
        self.w.grad = d
        self.opt.step()


def _famo_problem(k, rng):
    a = rng.normal(size=(k, 3, 3)) * np.arange(1, k + 1)[:, None, None]
    b = rng.normal(size=(k, 3))
    return a, b


@pytest.mark.parametrize(("k", "min_loss"), [(2, 0.0), (3, 0.05), (4, 0.0)])
def test_famo_exact_schedule_matches_the_paper(k, min_loss):
    rng = np.random.default_rng(k)
    a, b = _famo_problem(k, rng)
    alpha, beta, gamma, steps = 0.05, 0.5, 0.01, 8

    def torch_losses(theta):
        residual = torch.einsum("kij,j->ki", torch.tensor(a), theta) - torch.tensor(b)
        return 0.5 * (residual**2).sum(-1) + 0.1

    theta = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    ref = _TorchFamo(k, beta, gamma, torch.full((k,), min_loss, dtype=torch.float64))
    ref_weights, ref_logits, ref_theta = [], [], []
    for _ in range(steps):
        losses = torch_losses(theta)
        loss = ref.weighted_loss(losses)
        ref_weights.append(torch.autograd.grad(loss, losses, retain_graph=True)[0].numpy())
        (grad,) = torch.autograd.grad(loss, theta)
        with torch.no_grad():
            theta -= alpha * grad  # theta_{t+1} = theta_t - alpha d_t
        ref.update(torch_losses(theta).detach())  # logits from the losses after the step
        ref_logits.append(ref.w.detach().numpy().copy())
        ref_theta.append(theta.detach().numpy().copy())

    strategy = weighting.famo(lr=beta, weight_decay=gamma, min_losses=min_loss)
    params, state = strategy.init(k)
    a32, b32 = _f32(a), _f32(b)

    def losses_fn(theta):
        residual = jnp.einsum("kij,j->ki", a32, theta) - b32
        return 0.5 * jnp.sum(residual**2, axis=-1) + 0.1

    @jax.jit
    def step(theta, state):
        def objective(theta):
            total, weights, new_state = strategy.update(losses_fn(theta), params, state)
            return total, (weights, new_state)

        (_, (weights, state)), grad = jax.value_and_grad(objective, has_aux=True)(theta)
        theta = theta - alpha * grad
        return theta, strategy.update_logits(losses_fn(theta), state), weights

    theta_j = jnp.zeros(3, jnp.float32)
    for t in range(steps):
        theta_j, state, weights = step(theta_j, state)
        np.testing.assert_allclose(weights, ref_weights[t], rtol=1e-5, atol=1e-6)
        # float32 against float64 over several coupled steps: atol 1e-5 on O(1) values
        np.testing.assert_allclose(state.logits, ref_logits[t], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(theta_j, ref_theta[t], rtol=1e-4, atol=1e-5)


def test_famo_total_gradient_is_c_times_grad_of_z_log_losses():
    rng = np.random.default_rng(0)
    losses = _f32(rng.uniform(0.2, 3.0, size=5))
    strategy = weighting.famo(eps=0.0)
    params, state = strategy.init(5)
    state = state._replace(logits=_f32(rng.normal(size=5)))
    total, weights, _ = strategy.update(losses, params, state)
    z = np.asarray(jax.nn.softmax(state.logits), np.float64)
    ell = np.asarray(losses, np.float64)
    c = 1.0 / np.sum(z / ell)
    np.testing.assert_allclose(total, c, rtol=RTOL)  # the value is c_t
    grad = jax.grad(lambda v: strategy.update(v, params, state)[0])(losses)
    np.testing.assert_allclose(grad, c * z / ell, rtol=RTOL)  # c_t grad sum z log L
    np.testing.assert_allclose(weights, c * z / ell, rtol=RTOL)


def test_famo_default_schedule_steps_logits_at_the_next_update():
    beta, gamma = 0.3, 0.1
    first, second = np.array([1.0, 2.0, 0.5]), np.array([0.6, 1.9, 0.5])
    ref = _TorchFamo(3, beta, gamma, torch.zeros(3, dtype=torch.float64))
    ref.weighted_loss(torch.tensor(first))
    ref.update(torch.tensor(second))
    strategy = weighting.famo(lr=beta, weight_decay=gamma)
    params, state = strategy.init(3)
    _, _, state = strategy.update(_f32(first), params, state)
    np.testing.assert_allclose(state.logits, 0.0)  # nothing to compare with yet
    _, weights, state = strategy.update(_f32(second), params, state)
    np.testing.assert_allclose(state.logits, ref.w.detach().numpy(), rtol=RTOL, atol=ATOL)
    z = np.exp(ref.w.detach().numpy())
    z /= z.sum()
    expected = (z / (second + 1e-8)) / np.sum(z / (second + 1e-8))
    np.testing.assert_allclose(weights, expected, rtol=RTOL)
    # after update_logits, the next update takes no second step from the same losses
    state = strategy.update_logits(_f32(second), state)
    logits = state.logits
    _, _, state = strategy.update(_f32(second), params, state)
    np.testing.assert_allclose(state.logits, logits)


def test_famo_zero_and_sub_minimum_losses_are_finite():
    strategy = weighting.famo(min_losses=[0.1, 0.0])
    params, state = strategy.init(2)
    for losses in ([0.0, 0.0], [0.05, 1e-12], [0.0, 0.0]):
        value, grad = jax.value_and_grad(
            lambda v, s=state: strategy.update(v, params, s)[0])(_f32(losses))
        _, _, state = strategy.update(_f32(losses), params, state)
        assert np.isfinite(value) and np.all(np.isfinite(grad))
        assert np.all(np.isfinite(state.logits))
    with pytest.raises(ValueError, match="min_losses"):
        strategy.init(3)


# ---------------------------------------------------------------------------- geometric mean


@pytest.mark.parametrize("k", [1, 2, 5])
def test_geometric_mean_value_and_gradient(k):
    rng = np.random.default_rng(k)
    losses = rng.uniform(0.1, 5.0, size=k)
    strategy = weighting.geometric_mean()
    params, state = strategy.init(k)
    value, grad = jax.value_and_grad(lambda v: strategy.update(v, params, state)[0])(
        _f32(losses))
    expected = np.prod(losses) ** (1 / k)
    np.testing.assert_allclose(value, expected, rtol=RTOL)
    np.testing.assert_allclose(grad, expected / (k * losses), rtol=RTOL)  # d/dL_k of prod^(1/K)
    np.testing.assert_allclose(strategy.update(_f32(losses), params, state)[1],
                               expected / (k * losses), rtol=RTOL)


def test_geometric_mean_log_space_zero_and_eps():
    strategy = weighting.geometric_mean()
    params, state = strategy.init(20)
    big = jnp.full((20,), 1e30, jnp.float32)  # the product overflows float32; the mean does not
    np.testing.assert_allclose(strategy.update(big, params, state)[0], 1e30, rtol=RTOL)
    tiny = jnp.full((20,), 1e-30, jnp.float32)
    np.testing.assert_allclose(strategy.update(tiny, params, state)[0], 1e-30, rtol=RTOL)
    zero = _f32([0.0, 2.0])
    params, state = strategy.init(2)
    value, grad = jax.value_and_grad(lambda v: strategy.update(v, params, state)[0])(zero)
    assert float(value) == 0.0 and np.all(grad == 0.0)
    smoothed = weighting.geometric_mean(eps=0.5)
    value, grad = jax.value_and_grad(lambda v: smoothed.update(v, params, state)[0])(zero)
    np.testing.assert_allclose(value, math.sqrt(0.5 * 2.5), rtol=RTOL)
    np.testing.assert_allclose(grad, math.sqrt(0.5 * 2.5) / (2 * np.array([0.5, 2.5])),
                               rtol=RTOL)


# ---------------------------------------------------------------------------- all strategies


def test_every_strategy_scans_under_jit_with_half_precision_losses():
    for name, strategy in _all_strategies().items():
        params, state = strategy.init(2)
        history = jnp.asarray(np.random.default_rng(0).uniform(0.1, 2, size=(5, 2)),
                              jnp.bfloat16)

        def body(state, losses, strategy=strategy, params=params):
            total, weights, state = strategy.update(losses, params, state,
                                                    shared_grads=jnp.ones((2, 3)))
            return state, (total, weights)

        final, (totals, weights) = jax.jit(lambda s, h, b=body: jax.lax.scan(b, s, h))(
            state, history)
        assert totals.dtype == jnp.float32 and weights.shape == (5, 2), name
        assert np.all(np.isfinite(totals)) and np.all(np.isfinite(weights)), name
        chex.assert_trees_all_equal_structs(final, state)


@pytest.mark.parametrize("name", sorted(_all_strategies()))
def test_every_strategy_trains_a_flax_nnx_model_in_a_jitted_optax_step(name):
    nnx = pytest.importorskip("flax.nnx")
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(64, 4)), jnp.float32)
    y = x @ jnp.asarray([1.0, -2.0, 0.5, 3.0], jnp.float32)
    labels = jnp.asarray(np.asarray(x[:, 0] + x[:, 1] > 0).astype(np.int32))
    strategy = _all_strategies()[name]

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.trunk = nnx.Linear(4, 16, rngs=rngs)
            self.reg = nnx.Linear(16, 1, rngs=rngs)
            self.cls = nnx.Linear(16, 2, rngs=rngs)

        def __call__(self, inputs):
            h = jax.nn.relu(self.trunk(inputs))
            return self.reg(h)[:, 0], self.cls(h)

    graphdef, model_params = nnx.split(Net(nnx.Rngs(0)))

    def task_losses(p):
        pred, logits = nnx.merge(graphdef, p)(x)
        return jnp.stack([jaxloss.mse_loss(pred, y),
                          jaxloss.cross_entropy_loss(logits, labels)])

    wparams, wstate = strategy.init(2)
    params = {"model": model_params, "weighting": wparams}
    optimizer = optax.adam(0.02)
    opt_state = optimizer.init(params)
    needs_jacobian = name == "gradnorm"

    @jax.jit
    def step(params, opt_state, wstate):
        shared = None
        if needs_jacobian:  # static: per-task gradients of the shared trunk only
            shared = jax.jacrev(task_losses)(params["model"])["trunk"]

        def objective(params):
            losses = task_losses(params["model"])
            total, _, new_wstate = strategy.update(
                losses, params["weighting"], wstate, shared_grads=shared)
            return total, (losses, new_wstate)

        (total, (losses, wstate)), grads = jax.value_and_grad(objective, has_aux=True)(
            params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, wstate, total, losses

    totals, sums = [], []
    # optax's adam mixes its int32 step count with Python floats, which the suite's
    # strict promotion (tests/conftest.py) refuses; jaxloss itself runs strict.
    with jax.numpy_dtype_promotion("standard"):
        for _ in range(40):
            params, opt_state, wstate, total, losses = step(params, opt_state, wstate)
            totals.append(float(total))
            sums.append(float(jnp.sum(losses)))
    assert np.all(np.isfinite(totals)), name
    assert totals[-1] < totals[0], (name, totals[0], totals[-1])
    assert sums[-1] < 0.5 * sums[0], (name, sums[0], sums[-1])


def test_uncertainty_log_variances_as_nnx_params_with_nnx_optimizer():
    nnx = pytest.importorskip("flax.nnx")
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(32, 3)), jnp.float32)
    ya = x @ jnp.asarray([1.0, 0.0, -1.0], jnp.float32)
    yb = 3.0 * (x @ jnp.asarray([0.0, 2.0, 1.0], jnp.float32))  # a task ~10x larger
    strategy = weighting.uncertainty()
    log_vars, wstate = strategy.init(2)

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Linear(3, 1, rngs=rngs)
            self.b = nnx.Linear(3, 1, rngs=rngs)
            self.task_log_vars = nnx.Param(log_vars)  # trained by the model's optimizer

    model = Net(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(0.1), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        def objective(model):
            losses = jnp.stack([jaxloss.mse_loss(model.a(x)[:, 0], ya),
                                jaxloss.mse_loss(model.b(x)[:, 0], yb)])
            total, _, _ = strategy.update(losses, model.task_log_vars[...], wstate)
            return total, losses

        (total, losses), grads = nnx.value_and_grad(objective, has_aux=True)(model)
        optimizer.update(model, grads)
        return total, losses

    with jax.numpy_dtype_promotion("standard"):  # optax's adam; see the test above
        first = step(model, optimizer)[1]
        for _ in range(60):
            _, losses = step(model, optimizer)
    s = np.asarray(model.task_log_vars[...])
    assert np.all(np.asarray(losses) < 0.5 * np.asarray(first))
    assert s[1] > s[0]  # the larger-loss task got the larger variance (smaller weight)


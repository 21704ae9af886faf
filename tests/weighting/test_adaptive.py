"""``jaxloss.weighting.adaptive``: DWA, GradNorm, random weighting and FAMO vs the papers.

References used here, none of them jaxloss:
  * closed forms written out from the papers (uncertainty, geometric mean),
  * NumPy re-implementations of the papers' update rules (DWA, random weighting),
  * torch autograd replays of the papers' algorithms with the official code's
    structure (GradNorm's Algorithm 1; FAMO's Algorithm 1 / Cranial-XIX/FAMO
    ``get_weighted_loss`` and ``update`` with an SGD optimizer on the logits,
    whose ``weight_decay`` adds ``gamma * xi`` exactly as the paper's rule).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxloss import weighting
from tests.weighting._strategies import ATOL, RTOL, _f32


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


class _TorchFamo:
    """Cranial-XIX/FAMO's FAMO class (``famo.py``) restated (min losses, eps 1e-8): Adam on the
    logits as the official code (``torch.optim.Adam(lr=w_lr, weight_decay=gamma)``), or SGD.

    torch's SGD(weight_decay=gamma) steps xi -= lr * (grad + gamma * xi): the paper's rule.
    """

    def __init__(self, k, lr, gamma, min_losses, eps=1e-8, optimizer="adam"):
        self.w = torch.zeros(k, dtype=torch.float64, requires_grad=True)
        make = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
        self.opt = make([self.w], lr=lr, weight_decay=gamma)
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


@pytest.mark.parametrize(("k", "min_loss", "optimizer"),
                         [(2, 0.0, "sgd"), (3, 0.05, "adam"), (4, 0.0, "adam")])
def test_famo_exact_schedule_matches_the_paper(k, min_loss, optimizer):
    rng = np.random.default_rng(k)
    a, b = _famo_problem(k, rng)
    alpha, beta, gamma, steps = 0.05, 0.5, 0.01, 8

    def torch_losses(theta):
        residual = torch.einsum("kij,j->ki", torch.tensor(a), theta) - torch.tensor(b)
        return 0.5 * (residual**2).sum(-1) + 0.1

    theta = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    ref = _TorchFamo(k, beta, gamma, torch.full((k,), min_loss, dtype=torch.float64),
                     optimizer=optimizer)
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

    strategy = weighting.famo(lr=beta, weight_decay=gamma, min_losses=min_loss,
                              optimizer=optimizer)
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
    # Adam divides by sqrt(nu): float32 rounding of a small logit gradient reaches ~1e-5
    # relative in the logits, and so in the weights, after a few steps
    weight_rtol = 1e-4 if optimizer == "adam" else 1e-5
    for t in range(steps):
        theta_j, state, weights = step(theta_j, state)
        np.testing.assert_allclose(weights, ref_weights[t], rtol=weight_rtol, atol=1e-6)
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
    # the defaults: Adam on the logits (the official code's optimizer)
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


def test_famo_default_adam_moves_the_logits_at_the_default_rate():
    # the issue this default fixes: plain steps at lr 0.025 barely move the logits when the
    # log-loss changes are small; Adam's steps are ~lr per logit whatever their scale
    losses = [np.array([1.0, 1.0]) * (1.0 - 0.001 * t * np.array([1.0, 0.0]))
              for t in range(50)]  # task 0 falls slowly, task 1 is stuck
    moved = {}
    for optimizer in ("adam", "sgd"):
        strategy = weighting.famo(optimizer=optimizer)
        params, state = strategy.init(2)
        ref = _TorchFamo(2, 0.025, 1e-3, torch.zeros(2, dtype=torch.float64),
                         optimizer=optimizer)
        for before, after in itertools.pairwise(losses):
            ref.weighted_loss(torch.tensor(before))
            _, _, state = strategy.update(_f32(before), params, state)
            ref.update(torch.tensor(after))
            state = strategy.update_logits(_f32(after), state)
        np.testing.assert_allclose(state.logits, ref.w.detach().numpy(), rtol=1e-4, atol=1e-6)
        moved[optimizer] = float(state.logits[1] - state.logits[0])
    # the stuck task gains weight: by ~lr per step with Adam, by ~1e-5 in all with SGD
    assert moved["adam"] > 0.5 and 0 < moved["sgd"] < 1e-3, moved

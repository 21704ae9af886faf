"""``jaxloss.weighting.balanced``: DB-MTL and STCH against torch replays of LibMTL's code.

LibMTL ``weighting/DB_MTL.py`` and ``weighting/STCH.py`` restated in torch float64 (LibMTL
itself does not install here); their epochs are counted here in calls to ``update``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxloss import weighting
from tests.weighting._strategies import RTOL, _f32


def _problem(k, rng):
    # task losses on scales ~100x apart: L_k(W) = s_k * 0.5 |A_k W - b_k|^2 + 0.1
    a = rng.normal(size=(k, 4, 3))
    b = rng.normal(size=(k, 4))
    scale = 10.0 ** np.arange(k)
    return a, b, scale


def _torch_losses(theta, a, b, scale):
    residual = torch.einsum("kij,j->ki", torch.tensor(a), theta) - torch.tensor(b)
    return torch.tensor(scale) * 0.5 * (residual**2).sum(-1) + 0.1


def _libmtl_db_mtl_step(theta, a, b, scale, buffer, step, beta, beta_sigma):
    """One LibMTL ``DB_MTL.backward``: the gradients of log(L + 1e-8), their moving average
    (buffer), alpha = max |buffer| / (|buffer| + 1e-8), and the update sum_k alpha_k buffer_k."""
    losses = _torch_losses(theta, a, b, scale)
    grads = torch.stack([torch.autograd.grad(torch.log(losses[k] + 1e-8), theta,
                                             retain_graph=True)[0] for k in range(len(a))])
    buffer = grads + (beta / step**beta_sigma) * (buffer - grads)
    norms = buffer.norm(dim=-1)
    alpha = norms.max() / (norms + 1e-8)
    return (alpha[:, None] * buffer).sum(0), alpha, buffer


@pytest.mark.parametrize("k", [2, 3])
def test_db_mtl_matches_libmtl(k):
    a, b, scale = _problem(k, np.random.default_rng(k))
    a32, b32, s32 = _f32(a), _f32(b), _f32(scale)

    def losses_fn(theta):
        residual = jnp.einsum("kij,j->ki", a32, theta) - b32
        return s32 * 0.5 * jnp.sum(residual**2, axis=-1) + 0.1

    @jax.jit
    def grad_and_weights(theta, state, beta, sigma=0.5):
        strategy = weighting.db_mtl(beta=beta, beta_sigma=sigma)
        jac = jax.jacrev(losses_fn)(theta)

        def objective(theta):
            total, weights, new_state = strategy.update(losses_fn(theta), (), state,
                                                        shared_grads=jac)
            return total, (weights, new_state)

        (_, (weights, state)), grad = jax.value_and_grad(objective, has_aux=True)(theta)
        return grad, weights, state

    rng = np.random.default_rng(0)
    thetas = [rng.normal(size=3) for _ in range(4)]
    # beta = 0: no moving average, LibMTL's update exactly
    state = weighting.db_mtl(beta=0.0).init(k)[1]
    for theta in thetas:
        t = torch.tensor(theta, requires_grad=True)
        expected, alpha, _ = _libmtl_db_mtl_step(t, a, b, scale, torch.zeros(k, 3), 1, 0.0, 0.0)
        grad, weights, state = grad_and_weights(_f32(theta), state, jnp.float32(0.0))
        np.testing.assert_allclose(grad, expected.detach().numpy(), rtol=1e-4)
        np.testing.assert_allclose(weights * np.asarray(losses_fn(_f32(theta)) + 1e-8),
                                   alpha.numpy(), rtol=1e-4)
    # beta = 0.9, sigma = 0.5: at the first step the average of the norms is the norm of the average
    state = weighting.db_mtl(beta=0.9).init(k)[1]
    t = torch.tensor(thetas[0], requires_grad=True)
    _, alpha, buffer = _libmtl_db_mtl_step(t, a, b, scale, torch.zeros(k, 3), 1, 0.9, 0.5)
    _, weights, state = grad_and_weights(_f32(thetas[0]), state, jnp.float32(0.9))
    np.testing.assert_allclose(weights * np.asarray(losses_fn(_f32(thetas[0])) + 1e-8),
                               alpha.numpy(), rtol=1e-4)
    np.testing.assert_allclose(state.norms, buffer.norm(dim=-1).numpy(), rtol=1e-4)
    # later steps: the documented moving average of the norms, with the decaying rate
    norms = buffer.norm(dim=-1).numpy()
    for step, theta in enumerate(thetas[1:], start=2):
        rate = 0.9 / step**0.5
        t = torch.tensor(theta, requires_grad=True)
        losses = _torch_losses(t, a, b, scale)
        now = np.array([torch.autograd.grad(torch.log(losses[i] + 1e-8), t,
                                            retain_graph=True)[0].norm().item()
                        for i in range(k)])
        norms = now + rate * (norms - now)
        _, weights, state = grad_and_weights(_f32(theta), state, jnp.float32(0.9))
        np.testing.assert_allclose(state.norms, norms, rtol=1e-4)
        np.testing.assert_allclose(weights * np.asarray(losses_fn(_f32(theta)) + 1e-8),
                                   norms.max() / (norms + 1e-8), rtol=1e-4)


def test_db_mtl_makes_the_loss_scale_irrelevant_and_needs_shared_grads():
    strategy = weighting.db_mtl(beta=0.0)
    params, state = strategy.init(2)
    update = jax.jit(lambda losses, jac: strategy.update(losses, params, state,
                                                         shared_grads=jac))
    jac = jnp.asarray([[3.0, 4.0], [0.0, 2.0]])
    _, weights, _ = update(jnp.asarray([2.0, 1.0]), jac)
    # the same task 0 with its loss (and gradient) 100x larger: the same weighted gradient
    _, scaled, _ = update(jnp.asarray([200.0, 1.0]), jac * jnp.asarray([[100.0], [1.0]]))
    np.testing.assert_allclose(scaled * np.array([100.0, 1.0]), weights, rtol=RTOL)
    with pytest.raises(TypeError, match="shared_grads"):
        strategy.update(jnp.ones(2), params, state)
    zero = update(jnp.zeros(2), jnp.zeros((2, 2)))
    assert all(np.all(np.isfinite(v)) for v in zero[:2])
    with pytest.raises(ValueError, match="beta"):
        weighting.db_mtl(beta=1.0)


class _LibMTLSTCH:
    """LibMTL ``STCH.backward`` restated; ``epoch`` passed in (one or more calls per epoch)."""

    def __init__(self, k, mu, warmup_epoch):
        self.k, self.mu, self.warmup_epoch = k, mu, warmup_epoch
        self.nadir, self.sum, self.count = None, 0.0, 0

    def loss(self, losses, epoch):
        """LibMTL's loss, and the constant it subtracts (K max, detached) for stability."""
        if epoch < self.warmup_epoch:
            return torch.log(losses + 1e-20).sum(), 0.0
        if epoch == self.warmup_epoch:
            self.sum = self.sum + losses.detach()
            self.count += 1
            return torch.log(losses + 1e-20).sum(), 0.0
        if self.nadir is None:
            self.nadir = self.sum / self.count
        scaled = torch.log(losses / self.nadir + 1e-20)
        max_term = scaled.detach().max()
        reg = scaled - max_term
        return self.mu * torch.log(torch.exp(reg / self.mu).sum()) * self.k, self.k * max_term


@pytest.mark.parametrize(("k", "mu", "warmup_epoch", "per_epoch"),
                         [(2, 1.0, 2, 1), (3, 0.5, 1, 2)])
def test_stch_matches_libmtl(k, mu, warmup_epoch, per_epoch):
    rng = np.random.default_rng(k)
    history = rng.uniform(0.05, 3.0, size=(10, k)) * 10.0 ** np.arange(k)
    ref = _LibMTLSTCH(k, mu, warmup_epoch)
    # LibMTL: warmup_epoch epochs of sum-log, then one more averaged into the nadir point
    strategy = weighting.stch(mu=mu, warmup_steps=(warmup_epoch + 1) * per_epoch,
                              nadir_steps=per_epoch)
    params, state = strategy.init(k)
    update = jax.jit(jax.value_and_grad(
        lambda losses, state: strategy.update(losses, params, state)[0]))
    weights_fn = jax.jit(lambda losses, state: strategy.update(losses, params, state)[1:])
    for step, losses in enumerate(history):
        t = torch.tensor(losses, requires_grad=True)
        loss, shift = ref.loss(t, step // per_epoch)
        (expected_grad,) = torch.autograd.grad(loss, t)
        value, grad = update(_f32(losses), state)
        weights, state = weights_fn(_f32(losses), state)
        # LibMTL subtracts K max (a constant of the step, for stability); ours is the paper's
        # unshifted K mu logsumexp
        np.testing.assert_allclose(value, loss.item() + float(shift), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(grad, expected_grad.numpy(), rtol=1e-5)
        np.testing.assert_allclose(weights, expected_grad.numpy(), rtol=1e-5)
    assert ref.nadir is not None


def test_stch_weights_the_worst_task_and_checks_its_options():
    strategy = weighting.stch(mu=0.05)
    params, state = strategy.init(3)
    value_and_grad = jax.jit(jax.value_and_grad(
        lambda v: strategy.update(v, params, state)[0]))
    weights = value_and_grad(jnp.asarray([1.0, 4.0, 2.0]))[1]
    # a small mu: nearly the maximum, all the weight on the largest normalised loss
    np.testing.assert_allclose(weights * np.array([1.0, 4.0, 2.0]), [0, 3, 0], atol=1e-3)
    with pytest.raises(ValueError, match="nadir_steps"):
        weighting.stch(warmup_steps=2, nadir_steps=3)
    with pytest.raises(ValueError, match="nadir_steps"):
        weighting.stch(nadir_steps=1)
    with pytest.raises(ValueError, match="mu"):
        weighting.stch(mu=0.0)
    value, grad = value_and_grad(jnp.zeros(3))
    assert np.isfinite(value) and np.all(np.isfinite(grad))

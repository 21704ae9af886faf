"""``jaxloss.weighting.fixed``: static, uncertainty and geometric mean against closed forms."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from jaxloss import weighting
from tests.weighting._strategies import ATOL, RTOL, _f32


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

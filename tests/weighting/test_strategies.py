"""Rules every strategy follows: public names, jit/scan, half precision, Flax training."""

from __future__ import annotations

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from jaxloss import weighting
from tests.weighting._strategies import _all_strategies


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
    needs_jacobian = name in ("gradnorm", "db_mtl")

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

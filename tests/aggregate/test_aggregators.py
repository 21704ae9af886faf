"""Rules every aggregator follows: public names, edge cases, pytrees, dtypes, errors, training."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxloss import aggregate as agg
from tests.aggregate._references import (
    ALL,
    random_jacobian,
    ref_graddrop,
    ref_upgrad,
    run,
    special_jacobians,
)

# public names with tests of their own rather than the shared ones over ALL
SEPARATELY_TESTED = {
    "mgda_ub": "test_min_norm.test_mgda_ub_weights_from_the_representation_through_chain",
    "mgda_weights": "test_min_norm.test_exact_min_norm_weights_k2_closed_form",
}


def test_every_public_aggregator_is_tested():
    # driven by the package's __all__: a new aggregator fails here until it joins ALL
    # (and with it every shared test) or has a dedicated test named in SEPARATELY_TESTED
    assert set(agg.__all__) == set(ALL) | set(SEPARATELY_TESTED)
    for test in SEPARATELY_TESTED.values():
        module, function = test.split(".")
        assert hasattr(importlib.import_module(f"tests.aggregate.{module}"), function), test
    for name in agg.__all__:
        assert getattr(agg, name).__module__.startswith("jaxloss.aggregate."), name


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("K", [2, 3, 4])
def test_special_jacobians_give_finite_outputs(name, K):
    for label, J in special_jacobians(K).items():
        out = run(name, J.astype(np.float32))
        assert np.all(np.isfinite(out)), (name, label, out)
        if label == "zero":
            np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize("name", sorted(ALL))
def test_one_task_gives_a_positive_multiple_of_its_gradient(name):
    g = random_jacobian(1, P=6, seed=9)
    out = run(name, g)
    assert np.all(np.isfinite(out)), name
    scale = out @ g[0] / (g[0] @ g[0])
    assert scale > 0, (name, scale)
    np.testing.assert_allclose(out, scale * g[0], rtol=1e-4, atol=1e-6, err_msg=name)
    if name not in ("cagrad", "nash_mtl", "fairgrad"):  # these rescale a lone gradient
        np.testing.assert_allclose(out, g[0], rtol=1e-3, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("K", [2, 3])
def test_aligned_gradients(K):
    J = special_jacobians(K)["aligned"].astype(np.float32)
    g = J[0].astype(np.float64)
    # every g_i is a positive multiple of g: no conflict, no projection
    np.testing.assert_allclose(run("pcgrad", J), J.sum(0), rtol=1e-5)
    np.testing.assert_allclose(run("upgrad", J), ref_upgrad(J), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(run("mgda", J), g, rtol=1e-3, atol=1e-4)  # the shortest
    # cosines 1 above every target: GradVac leaves them; ConFIG's direction is g, at the
    # summed length; no conflict with the mean: DualProj keeps it
    np.testing.assert_allclose(run("gradvac", J), J.sum(0), rtol=1e-5)
    np.testing.assert_allclose(run("config", J), J.sum(0), rtol=1e-4)
    np.testing.assert_allclose(run("dualproj", J), J.mean(0), rtol=1e-3)


def test_opposite_gradients_are_pareto_stationary_for_mgda():
    J = special_jacobians(2)["opposite"].astype(np.float32)
    np.testing.assert_allclose(run("mgda", J), 0.0, atol=1e-3 * np.abs(J).max())
    np.testing.assert_allclose(run("pcgrad", J), 0.0, atol=1e-5)
    np.testing.assert_allclose(run("upgrad", J), 0.0, atol=1e-3 * np.abs(J).max())
    np.testing.assert_allclose(run("dualproj", J), 0.0, atol=1e-3 * np.abs(J).max())
    np.testing.assert_allclose(run("gradvac", J), 0.0, atol=1e-5)
    np.testing.assert_allclose(run("config", J), 0.0, atol=1e-5)  # no direction helps both


@pytest.mark.parametrize("name", sorted(ALL))
def test_pytree_updates_equal_flattened_matrix(name):
    K = 3
    J = random_jacobian(K, P=2 * 3 + 4 + 1, seed=5)
    tree = {"w": jnp.asarray(J[:, :6].reshape(K, 2, 3)), "b": jnp.asarray(J[:, 6:10]),
            "s": jnp.asarray(J[:, 10])}
    tx = ALL[name]()
    out_tree, _ = jax.jit(tx.update)(tree, tx.init(None))
    if name == "graddrop":  # per-leaf random draws: compare with the reference per leaf
        _, sub = jax.random.split(jax.random.key(0))
        for index, leaf in enumerate(jax.tree_util.tree_leaves(tree)):
            flat = np.asarray(leaf).reshape(K, -1)
            U = np.asarray(jax.random.uniform(jax.random.fold_in(sub, index), leaf.shape[1:],
                                              jnp.float32)).reshape(-1)
            got = np.asarray(out_tree[sorted(tree)[index]]).reshape(-1)
            np.testing.assert_allclose(got, ref_graddrop(flat, U, np.zeros(K)), rtol=1e-5,
                                       atol=1e-6)
        return
    flat_out = run(name, J)
    got = np.concatenate([np.asarray(out_tree["w"]).reshape(-1), np.asarray(out_tree["b"]),
                          np.asarray(out_tree["s"]).reshape(-1)])
    # the Gram matrix is accumulated leaf by leaf vs in one product: float32 rounding, which
    # CAGrad's iterative dual solve amplifies to ~2e-4 relative
    rtol = 1e-3 if name == "cagrad" else 1e-4
    np.testing.assert_allclose(got, flat_out, rtol=rtol, atol=1e-5)
    assert out_tree["w"].shape == (2, 3) and out_tree["s"].shape == ()


@pytest.mark.parametrize("name", sorted(ALL))
def test_half_precision_leaves_keep_their_dtype(name):
    J = random_jacobian(3)
    tree = {"a": jnp.asarray(J[:, :4], jnp.bfloat16), "b": jnp.asarray(J[:, 4:], jnp.float32)}
    tx = ALL[name]()
    out, _ = jax.jit(tx.update)(tree, tx.init(None))
    assert out["a"].dtype == jnp.bfloat16 and out["b"].dtype == jnp.float32
    assert all(np.all(np.isfinite(np.asarray(leaf, np.float32)))
               for leaf in jax.tree_util.tree_leaves(out))


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="same leading task axis"):
        agg.mgda().update({"a": jnp.zeros((2, 3)), "b": jnp.zeros((3, 3))}, optax.EmptyState())
    with pytest.raises(ValueError, match="leading task axis"):
        agg.upgrad().update({"a": jnp.zeros(())}, optax.EmptyState())
    with pytest.raises(ValueError, match="empty"):
        agg.pcgrad().update({}, agg.pcgrad().init(None))
    with pytest.raises(ValueError, match="c must lie"):
        agg.cagrad(c=-1.0)
    with pytest.raises(ValueError, match="rescale"):
        agg.cagrad(rescale=3)
    with pytest.raises(ValueError, match="leak"):
        agg.graddrop(leak=1.5)
    with pytest.raises(ValueError, match="representation_jacobian"):
        agg.mgda_ub().update(jnp.zeros((2, 3)), optax.EmptyState())
    with pytest.raises(ValueError, match="tasks"):
        agg.mgda_ub().update(jnp.zeros((2, 3)), optax.EmptyState(),
                             representation_jacobian=jnp.zeros((3, 4)))
    with pytest.raises(ValueError, match="num_tasks=3"):
        agg.gradvac(num_tasks=3).update(jnp.zeros((2, 3)), agg.gradvac(num_tasks=3).init(None))
    with pytest.raises(ValueError, match="beta must lie"):
        agg.gradvac(num_tasks=2, beta=1.5)
    with pytest.raises(ValueError, match="alpha must lie"):
        agg.fairgrad(alpha=-1.0)
    with pytest.raises(TypeError, match="alpha"):
        agg.fairgrad(alpha=jnp.float32(2.0))
    with pytest.raises(ValueError, match="reg_eps"):
        agg.dualproj(reg_eps=0.0)


def test_every_aggregator_trains_a_flax_nnx_multi_head_model():
    from flax import nnx

    K = 3

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.trunk = nnx.Linear(4, 16, rngs=rngs)
            self.heads = nnx.List([nnx.Linear(16, 1, rngs=rngs) for _ in range(K)]) \
                if hasattr(nnx, "List") else [nnx.Linear(16, 1, rngs=rngs) for _ in range(K)]

        def __call__(self, x):
            h = jax.nn.relu(self.trunk(x))
            return jnp.concatenate([head(h) for head in self.heads], axis=-1)  # [N, K]

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(32, 4)), jnp.float32)
    targets = jnp.asarray(np.stack([np.sin(np.asarray(x) @ rng.normal(size=4))
                                    for _ in range(K)], axis=-1), jnp.float32)
    graphdef, params0 = nnx.split(Model(nnx.Rngs(0)), nnx.Param)

    def task_losses(params):
        preds = nnx.merge(graphdef, params)(x)
        return jnp.mean((preds - targets) ** 2, axis=0)        # [K]

    @jax.jit
    def jacobians(params):
        # the task Jacobian, and for MGDA-UB the Jacobian w.r.t. the shared trunk features:
        # computed once per step for every aggregator (one compilation of the model's jacrev)
        model = nnx.merge(graphdef, params)
        z = jax.nn.relu(model.trunk(x))

        def head_losses(z):
            preds = jnp.concatenate([h(z) for h in model.heads], axis=-1)
            return jnp.mean((preds - targets) ** 2, axis=0)

        return task_losses(params), jax.jacrev(task_losses)(params), jax.jacrev(head_losses)(z)

    factories = dict(ALL, mgda_ub=agg.mgda_ub)
    # optax.adam mixes weakly-typed Python scalars with float32 in ways the suite's strict
    # promotion rejects; the aggregators themselves run under strict promotion elsewhere.
    with jax.numpy_dtype_promotion("standard"):
        for name, factory in factories.items():
            tx = optax.chain(factory(), optax.adam(1e-2))

            @jax.jit
            def step(params, state, jac, jz, tx=tx, name=name):
                extra = {"representation_jacobian": jz} if name == "mgda_ub" else {}
                updates, state = tx.update(jac, state, params, **extra)
                return optax.apply_updates(params, updates), state

            params, state = params0, tx.init(params0)
            first = None
            for _ in range(40):
                losses, jac, jz = jacobians(params)
                params, state = step(params, state, jac, jz)
                first = losses if first is None else first
            final = task_losses(params)
            assert np.all(np.isfinite(np.asarray(final))), name
            assert float(jnp.sum(final)) < 0.9 * float(jnp.sum(first)), (name, first, final)

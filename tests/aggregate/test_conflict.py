"""``jaxloss.aggregate.conflict``: GradVac and ConFIG against their reference code (and torchjd)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxloss import aggregate as agg
from jaxloss.aggregate import conflict
from tests.aggregate._references import (
    ATOL,
    RTOL,
    random_jacobian,
    ref_config,
    ref_dualproj,
    ref_fairgrad,
    ref_gradvac,
    run,
)


def _conflicting_steps(K, steps, seed):
    """A few Jacobians whose tasks partly conflict (cosines of both signs)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(K, 8))
    return [(base + 0.8 * rng.normal(size=(K, 8))) * rng.choice([-1.0, 1.0], size=(K, 1))
            for _ in range(steps)]


@pytest.mark.parametrize("K", [3, 4])
def test_gradvac_matches_reference_over_several_steps(K):
    tx = agg.gradvac(num_tasks=K, beta=0.3, key=K)
    update = jax.jit(tx.update)
    state = tx.init(None)
    targets = np.zeros((K, K))
    for J in _conflicting_steps(K, 4, seed=K):
        J = J.astype(np.float32)
        _, sub = jax.random.split(state.key)
        orders = np.asarray(conflict._gradvac_orders(sub, K))
        assert all(sorted(row) == sorted(set(range(K)) - {i})
                   for i, row in enumerate(orders.tolist()))
        expected, targets = ref_gradvac(J, targets, orders, beta=0.3)
        out, state = update(jnp.asarray(J), state)
        np.testing.assert_allclose(out, expected, rtol=RTOL, atol=ATOL * np.abs(J).max())
        np.testing.assert_allclose(state.targets, targets, rtol=RTOL, atol=ATOL)
    assert np.any(np.asarray(state.targets) != 0.0)


def test_gradvac_first_step_is_pcgrad_for_two_tasks():
    # targets start at 0: a pair is corrected only when its cosine is negative, onto cosine 0
    J = random_jacobian(2, seed=4)
    J[1] -= 2.0 * J[0]
    np.testing.assert_allclose(run("gradvac", J), run("pcgrad", J), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("K", [2, 3, 4])
def test_config_matches_torchjd_formula_and_has_equal_cosines(K):
    for seed in range(2):
        J = random_jacobian(K, seed=seed)
        d = run("config", J)
        np.testing.assert_allclose(d, ref_config(J), rtol=RTOL, atol=ATOL * np.abs(J).max())
        cosines = (J @ d) / (np.linalg.norm(J, axis=1) * np.linalg.norm(d))
        np.testing.assert_allclose(cosines, np.full(K, cosines[0]), rtol=1e-4)
        assert cosines[0] > 0


def test_config_ignores_a_zero_gradient():
    J = random_jacobian(3, seed=1)
    J[2] = 0.0
    np.testing.assert_allclose(run("config", J), ref_config(J), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(run("config", J), ref_config(J[:2]), rtol=RTOL, atol=ATOL)


def test_new_aggregators_match_torchjd():
    aggregation = pytest.importorskip("torchjd.aggregation")
    pytest.importorskip("quadprog")
    for K in (2, 3):
        J = random_jacobian(K, seed=10 + K)
        matrix = torch.tensor(J, dtype=torch.float64)
        for name, reference in (("config", aggregation.ConFIG()),
                                ("dualproj", aggregation.DualProj())):
            np.testing.assert_allclose(run(name, J), reference(matrix).numpy(), rtol=RTOL,
                                       atol=ATOL * np.abs(J).max(), err_msg=name)
        for alpha in (0.5, 2.0):
            np.testing.assert_allclose(run("fairgrad", J, alpha=alpha),
                                       aggregation.FairGrad(alpha)(matrix).numpy(),
                                       rtol=1e-4, atol=1e-5, err_msg=f"fairgrad {alpha}")
        # our NumPy references agree with torchjd too
        np.testing.assert_allclose(ref_config(J), aggregation.ConFIG()(matrix).numpy(),
                                   rtol=1e-8)
        np.testing.assert_allclose(ref_dualproj(J), aggregation.DualProj()(matrix).numpy(),
                                   rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(ref_fairgrad(J, 2.0),
                                   aggregation.FairGrad(2.0)(matrix).numpy(), rtol=1e-5)
    # GradVac with two tasks has one possible order: stateful agreement over several steps
    reference = aggregation.GradVac(beta=0.5)
    tx = agg.gradvac(num_tasks=2)
    update, state = jax.jit(tx.update), tx.init(None)
    for J in _conflicting_steps(2, 4, seed=0):
        out, state = update(jnp.asarray(J, jnp.float32), state)
        expected = reference(torch.tensor(J.astype(np.float32), dtype=torch.float64)).numpy()
        np.testing.assert_allclose(out, expected, rtol=RTOL, atol=ATOL * np.abs(J).max())
        np.testing.assert_allclose(state.targets, reference.gramian_weighting._phi_t.numpy(),
                                   rtol=RTOL, atol=ATOL)

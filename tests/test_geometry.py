"""Geometry losses: conventions, invariances, NaN for bad input, errors, RAFT's sequence loss.

Reference agreement is in tests/reference/test_geometry_reference.py and the
shared battery (tests/cases_geometry.py) covers jit, vmap, half precision,
extremes, ``where`` and the common errors.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss


def _depth(shape=(2, 8, 9, 1), seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.5, 3.0, shape).astype(np.float32)
    p = (t * np.exp(0.3 * rng.normal(size=shape))).astype(np.float32)
    return jnp.asarray(p), jnp.asarray(t)


def test_scale_invariances():
    p, t = _depth()
    scales = jnp.asarray([3.0, 0.25], jnp.float32)[:, None, None, None]

    @jax.jit
    def losses(p, t):
        return (jaxloss.silog_loss(p, t, variance_focus=1.0, reduction="none"),
                jaxloss.silog_loss(scales * p, t, variance_focus=1.0, reduction="none"),
                jaxloss.scale_shift_invariant_loss(p, t, reduction="none"),
                jaxloss.scale_shift_invariant_loss(scales * p - 2.0, t, reduction="none"),
                jaxloss.scale_shift_invariant_loss(scales * t + 1.0, t, reduction="none"))

    si, si_scaled, ssi, ssi_moved, ssi_exact = losses(p, t)
    np.testing.assert_allclose(si_scaled, si, rtol=1e-4)  # lambda = 1: blind to a scale
    np.testing.assert_allclose(ssi_moved, ssi, rtol=1e-3)  # blind to scale and shift
    # An affine copy is exact up to float32 roundoff of the normal equations (whose L1
    # gradient term is of the order of the residuals' roundoff, ~1e-5 here).
    np.testing.assert_allclose(ssi_exact, 0.0, atol=1e-4)
    assert np.all(np.asarray(ssi) > 1e-3)


def test_no_valid_pixel_gives_zero_and_zero_gradient():
    p, t = _depth()

    @jax.jit
    def values(p, t):
        silog = jax.value_and_grad(lambda x: jaxloss.silog_loss(x, jnp.zeros_like(t)))(p)
        ssi = jax.value_and_grad(lambda x: jaxloss.scale_shift_invariant_loss(
            x, t, mask=jnp.zeros(t.shape, bool)))(p)
        return silog, ssi

    for value, grad in values(p, t):
        assert float(value) == 0.0 and not np.any(np.asarray(grad))


def test_scale_shift_mask_ignores_invalid_pixels():
    p, t = _depth(seed=1)
    mask = jnp.asarray(np.random.default_rng(2).random(t.shape) > 0.3)
    garbage = jnp.where(mask, t, 1e3)  # the target where it is invalid must not matter
    a = jaxloss.scale_shift_invariant_loss(p, t, mask=mask, reduction="none")
    b = jaxloss.scale_shift_invariant_loss(p, garbage, mask=mask, reduction="none")
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_nan_input_gives_nan_under_jit():
    # Never a plausible wrong number: a NaN prediction is not dropped or zeroed.
    p, t = _depth()
    bad = p.at[0, 0, 0, 0].set(jnp.nan)
    flow = jnp.zeros((2, 3, 4, 2)).at[1, 0, 0, 0].set(jnp.nan)

    @jax.jit
    def values(bad, flow):
        return (jaxloss.silog_loss(bad, t, reduction="none"),
                jaxloss.endpoint_error_loss(flow, jnp.zeros_like(flow), reduction="none"))

    silog, epe = values(bad, flow)
    assert np.isnan(silog[0]) and np.isfinite(silog[1])
    assert np.isnan(epe[1, 0, 0]) and np.sum(np.isnan(np.asarray(epe))) == 1


def test_endpoint_error_where_is_the_mean_over_valid_pixels():
    rng = np.random.default_rng(3)
    p = jnp.asarray(rng.normal(size=(2, 4, 5, 2)).astype(np.float32))
    t = jnp.asarray(rng.normal(size=(2, 4, 5, 2)).astype(np.float32))
    valid = jnp.asarray(rng.random((2, 4, 5)) > 0.4)
    epe = jnp.sqrt(jnp.sum(jnp.square(p - t), axis=-1))
    expected = jnp.sum(jnp.where(valid, epe, 0.0)) / jnp.sum(valid).astype(jnp.float32)
    np.testing.assert_allclose(jaxloss.endpoint_error_loss(p, t, where=valid), expected,
                               rtol=1e-6)


def _raft_sequence_loss(flow_preds, flow_gt, gamma, distance):
    """RAFT's ``sequence_loss`` (princeton-vl/RAFT, train.py), in torch float64, valid
    everywhere; ``distance="l1"`` is RAFT's, ``"epe"`` the same sum over the endpoint error."""
    n = len(flow_preds)
    total = 0.0
    for i in range(n):
        diff = flow_preds[i] - flow_gt
        per_pixel = diff.abs() if distance == "l1" else torch.sqrt(torch.sum(diff**2, dim=-1))
        total = total + gamma ** (n - i - 1) * per_pixel.mean()
    return total


@pytest.mark.parametrize("distance", ["l1", "epe"])
def test_raft_sequence_loss_with_deep_supervision(distance):
    rng = np.random.default_rng(4)
    gamma, n = 0.8, 5
    gt = rng.normal(size=(2, 6, 7, 2)).astype(np.float32)
    preds = [(gt + rng.normal(size=gt.shape) / (i + 1)).astype(np.float32) for i in range(n)]
    weights = [gamma ** (n - 1 - i) for i in range(n)]
    loss = jaxloss.endpoint_error_loss if distance == "epe" else jaxloss.mae_loss
    sequence = jaxloss.compose.deep_supervision(loss, weights=weights)
    ours = jax.jit(lambda ps, g: sequence(ps, g))([jnp.asarray(x) for x in preds],
                                                    jnp.asarray(gt))
    # deep_supervision normalises its weights to sum 1; RAFT's do not.
    reference = _raft_sequence_loss([torch.tensor(x, dtype=torch.float64) for x in preds],
                                    torch.tensor(gt, dtype=torch.float64), gamma, distance)
    np.testing.assert_allclose(float(ours) * sum(weights), float(reference), rtol=1e-5)


@pytest.mark.parametrize("call,error,match", [
    (lambda: jaxloss.silog_loss(jnp.ones((3,)), jnp.ones((3,))), ValueError, "rank >= 2"),
    (lambda: jaxloss.silog_loss(jnp.ones((2, 3)), jnp.ones((2, 3)), variance_focus=1.5),
     ValueError, "variance_focus"),
    (lambda: jaxloss.scale_shift_invariant_loss(jnp.ones((2, 1, 4, 4)), jnp.ones((2, 1, 4, 4))),
     ValueError, "channels-first"),
    (lambda: jaxloss.scale_shift_invariant_loss(jnp.ones((1, 4, 4, 1)), jnp.ones((1, 4, 4, 1)),
                                                mask=jnp.ones((1, 4, 4, 1))),
     TypeError, "mask must be a boolean"),
    (lambda: jaxloss.scale_shift_invariant_loss(jnp.ones((1, 4, 4, 1)), jnp.ones((1, 4, 4, 1)),
                                                scales=0), ValueError, "scales"),
    (lambda: jaxloss.edge_aware_smoothness_loss(jnp.ones((1, 4, 4, 1)), jnp.ones((1, 3, 4, 3))),
     ValueError, "images must be"),
    (lambda: jaxloss.endpoint_error_loss(jnp.ones((1, 4, 4, 3)), jnp.ones((1, 4, 4, 3))),
     ValueError, "flow fields"),
    (lambda: jaxloss.lncc_loss(jnp.ones((1, 8, 8, 1)), jnp.ones((1, 8, 8, 1)), kernel_size=4),
     ValueError, "kernel_size must be odd"),
    (lambda: jaxloss.lncc_loss(jnp.ones((1, 8)), jnp.ones((1, 8))), ValueError, "rank 3 or 4"),
    (lambda: jaxloss.lncc_loss(jnp.ones((1, 8, 8, 1)), jnp.ones((1, 8, 8, 1)),
                               kernel_type="box"), ValueError, "kernel_type"),
    (lambda: jaxloss.mutual_information_loss(jnp.ones((1, 8)), jnp.ones((1, 8)), num_bins=1),
     ValueError, "num_bins"),
    (lambda: jaxloss.bending_energy_loss(jnp.ones((1, 5, 5, 3))), ValueError,
     "must hold 2 components"),
    (lambda: jaxloss.bending_energy_loss(jnp.ones((1, 2, 5, 2))), ValueError, "longer than 2"),
])
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()

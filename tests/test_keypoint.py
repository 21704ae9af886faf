"""jaxloss.keypoint beyond the battery: the edge cases the losses promise (zero residual,
nothing visible, zero area), NaN for unverifiable bad input under jit, argument errors,
traced hyperparameters, and the target and decoding helpers (a round trip, also as a
hypothesis property)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss

# ----------------------------------------------------------------------------- edge cases


@jax.jit
def _wing_family_at_zero(x):
    def total(p):
        return (jaxloss.wing_loss(p, x) + jaxloss.soft_wing_loss(p, x)
                + jaxloss.mpjpe_loss(p, x) + jaxloss.adaptive_wing_loss(p, x))

    return jax.value_and_grad(total)(x)


def test_zero_residual_gives_zero_loss_and_zero_gradient():
    # Wing's log at 0 (one-sided slope omega/epsilon), MPJPE's norm at 0, adaptive Wing's
    # power at 0: the value is 0 and the gradient 0 (torch's |r|' at 0), not NaN or +-slope
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 3, 2)), jnp.float32)
    value, grad = _wing_family_at_zero(x)
    assert float(value) == 0.0
    np.testing.assert_array_equal(grad, np.zeros_like(grad))


@jax.jit
def _oks_edge_cases(p, t, visible, areas):
    none = jaxloss.oks_loss(p, t, visible, areas, reduction="none")
    value, grad = jax.value_and_grad(
        lambda x: jaxloss.oks_loss(x, t, visible, areas, reduction="sum"))(p)
    perfect = jaxloss.oks_loss(t, t, visible, jnp.zeros_like(areas), reduction="sum")
    return none, value, grad, perfect


def test_oks_nothing_visible_is_zero_with_zero_gradient_and_zero_area_is_finite():
    rng = np.random.default_rng(1)
    t = jnp.asarray(rng.uniform(0, 50, size=(3, 17, 2)), jnp.float32)
    p = t + jnp.asarray(rng.normal(size=t.shape), jnp.float32)
    visible = jnp.ones((3, 17), bool).at[1].set(False)
    none, value, grad, perfect = _oks_edge_cases(p, t, visible, jnp.array([300.0, 300.0, 0.0]))
    assert float(none[1]) == 0.0
    assert float(none[2]) == pytest.approx(1.0)  # zero area: any error is a full miss
    assert np.isfinite(float(value)) and np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[1], 0.0)
    assert float(perfect) == 0.0  # a perfect prediction at zero area is a perfect match


def test_oks_visibility_weights_and_mask_rows():
    t = jnp.zeros((1, 2, 2))
    p = t.at[0, 0, 0].set(1.0)
    sigmas = jnp.array([0.5, 0.5])
    weighted = jaxloss.oks_loss(p, t, jnp.array([[3.0, 1.0]]), jnp.array([2.0]), sigmas=sigmas)
    # weights 3 and 1: 1 - (3 exp(-1/4) + 1) / 4
    assert float(weighted) == pytest.approx(1 - (3 * np.exp(-0.25) + 1) / 4, rel=1e-6)


def test_negative_area_or_visibility_raises_eagerly_and_is_nan_under_jit():
    t = jnp.zeros((3, 17, 2))
    p = t + 1.0
    visible = jnp.ones((3, 17))
    areas = jnp.array([100.0, -1.0, 100.0])
    with pytest.raises(ValueError, match=r"areas holds a negative value at index \(1,\)"):
        jaxloss.oks_loss(p, t, visible, areas)
    with pytest.raises(ValueError, match="visibility holds a negative value"):
        jaxloss.oks_loss(p, t, visible.at[2, 3].set(-1.0), jnp.full(3, 100.0))
    jitted = jax.jit(lambda v, a: jaxloss.oks_loss(p, t, v, a, reduction="none"))
    out = np.asarray(jitted(visible, areas))
    assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]]))
    out = np.asarray(jitted(visible.at[2, 3].set(-1.0), jnp.full(3, 100.0)))
    assert np.isnan(out[2]) and np.all(np.isfinite(out[:2]))
    # a row that where= drops may hold anything
    kept = jaxloss.oks_loss(p, t, visible, areas, where=jnp.array([True, False, True]))
    assert np.isfinite(float(kept))


@jax.jit
def _masked_heatmap_and_simcc(h, t, zx, zy, keep):
    qx, qy = jnp.ones_like(zx), jnp.ones_like(zy)
    return (jax.value_and_grad(lambda x: jaxloss.heatmap_mse_loss(x, t, where=keep))(h),
            jax.grad(lambda x: jaxloss.simcc_loss(x, zy, qx, qy, where=keep))(zx))


def test_masked_keypoints_block_nan_in_heatmaps_and_simcc():
    rng = np.random.default_rng(2)
    h = jnp.asarray(rng.uniform(size=(2, 4, 4, 3)), jnp.float32)
    t = jnp.asarray(rng.uniform(size=(2, 4, 4, 3)), jnp.float32)
    keep = jnp.array([[True, False, True], [True, True, True]])
    zx = jnp.asarray(rng.normal(size=(2, 3, 5)), jnp.float32).at[0, 1].set(jnp.nan)
    zy = jnp.asarray(rng.normal(size=(2, 3, 4)), jnp.float32)
    (got, grad), grad_x = _masked_heatmap_and_simcc(h.at[0, :, :, 1].set(jnp.nan), t, zx, zy,
                                                    keep)
    assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[0, :, :, 1] == 0)
    expected = np.mean((np.asarray(h) - np.asarray(t)) ** 2, axis=(1, 2))[np.asarray(keep)]
    np.testing.assert_allclose(got, expected.mean(), rtol=1e-6)
    assert np.all(np.isfinite(grad_x)) and np.all(np.asarray(grad_x)[0, 1] == 0)


def test_heatmap_mse_top_k_all_keypoints_is_the_plain_mean():
    rng = np.random.default_rng(3)
    h, t = (jnp.asarray(rng.uniform(size=(3, 4, 5, 6)), jnp.float32) for _ in range(2))
    np.testing.assert_allclose(jaxloss.heatmap_mse_loss(h, t, top_k=6),
                               jaxloss.heatmap_mse_loss(h, t), rtol=1e-6)
    # joint weights (K,) equal the same weights repeated per sample
    w = jnp.asarray(rng.uniform(size=6), jnp.float32)
    np.testing.assert_allclose(
        jaxloss.heatmap_mse_loss(h, t, keypoint_weights=w),
        jaxloss.heatmap_mse_loss(h, t, keypoint_weights=jnp.broadcast_to(w, (3, 6))), rtol=1e-6)


@jax.jit
def _hyperparameter_gradients(x, t, omega, alpha):
    wing = jax.grad(lambda o: jaxloss.wing_loss(x, t, omega=o, epsilon=o / 5))(omega)
    soft = jax.grad(lambda o: jaxloss.soft_wing_loss(x, t, omega2=o))(omega)
    adaptive = jax.grad(lambda a: jaxloss.adaptive_wing_loss(t, t, alpha=a)
                        + jaxloss.adaptive_wing_loss(x, t, alpha=a))(alpha)
    simcc = jax.grad(lambda b: jaxloss.simcc_loss(x[..., 0], x[..., 1], t[..., 0], t[..., 1],
                                                  beta=b, label_beta=b))(alpha)
    return wing, soft, adaptive, simcc


def test_traced_hyperparameters_have_finite_gradients():
    rng = np.random.default_rng(4)
    t = jnp.asarray(rng.uniform(size=(2, 3, 4, 2)), jnp.float32)
    x = t + jnp.asarray(rng.normal(size=t.shape), jnp.float32)
    grads = _hyperparameter_gradients(x, t, jnp.float32(3.0), jnp.float32(2.1))
    assert all(np.isfinite(float(g)) and float(g) != 0.0 for g in grads)


# ----------------------------------------------------------------------------- errors


def test_argument_errors_name_the_argument():
    p = jnp.zeros((2, 5, 2))
    with pytest.raises(ValueError, match="sigmas=None means COCO's 17"):
        jaxloss.oks_loss(p, p, jnp.ones((2, 5)), jnp.ones(2))
    with pytest.raises(ValueError, match=r"sigmas must have shape \(5,\)"):
        jaxloss.oks_loss(p, p, jnp.ones((2, 5)), jnp.ones(2), sigmas=jnp.ones(4))
    with pytest.raises(ValueError, match=r"areas must have shape \(2,\)"):
        jaxloss.oks_loss(p, p, jnp.ones((2, 5)), jnp.ones((2, 1)), sigmas=jnp.ones(5))
    with pytest.raises(ValueError, match=r"visibility must have shape \(2, 5\)"):
        jaxloss.oks_loss(p, p, jnp.ones(2), jnp.ones(2), sigmas=jnp.ones(5))
    with pytest.raises(ValueError, match=r"predictions must have shape \(..., K, 2\)"):
        jaxloss.oks_loss(jnp.zeros((2, 5, 3)), jnp.zeros((2, 5, 3)), jnp.ones((2, 5)),
                         jnp.ones(2), sigmas=jnp.ones(5))
    h = jnp.zeros((2, 4, 4, 3))
    with pytest.raises(ValueError, match="top_k must be at most the number of keypoints K=3"):
        jaxloss.heatmap_mse_loss(h, h, top_k=4)
    with pytest.raises(TypeError, match="top_k must be a static Python int"):
        jaxloss.heatmap_mse_loss(h, h, top_k=2.0)
    with pytest.raises(ValueError, match="keypoint_weights has shape"):
        jaxloss.heatmap_mse_loss(h, h, keypoint_weights=jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="heatmaps must have rank >= 3"):
        jaxloss.heatmap_mse_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="omega must lie in"):
        jaxloss.wing_loss(p, p, omega=0.0)
    with pytest.raises(ValueError, match="alpha must lie in"):
        jaxloss.adaptive_wing_loss(p, p, alpha=1.0)
    with pytest.raises(ValueError, match=r"y_logits must have the \(N, K\)"):
        jaxloss.simcc_loss(jnp.zeros((2, 3, 5)), jnp.zeros((2, 4, 5)), jnp.zeros((2, 3, 5)),
                           jnp.zeros((2, 4, 5)))
    with pytest.raises(TypeError, match="label_softmax must be a static bool"):
        jaxloss.simcc_loss(h[..., 0], h[..., 0], h[..., 0], h[..., 0], label_softmax=1)
    with pytest.raises(ValueError, match=r"predictions must have shape \(\.\.\., K, D\)"):
        jaxloss.mpjpe_loss(jnp.zeros(3), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"shape must be a static \(height, width\)"):
        jaxloss.gaussian_heatmaps(p, shape=(4,))
    with pytest.raises(ValueError, match="refine must be one of"):
        jaxloss.decode_heatmaps(h, refine="dark")
    with pytest.raises(ValueError, match="split_ratio must be a static positive number"):
        jaxloss.simcc_targets(p, shape=(4, 4), split_ratio=0.0)


# ----------------------------------------------------------------------------- targets


def test_invisible_keypoints_render_empty_targets():
    kp = jnp.array([[[2.0, 3.0], [1.0, 1.0]]])
    visible = jnp.array([[True, False]])
    h = jaxloss.gaussian_heatmaps(kp, shape=(6, 5), visibility=visible)
    assert float(h[0, 3, 2, 0]) == 1.0 and float(jnp.abs(h[..., 1]).max()) == 0.0
    qx, qy = jaxloss.simcc_targets(kp, shape=(6, 5), visibility=visible)
    assert float(qx[0, 1].max()) == 0.0 and float(qy[0, 1].max()) == 0.0
    assert qx.shape == (1, 2, 10) and qy.shape == (1, 2, 12)


@jax.jit
def _round_trip(keypoints):
    heatmaps = jaxloss.gaussian_heatmaps(keypoints, shape=(16, 20), sigma=1.5)
    qx, qy = jaxloss.simcc_targets(keypoints, shape=(16, 20), split_ratio=2.0, sigma=2.0)
    return ({refine: jaxloss.decode_heatmaps(heatmaps, refine=refine)
             for refine in ("none", "quarter", "taylor")}, jaxloss.decode_simcc(qx, qy))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_decoding_recovers_the_rendered_keypoints(seed):
    # inside the border, where every refinement applies
    keypoints = np.random.default_rng(seed).uniform([1.0, 1.0], [18.0, 14.0], size=(2, 3, 2))
    keypoints = jnp.asarray(keypoints, jnp.float32)
    decoded, (simcc, simcc_scores) = _round_trip(keypoints)
    error = {name: np.abs(np.asarray(xy) - np.asarray(keypoints)) for name, (xy, _)
             in decoded.items()}
    assert error["none"].max() <= 0.5 + 1e-5  # the nearest pixel
    assert error["quarter"].max() <= 0.25 + 1e-5  # a quarter step toward the peak
    assert error["taylor"].max() < 1e-3  # exact for a Gaussian, up to float32 logs
    for _, scores in decoded.values():
        assert np.all(np.asarray(scores) > 0.8)
    np.testing.assert_allclose(simcc, np.round(np.asarray(keypoints) * 2.0) / 2.0, atol=1e-6)
    np.testing.assert_allclose(simcc_scores, 1.0, atol=0.04)  # exp(-0.5^2 / 8) at worst


def test_decoding_leaves_border_peaks_unrefined_and_works_under_vmap():
    kp = jnp.array([[[0.0, 3.0], [4.2, 0.0]]])
    h = jaxloss.gaussian_heatmaps(kp, shape=(5, 5), sigma=1.0)
    for refine in ("quarter", "taylor"):
        xy, _ = jaxloss.decode_heatmaps(h, refine=refine)
        assert float(xy[0, 0, 0]) == 0.0 and float(xy[0, 1, 1]) == 0.0
    batched = jax.vmap(lambda m: jaxloss.decode_heatmaps(m, refine="taylor")[0])(h[None])
    np.testing.assert_allclose(batched[0], jaxloss.decode_heatmaps(h, refine="taylor")[0])

"""Dense-head detection: bad inputs, NaN under jit, the probability path, DFL's edges,
the assignment's corner cases and the YOLOv8 criterion on images without ground truth.

(Reference agreement: tests/reference/test_detection_dense_reference.py; the shared
battery: tests/cases_detection_dense.py.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from tests.cases_detection_dense import assign_problem, yolo_step


def test_probability_path_equals_logit_path():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    t = jnp.asarray(np.where(rng.random((5, 4)) < 0.4, rng.uniform(0.1, 1, (5, 4)), 0),
                    jnp.float32)
    heat = t.at[0, 0].set(1.0)

    @jax.jit
    def both(x, t, heat):
        p = jax.nn.sigmoid(x)
        return [(f(x, y, reduction="none"), f(p, y, from_logits=False, reduction="none"))
                for f, y in ((jaxloss.varifocal_loss, t), (jaxloss.quality_focal_loss, t),
                             (jaxloss.gaussian_focal_loss, heat))]

    for from_logits, from_probs in both(x, t, heat):
        np.testing.assert_allclose(from_logits, from_probs, rtol=1e-5, atol=1e-6)


def test_dfl_edges_and_decoding():
    logits = np.random.default_rng(1).normal(size=(3, 6)).astype(np.float32)
    r = logits.shape[-1] - 1
    ce = -np.asarray(jax.nn.log_softmax(logits, axis=-1))
    # The minimiser puts the mass on the two neighbours of y, which decodes y exactly
    y = np.array([0.3, 2.75, 4.999], np.float32)
    lo = np.floor(y)
    bins = np.arange(r + 1)[None, :]
    mass = (np.where(bins == lo[:, None], (lo + 1 - y)[:, None], 0.0)
            + np.where(bins == lo[:, None] + 1, (y - lo)[:, None], 0.0))
    best = np.log(np.maximum(mass, 1e-30)).astype(np.float32)

    @jax.jit
    def program(logits, edges, best, y):
        def dfl(z, t):
            return jaxloss.distribution_focal_loss(z, t, reduction="none")

        grad = jax.grad(lambda z: jnp.sum(dfl(z, y)))(best)
        return dfl(logits, edges), jaxloss.distribution_expectation(best), grad

    at_edges, decoded, grad = program(logits, np.array([r, 2.0, 0.0], np.float32), best, y)
    # y = R is bin R alone; an integer y is bin y alone
    np.testing.assert_allclose(at_edges, [ce[0, r], ce[1, 2], ce[2, 0]], rtol=1e-6)
    np.testing.assert_allclose(decoded, y, rtol=1e-5)
    np.testing.assert_allclose(grad, 0.0, atol=1e-5)


def test_bad_inputs_raise_clear_errors():
    logits, boxes = jnp.zeros((2, 8)), jnp.array([[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match=r"targets must have the shape of logits without"):
        jaxloss.distribution_focal_loss(logits, jnp.zeros((2, 8)))
    with pytest.raises(ValueError, match=r"outside the bins \[0, 7\]"):
        jaxloss.distribution_focal_loss(logits, jnp.array([1.0, 7.5]))
    with pytest.raises(ValueError, match="at least 2 bins"):
        jaxloss.distribution_focal_loss(jnp.zeros((2, 1)), jnp.zeros(2))
    with pytest.raises(ValueError, match="boxes2 holds an inverted box"):
        jaxloss.siou_loss(boxes, jnp.array([[1.0, 0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\(cx, cy, w, h, theta"):
        jaxloss.probiou_loss(boxes, boxes)
    with pytest.raises(ValueError, match="fun must be one of"):
        jaxloss.kld_rotated_loss(jnp.ones((1, 5)), jnp.ones((1, 5)), fun="log")
    with pytest.raises(ValueError, match="alpha must lie in"):
        jaxloss.varifocal_loss(logits, logits, alpha=-1.0)
    with pytest.raises(TypeError, match="from_logits must be a static Python bool"):
        jaxloss.quality_focal_loss(logits, logits, from_logits=jnp.array(True))


def test_unverifiable_bad_input_is_nan_under_jit():
    dfl = jax.jit(lambda z, y: jaxloss.distribution_focal_loss(z, y, reduction="none"))
    out = dfl(jnp.zeros((3, 5)), jnp.array([1.0, -0.5, 4.5]))
    assert np.isfinite(out[0]) and np.isnan(out[1]) and np.isnan(out[2])
    siou = jax.jit(lambda p, t: jaxloss.siou_loss(p, t, reduction="none"))
    p = jnp.array([[0.0, 0.0, 1.0, 1.0]] * 2)
    out = siou(p, jnp.array([[0.0, 0.0, 2.0, 2.0], [2.0, 0.0, 0.0, 2.0]]))
    assert np.isfinite(out[0]) and np.isnan(out[1])


def test_task_aligned_assign_corner_cases():
    scores, boxes, anchors, labels, gt, mask = assign_problem(np.random.default_rng(0))
    with pytest.raises(ValueError, match="top_k must be at most the number of anchors"):
        jaxloss.task_aligned_assign(scores, boxes, anchors, labels, gt, mask, top_k=99)
    with pytest.raises(ValueError, match=r"gt_mask must have shape \(3, 4\)"):
        jaxloss.task_aligned_assign(scores, boxes, anchors, labels, gt, mask[:, :2])
    with pytest.raises(ValueError, match="gt_labels holds class index 7"):
        jaxloss.task_aligned_assign(scores, boxes, anchors, np.where(mask, 7, -1), gt, mask)
    with pytest.raises(TypeError, match="gt_labels must hold integer"):
        jaxloss.task_aligned_assign(scores, boxes, anchors, labels * 1.0, gt, mask)
    # no ground-truth slots at all (M = 0): everything background
    labels0, boxes0, scores0, fg0 = jaxloss.task_aligned_assign(
        scores, boxes, anchors, labels[:, :0], gt[:, :0], mask[:, :0])
    assert scores0.shape == scores.shape and not np.any(scores0) and not np.any(fg0)
    assert boxes0.shape == boxes.shape and np.all(labels0 == scores.shape[-1])
    # under jit a real box's out-of-range label poisons its anchors' target scores
    bad = jnp.asarray(labels).at[0, 0].set(9)
    _, _, out, fg = jax.jit(jaxloss.task_aligned_assign)(scores, boxes, anchors, bad, gt, mask)
    out = np.asarray(out)
    assert np.isnan(out).any() and np.all(np.isfinite(out[~np.asarray(fg)]))


def test_yolo_criterion_without_ground_truth_is_finite():
    (cls_logits, box_logits, anchors, strides, labels, gt, mask), reg_max, step = yolo_step()
    (total, parts), grads = step(cls_logits, box_logits, np.zeros_like(mask))
    assert float(parts["box"]) == 0.0 and float(parts["dfl"]) == 0.0
    assert np.isfinite(float(total)) and float(parts["cls"]) > 0
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
    assert not np.any(np.asarray(grads[1]))                       # no box gradient at all
    np.testing.assert_allclose(float(total), 0.5 * float(parts["cls"]), rtol=1e-6)
    with pytest.raises(ValueError, match=r"box_logits must have shape \(2, 80, 32\)"):
        jaxloss.yolo_criterion(cls_logits, box_logits[..., :-1], anchors, strides, labels, gt,
                               mask, reg_max=reg_max)
    with pytest.raises(ValueError, match="reg_max must be >= 2"):
        jaxloss.yolo_criterion(cls_logits, box_logits, anchors, strides, labels, gt, mask,
                               reg_max=1)

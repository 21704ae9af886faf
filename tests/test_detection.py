"""Properties, conventions and errors of jaxloss.detection.

Agreement with torchvision's formulas and MONAI is in
tests/reference/test_detection_reference.py. Here: an independent geometric
reference for the IoU (numpy, float64, cell decomposition), the conventions on
degenerate and inverted boxes, GIoU's analytic derivative, hypothesis
properties and the error messages. The detector losses (SSD, Mask R-CNN) are
in tests/test_detection_detectors.py.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss
from tests.cases_detection import (
    IOU_LOSSES,
    _ssd_arrays,
    _xyxy_to,
    extreme_box_pairs,
    random_xyxy,
)


def _finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree.leaves(tree))


# ------------------------------------------------------------------ geometric reference

def _exact_iou(a, b) -> float:
    """IoU of two axis-aligned boxes by cell decomposition, float64, no min/max formula.

    The x and y coordinates of both boxes cut the plane into a grid of cells; a
    cell lies in a box exactly when its centre does. Intersection and union are
    sums of cell areas.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    xs = np.unique([a[0], a[2], b[0], b[2]])
    ys = np.unique([a[1], a[3], b[1], b[3]])
    inter = union = 0.0
    for x_lo, x_hi in itertools.pairwise(xs):
        for y_lo, y_hi in itertools.pairwise(ys):
            cx, cy = (x_lo + x_hi) / 2, (y_lo + y_hi) / 2
            in_a = a[0] <= cx <= a[2] and a[1] <= cy <= a[3]
            in_b = b[0] <= cx <= b[2] and b[1] <= cy <= b[3]
            area = (x_hi - x_lo) * (y_hi - y_lo)
            inter += area * (in_a and in_b)
            union += area * (in_a or in_b)
    return inter / union if union > 0 else 0.0


@pytest.mark.parametrize("seed", range(3))
def test_iou_equals_exact_interval_arithmetic(seed):
    rng = np.random.default_rng(seed)
    # Integer-ish coordinates make shared edges and nested boxes common.
    b1 = np.round(random_xyxy(rng, (9,), high=6.0) * 2) / 2
    b2 = np.round(random_xyxy(rng, (11,), high=6.0) * 2) / 2
    expected = np.array([[_exact_iou(p, q) for q in b2] for p in b1])
    np.testing.assert_allclose(np.asarray(jaxloss.box_iou(b1, b2)), expected, rtol=1e-6,
                               atol=1e-7)
    loss = jaxloss.iou_loss(b1[:9], b2[:9], eps=0.0, reduction="none")
    np.testing.assert_allclose(np.asarray(loss), 1 - np.diagonal(expected), rtol=1e-6,
                               atol=1e-6)


def test_iou_exact_on_extremes():
    for p, t in extreme_box_pairs():
        expected = [_exact_iou(a, b) for a, b in zip(p, t, strict=True)]
        np.testing.assert_allclose(np.asarray(jaxloss.box_iou(p, t, pairwise=False)),
                                   expected, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------ hypothesis properties

_coord = st.floats(-50.0, 50.0, allow_nan=False, width=32)
_side = st.floats(0.0, 30.0, allow_nan=False, width=32)
_box = st.tuples(_coord, _coord, _side, _side).map(
    lambda v: np.array([v[0], v[1], v[0] + v[2], v[1] + v[3]], np.float32))


# Fixed list sizes and jitted functions: one compilation per test, not one per example.
_box_iou = jax.jit(jaxloss.box_iou)
_giou = jax.jit(jaxloss.generalized_box_iou)


@settings(max_examples=40, deadline=None)
@given(st.lists(_box, min_size=4, max_size=4), st.lists(_box, min_size=5, max_size=5))
def test_iou_symmetric_and_bounded(boxes1, boxes2):
    b1, b2 = np.stack(boxes1), np.stack(boxes2)
    iou = np.asarray(_box_iou(b1, b2))
    assert np.all((iou >= 0) & (iou <= 1 + 1e-6))
    np.testing.assert_allclose(iou, np.asarray(_box_iou(b2, b1)).T, rtol=1e-6, atol=1e-7)
    giou = np.asarray(_giou(b1, b2))
    assert np.all((giou >= -1 - 1e-6) & (giou <= 1 + 1e-6))
    np.testing.assert_allclose(giou, np.asarray(_giou(b2, b1)).T, rtol=1e-6, atol=1e-6)


def _summed_value_and_grad(name):
    fn = getattr(jaxloss, name)
    return jax.jit(jax.value_and_grad(lambda p, t: jnp.sum(fn(p, t, reduction="none"))))


_VALUE_AND_GRAD = {name: _summed_value_and_grad(name) for name in IOU_LOSSES}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(_coord, _coord, st.floats(0.5, 30.0, width=32),
                          st.floats(0.5, 30.0, width=32)), min_size=6, max_size=6))
def test_losses_zero_for_identical_boxes(raw):
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in raw], np.float32)
    for name in IOU_LOSSES:
        value, grad = _VALUE_AND_GRAD[name](boxes, boxes)
        # Per box 1 - area / (area + eps) with eps = 1e-7, area >= 0.25, plus float32 rounding.
        assert abs(float(value)) < 6 * 1e-6, name
        assert _finite(grad)


@settings(max_examples=30, deadline=None)
@given(st.lists(_box, min_size=6, max_size=6), st.lists(_box, min_size=6, max_size=6))
def test_losses_finite_and_ordered(boxes1, boxes2):
    k = 6
    p, t = np.stack(boxes1), np.stack(boxes2)
    values = {}
    for name in IOU_LOSSES:
        values[name], grad = _VALUE_AND_GRAD[name](p, t)
        assert _finite(values[name]) and _finite(grad), name
    # Each penalty is non-negative; GIoU in [0, 2].
    assert values["iou_loss"] <= values["diou_loss"] + 1e-5
    assert values["diou_loss"] <= values["ciou_loss"] + 1e-5
    assert values["diou_loss"] <= values["eiou_loss"] + 1e-5
    assert 0 - 1e-5 <= values["giou_loss"] <= 2 * k + 1e-5


# ------------------------------------------------------------------ degenerate boxes

@pytest.mark.parametrize("name", IOU_LOSSES)
def test_degenerate_boxes_finite_value_and_gradient(name):
    fn = getattr(jaxloss, name)
    for p, t in extreme_box_pairs():
        for eps in (1e-7, 0.0):
            value, (gp, gt) = jax.value_and_grad(
                lambda a, b, e=eps: fn(a, b, eps=e), argnums=(0, 1))(p, t)
            assert _finite(value) and _finite(gp) and _finite(gt), (name, p, t, eps)


def test_ciou_zero_height_box_takes_the_limit_value():
    """torchvision's atan(w / 0) = pi/2 has the right value but a NaN gradient; ours agrees
    in value and keeps the gradient finite."""
    p = np.array([[0.0, 2.0, 3.0, 2.0]], np.float32)   # height 0
    t = np.array([[0.0, 0.0, 3.0, 3.0]], np.float32)
    tp = torch.tensor(p, requires_grad=True)
    x1, y1, x2, y2 = tp.unbind(-1)
    angle_p = torch.atan((x2 - x1) / (y2 - y1))
    angle_p.sum().backward()
    assert float(angle_p.detach()) == pytest.approx(np.pi / 2)
    assert torch.isnan(tp.grad).any()  # the behaviour we do not copy
    # value: v = 4/pi^2 (pi/4 - pi/2)^2 = 1/4; IoU = 0; rho^2 = 0.25, diagonal^2 = 18
    v = 0.25
    alpha = v / (1 - 0 + v + 1e-7)
    expected = 1 + 0.25 / (18 + 1e-7) + alpha * v
    value, grad = jax.value_and_grad(lambda a: jaxloss.ciou_loss(a, t))(p)
    assert float(value) == pytest.approx(expected, rel=1e-6)
    assert _finite(grad)


def test_ciou_finite_gradient_for_a_box_below_float32_resolution():
    """Found by hypothesis: a box of width 0 and height 1.2e-38 made atan2's derivative
    divide by w^2 + h^2, which underflows to 0; such a box counts as a point box."""
    p = np.zeros((2, 4), np.float32)
    p[1, 3] = np.finfo(np.float32).tiny
    t = np.zeros((2, 4), np.float32)
    value, grads = jax.jit(jax.value_and_grad(
        lambda a, b: jnp.sum(jaxloss.ciou_loss(a, b, reduction="none")), argnums=(0, 1)))(p, t)
    assert _finite(value) and _finite(grads)


def test_ciou_alpha_carries_no_gradient():
    rng = np.random.default_rng(0)
    p = random_xyxy(rng, (5,))
    t = random_xyxy(rng, (5,))
    # d/dp of alpha * v with alpha constant: compare with a version holding alpha fixed.
    iou = jaxloss.box_iou(p, t, pairwise=False, eps=1e-7)

    def v_of(a):
        angle = (jnp.arctan((t[:, 2] - t[:, 0]) / (t[:, 3] - t[:, 1]))
                 - jnp.arctan((a[:, 2] - a[:, 0]) / (a[:, 3] - a[:, 1])))
        return 4 / np.pi**2 * angle**2

    v = v_of(p)
    alpha = v / (1 - iou + v + 1e-7)
    expected = (jax.grad(lambda a: jnp.sum(jaxloss.diou_loss(a, t, reduction="none")))(p)
                + jax.grad(lambda a: jnp.sum(alpha * v_of(a)))(p))
    got = jax.grad(lambda a: jnp.sum(jaxloss.ciou_loss(a, t, reduction="none")))(p)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
@pytest.mark.parametrize("name", IOU_LOSSES)
def test_box_format_equals_converting_first(name, fmt):
    rng = np.random.default_rng(2)
    p, t = random_xyxy(rng, (4, 3)), random_xyxy(rng, (4, 3))
    fn = getattr(jaxloss, name)
    np.testing.assert_allclose(
        np.asarray(fn(_xyxy_to(p, fmt), _xyxy_to(t, fmt), box_format=fmt, reduction="none")),
        np.asarray(fn(p, t, reduction="none")), rtol=1e-5, atol=1e-6)


def test_traced_eps_under_jit():
    rng = np.random.default_rng(3)
    p, t = random_xyxy(rng, (6,)), random_xyxy(rng, (6,))
    jitted = jax.jit(lambda e: jaxloss.giou_loss(p, t, eps=e))
    np.testing.assert_allclose(float(jitted(jnp.float32(0.3))),
                               float(jaxloss.giou_loss(p, t, eps=0.3)), rtol=1e-6)


# ------------------------------------------------------------------ errors

def test_errors_name_the_argument():
    boxes = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="box_format"):
        jaxloss.iou_loss(boxes, boxes, box_format="xyzw")
    with pytest.raises(ValueError, match="predictions"):
        jaxloss.giou_loss(np.ones((3, 5), np.float32), np.ones((3, 5), np.float32))
    with pytest.raises(ValueError, match="eps"):
        jaxloss.diou_loss(boxes, boxes, eps=-1.0)
    with pytest.raises(ValueError, match="in_fmt"):
        jaxloss.box_convert(boxes, in_fmt="yxyx", out_fmt="xyxy")
    with pytest.raises(ValueError, match="boxes2"):
        jaxloss.box_iou(boxes, np.ones((2, 4), np.float32), pairwise=False)
    with pytest.raises(ValueError, match="leading"):
        jaxloss.box_iou(np.ones((2, 3, 4), np.float32), np.ones((3, 3, 4), np.float32))
    with pytest.raises(TypeError, match="boxes"):
        jaxloss.box_area(np.ones((2, 4), np.int32))
    logits, regression, labels, targets = _ssd_arrays(np.random.default_rng(0), n=2, a=5, c=3)
    with pytest.raises(ValueError, match="cls_targets"):
        jaxloss.ssd_multibox_loss(logits, regression, labels + 3, targets)
    with pytest.raises(TypeError, match="cls_targets"):
        jaxloss.ssd_multibox_loss(logits, regression, labels.astype(np.float32), targets)
    with pytest.raises(ValueError, match="box_regression"):
        jaxloss.ssd_multibox_loss(logits, regression[:, :4], labels, targets)
    with pytest.raises(ValueError, match="neg_pos_ratio"):
        jaxloss.ssd_multibox_loss(logits, regression, labels, targets, neg_pos_ratio=-1)
    masks = np.zeros((2, 3, 3, 4), np.float32)
    with pytest.raises(ValueError, match="labels"):
        jaxloss.mask_rcnn_mask_loss(masks, np.zeros((2, 3, 3), np.float32), np.array([0, 4]))
    with pytest.raises(ValueError, match="mask_targets"):
        jaxloss.mask_rcnn_mask_loss(masks, np.zeros((2, 3, 4), np.float32), np.array([0, 1]))


# ------------------------------------------------------------------ no silent wrong answers

@pytest.mark.parametrize("name", IOU_LOSSES)
def test_inverted_target_boxes_raise_eagerly_and_give_nan_under_jit(name):
    """The conventions page, guarantee 5: the clipped intersection would score an
    inverted target box like a disjoint one; instead it raises eagerly and its pair's
    loss is NaN under jit."""
    fn = getattr(jaxloss, name)
    rng = np.random.default_rng(6)
    p, t = random_xyxy(rng, (5,)), random_xyxy(rng, (5,))
    inverted = t.copy()
    inverted[1] = t[1][[2, 1, 0, 3]]          # x2 < x1
    inverted[3] = t[3][[0, 3, 2, 1]]          # y2 < y1
    with pytest.raises(ValueError, match="targets"):
        fn(p, inverted)
    with pytest.raises(ValueError, match="negative width"):
        fn(_xyxy_to(p, "xywh"), _xyxy_to(inverted, "xywh"), box_format="xywh")
    values = np.asarray(jax.jit(lambda a, b: fn(a, b, reduction="none"))(p, inverted))
    assert np.all(np.isnan(values[[1, 3]])) and np.all(np.isfinite(values[[0, 2, 4]]))
    assert np.isnan(float(jax.jit(fn)(p, inverted)))
    # Gradients of the other pairs are untouched; the poisoned pairs get none.
    grad = np.asarray(jax.jit(jax.grad(lambda a, b: jnp.sum(jnp.where(
        jnp.isnan(fn(a, b, reduction="none")), 0.0, fn(a, b, reduction="none")))))(p, inverted))
    expected = np.asarray(jax.grad(lambda a: jnp.sum(fn(a, t, reduction="none")))(p))
    np.testing.assert_allclose(grad[[0, 2, 4]], expected[[0, 2, 4]], rtol=1e-5, atol=1e-6)
    assert np.all(grad[[1, 3]] == 0)
    # where= drops an inverted pair (it is replaced before the check).
    keep = np.array([True, False, True, False, True])
    np.testing.assert_allclose(float(jax.jit(lambda a, b: fn(a, b, where=keep))(p, inverted)),
                               float(fn(p[keep], t[keep])), rtol=1e-6)
    # Zero-area targets (x2 == x1) stay legal and finite, eagerly and under jit.
    flat = t.copy()
    flat[:, 2] = flat[:, 0]
    assert np.all(np.isfinite(np.asarray(fn(p, flat, reduction="none"))))
    value, grads = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(p, flat)
    assert _finite(value) and _finite(grads)


def test_giou_analytic_derivative_equals_autodiff_of_the_formula():
    """giou_loss's custom_jvp against autodiff of the same formula: random pairs, ties
    (identical and shared-edge boxes), zero-area and disjoint boxes; both arguments and a
    traced eps; forward mode (jacfwd) too."""
    from jaxloss.detection._giou import giou_forward as _giou_forward

    rng = np.random.default_rng(8)
    p = np.round(random_xyxy(rng, (40,), high=6.0) * 2) / 2
    t = np.round(random_xyxy(rng, (40,), high=6.0) * 2) / 2
    t[:5] = p[:5]                                            # identical: every min/max ties
    for extreme_p, extreme_t in extreme_box_pairs():
        p = np.concatenate([p, extreme_p])
        t = np.concatenate([t, extreme_t])
    p, t = p.astype(np.float32), t.astype(np.float32)
    scale = jnp.arange(len(p), dtype=jnp.float32)          # a cotangent that is not all ones
    for eps in (1e-7, 0.0, 0.5):
        e = jnp.float32(eps)

        def ours(a, b, e):
            return jnp.sum(scale * jaxloss.giou_loss(a, b, eps=e, reduction="none"))

        def formula(a, b, e):
            return jnp.sum(scale * _giou_forward(a, b, e))

        got = jax.jit(jax.grad(ours, argnums=(0, 1, 2)))(p, t, e)
        want = jax.grad(formula, argnums=(0, 1, 2))(p, t, e)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(jax.jacfwd(ours)(p, t, e)), np.asarray(want[0]),
                                   rtol=1e-5, atol=1e-5)

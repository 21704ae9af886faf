"""Dense-head detection losses against mmdet, ultralytics and mmrotate, value and gradient.

None of the three libraries imports here, so their formulas are written in
torch in ``bench/dense_torch.py`` (the files are cited there): mmdet
``varifocal_loss.py``, ``gfocal_loss.py``, ``gaussian_focal_loss.py``,
``iou_loss.py`` (``siou_loss``); ultralytics ``utils/loss.py``
(``VarifocalLoss``, ``DFLoss``, ``v8DetectionLoss``), ``utils/metrics.py``
(``probiou``, ``bbox_iou``), ``utils/tal.py`` (``TaskAlignedAssigner``);
mmrotate ``gaussian_dist_loss.py`` (``kld_loss``). The references run in
float64 on the float32 inputs; jaxloss runs in float32 (rtol 1e-5). Where two
libraries define the loss (VFL, DFL) both are checked.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss
from bench import dense_torch as ref
from tests.cases_detection import random_xyxy
from tests.cases_detection_dense import assign_problem, random_rotated, yolo_step

RTOL, ATOL = 1e-5, 1e-6


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _t(x):
    return torch.tensor(np.asarray(x, np.float64), requires_grad=True)


def _scores(rng, shape):
    logits = (3 * rng.normal(size=shape)).astype(np.float32)
    positive = rng.random(shape) < 0.3
    targets = np.where(positive, rng.uniform(0.05, 1.0, shape), 0.0).astype(np.float32)
    return logits, targets


def _check(ours, theirs, x, t, seed, rtol=RTOL, atol=ATOL):
    """Values, and the gradients in both arrays of sum(loss * w), against torch."""
    xt, tt = _t(x), _t(t)
    expected = theirs(xt, tt)
    w = np.random.default_rng(seed).uniform(0.5, 1.5, tuple(expected.shape)).astype(np.float32)
    (expected * torch.tensor(w, dtype=torch.float64)).sum().backward()
    # value and gradients in one jitted program (op-by-op dispatch compiles every op)
    value, (gx, gt) = jax.jit(lambda a, b: (
        ours(a, b), jax.grad(lambda u, v: jnp.sum(ours(u, v) * w), argnums=(0, 1))(a, b)))(x, t)
    _close(value, expected.detach().numpy(), rtol, atol)
    _close(gx, xt.grad.numpy(), rtol, atol)
    _close(gt, tt.grad.numpy(), rtol, atol)


@pytest.mark.parametrize("shape,gamma", [((9, 4), 2.0), ((2, 5, 3), 1.5)])
def test_varifocal_matches_mmdet_and_ultralytics(shape, gamma):
    x, t = _scores(np.random.default_rng(0), shape)

    def ours(a, b):
        return jaxloss.varifocal_loss(a, b, alpha=0.75, gamma=gamma, reduction="none")

    _check(ours, lambda a, b: ref.mmdet_varifocal(a, b, 0.75, gamma), x, t, 1)
    # ultralytics: label = positive indicator, loss.mean(1).sum()
    xt = _t(x)
    tt = torch.tensor(t, dtype=torch.float64)
    expected = ref.ultralytics_varifocal(xt, tt, (tt > 0).double(), 0.75, gamma)
    expected.backward()
    value, grad = jax.jit(jax.value_and_grad(lambda a: jnp.sum(jnp.mean(ours(a, t), axis=1))))(x)
    _close(value, expected.item())
    _close(grad, xt.grad.numpy())


@pytest.mark.parametrize("beta,activated", [(2.0, False), (1.5, False), (2.0, True)])
def test_quality_focal_matches_mmdet(beta, activated):
    rng = np.random.default_rng(2)
    x, t = _scores(rng, (6, 5))
    if activated:
        x = rng.uniform(0.02, 0.98, x.shape).astype(np.float32)

    def ours(a, b):
        return jaxloss.quality_focal_loss(a, b, beta=beta, from_logits=not activated,
                                          reduction="none")

    _check(ours, lambda a, b: ref.mmdet_quality_focal(a, b, beta, activated), x, t, 3)


@pytest.mark.parametrize("from_logits", [True, False])
def test_gaussian_focal_matches_mmdet(from_logits):
    rng = np.random.default_rng(4)
    heat = rng.uniform(0, 1, (2, 6, 6, 3)) ** 3
    heat[:, 2, 3, :] = 1.0                                       # the peaks
    heat = heat.astype(np.float32)
    if from_logits:
        x = (2 * rng.normal(size=heat.shape)).astype(np.float32)
        theirs = lambda a, b: ref.mmdet_gaussian_focal(a.sigmoid(), b)  # noqa: E731
    else:
        x = rng.uniform(0.01, 0.99, heat.shape).astype(np.float32)
        theirs = ref.mmdet_gaussian_focal

    def ours(a, b):
        return jaxloss.gaussian_focal_loss(a, b, from_logits=from_logits, reduction="none")

    _check(ours, theirs, x, heat, 5, atol=1e-5)


def test_distribution_focal_matches_mmdet_and_ultralytics():
    rng = np.random.default_rng(6)
    reg_max = 16
    logits = (2 * rng.normal(size=(3, 5, 4, reg_max))).astype(np.float32)
    y = rng.uniform(0, reg_max - 1 - 0.01, (3, 5, 4)).astype(np.float32)
    y[0, 0] = [0.0, 3.0, 7.5, reg_max - 1 - 0.01]                 # bin edges
    flat_l, flat_y = logits.reshape(-1, reg_max), y.reshape(-1)

    def ours(a, b):
        return jaxloss.distribution_focal_loss(a, b, reduction="none")

    _check(ours, ref.mmdet_distribution_focal, flat_l, flat_y, 7)
    # ultralytics: (n, 4) sides, averaged over the sides
    lt = _t(flat_l)
    expected = ref.ultralytics_dfl(lt, torch.tensor(y.reshape(-1, 4), dtype=torch.float64),
                                   reg_max)
    expected.sum().backward()
    value, grad = jax.jit(jax.value_and_grad(
        lambda a: jnp.sum(jnp.mean(ours(a, y), axis=-1))))(logits)
    _close(value, expected.sum().item())
    _close(grad.reshape(-1, reg_max), lt.grad.numpy())


def test_siou_matches_mmdet():
    shape = (3, 5)
    rng = np.random.default_rng(sum(shape))
    p = random_xyxy(rng, shape)
    t = np.where(rng.random(shape + (1,)) < 0.5,
                 p + rng.uniform(-0.5, 0.5, shape + (4,)), random_xyxy(rng, shape))
    t = np.concatenate([np.minimum(t[..., :2], t[..., 2:]), np.maximum(t[..., :2], t[..., 2:])],
                       -1).astype(np.float32)

    def ours(a, b):
        return jaxloss.siou_loss(a, b, reduction="none")

    def theirs(a, b):
        return ref.mmdet_siou(a.reshape(-1, 4), b.reshape(-1, 4)).reshape(shape)

    _check(ours, theirs, p, t, 9, atol=1e-5)


def test_probiou_matches_ultralytics():
    rng = np.random.default_rng(11)
    b1 = random_rotated(rng, (12,))
    b2 = (b1 + rng.normal(scale=0.5, size=b1.shape)).astype(np.float32)
    b2[..., 2:4] = np.abs(b2[..., 2:4]) + 0.2
    b2[:3, 4] = [np.pi / 2, -np.pi / 2, 0.0]

    def ours(a, b):
        return jaxloss.probiou_loss(a, b, reduction="none")

    _check(ours, lambda a, b: 1 - ref.ultralytics_probiou(a, b)[..., 0], b1, b2, 12,
                   atol=1e-5)


KLD_SETTINGS = [("log1p", 1.0), ("sqrt", 2.0), ("none", 0.0)]


def test_kld_rotated_matches_mmrotate():
    """The three ``fun`` settings stacked into one output (one program)."""
    rng = np.random.default_rng(13)
    b1 = random_rotated(rng, (4, 3))
    b2 = (b1 + rng.normal(scale=0.5, size=b1.shape)).astype(np.float32)
    b2[..., 2:4] = np.abs(b2[..., 2:4]) + 0.2

    def ours(a, b):
        return jnp.stack([jaxloss.kld_rotated_loss(a, b, fun=f, tau=tau, reduction="none")
                          for f, tau in KLD_SETTINGS])

    def theirs(a, b):
        return torch.stack([ref.mmrotate_kld(a.reshape(-1, 5), b.reshape(-1, 5), f, tau)
                            for f, tau in KLD_SETTINGS]).reshape(3, 4, 3)

    _check(ours, theirs, b1, b2, 14)


# ----------------------------------------------------------------------------- assignment


_ASSIGN = jax.jit(lambda *a: jaxloss.task_aligned_assign(*a, top_k=4))  # compiled once


def _assign_against_ultralytics(problem, score_rtol=1e-6):
    """jaxloss's and the ultralytics rewrite's assignments of ``problem``, compared in
    float64 so that only the logic, not the rounding, decides the top-k; returns ``fg``."""
    scores, boxes, anchors, labels, gt, mask = problem
    assigner = ref.TaskAlignedAssigner(topk=4, num_classes=scores.shape[-1], alpha=0.5, beta=6.0)
    t_labels, t_boxes, t_scores, t_fg = assigner(
        *(torch.tensor(v, dtype=torch.float64) for v in (scores, boxes, anchors)),
        torch.tensor(labels[..., None]), torch.tensor(gt, dtype=torch.float64),
        torch.tensor(mask[..., None], dtype=torch.float64))
    with jax.enable_x64(True):
        ours = _ASSIGN(*(jnp.asarray(v, jnp.float64) for v in (scores, boxes, anchors)), labels,
                      jnp.asarray(gt, jnp.float64), mask)
        o_labels, o_boxes, o_scores, o_fg = (np.asarray(v) for v in ours)
    np.testing.assert_array_equal(o_fg, t_fg.numpy())
    fg = o_fg
    np.testing.assert_array_equal(o_labels[fg], t_labels.numpy()[fg])
    np.testing.assert_array_equal(o_boxes[fg], t_boxes.numpy()[fg])
    # The scores carry the overlaps, whose eps placement (torchvision's CIoU here, eps added to
    # the heights in ultralytics') moves them by O(1e-7): equal to 1e-6, not to float64's.
    _close(o_scores, t_scores.numpy(), rtol=score_rtol, atol=1e-9)
    assert not o_fg[mask.sum(1) == 0].any()                       # empty images
    return o_fg


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_task_aligned_assign_matches_ultralytics(seed):
    """Random problems with tied metrics (scores and boxes drawn from few values), images
    without ground truth, padding, and anchors claimed by several boxes."""
    fg = _assign_against_ultralytics(assign_problem(np.random.default_rng(seed)))
    assert fg.any() and not fg.all()


_HALVES = st.integers(0, 10)      # box corners on a half-cell grid: anchors (at cell centres)
_SIDES = st.integers(1, 8)        # fall exactly on box edges, where the 1e-9 margin decides


@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16),
       corners=st.lists(st.tuples(_HALVES, _HALVES, _SIDES, _SIDES), min_size=6, max_size=6),
       present=st.lists(st.booleans(), min_size=6, max_size=6),
       labels=st.lists(st.integers(0, 2), min_size=6, max_size=6))
def test_task_aligned_assign_property_against_ultralytics(seed, corners, present, labels):
    """Hypothesis varies the ground truth (boxes on the anchors' edges, duplicates,
    containment, padding anywhere, empty images) of the shared problem's shapes; the
    assignment must equal ultralytics' and be consistent with itself."""
    scores, boxes, anchors, _, _, _ = assign_problem(np.random.default_rng(seed))
    scores, boxes = scores[:2], boxes[:2]
    box = np.array([[x / 2, y / 2, x / 2 + w / 2, y / 2 + h / 2] for x, y, w, h in corners],
                   np.float32).reshape(2, 3, 4)
    mask = np.array(present).reshape(2, 3)
    gt = np.where(mask[..., None], box, 0.0).astype(np.float32)
    label = np.where(mask, np.array(labels).reshape(2, 3), -1).astype(np.int32)
    gt = np.concatenate([gt, np.zeros((2, 1, 4), np.float32)], axis=1)     # m = 4 slots,
    mask = np.concatenate([mask, np.zeros((2, 1), bool)], axis=1)          # as compiled
    label = np.concatenate([label, -np.ones((2, 1), np.int32)], axis=1)
    # Boxes as thin as half a cell: ultralytics' eps (1e-7, added to the heights) moves an
    # overlap u by up to 1e-7 / 0.5 relative; the score goes as u**beta / max(u**beta) * max u
    # with beta = 6, so up to (6 + 6 + 1) * 2e-7 = 2.6e-6 relative: compared to 5e-6. The
    # positives, their classes and boxes are compared exactly.
    fg = _assign_against_ultralytics((scores, boxes, anchors, label, gt, mask), score_rtol=5e-6)
    with jax.enable_x64(True):
        t_labels, t_boxes, t_scores, _ = (np.asarray(v) for v in _ASSIGN(
            *(jnp.asarray(v, jnp.float64) for v in (scores, boxes, anchors)), label,
            jnp.asarray(gt, jnp.float64), mask))
    # A positive lies strictly inside a real box of its image and takes that box's class.
    for i, k in zip(*np.nonzero(fg), strict=True):
        real = mask[i] & np.all(gt[i] == t_boxes[i, k], axis=-1)
        assert real.any() and t_labels[i, k] in label[i][real]
        x, y = anchors[k]
        x1, y1, x2, y2 = t_boxes[i, k]
        assert min(x - x1, y - y1, x2 - x, y2 - y) > 0
    # Scores: zero off the positives and off their class, within [0, 1] on it.
    off = np.ones_like(t_scores, bool)
    off[fg, t_labels[fg]] = False
    assert np.all(t_scores[off] == 0) and np.all((t_scores >= 0) & (t_scores <= 1))


def test_yolo_criterion_matches_v8_detection_loss():
    (cls_logits, box_logits, anchors, strides, labels, gt, mask), reg_max, step = yolo_step()
    xt, dt = _t(cls_logits), _t(box_logits)
    total_t, parts_t = ref.v8_detection_loss(
        xt, dt, torch.tensor(anchors, dtype=torch.float64),
        torch.tensor(strides[:, None], dtype=torch.float64), torch.tensor(labels[..., None]),
        torch.tensor(gt, dtype=torch.float64), torch.tensor(mask[..., None], dtype=torch.float64),
        reg_max=reg_max)
    total_t.backward()

    (total, parts), (gx, gd) = step(cls_logits, box_logits, mask)
    assert float(parts["box"]) > 0 and float(parts["dfl"]) > 0
    _close(total, total_t.item())
    for name, expected in zip(("box", "cls", "dfl"), parts_t, strict=True):
        _close(parts[name], expected.item())
    _close(gx, xt.grad.numpy())
    _close(gd, dt.grad.numpy())

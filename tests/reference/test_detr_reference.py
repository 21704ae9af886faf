"""hungarian_match and detr_criterion against DETR's matcher and SetCriterion, torch + scipy.

DETR does not install as a package, so its formulas are rewritten here in torch
float64, from the published sources (read for the formulas, not copied):

* facebookresearch/detr ``util/box_ops.py``: ``box_cxcywh_to_xyxy``,
  ``box_area``/``box_iou``, ``generalized_box_iou`` (pairwise);
* facebookresearch/detr ``models/matcher.py``: ``HungarianMatcher.forward``
  (cost = ``cost_bbox * cdist_L1 - cost_class * softmax[label] - cost_giou *
  GIoU``, one ``scipy.optimize.linear_sum_assignment`` per image on its real
  targets);
* facebookresearch/detr ``models/detr.py``: ``SetCriterion.loss_labels``
  (``F.cross_entropy`` with ``empty_weight``, the no-object class weighted by
  ``eos_coef``), ``loss_boxes`` (L1 and ``1 - diag(GIoU)`` summed over matched
  pairs, divided by ``num_boxes``), ``forward`` (``num_boxes`` = the batch's
  targets, at least 1);
* fundamentalvision/Deformable-DETR ``models/matcher.py`` (the focal class
  cost, with its 1e-8 inside the logs) and ``models/deformable_detr.py``
  (``sigmoid_focal_loss(...) * num_queries`` against the one-hot of the matched
  classes: a sum over queries and classes divided by ``num_boxes``).

Matching has a unique optimum almost surely on these random inputs, so the
reference's scipy matching and ours agree and value and gradient are compared
with rtol 1e-5 (float32 against float64).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

import jaxloss

RTOL = 1e-5


def box_cxcywh_to_xyxy(x: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = x.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def pairwise_giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """DETR ``util/box_ops.py`` ``generalized_box_iou`` (xyxy, (n, 4) x (m, 4) -> (n, m))."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, None, :2], b[:, :2])
    rb = torch.min(a[:, None, 2:], b[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b - inter
    iou = inter / union
    lt = torch.min(a[:, None, :2], b[:, :2])
    rb = torch.max(a[:, None, 2:], b[:, 2:])
    wh = (rb - lt).clamp(min=0)
    area = wh[..., 0] * wh[..., 1]
    return iou - (area - union) / area


def reference_match(logits, boxes, targets, *, focal, cost_class=1.0, cost_bbox=5.0,
                    cost_giou=2.0, alpha=0.25, gamma=2.0):
    """Per image ``(query indices, target indices)``, DETR / Deformable DETR matcher."""
    with torch.no_grad():
        indices = []
        for n, (labels, t_boxes) in enumerate(targets):
            if focal:
                prob = logits[n].sigmoid()
                neg = (1 - alpha) * prob**gamma * -(1 - prob + 1e-8).log()
                pos = alpha * (1 - prob) ** gamma * -(prob + 1e-8).log()
                c_class = pos[:, labels] - neg[:, labels]
            else:
                c_class = -logits[n].softmax(-1)[:, labels]
            c_bbox = torch.cdist(boxes[n], t_boxes, p=1)
            c_giou = -pairwise_giou(box_cxcywh_to_xyxy(boxes[n]), box_cxcywh_to_xyxy(t_boxes))
            cost = cost_bbox * c_bbox + cost_class * c_class + cost_giou * c_giou
            indices.append(linear_sum_assignment(cost.numpy()))
        return indices


def reference_criterion(logits, boxes, targets, *, focal, eos_coef=0.1, weights=(1.0, 5.0, 2.0),
                        alpha=0.25, gamma=2.0, costs=None):
    """DETR ``SetCriterion`` (``focal=False``) or Deformable DETR's (``focal=True``)."""
    n, q, k = logits.shape
    indices = reference_match(logits, boxes, targets, focal=focal, alpha=alpha, gamma=gamma,
                              **(costs or {}))
    num_boxes = max(float(sum(len(labels) for labels, _ in targets)), 1.0)
    batch_idx = torch.cat([torch.full((len(i),), b) for b, (i, _) in enumerate(indices)]).long()
    src_idx = torch.cat([torch.as_tensor(i) for i, _ in indices]).long()
    pairs = list(zip(targets, indices, strict=True))
    classes_o = torch.cat([t[0][torch.as_tensor(j).long()] for t, (_, j) in pairs])
    if focal:
        onehot = torch.zeros((n, q, k + 1), dtype=logits.dtype)
        target_classes = torch.full((n, q), k, dtype=torch.int64)
        target_classes[batch_idx, src_idx] = classes_o
        onehot.scatter_(2, target_classes.unsqueeze(-1), 1)
        onehot = onehot[:, :, :-1]
        prob = logits.sigmoid()
        ce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
        p_t = prob * onehot + (1 - prob) * (1 - onehot)
        loss = ce * (1 - p_t) ** gamma
        loss = (alpha * onehot + (1 - alpha) * (1 - onehot)) * loss
        loss_class = loss.mean(1).sum() / num_boxes * q
    else:
        empty_weight = torch.ones(k, dtype=logits.dtype)
        empty_weight[-1] = eos_coef
        target_classes = torch.full((n, q), k - 1, dtype=torch.int64)
        target_classes[batch_idx, src_idx] = classes_o
        loss_class = F.cross_entropy(logits.transpose(1, 2), target_classes, empty_weight)
    src_boxes = boxes[batch_idx, src_idx]
    tgt_boxes = torch.cat([t[1][torch.as_tensor(j).long()] for t, (_, j) in pairs])
    loss_bbox = F.l1_loss(src_boxes, tgt_boxes, reduction="none").sum() / num_boxes
    giou = torch.diag(pairwise_giou(box_cxcywh_to_xyxy(src_boxes), box_cxcywh_to_xyxy(tgt_boxes)))
    loss_giou = (1 - giou).sum() / num_boxes
    total = weights[0] * loss_class + weights[1] * loss_bbox + weights[2] * loss_giou
    return total, indices


def make_batch(rng, n, q, m, k, counts):
    logits = rng.normal(size=(n, q, k)).astype(np.float32) * 2
    centres = rng.uniform(0.2, 0.8, size=(n, q, 2))
    sizes = rng.uniform(0.05, 0.4, size=(n, q, 2))
    boxes = np.concatenate([centres, sizes], -1).astype(np.float32)
    labels = rng.integers(0, k - 1, size=(n, m)).astype(np.int32)
    t_boxes = np.concatenate([rng.uniform(0.2, 0.8, size=(n, m, 2)),
                              rng.uniform(0.05, 0.4, size=(n, m, 2))], -1).astype(np.float32)
    mask = np.arange(m)[None, :] < np.asarray(counts)[:, None]
    # padding holds garbage: it must not matter
    labels[~mask] = 999
    t_boxes[~mask] = np.nan
    targets = [(torch.as_tensor(labels[b, :c]).long(), torch.as_tensor(t_boxes[b, :c]).double())
               for b, c in enumerate(counts)]
    return logits, boxes, labels, t_boxes, mask, targets


# (N, Q, M, K, real targets per image): more queries than targets, an image without
# targets, and more targets than queries.
SHAPES = [(3, 7, 4, 5, (4, 0, 2)), (2, 3, 5, 3, (5, 1))]


@pytest.mark.parametrize("focal", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_matcher_and_criterion_equal_detr(shape, focal):
    n, q, m, k, counts = shape
    rng = np.random.default_rng(sum(counts) + 10 * focal)
    logits, boxes, labels, t_boxes, mask, targets = make_batch(rng, n, q, m, k, counts)
    if focal:
        # Deformable DETR: sigmoid over K real classes (no "no object" logit), labels < K
        logits = logits[..., :-1]

    @jax.jit
    def run(x, b):
        # value, gradient and the matching in one program (one compilation)
        def objective(x, b):
            return jaxloss.detr_criterion(x, b, labels, t_boxes, mask, focal=focal)[0]

        value, grads = jax.value_and_grad(objective, argnums=(0, 1))(x, b)
        return value, grads, jaxloss.hungarian_match(x, b, labels, t_boxes, mask, focal=focal)

    total, (g_logits, g_boxes), match = run(logits, boxes)
    x = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(boxes, dtype=torch.float64, requires_grad=True)
    expected, indices = reference_criterion(x, b, targets, focal=focal)
    expected.backward()
    np.testing.assert_allclose(total, expected.item(), rtol=RTOL)
    np.testing.assert_allclose(g_logits, x.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(g_boxes, b.grad.numpy(), rtol=1e-4, atol=1e-6)

    match = np.asarray(match)
    assert match.shape == (n, q) and match.dtype == np.int32
    for image, (rows, cols) in enumerate(indices):
        expected_match = np.full(q, -1)
        expected_match[rows] = cols
        np.testing.assert_array_equal(match[image], expected_match)


def test_criterion_hyperparameters_equal_detr():
    """Other loss weights, eos_coef and matching costs, as traced scalars under jit."""
    rng = np.random.default_rng(3)
    logits, boxes, labels, t_boxes, mask, targets = make_batch(rng, 2, 6, 3, 4, (3, 2))

    @jax.jit
    def objective(x, b, eos, cost):
        total, _ = jaxloss.detr_criterion(
            x, b, labels, t_boxes, mask, class_weight=2.0, bbox_weight=1.0, giou_weight=3.0,
            eos_coef=eos, class_cost=cost, bbox_cost=1.0, giou_cost=0.5)
        return total

    total = objective(logits, boxes, jnp.float32(0.3), jnp.float32(4.0))
    expected, _ = reference_criterion(
        torch.tensor(logits, dtype=torch.float64), torch.tensor(boxes, dtype=torch.float64),
        targets, focal=False, eos_coef=0.3, weights=(2.0, 1.0, 3.0),
        costs=dict(cost_class=4.0, cost_bbox=1.0, cost_giou=0.5))
    np.testing.assert_allclose(total, expected.item(), rtol=RTOL)


def test_xyxy_boxes_give_the_cxcywh_giou_and_class_terms():
    rng = np.random.default_rng(4)
    logits, boxes, labels, t_boxes, mask, _ = make_batch(rng, 2, 5, 3, 4, (3, 1))
    t_boxes = np.nan_to_num(t_boxes)

    @jax.jit
    def both(x, b, t):
        def to_xyxy(b):
            return jaxloss.box_convert(b, in_fmt="cxcywh", out_fmt="xyxy")

        _, parts = jaxloss.detr_criterion(x, b, labels, t, mask, bbox_cost=0.0)
        _, parts_xyxy = jaxloss.detr_criterion(x, to_xyxy(b), labels, to_xyxy(t), mask,
                                               box_format="xyxy", bbox_cost=0.0)
        return parts, parts_xyxy

    parts, parts_xyxy = both(logits, boxes, t_boxes)
    for key in ("class", "giou"):
        np.testing.assert_allclose(parts_xyxy[key], parts[key], rtol=1e-5)

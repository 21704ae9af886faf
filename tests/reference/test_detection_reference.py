"""jaxloss.detection against torchvision's published formulas and MONAI, value and gradient.

torchvision does not import with this torch (2.13), so its formulas are
written here in torch, line for line from the published sources (torchvision
0.17+; read for the formulas, not copied):

* ``torchvision/ops/_box_convert.py``: ``_box_xywh_to_xyxy``,
  ``_box_cxcywh_to_xyxy``, ``_box_xyxy_to_xywh``, ``_box_xyxy_to_cxcywh``;
* ``torchvision/ops/boxes.py``: ``box_area``, ``_box_inter_union``,
  ``box_iou``, ``generalized_box_iou``;
* ``torchvision/ops/_utils.py``: ``_loss_inter_union``;
* ``torchvision/ops/giou_loss.py``: ``generalized_box_iou_loss``;
* ``torchvision/ops/diou_loss.py``: ``_diou_iou_loss``,
  ``distance_box_iou_loss``;
* ``torchvision/ops/ciou_loss.py``: ``complete_box_iou_loss`` (alpha under
  ``torch.no_grad``; ``_diou_iou_loss`` called with its default eps);
* ``torchvision/models/detection/ssd.py``: ``SSD.compute_loss`` (after the
  anchor matching and box encoding, which are inputs here);
* ``torchvision/models/detection/roi_heads.py``: ``maskrcnn_loss`` (after
  the mask projection).

MONAI (installed) is the second reference for GIoU: ``monai.losses.BoxGIoULoss``
and ``monai.data.box_utils.box_pair_giou``, whose eps is float32's machine
epsilon (so the comparison passes that eps to jaxloss).

Inputs are random legal float32 boxes (x1 < x2, y1 < y2) in all three
formats and several shapes; gradients are taken with respect to the boxes in
the given format, through torchvision's conversion formulas on the torch side.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.data.box_utils import box_pair_giou
from monai.losses import BoxGIoULoss

import jaxloss
from bench import torchvision_ops  # torchvision's formulas, written once in torch
from tests.cases_detection import _box_make, _ssd_arrays, _xyxy_to, random_xyxy

RTOL, ATOL = 1e-5, 1e-6
FORMATS = ["xyxy", "xywh", "cxcywh"]
SHAPES = [(), (7,), (3, 5)]
REDUCTIONS = ["mean", "sum", "none"]


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


# ------------------------------------------------------------------ torchvision, in torch

def tv_to_xyxy(boxes: torch.Tensor, fmt: str) -> torch.Tensor:
    """torchvision/ops/_box_convert.py, to xyxy."""
    a, b, c, d = boxes.unbind(-1)
    if fmt == "xywh":
        return torch.stack([a, b, a + c, b + d], dim=-1)
    if fmt == "cxcywh":
        return torch.stack([a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d], dim=-1)
    return boxes


def tv_from_xyxy(boxes: torch.Tensor, fmt: str) -> torch.Tensor:
    """torchvision/ops/_box_convert.py, from xyxy."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    if fmt == "xywh":
        return torch.stack([x1, y1, x2 - x1, y2 - y1], dim=-1)
    if fmt == "cxcywh":
        return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)
    return boxes


def tv_box_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def tv_box_inter_union(boxes1, boxes2):
    area1, area2 = tv_box_area(boxes1), tv_box_area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    union = area1[:, None] + area2 - inter
    return inter, union


def tv_box_iou(boxes1, boxes2):
    inter, union = tv_box_inter_union(boxes1, boxes2)
    return inter / union


def tv_generalized_box_iou(boxes1, boxes2):
    inter, union = tv_box_inter_union(boxes1, boxes2)
    iou = inter / union
    lti = torch.min(boxes1[:, None, :2], boxes2[:, :2])
    rbi = torch.max(boxes1[:, None, 2:], boxes2[:, 2:])
    whi = (rbi - lti).clamp(min=0)
    areai = whi[:, :, 0] * whi[:, :, 1]
    return iou - (areai - union) / areai


tv_loss_inter_union = torchvision_ops.loss_inter_union
tv_diou_iou_loss = torchvision_ops.diou_iou_loss


def tv_iou_loss(boxes1, boxes2, eps=1e-7):
    """1 - IoU with the IoU of generalized_box_iou_loss (torchvision has no plain IoU loss)."""
    intsctk, unionk = tv_loss_inter_union(boxes1, boxes2)
    return 1 - intsctk / (unionk + eps)


def tv_giou_loss(boxes1, boxes2, eps=1e-7):
    return torchvision_ops.generalized_box_iou_loss(boxes1, boxes2, eps=eps, reduction="none")


def tv_diou_loss(boxes1, boxes2, eps=1e-7):
    return tv_diou_iou_loss(boxes1, boxes2, eps)[0]


def tv_ciou_loss(boxes1, boxes2, eps=1e-7):
    return torchvision_ops.complete_box_iou_loss(boxes1, boxes2, eps=eps, reduction="none")


def eiou_loss_torch(boxes1, boxes2, eps=1e-7):
    """Zhang et al. 2021, eq. (EIoU): DIoU + (w - w_gt)^2 / C_w^2 + (h - h_gt)^2 / C_h^2."""
    diou, _ = tv_diou_iou_loss(boxes1, boxes2, eps)
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    cw = torch.max(x2, x2g) - torch.min(x1, x1g)
    ch = torch.max(y2, y2g) - torch.min(y1, y1g)
    dw = (x2 - x1) - (x2g - x1g)
    dh = (y2 - y1) - (y2g - y1g)
    return diou + dw**2 / (cw**2 + eps) + dh**2 / (ch**2 + eps)


TORCH_LOSSES = {
    "iou_loss": tv_iou_loss,
    "giou_loss": tv_giou_loss,
    "diou_loss": tv_diou_loss,
    "ciou_loss": tv_ciou_loss,
    "eiou_loss": eiou_loss_torch,
}


def _reduce_torch(values, reduction):
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def _pairs(shape, seed):
    rng = np.random.default_rng(seed)
    flat = int(np.prod(shape)) if shape else 1
    (p, t), _ = _box_make((flat,))(rng)
    return p.reshape(shape + (4,)), t.reshape(shape + (4,))


# ------------------------------------------------------------------ box utilities

@pytest.mark.parametrize("out_fmt", FORMATS)
@pytest.mark.parametrize("in_fmt", FORMATS)
def test_box_convert_matches_torchvision(in_fmt, out_fmt):
    boxes = _xyxy_to(random_xyxy(np.random.default_rng(0), (3, 6)), in_fmt)
    expected = tv_from_xyxy(tv_to_xyxy(torch.tensor(boxes), in_fmt), out_fmt).numpy()
    _close(jaxloss.box_convert(boxes, in_fmt=in_fmt, out_fmt=out_fmt), expected)
    # Round trip.
    back = jaxloss.box_convert(jaxloss.box_convert(boxes, in_fmt=in_fmt, out_fmt=out_fmt),
                               in_fmt=out_fmt, out_fmt=in_fmt)
    _close(back, boxes, atol=1e-5)


@pytest.mark.parametrize("fmt", FORMATS)
def test_box_area_matches_torchvision(fmt):
    xyxy = random_xyxy(np.random.default_rng(1), (9,))
    boxes = _xyxy_to(xyxy, fmt)
    expected = tv_box_area(tv_to_xyxy(torch.tensor(boxes), fmt)).numpy()
    _close(jaxloss.box_area(boxes, box_format=fmt), expected)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("n,m", [(1, 1), (5, 7), (12, 3)])
@pytest.mark.parametrize("generalized", [False, True])
def test_pairwise_iou_matches_torchvision(n, m, fmt, generalized):
    rng = np.random.default_rng(n * 31 + m)
    b1 = _xyxy_to(random_xyxy(rng, (n,), high=6.0), fmt)
    b2 = _xyxy_to(random_xyxy(rng, (m,), high=6.0), fmt)
    ours_fn = jaxloss.generalized_box_iou if generalized else jaxloss.box_iou
    ref_fn = tv_generalized_box_iou if generalized else tv_box_iou
    weights = rng.normal(size=(n, m)).astype(np.float32)

    t1 = torch.tensor(b1, requires_grad=True)
    t2 = torch.tensor(b2, requires_grad=True)
    expected = ref_fn(tv_to_xyxy(t1, fmt), tv_to_xyxy(t2, fmt))
    (expected * torch.tensor(weights)).sum().backward()

    def ours(a, b):
        return ours_fn(a, b, box_format=fmt)

    value = ours(b1, b2)
    assert value.shape == (n, m)
    _close(value, expected.detach().numpy())
    g1, g2 = jax.grad(lambda a, b: jnp.sum(ours(a, b) * weights), argnums=(0, 1))(b1, b2)
    _close(g1, t1.grad.numpy())
    _close(g2, t2.grad.numpy())
    # Elementwise on matched pairs equals the diagonal of the pairwise matrix.
    k = min(n, m)
    diagonal = np.diagonal(np.asarray(value))[:k]
    _close(ours_fn(b1[:k], b2[:k], pairwise=False, box_format=fmt), diagonal)


def test_pairwise_batched_leading_axes():
    rng = np.random.default_rng(4)
    b1, b2 = random_xyxy(rng, (2, 3, 5)), random_xyxy(rng, (2, 3, 4))
    out = jaxloss.box_iou(b1, b2)
    assert out.shape == (2, 3, 5, 4)
    for i in range(2):
        for j in range(3):
            _close(out[i, j], tv_box_iou(torch.tensor(b1[i, j]), torch.tensor(b2[i, j])).numpy())


def test_generalized_box_iou_matches_monai_box_pair_giou():
    p, t = _pairs((11,), seed=5)
    eps = float(np.finfo(np.float32).eps)  # MONAI's eps in both denominators
    expected = box_pair_giou(torch.tensor(t), torch.tensor(p)).numpy()
    _close(jaxloss.generalized_box_iou(p, t, pairwise=False, eps=eps), expected)


# ------------------------------------------------------------------ IoU losses

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", list(TORCH_LOSSES))
def test_iou_losses_match_torchvision(name, fmt, shape, reduction):
    p_xyxy, t_xyxy = _pairs(shape, seed=len(shape) * 7 + FORMATS.index(fmt))
    p, t = _xyxy_to(p_xyxy, fmt), _xyxy_to(t_xyxy, fmt)
    tp = torch.tensor(p, requires_grad=True)
    tt = torch.tensor(t, requires_grad=True)
    expected = _reduce_torch(TORCH_LOSSES[name](tv_to_xyxy(tp, fmt), tv_to_xyxy(tt, fmt)),
                             reduction)
    expected.sum().backward()

    fn = getattr(jaxloss, name)

    def ours(a, b):
        return fn(a, b, box_format=fmt, reduction=reduction)

    value = ours(p, t)
    assert value.shape == tuple(expected.shape)
    _close(value, expected.detach().numpy())
    gp, gt = jax.grad(lambda a, b: jnp.sum(ours(a, b)), argnums=(0, 1))(p, t)
    _close(gp, tp.grad.numpy())
    _close(gt, tt.grad.numpy())


@pytest.mark.parametrize("eps", [0.0, 1e-3, 0.5])
@pytest.mark.parametrize("name", list(TORCH_LOSSES))
def test_iou_losses_eps_placement(name, eps):
    """A large eps makes its placement visible in the value."""
    p, t = _pairs((9,), seed=11)
    if name == "ciou_loss":
        # torchvision's complete_box_iou_loss passes only its default eps (1e-7) to the DIoU
        # part; ours uses eps everywhere: complete_box_iou_loss's lines with eps passed on.
        def reference(a, b):
            diou, iou = tv_diou_iou_loss(a, b, eps)
            x1, y1, x2, y2 = a.unbind(dim=-1)
            x1g, y1g, x2g, y2g = b.unbind(dim=-1)
            v = (4 / torch.pi**2) * (torch.atan((x2g - x1g) / (y2g - y1g))
                                     - torch.atan((x2 - x1) / (y2 - y1))) ** 2
            alpha = v / (1 - iou + v + eps)
            return diou + alpha * v
    else:
        def reference(a, b):
            return TORCH_LOSSES[name](a, b, eps)
    expected = reference(torch.tensor(p), torch.tensor(t)).numpy()
    _close(getattr(jaxloss, name)(p, t, eps=eps, reduction="none"), expected)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_giou_loss_matches_monai(reduction):
    p, t = _pairs((13,), seed=21)
    eps = float(np.finfo(np.float32).eps)
    tp = torch.tensor(p, requires_grad=True)
    expected = BoxGIoULoss(reduction=reduction)(tp, torch.tensor(t))
    expected.sum().backward()
    grad = jax.grad(lambda a: jnp.sum(jaxloss.giou_loss(a, t, eps=eps, reduction=reduction)))(p)
    _close(jaxloss.giou_loss(p, t, eps=eps, reduction=reduction), expected.detach().numpy())
    _close(grad, tp.grad.numpy())
    # With torchvision's eps (the default) the difference is below float32 resolution.
    _close(jaxloss.giou_loss(p, t, reduction=reduction), expected.detach().numpy())


# ------------------------------------------------------------------ SSD

def tv_ssd_compute_loss(cls_logits, bbox_regression, cls_targets, target_regression,
                        neg_to_pos_ratio=3):
    """SSD.compute_loss after matching: box targets are already encoded, per anchor."""
    bbox_loss = []
    num_foreground = 0
    for regression_i, labels_i, targets_i in zip(bbox_regression, cls_targets,
                                                 target_regression, strict=True):
        foreground_idxs_per_image = torch.where(labels_i > 0)[0]
        num_foreground += foreground_idxs_per_image.numel()
        bbox_loss.append(F.smooth_l1_loss(regression_i[foreground_idxs_per_image],
                                          targets_i[foreground_idxs_per_image], reduction="sum"))
    bbox_loss = torch.stack(bbox_loss)
    num_classes = cls_logits.size(-1)
    cls_loss = F.cross_entropy(cls_logits.view(-1, num_classes), cls_targets.view(-1),
                               reduction="none").view(cls_targets.size())
    foreground_idxs = cls_targets > 0
    num_negative = neg_to_pos_ratio * foreground_idxs.sum(1, keepdim=True)
    negative_loss = cls_loss.clone()
    negative_loss[foreground_idxs] = -float("inf")
    _, idx = negative_loss.sort(1, descending=True)
    background_idxs = idx.sort(1)[1] < num_negative
    n = max(1, num_foreground)
    return bbox_loss.sum() / n + (cls_loss[foreground_idxs].sum()
                                  + cls_loss[background_idxs].sum()) / n


def _ssd_inputs(seed, n, a=40, c=4, rate=0.15):
    logits, regression, labels, targets = _ssd_arrays(np.random.default_rng(seed), n, a, c, rate)
    # Enough negatives everywhere (3 P <= A - P), where torchvision's mask and ours agree.
    assert np.all(4 * (labels > 0).sum(1) <= a)
    return logits, regression, labels, targets


def _torch_ssd(logits, regression, labels, targets, ratio=3):
    """torchvision's SSD.compute_loss in torch float64 on the float32 inputs."""
    tl = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    tr = torch.tensor(regression, dtype=torch.float64, requires_grad=True)
    out = tv_ssd_compute_loss(tl, tr, torch.tensor(labels, dtype=torch.int64),
                              torch.tensor(targets, dtype=torch.float64), ratio)
    out.backward()
    return out.detach().numpy(), tl.grad.numpy(), tr.grad.numpy()


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("ratio", [3, 1])
def test_ssd_default_is_torchvision_batch_normaliser_under_jit(seed, ratio):
    """The default (normalize="batch", reduction="mean") is SSD.compute_loss of
    torchvision/models/detection/ssd.py: the batch's sums over the batch's positives."""
    logits, regression, labels, targets = _ssd_inputs(seed, n=4)
    labels[:3] = 0                         # an image without positives
    labels[1, :2] = 2                      # and images with different numbers of them
    labels[2, 5:10] = 1
    num_pos = (labels > 0).sum(1)
    assert len(set(num_pos.tolist())) >= 3 and np.all(4 * num_pos <= labels.shape[1]), num_pos
    expected, g_logits, g_regression = _torch_ssd(logits, regression, labels, targets, ratio)

    @jax.jit
    def ours(lg, rg):
        return jaxloss.ssd_multibox_loss(lg, rg, labels, targets, neg_pos_ratio=ratio)

    value, (gl, gr) = jax.jit(jax.value_and_grad(ours, argnums=(0, 1)))(logits, regression)
    _close(value, expected)
    _close(gl, g_logits)
    _close(gr, g_regression)
    _close(ours(logits, regression), expected)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("ratio", [3, 1])
def test_ssd_image_normaliser_reweighted_matches_torchvision(seed, ratio):
    """normalize="image" (the former default) with weights max(1, P_n) / max(1, sum P) and
    reduction="sum" is torchvision's batch normaliser too."""
    logits, regression, labels, targets = _ssd_inputs(seed, n=3)
    expected, g_logits, g_regression = _torch_ssd(logits, regression, labels, targets, ratio)
    num_pos = (labels > 0).sum(1)
    weights = np.maximum(num_pos, 1) / max(1, num_pos.sum())  # torchvision's batch normaliser

    def ours(lg, rg):
        return jaxloss.ssd_multibox_loss(lg, rg, labels, targets, neg_pos_ratio=ratio,
                                         normalize="image", weights=weights.astype(np.float32),
                                         reduction="sum")

    value, (gl, gr) = jax.value_and_grad(ours, argnums=(0, 1))(logits, regression)
    _close(value, expected)
    _close(gl, g_logits)
    _close(gr, g_regression)


def test_ssd_one_image_mean_equals_torchvision():
    logits, regression, labels, targets = _ssd_inputs(9, n=1)
    expected, g_logits, _ = _torch_ssd(logits, regression, labels, targets)
    for normalize in ("batch", "image"):
        value, grad = jax.value_and_grad(lambda lg, nm=normalize: jaxloss.ssd_multibox_loss(
            lg, regression, labels, targets, normalize=nm))(logits)
        _close(value, expected)
        _close(grad, g_logits)


# ------------------------------------------------------------------ Mask R-CNN

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(1, 1, 2), (6, 7, 3), (4, 14, 5)])
def test_mask_rcnn_matches_torchvision_maskrcnn_loss(shape, reduction):
    r, m, k = shape
    rng = np.random.default_rng(r * m * k)
    logits = rng.normal(scale=3.0, size=(r, m, m, k)).astype(np.float32)
    targets = rng.random((r, m, m)).astype(np.float32)
    labels = rng.integers(0, k, size=(r,)).astype(np.int32)

    t_logits = torch.tensor(logits.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    index = torch.tensor(labels, dtype=torch.int64)
    expected = F.binary_cross_entropy_with_logits(t_logits[torch.arange(r), index],
                                                  torch.tensor(targets), reduction=reduction)
    expected.sum().backward()
    expected_grad = t_logits.grad.numpy().transpose(0, 2, 3, 1)

    def ours(x):
        return jaxloss.mask_rcnn_mask_loss(x, targets, labels, reduction=reduction)

    _close(ours(logits), expected.detach().numpy())
    _close(jax.grad(lambda x: jnp.sum(ours(x)))(logits), expected_grad)

"""The dense-head detection losses of mmdet, ultralytics and mmrotate, written in torch.

None of these libraries imports here (mmdet and mmrotate need a compiled
mmcv, ultralytics pulls OpenCV and torchvision), so the formulas the tests
and the ``dense`` benchmark suite compare against are written here in plain
torch, operation for operation as the cited files compute them (read for the
formulas, not copied):

* mmdet ``mmdet/models/losses/varifocal_loss.py``: ``varifocal_loss``
  (``iou_weighted=True``, ``use_sigmoid``);
* mmdet ``mmdet/models/losses/gfocal_loss.py``:
  ``quality_focal_loss_tensor_target`` and ``distribution_focal_loss``;
* mmdet ``mmdet/models/losses/gaussian_focal_loss.py``: ``gaussian_focal_loss``;
* mmdet ``mmdet/models/losses/iou_loss.py``: ``siou_loss``;
* ultralytics ``ultralytics/utils/loss.py``: ``VarifocalLoss``, ``DFLoss``,
  ``BboxLoss`` and ``v8DetectionLoss.__call__`` (after the feature maps are
  flattened: logits ``(N, A, C)`` and ``(N, A, 4 reg_max)``);
* ultralytics ``ultralytics/utils/metrics.py``: ``bbox_iou`` (``CIoU=True``)
  and ``probiou``;
* ultralytics ``ultralytics/utils/tal.py``: ``TaskAlignedAssigner``,
  ``bbox2dist``, ``dist2bbox``; its ``torch.topk`` is replaced by a stable
  descending sort, so that tied metrics go to the lower anchor index
  (torch's order among ties is unspecified);
* mmrotate ``mmrotate/models/losses/gaussian_dist_loss.py``:
  ``xy_wh_r_2_xy_sigma``, ``postprocess`` and ``kld_loss``.

Everything is elementwise (``reduction="none"``) unless the function says
otherwise; the callers reduce.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------- mmdet


def mmdet_varifocal(pred, target, alpha=0.75, gamma=2.0):
    pred_sigmoid = pred.sigmoid()
    target = target.type_as(pred)
    focal_weight = (target * (target > 0.0).float()
                    + alpha * (pred_sigmoid - target).abs().pow(gamma) * (target <= 0.0).float())
    return F.binary_cross_entropy_with_logits(pred, target, reduction="none") * focal_weight


def mmdet_quality_focal(pred, target, beta=2.0, activated=False):
    """``quality_focal_loss_tensor_target`` before its sum over the class axis."""
    if activated:
        pred_sigmoid, loss_function = pred, F.binary_cross_entropy
    else:
        pred_sigmoid, loss_function = pred.sigmoid(), F.binary_cross_entropy_with_logits
    scale_factor = pred_sigmoid
    zerolabel = scale_factor.new_zeros(pred.shape)
    loss = loss_function(pred, zerolabel, reduction="none") * scale_factor.pow(beta)
    pos = target != 0
    scale_factor = target[pos] - pred_sigmoid[pos]
    loss[pos] = loss_function(pred[pos], target[pos], reduction="none") * scale_factor.abs().pow(
        beta)
    return loss


def mmdet_distribution_focal(pred, label):
    """pred ``(n, R + 1)``, label ``(n,)`` in ``[0, R)``."""
    dis_left = label.long()
    dis_right = dis_left + 1
    weight_left = dis_right.float().to(label.dtype) - label
    weight_right = label - dis_left.float().to(label.dtype)
    return (F.cross_entropy(pred, dis_left, reduction="none") * weight_left
            + F.cross_entropy(pred, dis_right, reduction="none") * weight_right)


def mmdet_gaussian_focal(pred, gaussian_target, alpha=2.0, gamma=4.0):
    """pred: probabilities."""
    eps = 1e-12
    pos_weights = gaussian_target.eq(1)
    neg_weights = (1 - gaussian_target).pow(gamma)
    pos_loss = -(pred + eps).log() * (1 - pred).pow(alpha) * pos_weights
    neg_loss = -(1 - pred + eps).log() * pred.pow(alpha) * neg_weights
    return pos_loss + neg_loss


def mmdet_siou(pred, target, eps=1e-7, neg_gamma=True):
    """pred, target ``(n, 4)`` xyxy."""
    lt = torch.max(pred[:, :2], target[:, :2])
    rb = torch.min(pred[:, 2:], target[:, 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[:, 0] * wh[:, 1]
    ap = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    ag = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    union = ap + ag - overlap + eps
    ious = overlap / union
    enclose_x1y1 = torch.min(pred[:, :2], target[:, :2])
    enclose_x2y2 = torch.max(pred[:, 2:], target[:, 2:])
    enclose_wh = (enclose_x2y2 - enclose_x1y1).clamp(min=eps)
    cw, ch = enclose_wh[:, 0], enclose_wh[:, 1]
    b1_x1, b1_y1, b1_x2, b1_y2 = pred.unbind(-1)
    b2_x1, b2_y1, b2_x2, b2_y2 = target.unbind(-1)
    w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + eps
    w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + eps
    s_cw = (b2_x1 + b2_x2 - b1_x1 - b1_x2) * 0.5 + eps
    s_ch = (b2_y1 + b2_y2 - b1_y1 - b1_y2) * 0.5 + eps
    sigma = torch.pow(s_cw**2 + s_ch**2, 0.5)
    sin_alpha_1 = torch.abs(s_cw) / sigma
    sin_alpha_2 = torch.abs(s_ch) / sigma
    threshold = pow(2, 0.5) / 2
    sin_alpha = torch.where(sin_alpha_1 > threshold, sin_alpha_2, sin_alpha_1)
    angle_cost = torch.cos(torch.asin(sin_alpha) * 2 - math.pi / 2)
    rho_x = (s_cw / cw) ** 2
    rho_y = (s_ch / ch) ** 2
    gamma = angle_cost - 2 if neg_gamma else 2 - angle_cost
    distance_cost = 2 - torch.exp(gamma * rho_x) - torch.exp(gamma * rho_y)
    omiga_w = torch.abs(w1 - w2) / torch.max(w1, w2)
    omiga_h = torch.abs(h1 - h2) / torch.max(h1, h2)
    shape_cost = (torch.pow(1 - torch.exp(-1 * omiga_w), 4)
                  + torch.pow(1 - torch.exp(-1 * omiga_h), 4))
    sious = ious - 0.5 * (distance_cost + shape_cost)
    return 1 - sious.clamp(min=-1.0, max=1.0)


# ----------------------------------------------------------------------------- ultralytics


def ultralytics_varifocal(pred_score, gt_score, label, alpha=0.75, gamma=2.0):
    """``VarifocalLoss.forward``: reduced as ultralytics does (mean over axis 1, then sum)."""
    weight = alpha * pred_score.sigmoid().pow(gamma) * (1 - label) + gt_score * label
    loss = F.binary_cross_entropy_with_logits(pred_score, gt_score, reduction="none") * weight
    return loss.mean(1).sum()


def ultralytics_dfl(pred_dist, target, reg_max):
    """``DFLoss.__call__``: pred_dist ``(n, reg_max)``, target ``(m, 4)``, n = 4 m."""
    target = target.clamp(0, reg_max - 1 - 0.01)
    tl = target.long()
    tr = tl + 1
    wl = tr - target
    wr = 1 - wl
    return (F.cross_entropy(pred_dist, tl.view(-1), reduction="none").view(tl.shape) * wl
            + F.cross_entropy(pred_dist, tr.view(-1), reduction="none").view(tl.shape) * wr
            ).mean(-1, keepdim=True)


def ultralytics_bbox_iou_ciou(box1, box2, eps=1e-7):
    """``bbox_iou(box1, box2, xywh=False, CIoU=True)``, xyxy ``(..., 4)`` -> ``(..., 1)``."""
    b1_x1, b1_y1, b1_x2, b1_y2 = box1.chunk(4, -1)
    b2_x1, b2_y1, b2_x2, b2_y2 = box2.chunk(4, -1)
    w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + eps
    w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + eps
    inter = ((b1_x2.minimum(b2_x2) - b1_x1.maximum(b2_x1)).clamp(0)
             * (b1_y2.minimum(b2_y2) - b1_y1.maximum(b2_y1)).clamp(0))
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = b1_x2.maximum(b2_x2) - b1_x1.minimum(b2_x1)
    ch = b1_y2.maximum(b2_y2) - b1_y1.minimum(b2_y1)
    c2 = cw.pow(2) + ch.pow(2) + eps
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2).pow(2) + (b2_y1 + b2_y2 - b1_y1 - b1_y2).pow(2)) / 4
    v = (4 / math.pi**2) * ((w2 / h2).atan() - (w1 / h1).atan()).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


def _covariance(boxes):
    gbbs = torch.cat((boxes[:, 2:4].pow(2) / 12, boxes[:, 4:]), dim=-1)
    a, b, c = gbbs.split(1, dim=-1)
    cos, sin = c.cos(), c.sin()
    cos2, sin2 = cos.pow(2), sin.pow(2)
    return a * cos2 + b * sin2, a * sin2 + b * cos2, (a - b) * cos * sin


def ultralytics_probiou(obb1, obb2, eps=1e-7):
    """``probiou(obb1, obb2)``: ``(n, 5)`` -> ``(n, 1)``."""
    x1, y1 = obb1[..., :2].split(1, dim=-1)
    x2, y2 = obb2[..., :2].split(1, dim=-1)
    a1, b1, c1 = _covariance(obb1)
    a2, b2, c2 = _covariance(obb2)
    t1 = (((a1 + a2) * (y1 - y2).pow(2) + (b1 + b2) * (x1 - x2).pow(2))
          / ((a1 + a2) * (b1 + b2) - (c1 + c2).pow(2) + eps)) * 0.25
    t2 = (((c1 + c2) * (x2 - x1) * (y1 - y2))
          / ((a1 + a2) * (b1 + b2) - (c1 + c2).pow(2) + eps)) * 0.5
    t3 = (((a1 + a2) * (b1 + b2) - (c1 + c2).pow(2))
          / (4 * ((a1 * b1 - c1.pow(2)).clamp(0) * (a2 * b2 - c2.pow(2)).clamp(0)).sqrt() + eps)
          + eps).log() * 0.5
    bd = (t1 + t2 + t3).clamp(eps, 100.0)
    hd = (1.0 - (-bd).exp() + eps).sqrt()
    return 1 - hd


class TaskAlignedAssigner:
    """``utils/tal.py`` ``TaskAlignedAssigner`` (forward and its helpers), stable top-k."""

    def __init__(self, topk=13, num_classes=80, alpha=1.0, beta=6.0, eps=1e-9):
        self.topk, self.num_classes, self.bg_idx = topk, num_classes, num_classes
        self.alpha, self.beta, self.eps = alpha, beta, eps

    @torch.no_grad()
    def __call__(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt):
        self.bs = pd_scores.shape[0]
        self.n_max_boxes = gt_bboxes.shape[1]
        if self.n_max_boxes == 0:
            return (torch.full_like(pd_scores[..., 0], self.bg_idx), torch.zeros_like(pd_bboxes),
                    torch.zeros_like(pd_scores), torch.zeros_like(pd_scores[..., 0]).bool())
        mask_in_gts = self.select_candidates_in_gts(anc_points, gt_bboxes)
        align_metric, overlaps = self.get_box_metrics(pd_scores, pd_bboxes, gt_labels, gt_bboxes,
                                                      mask_in_gts * mask_gt)
        mask_topk = self.select_topk_candidates(align_metric,
                                                mask_gt.expand(-1, -1, self.topk).bool())
        mask_pos = mask_topk * mask_in_gts * mask_gt
        fg_mask = mask_pos.sum(-2)
        if fg_mask.max() > 1:
            mask_multi_gts = (fg_mask.unsqueeze(1) > 1).expand(-1, self.n_max_boxes, -1)
            max_overlaps_idx = overlaps.argmax(1)
            is_max_overlaps = torch.zeros(mask_pos.shape, dtype=mask_pos.dtype)
            is_max_overlaps.scatter_(1, max_overlaps_idx.unsqueeze(1), 1)
            mask_pos = torch.where(mask_multi_gts, is_max_overlaps, mask_pos).to(mask_pos.dtype)
            fg_mask = mask_pos.sum(-2)
        target_gt_idx = mask_pos.argmax(-2)
        batch_ind = torch.arange(end=self.bs, dtype=torch.int64)[..., None]
        flat_idx = target_gt_idx + batch_ind * self.n_max_boxes
        target_labels = gt_labels.long().flatten()[flat_idx]
        target_bboxes = gt_bboxes.view(-1, gt_bboxes.shape[-1])[flat_idx]
        target_labels.clamp_(0)
        target_scores = torch.zeros((*target_labels.shape, self.num_classes), dtype=torch.int64)
        target_scores.scatter_(2, target_labels.unsqueeze(-1), 1)
        fg_scores_mask = fg_mask[:, :, None].repeat(1, 1, self.num_classes)
        target_scores = torch.where(fg_scores_mask > 0, target_scores, 0)
        align_metric *= mask_pos
        pos_align_metrics = align_metric.amax(dim=-1, keepdim=True)
        pos_overlaps = (overlaps * mask_pos).amax(dim=-1, keepdim=True)
        norm_align_metric = (align_metric * pos_overlaps
                             / (pos_align_metrics + self.eps)).amax(-2).unsqueeze(-1)
        target_scores = target_scores * norm_align_metric
        return target_labels, target_bboxes, target_scores, fg_mask.bool()

    def get_box_metrics(self, pd_scores, pd_bboxes, gt_labels, gt_bboxes, mask_gt):
        na = pd_bboxes.shape[-2]
        mask_gt = mask_gt.bool()
        overlaps = torch.zeros([self.bs, self.n_max_boxes, na], dtype=pd_bboxes.dtype)
        bbox_scores = torch.zeros([self.bs, self.n_max_boxes, na], dtype=pd_scores.dtype)
        ind = torch.zeros([2, self.bs, self.n_max_boxes], dtype=torch.long)
        ind[0] = torch.arange(end=self.bs).view(-1, 1).expand(-1, self.n_max_boxes)
        ind[1] = gt_labels.squeeze(-1)
        bbox_scores[mask_gt] = pd_scores[ind[0], :, ind[1]][mask_gt]
        pd_boxes = pd_bboxes.unsqueeze(1).expand(-1, self.n_max_boxes, -1, -1)[mask_gt]
        gt_boxes = gt_bboxes.unsqueeze(2).expand(-1, -1, na, -1)[mask_gt]
        overlaps[mask_gt] = ultralytics_bbox_iou_ciou(gt_boxes, pd_boxes).squeeze(-1).clamp_(0)
        align_metric = bbox_scores.pow(self.alpha) * overlaps.pow(self.beta)
        return align_metric, overlaps

    def select_topk_candidates(self, metrics, topk_mask):
        # torch.topk(metrics, k, largest=True) with ties to the lower index
        topk_idxs = torch.sort(metrics, dim=-1, descending=True, stable=True)[1][..., :self.topk]
        topk_idxs.masked_fill_(~topk_mask, 0)
        count_tensor = torch.zeros(metrics.shape, dtype=torch.int8)
        ones = torch.ones_like(topk_idxs[:, :, :1], dtype=torch.int8)
        for k in range(self.topk):
            count_tensor.scatter_add_(-1, topk_idxs[:, :, k:k + 1], ones)
        count_tensor.masked_fill_(count_tensor > 1, 0)
        return count_tensor.to(metrics.dtype)

    @staticmethod
    def select_candidates_in_gts(xy_centers, gt_bboxes, eps=1e-9):
        n_anchors = xy_centers.shape[0]
        bs, n_boxes, _ = gt_bboxes.shape
        lt, rb = gt_bboxes.view(-1, 1, 4).chunk(2, 2)
        bbox_deltas = torch.cat((xy_centers[None] - lt, rb - xy_centers[None]), dim=2).view(
            bs, n_boxes, n_anchors, -1)
        return bbox_deltas.amin(3).gt_(eps)


def v8_detection_loss(pred_scores, pred_distri, anchor_points, stride_tensor, gt_labels,
                      gt_bboxes, mask_gt, reg_max=16, box=7.5, cls=0.5, dfl=1.5, topk=10):
    """``v8DetectionLoss.__call__`` after flattening, without ``* batch_size``.

    pred_scores ``(N, A, C)`` logits, pred_distri ``(N, A, 4 reg_max)``, anchor_points
    ``(A, 2)`` grid units, stride_tensor ``(A, 1)``, gt_labels ``(N, M, 1)``, gt_bboxes
    ``(N, M, 4)`` xyxy pixels, mask_gt ``(N, M, 1)``. Returns ``(total, [box, cls, dfl])``
    with the parts unweighted.
    """
    nc = pred_scores.shape[-1]
    assigner = TaskAlignedAssigner(topk=topk, num_classes=nc, alpha=0.5, beta=6.0)
    proj = torch.arange(reg_max, dtype=pred_distri.dtype)
    b, a, c = pred_distri.shape
    dist = pred_distri.view(b, a, 4, c // 4).softmax(3).matmul(proj)
    lt, rb = dist.chunk(2, -1)
    pred_bboxes = torch.cat((anchor_points - lt, anchor_points + rb), -1)   # dist2bbox xyxy
    _, target_bboxes, target_scores, fg_mask = assigner(
        pred_scores.detach().sigmoid(),
        (pred_bboxes.detach() * stride_tensor).type(gt_bboxes.dtype),
        anchor_points * stride_tensor, gt_labels, gt_bboxes, mask_gt)
    target_scores_sum = max(target_scores.sum(), 1)
    loss_cls = F.binary_cross_entropy_with_logits(
        pred_scores, target_scores.to(pred_scores.dtype), reduction="none").sum()
    loss_cls = loss_cls / target_scores_sum
    loss_box = pred_scores.new_zeros(())
    loss_dfl = pred_scores.new_zeros(())
    if fg_mask.sum():
        target_bboxes = target_bboxes / stride_tensor
        weight = target_scores.sum(-1)[fg_mask].unsqueeze(-1)
        iou = ultralytics_bbox_iou_ciou(pred_bboxes[fg_mask], target_bboxes[fg_mask])
        loss_box = ((1.0 - iou) * weight).sum() / target_scores_sum
        x1y1, x2y2 = target_bboxes.chunk(2, -1)
        target_ltrb = torch.cat((anchor_points - x1y1, x2y2 - anchor_points), -1).clamp_(
            0, reg_max - 1 - 0.01)                                              # bbox2dist
        loss_dfl = ultralytics_dfl(pred_distri[fg_mask].view(-1, reg_max), target_ltrb[fg_mask],
                                   reg_max) * weight
        loss_dfl = loss_dfl.sum() / target_scores_sum
    total = box * loss_box + cls * loss_cls + dfl * loss_dfl
    return total, [loss_box, loss_cls, loss_dfl]


# ----------------------------------------------------------------------------- mmrotate


def mmrotate_xy_sigma(xywhr):
    _shape = xywhr.shape
    xy = xywhr[..., :2]
    wh = xywhr[..., 2:4].clamp(min=1e-7, max=1e7).reshape(-1, 2)
    r = xywhr[..., 4]
    cos_r, sin_r = torch.cos(r), torch.sin(r)
    R = torch.stack((cos_r, -sin_r, sin_r, cos_r), dim=-1).reshape(-1, 2, 2)
    S = 0.5 * torch.diag_embed(wh)
    sigma = R.bmm(S.square()).bmm(R.permute(0, 2, 1)).reshape(_shape[:-1] + (2, 2))
    return xy, sigma


def mmrotate_kld(pred, target, fun="log1p", tau=1.0, alpha=1.0, sqrt=True):
    """``GDLoss(loss_type="kld")`` on ``(n, 5)`` boxes, ``reduction="none"``."""
    xy_p, Sigma_p = mmrotate_xy_sigma(pred)
    xy_t, Sigma_t = mmrotate_xy_sigma(target)
    _shape = xy_p.shape
    xy_p, xy_t = xy_p.reshape(-1, 2), xy_t.reshape(-1, 2)
    Sigma_p, Sigma_t = Sigma_p.reshape(-1, 2, 2), Sigma_t.reshape(-1, 2, 2)
    Sigma_p_inv = torch.stack((Sigma_p[..., 1, 1], -Sigma_p[..., 0, 1], -Sigma_p[..., 1, 0],
                               Sigma_p[..., 0, 0]), dim=-1).reshape(-1, 2, 2)
    Sigma_p_inv = Sigma_p_inv / Sigma_p.det().unsqueeze(-1).unsqueeze(-1)
    dxy = (xy_p - xy_t).unsqueeze(-1)
    xy_distance = 0.5 * dxy.permute(0, 2, 1).bmm(Sigma_p_inv).bmm(dxy).view(-1)
    whr_distance = 0.5 * Sigma_p_inv.bmm(Sigma_t).diagonal(dim1=-2, dim2=-1).sum(dim=-1)
    whr_distance = whr_distance + 0.5 * (Sigma_p.det().log() - Sigma_t.det().log())
    whr_distance = whr_distance - 1
    distance = xy_distance / (alpha * alpha) + whr_distance
    if sqrt:
        distance = distance.clamp(0).sqrt()
    distance = distance.reshape(_shape[:-1])
    if fun == "log1p":
        distance = torch.log1p(distance)
    elif fun == "sqrt":
        distance = torch.sqrt(distance)
    if tau >= 1.0:
        return 1 - 1 / (tau + distance)
    return distance

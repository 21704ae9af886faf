"""Reference formulas of the keypoint, geometry, long-tail and distillation losses, in torch.

mmpose, mmseg, mmdet, timm, ultralytics and the authors' repositories below do
not import here (mmpose, mmseg and mmdet need a compiled mmcv, timm and
ultralytics pull torchvision or OpenCV, the others are not packaged), so the
formulas that the reference tests (``tests/reference/``) and the ``families``
benchmark suite (``bench/families.py``) compare against are written here once,
in plain torch, operation for operation as the cited files compute them (read
for the formulas, not copied):

* mmpose 1.x ``mmpose/models/losses/regression_loss.py``: ``WingLoss``;
  ``heatmap_loss.py``: ``AdaptiveWingLoss``, ``KeypointMSELoss``;
  ``classification_loss.py``: ``KLDiscretLoss``;
* ultralytics ``ultralytics/utils/loss.py``: ``KeypointLoss`` (OKS);
* mmseg ``mmseg/models/losses/silog_loss.py``: ``silog_loss``;
* MiDaS's scale-and-shift-invariant loss (Ranftl et al. 2020, eqs. 1-5 and 11;
  the authors' training-loss code linked from isl-org/MiDaS:
  ``compute_scale_and_shift``, ``mse_loss``, ``gradient_loss``,
  ``ScaleAndShiftInvariantLoss``, image-based reduction);
* mmdet ``mmdet/models/losses/kd_loss.py`` and ``seesaw_loss.py``;
* kaidic/LDAM-DRW ``losses.py``: ``LDAMLoss``;
* timm ``timm/loss/asymmetric_loss.py``: ``AsymmetricLossMultiLabel``;
* google/bi-tempered-loss ``jax/loss.py``: the tempered log and exp, the
  normaliser (fixed point for t2 > 1, bisection for t2 < 1, ``num_iters``
  each), the loss (cross-entropy at t1 = t2 = 1) and the custom gradient of
  ``bi_tempered_logistic_loss_bwd``.

Inputs are torch's layouts (heatmaps channels-first); each function says what
it reduces.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------- keypoint


def mmpose_wing(pred, target, omega, epsilon):
    # WingLoss.criterion: where(delta < omega, omega log(1 + delta/eps), delta - C),
    # summed over keypoints and coordinates, averaged over the batch.
    c = omega * (1.0 - math.log(1.0 + omega / epsilon))
    delta = (target - pred).abs()
    losses = torch.where(delta < omega, omega * torch.log(1.0 + delta / epsilon), delta - c)
    return torch.mean(torch.sum(losses, dim=[1, 2]), dim=0)


def mmpose_adaptive_wing(pred, target, alpha, omega, epsilon, theta):
    # AdaptiveWingLoss.criterion, mean over every element
    delta = (target - pred).abs()
    a = omega * (1 / (1 + torch.pow(theta / epsilon, alpha - target))) * (alpha - target) * (
        torch.pow(theta / epsilon, alpha - target - 1)) * (1 / epsilon)
    c = theta * a - omega * torch.log(1 + torch.pow(theta / epsilon, alpha - target))
    losses = torch.where(delta < theta,
                         omega * torch.log(1 + torch.pow(delta / epsilon, alpha - target)),
                         a * delta - c)
    return torch.mean(losses)


def mmpose_keypoint_mse(output, target, target_weights=None):
    # KeypointMSELoss.forward: mse(reduction="none") times the (B, K, 1, 1) mask, mean
    if target_weights is None:
        return torch.nn.functional.mse_loss(output, target)
    mask = target_weights[:, :, None, None]
    return (torch.nn.functional.mse_loss(output, target, reduction="none") * mask).mean()


def mmpose_kl_discret(pred_x, pred_y, target_x, target_y, weight, beta, label_softmax,
                       label_beta):
    # KLDiscretLoss: per (N*K) row, mean over bins of kl_div(log_softmax(beta z), labels)
    # (labels softmaxed at label_beta first), times the weight, summed, over K
    k = pred_x.shape[1]

    def criterion(z, labels):
        log_pt = torch.log_softmax(z * beta, dim=1)
        if label_softmax:
            labels = torch.softmax(labels * label_beta, dim=1)
        return torch.mean(torch.nn.functional.kl_div(log_pt, labels, reduction="none"), dim=1)

    loss = 0.0
    for z, q in ((pred_x, target_x), (pred_y, target_y)):
        loss = loss + (criterion(z.reshape(-1, z.size(-1)), q.reshape(-1, q.size(-1)))
                       * weight.reshape(-1)).sum()
    return loss / k


def ultralytics_keypoint_loss(pred_kpts, gt_kpts, kpt_mask, area, sigmas):
    # KeypointLoss.forward (area of shape (n, 1) as v8PoseLoss passes it)
    d = (pred_kpts[..., 0] - gt_kpts[..., 0]).pow(2) + (pred_kpts[..., 1] - gt_kpts[..., 1]).pow(2)
    kpt_loss_factor = kpt_mask.shape[1] / (torch.sum(kpt_mask != 0, dim=1) + 1e-9)
    e = d / ((2 * sigmas).pow(2) * (area + 1e-9) * 2)
    return (kpt_loss_factor.view(-1, 1) * ((1 - torch.exp(-e)) * kpt_mask)).mean()


# ----------------------------------------------------------------------------- geometry


def mmseg_silog(pred, target, lam, eps):
    """mmseg's silog_loss (reduction "mean") with its fixed 0.5 replaced by ``lam``."""
    pred, target = pred.flatten(1), target.flatten(1)
    diff_log = torch.log(target.clamp(min=eps)) - torch.log(pred.clamp(min=eps))
    valid = (target > eps).detach() & ~torch.isnan(diff_log)
    diff_log = torch.where(valid, diff_log, torch.zeros_like(diff_log))
    valid = valid.double()
    count = valid.sum(dim=1).clamp(min=eps)
    sq_mean = (diff_log.pow(2) * valid).sum(dim=1) / count
    mean = (diff_log * valid).sum(dim=1) / count
    return torch.sqrt(sq_mean - lam * mean.pow(2)).mean()


def midas_scale_shift(prediction, target, mask):
    a_00 = torch.sum(mask * prediction * prediction, (1, 2))
    a_01 = torch.sum(mask * prediction, (1, 2))
    a_11 = torch.sum(mask, (1, 2))
    b_0 = torch.sum(mask * prediction * target, (1, 2))
    b_1 = torch.sum(mask * target, (1, 2))
    det = a_00 * a_11 - a_01 * a_01
    return (a_11 * b_0 - a_01 * b_1) / det, (-a_01 * b_0 + a_00 * b_1) / det


def midas_ssi(prediction, target, mask, alpha, scales):
    """MiDaS's ScaleAndShiftInvariantLoss, image-based reduction, on (N, H, W) maps, per image."""
    scale, shift = midas_scale_shift(prediction, target, mask)
    prediction_ssi = scale.view(-1, 1, 1) * prediction + shift.view(-1, 1, 1)
    res = prediction_ssi - target
    m = torch.sum(mask, (1, 2))
    total = torch.sum(mask * res * res, (1, 2)) / (2 * m)  # mse_loss, eq. 5
    for k in range(scales):  # eq. 11, gradient_loss on every 2^k-th pixel
        step = 2**k
        p, t, msk = prediction_ssi[:, ::step, ::step], target[:, ::step, ::step], \
            mask[:, ::step, ::step]
        diff = msk * (p - t)
        grad_x = msk[:, :, 1:] * msk[:, :, :-1] * torch.abs(diff[:, :, 1:] - diff[:, :, :-1])
        grad_y = msk[:, 1:] * msk[:, :-1] * torch.abs(diff[:, 1:] - diff[:, :-1])
        total = total + alpha * (torch.sum(grad_x, (1, 2)) + torch.sum(grad_y, (1, 2))) \
            / torch.sum(msk, (1, 2))
    return total


# ------------------------------------------------ long-tail, distillation, multi-label, bi-tempered


def mmdet_kd(student, teacher, T):
    # mmdet models/losses/kd_loss.py knowledge_distillation_kl_div_loss, class_reduction="sum"
    target = F.softmax(teacher / T, dim=-1).detach()
    kd = F.kl_div(F.log_softmax(student / T, dim=-1), target, reduction="none")
    return kd.sum(-1) * (T * T)


def timm_asl(x, y, gamma_neg=4.0, gamma_pos=1.0, clip=0.05, eps=1e-8):
    # timm/loss/asymmetric_loss.py AsymmetricLossMultiLabel.forward, elementwise (no sum)
    xs_pos = torch.sigmoid(x)
    xs_neg = 1 - xs_pos
    if clip > 0:
        xs_neg = (xs_neg + clip).clamp(max=1)
    loss = y * torch.log(xs_pos.clamp(min=eps)) + (1 - y) * torch.log(xs_neg.clamp(min=eps))
    pt = xs_pos * y + xs_neg * (1 - y)
    gamma = gamma_pos * y + gamma_neg * (1 - y)
    return -loss * torch.pow(1 - pt, gamma)


def mmdet_seesaw(cls_score, labels, cum_samples, p=0.8, q=2.0, eps=1e-2):
    # mmdet models/losses/seesaw_loss.py seesaw_ce_loss (reduction="none")
    num_classes = cls_score.shape[-1]
    onehot = F.one_hot(labels, num_classes)
    weights = cls_score.new_ones(onehot.size())
    if p > 0:
        ratio = cum_samples[None, :].clamp(min=1) / cum_samples[:, None].clamp(min=1)
        index = (ratio < 1.0).to(cls_score.dtype)
        weights = weights * (ratio.pow(p) * index + (1 - index))[labels, :]
    if q > 0:
        scores = F.softmax(cls_score.detach(), dim=1)
        self_scores = scores[torch.arange(len(scores)), labels]
        matrix = scores / self_scores[:, None].clamp(min=eps)
        index = (matrix > 1.0).to(cls_score.dtype)
        weights = weights * (matrix.pow(q) * index + (1 - index))
    cls_score = cls_score + weights.log() * (1 - onehot)
    return F.cross_entropy(cls_score, labels, reduction="none")


def ldam(x, target, cls_num_list, max_m=0.5, s=30.0, weight=None):
    # kaidic/LDAM-DRW losses.py LDAMLoss (its float counts; we clamp them at 1 first)
    m_list = 1.0 / np.sqrt(np.sqrt(np.maximum(cls_num_list, 1.0)))
    m_list = torch.tensor(m_list * (max_m / np.max(m_list)), dtype=torch.float64)
    index = F.one_hot(target, x.shape[-1]).bool()
    batch_m = m_list[target][:, None]
    output = torch.where(index, x - batch_m, x)
    return F.cross_entropy(s * output, target, weight=weight)


def log_t(u, t):
    return torch.log(u) if t == 1.0 else (u ** (1.0 - t) - 1.0) / (1.0 - t)


def exp_t(u, t):
    return torch.exp(u) if t == 1.0 else torch.clamp(1.0 + (1.0 - t) * u, min=0.0) ** (
        1.0 / (1.0 - t))


def tempered_normalizer(a, t, num_iters):
    if t == 1.0:
        return torch.logsumexp(a, -1, keepdim=True)
    mu = a.max(-1, keepdim=True).values
    a0 = a - mu
    if t > 1.0:
        current = a0
        for _ in range(num_iters):
            partition = exp_t(current, t).sum(-1, keepdim=True)
            current = a0 * partition ** (1.0 - t)
        partition = exp_t(current, t).sum(-1, keepdim=True)
        return -log_t(1.0 / partition, t) + mu
    effective = (a0 > -1.0 / (1.0 - t)).to(a.dtype).sum(-1, keepdim=True)
    lower, upper = torch.zeros_like(effective), -log_t(1.0 / effective, t)
    for _ in range(num_iters):
        middle = (upper + lower) / 2.0
        below = (exp_t(a0 - middle, t).sum(-1, keepdim=True) < 1.0).to(a.dtype)
        lower = lower * below + (1.0 - below) * middle
        upper = upper * (1.0 - below) + below * middle
    return (upper + lower) / 2.0 + mu


def bi_tempered(a, labels, t1, t2, smoothing=0.0, num_iters=5):
    """(loss, the authors' gradient) for activations a (M, C) and label rows (M, C)."""
    c = labels.shape[-1]
    labels = (1 - c / (c - 1) * smoothing) * labels + smoothing / (c - 1)
    probs = exp_t(a - tempered_normalizer(a, t2, num_iters), t2)
    if t1 == 1.0 and t2 == 1.0:
        loss = (labels * (torch.log(labels + 1e-15) - F.log_softmax(a, -1))).sum(-1)
    else:
        loss = (labels * (log_t(labels + 1e-10, t1) - log_t(probs, t1))
                - (labels ** (2.0 - t1) - probs ** (2.0 - t1)) / (2.0 - t1)).sum(-1)
    delta = (probs - labels) * probs ** (t2 - t1)
    escorts = probs**t2 / (probs**t2).sum(-1, keepdim=True)
    return loss, delta - escorts * delta.sum(-1, keepdim=True)

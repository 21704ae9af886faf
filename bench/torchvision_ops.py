"""torchvision's IoU box losses, written in torch for the benchmark's PyTorch column.

torchvision does not import with the torch this project pins, so its formulas
are written here in plain torch, operation for operation as torchvision
(0.15+) computes them, so that the PyTorch timings are those of the real
torchvision functions (read for the formulas, not copied):

* ``torchvision/ops/_utils.py``: ``_loss_inter_union`` (the intersection
  written through a boolean mask, zero where the boxes do not overlap);
* ``torchvision/ops/giou_loss.py``: ``generalized_box_iou_loss``;
* ``torchvision/ops/diou_loss.py``: ``_diou_iou_loss``;
* ``torchvision/ops/ciou_loss.py``: ``complete_box_iou_loss`` (its trade-off
  ``alpha`` under ``torch.no_grad``; ``_diou_iou_loss`` called with its
  default eps).

Boxes are float tensors ``(..., 4)`` in ``xyxy``. torchvision's
``_upcast_non_float`` is a no-op on the float32 inputs of the benchmark and is
left out. The ``"mean"`` reduction is the only one the benchmark uses.
"""

from __future__ import annotations

import math

import torch


def loss_inter_union(boxes1: torch.Tensor, boxes2: torch.Tensor,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``_loss_inter_union``: intersection and union areas of matched ``xyxy`` boxes."""
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xkis1, ykis1 = torch.max(x1, x1g), torch.max(y1, y1g)
    xkis2, ykis2 = torch.min(x2, x2g), torch.min(y2, y2g)
    intersection = torch.zeros_like(x1)
    mask = (ykis2 > ykis1) & (xkis2 > xkis1)
    intersection[mask] = (xkis2[mask] - xkis1[mask]) * (ykis2[mask] - ykis1[mask])
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intersection
    return intersection, union


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """torchvision's reductions: ``"none"``, ``"mean"`` (0 for no boxes) or ``"sum"``."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()


def generalized_box_iou_loss(boxes1: torch.Tensor, boxes2: torch.Tensor, *,
                             eps: float = 1e-7, reduction: str = "mean") -> torch.Tensor:
    """``torchvision.ops.generalized_box_iou_loss(boxes1, boxes2, reduction, eps)``."""
    intersection, union = loss_inter_union(boxes1, boxes2)
    iou = intersection / (union + eps)
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xc1, yc1 = torch.min(x1, x1g), torch.min(y1, y1g)
    xc2, yc2 = torch.max(x2, x2g), torch.max(y2, y2g)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    giou = iou - ((area_c - union) / (area_c + eps))
    return _reduce(1 - giou, reduction)


def diou_iou_loss(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``_diou_iou_loss``: the unreduced DIoU loss and the IoU."""
    intersection, union = loss_inter_union(boxes1, boxes2)
    iou = intersection / (union + eps)
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xc1, yc1 = torch.min(x1, x1g), torch.min(y1, y1g)
    xc2, yc2 = torch.max(x2, x2g), torch.max(y2, y2g)
    diagonal_sq = ((xc2 - xc1) ** 2) + ((yc2 - yc1) ** 2) + eps
    x_p, y_p = (x2 + x1) / 2, (y2 + y1) / 2
    x_g, y_g = (x1g + x2g) / 2, (y1g + y2g) / 2
    centers_sq = ((x_p - x_g) ** 2) + ((y_p - y_g) ** 2)
    return 1 - iou + (centers_sq / diagonal_sq), iou


def complete_box_iou_loss(boxes1: torch.Tensor, boxes2: torch.Tensor, *,
                          eps: float = 1e-7, reduction: str = "mean") -> torch.Tensor:
    """``torchvision.ops.complete_box_iou_loss(boxes1, boxes2, reduction, eps)``."""
    diou_loss, iou = diou_iou_loss(boxes1, boxes2)  # torchvision: the default eps here
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    w_pred, h_pred = x2 - x1, y2 - y1
    w_gt, h_gt = x2g - x1g, y2g - y1g
    v = (4 / (math.pi**2)) * torch.pow(torch.atan(w_gt / h_gt) - torch.atan(w_pred / h_pred), 2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return _reduce(diou_loss + alpha * v, reduction)

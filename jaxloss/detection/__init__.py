"""Detection: box utilities, the IoU loss family, SSD's multibox loss and Mask R-CNN's mask loss.

Conventions: boxes are floating arrays ``(..., 4)`` in ``xyxy`` =
``(x1, y1, x2, y2)`` with ``x1 <= x2`` and ``y1 <= y2`` unless
``box_format=`` says ``"xywh"`` (``(x1, y1, w, h)``) or ``"cxcywh"``
(``(cx, cy, w, h)``), torchvision's names. The IoU losses compare *matched*
pairs of boxes and their unreduced loss has the boxes' shape without the last
axis. Every ratio goes through the double-``where`` (``_numerics.safe_div``),
so zero-area, identical, disjoint and far-apart boxes give a finite value *and*
a finite gradient. An inverted target box (``x2 < x1`` or ``y2 < y1``) raises
eagerly and gives NaN under ``jit``; class labels outside ``[0, C)`` in the
detector losses do the same. Half-precision inputs are computed in float32
and returned in their own dtype.

``box_convert``, ``box_area``, ``box_iou`` and ``generalized_box_iou`` are
utilities (not losses): they take no ``reduction``.

Set prediction: ``linear_sum_assignment`` (exact assignment under ``jit`` and
``vmap``) and ``hungarian_match`` (DETR's matcher) are utilities too;
``detr_criterion`` is a composite criterion returning ``(total, parts)``, not a
registry loss.

Modules: ``boxes`` (the utilities), ``iou_losses`` (IoU, GIoU, DIoU, CIoU,
EIoU losses), ``detectors`` (SSD, Mask R-CNN); ``_common`` holds the box
helpers they share. Dense (one-stage) heads: ``dense`` (varifocal, quality
focal, distribution focal and Gaussian focal losses,
``distribution_expectation``), ``siou`` (SIoU), ``rotated`` (ProbIoU and KLD
of rotated boxes ``(cx, cy, w, h, theta)``), ``assign`` (the task-aligned
assignment) and ``yolo`` (the YOLOv8 criterion, which returns
``(total, parts)``). Set prediction: ``matching`` (assignment and DETR's
matcher) and ``set_prediction`` (DETR's criterion).
"""

from jaxloss.detection.assign import task_aligned_assign as task_aligned_assign
from jaxloss.detection.boxes import box_area as box_area
from jaxloss.detection.boxes import box_convert as box_convert
from jaxloss.detection.boxes import box_iou as box_iou
from jaxloss.detection.boxes import generalized_box_iou as generalized_box_iou
from jaxloss.detection.dense import distribution_expectation as distribution_expectation
from jaxloss.detection.dense import distribution_focal_loss as distribution_focal_loss
from jaxloss.detection.dense import gaussian_focal_loss as gaussian_focal_loss
from jaxloss.detection.dense import quality_focal_loss as quality_focal_loss
from jaxloss.detection.dense import varifocal_loss as varifocal_loss
from jaxloss.detection.detectors import mask_rcnn_mask_loss as mask_rcnn_mask_loss
from jaxloss.detection.detectors import ssd_multibox_loss as ssd_multibox_loss
from jaxloss.detection.iou_losses import ciou_loss as ciou_loss
from jaxloss.detection.iou_losses import diou_loss as diou_loss
from jaxloss.detection.iou_losses import eiou_loss as eiou_loss
from jaxloss.detection.iou_losses import giou_loss as giou_loss
from jaxloss.detection.iou_losses import iou_loss as iou_loss
from jaxloss.detection.matching import hungarian_match as hungarian_match
from jaxloss.detection.matching import linear_sum_assignment as linear_sum_assignment
from jaxloss.detection.rotated import kld_rotated_loss as kld_rotated_loss
from jaxloss.detection.rotated import probiou_loss as probiou_loss
from jaxloss.detection.set_prediction import detr_criterion as detr_criterion
from jaxloss.detection.siou import siou_loss as siou_loss
from jaxloss.detection.yolo import yolo_criterion as yolo_criterion

__all__ = [
    "box_area",
    "box_convert",
    "box_iou",
    "ciou_loss",
    "detr_criterion",
    "diou_loss",
    "distribution_expectation",
    "distribution_focal_loss",
    "eiou_loss",
    "gaussian_focal_loss",
    "generalized_box_iou",
    "giou_loss",
    "hungarian_match",
    "iou_loss",
    "kld_rotated_loss",
    "linear_sum_assignment",
    "mask_rcnn_mask_loss",
    "probiou_loss",
    "quality_focal_loss",
    "siou_loss",
    "ssd_multibox_loss",
    "task_aligned_assign",
    "varifocal_loss",
    "yolo_criterion",
]

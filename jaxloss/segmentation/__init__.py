"""Segmentation losses: overlap (Dice, Jaccard, Tversky), Lovasz, distance-map and compound.

Conventions:

* Layout is channels-last: logits ``(N, *spatial, C)`` (images
  ``(N, H, W, C)``, volumes ``(N, D, H, W, C)``); ``axis=`` names another
  class axis (``axis=1`` for PyTorch's ``(N, C, H, W)``). In
  ``mode="multiclass"`` the logits go through a softmax over ``C`` and the
  targets are int ``(N, *spatial)`` class indices or a float one-hot
  ``(N, *spatial, C)``; in ``mode="binary"`` (``C == 1``) and
  ``mode="multilabel"`` each channel goes through a sigmoid and the targets
  have the shape of the logits (float, or int 0/1). ``from_logits=False``
  takes probabilities as they are.
* The layout rule (static, on shapes only): integer class-index targets fix
  the layout: they must have the logits' shape without the class axis, and
  when they fit axis 1 instead the error says so ("looks like (N, C, H, W);
  jaxloss is channels-last: ``jnp.moveaxis(x, 1, -1)`` or pass ``axis=1``").
  When the targets have the logits' full shape (one-hot, probabilities,
  binary, multilabel) they cannot tell, so with the class axis last an image
  or volume (rank >= 4) with more classes than its width (the last spatial
  axis) is taken for a channels-first array and refused with the same
  message. Such a channels-last input (more classes than pixels across) can
  be given with integer targets, or with the class axis as a non-negative
  index (``axis=3`` for ``(N, H, W, C)``), which states the layout.
* Soft counts per image and class: ``TP = sum p t``, ``|P| = sum p``,
  ``|T| = sum t``, so ``FP = |P| - TP`` and ``FN = |T| - TP``. With
  ``per_image=True`` the unreduced loss is ``(N, C)``; with
  ``per_image=False`` the batch is pooled per class (batch Dice) and it is
  ``(C,)``; ``average="micro"`` also pools the classes (``(N,)`` or ``()``).
  Under ``shard_map``/``pmap``, ``axis_name`` makes the pooled counts
  global, so a sharded batch gives the single-device result.
* ``where``/``weights`` broadcast to the unreduced shape; a mask whose shape
  is a prefix of it (``(N,)`` against ``(N, C)``) selects whole images. A
  NaN in an image that ``where`` drops reaches neither value nor gradient.
* ``ignore_index`` (every class-based loss) drops the pixel: from P and T of
  the overlap losses, from the Lovasz sort, from the means of the
  cross-entropy, focal, boundary and Hausdorff terms.
* Labels out of range: an integer label outside ``[0, C)`` (binary and
  multilabel: outside {0, 1}) that is not ``ignore_index`` raises eagerly;
  under ``jit`` it makes the loss NaN at the image (or pooled batch) that
  holds it, never the loss of a clipped label.
* Distance maps (:func:`jaxloss.distance_transform`) are finite on every
  mask; the boundary and Hausdorff maps of an empty or full channel are 0
  (MONAI).
"""

from jaxloss.segmentation.boundary import boundary_loss as boundary_loss
from jaxloss.segmentation.boundary import cldice_loss as cldice_loss
from jaxloss.segmentation.boundary import hausdorff_dt_loss as hausdorff_dt_loss
from jaxloss.segmentation.compound import dice_ce_loss as dice_ce_loss
from jaxloss.segmentation.compound import dice_focal_loss as dice_focal_loss
from jaxloss.segmentation.lovasz import lovasz_hinge_loss as lovasz_hinge_loss
from jaxloss.segmentation.lovasz import lovasz_softmax_loss as lovasz_softmax_loss
from jaxloss.segmentation.overlap import dice_loss as dice_loss
from jaxloss.segmentation.overlap import focal_tversky_loss as focal_tversky_loss
from jaxloss.segmentation.overlap import generalized_dice_loss as generalized_dice_loss
from jaxloss.segmentation.overlap import jaccard_loss as jaccard_loss
from jaxloss.segmentation.overlap import tversky_loss as tversky_loss

__all__ = [
    "boundary_loss",
    "cldice_loss",
    "dice_ce_loss",
    "dice_focal_loss",
    "dice_loss",
    "focal_tversky_loss",
    "generalized_dice_loss",
    "hausdorff_dt_loss",
    "jaccard_loss",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
    "tversky_loss",
]

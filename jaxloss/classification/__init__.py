"""Classification losses: the cross-entropy family, focal, hinge and noise-robust losses,
distillation, long-tail and multi-label losses.

Conventions: logits (or probabilities with ``from_logits=False``) carry the
class axis last (``axis=-1``). Targets are integer class indices (the shape of
the logits without the class axis) or floating per-class probabilities /
one-hot (the shape of the logits): the dtype decides, at trace time. Unless a
loss says otherwise, ``reduction="none"`` is per position (the class axis
reduced). Half-precision inputs are computed in float32 and returned in their
dtype.
"""

from jaxloss.classification.bitempered import (
    bi_tempered_logistic_loss as bi_tempered_logistic_loss,
)
from jaxloss.classification.cross_entropy import (
    binary_cross_entropy_loss as binary_cross_entropy_loss,
)
from jaxloss.classification.cross_entropy import cross_entropy_loss as cross_entropy_loss
from jaxloss.classification.cross_entropy import focal_loss as focal_loss
from jaxloss.classification.cross_entropy import (
    poly1_cross_entropy_loss as poly1_cross_entropy_loss,
)
from jaxloss.classification.cross_entropy import sigmoid_focal_loss as sigmoid_focal_loss
from jaxloss.classification.ctc import ctc_loss as ctc_loss
from jaxloss.classification.distillation import cosine_distance_loss as cosine_distance_loss
from jaxloss.classification.distillation import distillation_loss as distillation_loss
from jaxloss.classification.distillation import jsd_consistency_loss as jsd_consistency_loss
from jaxloss.classification.longtail import class_balanced_weights as class_balanced_weights
from jaxloss.classification.longtail import ldam_loss as ldam_loss
from jaxloss.classification.longtail import logit_adjusted_loss as logit_adjusted_loss
from jaxloss.classification.longtail import ohem_cross_entropy_loss as ohem_cross_entropy_loss
from jaxloss.classification.longtail import seesaw_loss as seesaw_loss
from jaxloss.classification.multilabel import asymmetric_loss as asymmetric_loss
from jaxloss.classification.multilabel import (
    balanced_binary_cross_entropy_loss as balanced_binary_cross_entropy_loss,
)
from jaxloss.classification.robust import (
    generalized_cross_entropy_loss as generalized_cross_entropy_loss,
)
from jaxloss.classification.robust import hinge_loss as hinge_loss
from jaxloss.classification.robust import js_divergence_loss as js_divergence_loss
from jaxloss.classification.robust import kl_divergence_loss as kl_divergence_loss
from jaxloss.classification.robust import multiclass_hinge_loss as multiclass_hinge_loss
from jaxloss.classification.robust import squared_hinge_loss as squared_hinge_loss
from jaxloss.classification.robust import (
    symmetric_cross_entropy_loss as symmetric_cross_entropy_loss,
)

__all__ = [
    "asymmetric_loss",
    "balanced_binary_cross_entropy_loss",
    "bi_tempered_logistic_loss",
    "binary_cross_entropy_loss",
    "class_balanced_weights",
    "cosine_distance_loss",
    "cross_entropy_loss",
    "ctc_loss",
    "distillation_loss",
    "focal_loss",
    "generalized_cross_entropy_loss",
    "hinge_loss",
    "js_divergence_loss",
    "jsd_consistency_loss",
    "kl_divergence_loss",
    "ldam_loss",
    "logit_adjusted_loss",
    "multiclass_hinge_loss",
    "ohem_cross_entropy_loss",
    "poly1_cross_entropy_loss",
    "seesaw_loss",
    "sigmoid_focal_loss",
    "squared_hinge_loss",
    "symmetric_cross_entropy_loss",
]

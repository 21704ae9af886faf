"""Classification losses: the cross-entropy family, focal, hinge and noise-robust losses.

Conventions: logits (or probabilities with ``from_logits=False``) carry the
class axis last (``axis=-1``). Targets are integer class indices (the shape of
the logits without the class axis) or floating per-class probabilities /
one-hot (the shape of the logits): the dtype decides, at trace time. Unless a
loss says otherwise, ``reduction="none"`` is per position (the class axis
reduced). Half-precision inputs are computed in float32 and returned in their
dtype.
"""

from jaxloss.classification import cross_entropy, ctc, robust
from jaxloss.classification.cross_entropy import *  # noqa: F403
from jaxloss.classification.ctc import *  # noqa: F403
from jaxloss.classification.robust import *  # noqa: F403

__all__: list[str] = [*cross_entropy.__all__, *robust.__all__, *ctc.__all__]

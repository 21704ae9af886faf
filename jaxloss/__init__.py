"""jaxloss: loss functions for training computer-vision models in JAX.

Every loss is a pure function ``loss(predictions, targets, *, hyperparameters,
where=None, weights=None, reduction="mean")`` that works under ``jit``,
``vmap`` and ``grad``. See ``jaxloss.names()`` for the catalogue.
"""

from jaxloss import (
    aggregate,
    classification,
    compose,
    detection,
    distance,
    image,
    metric,
    registry,
    regression,
    segmentation,
    weighting,
)
from jaxloss.classification import *  # noqa: F403
from jaxloss.compose import combine, deep_supervision, objective, term
from jaxloss.detection import *  # noqa: F403
from jaxloss.distance import *  # noqa: F403
from jaxloss.image import *  # noqa: F403
from jaxloss.metric import *  # noqa: F403
from jaxloss.registry import get, names, register, unregister
from jaxloss.regression import *  # noqa: F403
from jaxloss.segmentation import *  # noqa: F403

__version__ = "0.1.0"

__all__ = [
    "aggregate",
    *classification.__all__,
    *detection.__all__,
    *distance.__all__,
    *image.__all__,
    *metric.__all__,
    *regression.__all__,
    *segmentation.__all__,
    "combine",
    "compose",
    "deep_supervision",
    "get",
    "names",
    "objective",
    "register",
    "registry",
    "term",
    "unregister",
    "vgg16_features",  # noqa: F405 (lazy, see __getattr__)
    "VGG16Features",  # noqa: F405 (lazy, see __getattr__)
    "weighting",
]


def __getattr__(name: str):
    # The VGG-16 feature extractor needs Flax, which jaxloss does not require:
    # import it on first use only.
    if name in ("vgg16_features", "VGG16Features"):
        from jaxloss.image import vgg

        return getattr(vgg, name)
    raise AttributeError(f"module 'jaxloss' has no attribute {name!r}")

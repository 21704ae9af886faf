"""Battery cases for the segmentation family (see tests/_case.py).

The pooled (batch) variants have no batch axis in their unreduced loss, so
the battery runs the per-image variants; tests/test_segmentation.py covers
pooling, and tests/test_sharding.py the cross-device pooling.
"""

from __future__ import annotations

import numpy as np

from tests._case import Case

C = 4


def _multiclass(**kwargs):
    def make(rng):
        logits = rng.normal(size=(4, 5, 6, C)).astype(np.float32) * 2
        labels = rng.integers(0, C, size=(4, 5, 6)).astype(np.int32)
        labels[..., 0] = 0  # class 3 may be absent from some images
        return (logits, labels), dict(kwargs)

    return make


def _extremes(**kwargs):
    def extremes():
        rng = np.random.default_rng(0)
        saturated = np.where(rng.random((2, 3, 3, C)) < 0.5, 1e4, -1e4).astype(np.float32)
        labels = rng.integers(0, C, size=(2, 3, 3)).astype(np.int32)
        background = np.zeros((2, 3, 3), np.int32)  # every foreground class absent
        single = background.copy()
        single[0, 1, 1] = 2  # a single-pixel object
        zeros = np.zeros((2, 3, 3, C), np.float32)
        return [
            ((saturated, labels), dict(kwargs)),
            ((saturated, background), dict(kwargs)),
            ((zeros, single), dict(kwargs)),
            ((saturated, single), dict(kwargs)),
        ]

    return extremes


def _binary(rng):
    logits = rng.normal(size=(4, 5, 6)).astype(np.float32) * 2
    targets = (rng.random((4, 5, 6)) < 0.4).astype(np.float32)
    return (logits, targets), {}


def _binary_extremes():
    rng = np.random.default_rng(1)
    saturated = np.where(rng.random((2, 3, 3)) < 0.5, 1e4, -1e4).astype(np.float32)
    targets = (rng.random((2, 3, 3)) < 0.5).astype(np.float32)
    return [((saturated, targets), {}), ((saturated, np.zeros_like(targets)), {}),
            ((np.zeros_like(saturated), np.ones_like(targets)), {})]


def _case(**kwargs) -> Case:
    return Case(make=_multiclass(**kwargs), extremes=_extremes(**kwargs), float_args=(0,),
                half_rtol=3e-2)


CASES = {
    "dice_loss": _case(),
    "jaccard_loss": _case(per_image=True),
    "tversky_loss": _case(alpha=0.3, beta=0.7),
    "focal_tversky_loss": _case(gamma=0.75),
    "generalized_dice_loss": _case(per_image=True),
    "lovasz_softmax_loss": _case(per_image=True),
    "boundary_loss": _case(),
    "hausdorff_dt_loss": _case(),
    "cldice_loss": _case(),
    "dice_ce_loss": _case(),
    "dice_focal_loss": _case(),
    "lovasz_hinge_loss": Case(make=_binary, extremes=_binary_extremes, float_args=(0, 1),
                              elementwise=True, half_rtol=3e-2),
}

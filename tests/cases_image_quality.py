"""Battery cases for the image-quality losses (see tests/_case.py).

Small images and windows keep the battery fast; tests/test_image_quality.py
and tests/reference/test_image_quality_reference.py cover the defaults.
"""

from __future__ import annotations

import numpy as np

from tests._case import Case


def _pair(shape, **kwargs):
    def make(rng):
        x = rng.random(shape).astype(np.float32)
        y = np.clip(x + 0.3 * rng.normal(size=shape), 0.0, 1.0).astype(np.float32)
        return (x, y), dict(kwargs)

    return make


def _pair_extremes(shape, **kwargs):
    def extremes():
        rng = np.random.default_rng(0)
        x = rng.random(shape).astype(np.float32)
        zeros = np.zeros(shape, np.float32)
        ones = np.ones(shape, np.float32)
        big = 255.0 * x
        return [
            ((x, x.copy()), dict(kwargs)),  # identical images
            ((zeros, zeros.copy()), dict(kwargs)),  # flat and identical
            ((zeros, ones), dict(kwargs)),  # flat, opposite ends of the range
            ((ones, x), dict(kwargs)),  # flat against textured
            ((big, 255.0 - big), {**kwargs, "max_val": 255.0}),  # 8-bit range
            ((x[:1], zeros[:1]), dict(kwargs)),  # a batch of one
        ]

    return extremes


def _single(shape, **kwargs):
    def make(rng):
        return (rng.random(shape).astype(np.float32),), dict(kwargs)

    return make


def _single_extremes(shape, **kwargs):
    def extremes():
        x = np.random.default_rng(1).random(shape).astype(np.float32)
        return [((np.zeros(shape, np.float32),), dict(kwargs)),  # flat: every difference 0
                ((1e4 * x,), dict(kwargs)),
                ((np.where(x < 0.5, -1e4, 1e4).astype(np.float32),), dict(kwargs))]

    return extremes


def _with_volume(extremes, shape, **kwargs):
    """``extremes`` plus flat and textured volumes ``(N, D, H, W, C)``."""
    def more():
        v = np.random.default_rng(2).random(shape).astype(np.float32)
        zeros = np.zeros(shape, np.float32)
        return extremes() + [((v, zeros), dict(kwargs)), ((zeros, zeros.copy()), dict(kwargs))]

    return more


_SSIM = {"window_size": 5}
_MS = {"window_size": 3, "power_factors": (0.4, 0.6)}

CASES = {
    "ssim_loss": Case(make=_pair((4, 12, 13, 2), **_SSIM),
                      extremes=_with_volume(_pair_extremes((2, 9, 10, 2), **_SSIM),
                                            (1, 6, 7, 8, 1), **_SSIM), elementwise=True),
    "ms_ssim_loss": Case(make=_pair((4, 24, 22, 2), **_MS),
                         extremes=_with_volume(_pair_extremes((2, 13, 12, 2), **_MS),
                                               (1, 7, 8, 6, 1), **_MS), elementwise=True),
    "psnr_loss": Case(make=_pair((4, 5, 6, 3)), extremes=_pair_extremes((2, 3, 4, 2)),
                      elementwise=True),
    "total_variation_loss": Case(make=_single((4, 5, 6, 3)),
                                 extremes=_single_extremes((2, 4, 5, 2)), float_args=(0,)),
}

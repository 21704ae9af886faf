"""Battery cases for the regression family (see tests/_case.py)."""

from __future__ import annotations

import numpy as np

from tests._case import Case


def _pair(rng: np.random.Generator, shape=(6, 5)):
    predictions = rng.normal(size=shape).astype(np.float32)
    targets = rng.normal(size=shape).astype(np.float32)
    return predictions, targets


def _make_pair(**kwargs):
    def make(rng):
        return _pair(rng), dict(kwargs)

    return make


def _pair_extremes(**kwargs):
    def extremes():
        zeros = np.zeros((4, 3), np.float32)
        huge = np.full((4, 3), 1e4, np.float32)
        mixed = np.array([[0.0, 1e4, -1e4], [1e-30, -1e-30, 3.0]] * 2, np.float32)
        return [
            ((zeros, zeros), dict(kwargs)),
            ((huge, -huge), dict(kwargs)),
            ((mixed, np.zeros_like(mixed)), dict(kwargs)),
        ]

    return extremes


CASES = {
    "mse_loss": Case(make=_make_pair(), extremes=_pair_extremes(), elementwise=True),
    "mae_loss": Case(make=_make_pair(), extremes=_pair_extremes(), elementwise=True),
}

"""Battery cases for jaxloss/metric/siamese.py (see tests/_case.py), and the two-view
inputs the contrastive cases share.

``where``/zero weights remove rows from the batch statistics of Barlow Twins
and VICReg, so the battery's where-equals-slicing and zero-weight-equals-
masking checks hold for these batch-wide losses too.
"""

from __future__ import annotations

import numpy as np

from tests._case import Case

N, D = 8, 5


def _views(rng):
    a = rng.normal(size=(N, D)).astype(np.float32)
    b = (a + 0.5 * rng.normal(size=(N, D))).astype(np.float32)
    return a, b


def _make_views(**kwargs):
    def make(rng):
        return _views(rng), dict(kwargs)

    return make


def _view_extremes(*settings):
    settings = settings or ({},)

    def extremes():
        rng = np.random.default_rng(1)
        a, b = _views(rng)
        zero = np.zeros_like(a)
        constant = np.ones_like(a)                 # zero variance in every feature
        out = []
        for i, kw in enumerate(settings):
            # Later settings (extreme temperatures, blocks) see the three inputs
            # that stress them most: zero, huge and identical embeddings.
            inputs = [
                ((zero, zero), dict(kw)),
                ((zero, b), dict(kw)),
                ((a * 1e4, b * 1e4), dict(kw)),
                ((a, a), dict(kw)),
                ((constant, constant), dict(kw)),
                ((a[:1], b[:1]), dict(kw)),
            ]
            out += inputs if i == 0 else [inputs[0], inputs[2], inputs[3]]
        return out

    return extremes


CASES = {
    "byol_loss": Case(make=_make_views(), extremes=_view_extremes()),
    "simsiam_loss": Case(make=_make_views(), extremes=_view_extremes()),
    "barlow_twins_loss": Case(make=_make_views(), extremes=_view_extremes()),
    "vicreg_loss": Case(make=_make_views(), extremes=_view_extremes()),
}

"""Battery cases for jaxloss.metric.self_supervised (see tests/_case.py).

``where``/zero weights remove rows from the batch (as anchors, keys and batch
statistics), so the battery's where-equals-slicing and zero-weight-equals-
masking checks hold for these batch-wide losses too.
"""

from __future__ import annotations

import numpy as np

from tests._case import Case

N, D = 8, 5


def _labelled(**kwargs):
    def make(rng):
        embeddings = rng.normal(size=(N, D)).astype(np.float32)
        labels = rng.integers(0, 3, size=(N,)).astype(np.int32)
        labels[:3] = [0, 0, 1]  # at least one positive pair
        return (embeddings, labels), dict(kwargs)

    return make


def _labelled_extremes(**kwargs):
    def extremes():
        rng = np.random.default_rng(0)
        x = rng.normal(size=(6, 4)).astype(np.float32)
        mixed = np.array([0, 0, 1, 1, 2, 2], np.int32)
        zero = np.zeros_like(x)
        half_zero = x.copy()
        half_zero[::2] = 0.0
        same = np.zeros(6, np.int32)               # a single label: no negatives
        distinct = np.arange(6, dtype=np.int32)    # no positives
        identical = np.repeat(x[:1], 6, axis=0)
        return [
            ((zero, mixed), dict(kwargs)),
            ((half_zero, mixed), dict(kwargs)),
            ((x * 1e4, mixed), dict(kwargs)),
            ((x, same), dict(kwargs)),
            ((x, distinct), dict(kwargs)),
            ((identical, mixed), dict(kwargs)),
            ((x[:1], mixed[:1]), dict(kwargs)),                  # a batch of one
            ((x, mixed), dict(kwargs, temperature=1e-3)),       # logits of +-1e3
            ((x, mixed), dict(kwargs, temperature=1e-3, block_size=4)),
        ]

    return extremes


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
    "ntxent_loss": Case(make=_labelled(), extremes=_labelled_extremes(), float_args=(0,),
                        mean_is_mean_of_none=False),
    "info_nce_loss": Case(make=_make_views(temperature=0.2),
                          extremes=_view_extremes({}, {"temperature": 1e-3},
                                                  {"temperature": 1e-3, "block_size": 3})),
    "supcon_loss": Case(make=_labelled(), extremes=_labelled_extremes(), float_args=(0,),
                        mean_is_mean_of_none=False),
    "clip_loss": Case(make=_make_views(),
                      extremes=_view_extremes({}, {"temperature": 1e-3},
                                              {"temperature": 1e-3, "block_size": 3})),
    "siglip_loss": Case(make=_make_views(),
                        extremes=_view_extremes({}, {"scale": 1e3, "bias": 1e3},
                                                {"scale": 1e3, "block_size": 3})),
    "byol_loss": Case(make=_make_views(), extremes=_view_extremes()),
    "simsiam_loss": Case(make=_make_views(), extremes=_view_extremes()),
    "barlow_twins_loss": Case(make=_make_views(), extremes=_view_extremes()),
    "vicreg_loss": Case(make=_make_views(), extremes=_view_extremes()),
}

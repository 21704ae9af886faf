"""Battery cases for jaxloss/metric/contrastive.py (see tests/_case.py).

``where``/zero weights remove rows from the batch (as anchors and keys), so
the battery's where-equals-slicing and zero-weight-equals-masking checks hold
for these batch-wide losses too.
"""

from __future__ import annotations

import numpy as np

from tests._case import Case
from tests.cases_metric_siamese import D, N, _make_views, _view_extremes


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
}

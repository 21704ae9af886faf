"""Battery cases for jaxloss/metric/proxies.py and ranking.py (see tests/_case.py).

Proxy losses take ``(embeddings (N, d), labels (N,), proxies (d, C))``: the
proxies are floating (cast in the half-precision test) but have no batch axis.
Half of the cases run the chunked path (``block_size=2`` with ``C = 5``, a
non-divisor), so that jit/vmap/where/jacfwd cover the scan. The extreme inputs
are the margin-softmax losses' (cosines exactly +-1, zero norms, huge norms, a
single class). ProxyAnchor, lifted structure and FastAP are batch losses (their
mean is not the mean of ``"none"``); a zero weight removes a row like ``where``.
"""

from __future__ import annotations

import numpy as np

from tests._case import Case
from tests.cases_metric_batch import _batch_extremes, _make_batch
from tests.cases_metric_margin import C, D, N
from tests.cases_metric_margin import _extremes as _margin_extremes


def _make(subcenters: int = 1, **kwargs):
    def make(rng):
        x = rng.normal(size=(N, D)).astype(np.float32)
        labels = rng.integers(0, C, size=N).astype(np.int32)
        proxies = rng.normal(size=(D, C * subcenters)).astype(np.float32)
        return (x, labels, proxies), dict(kwargs)

    return make


def _extremes(subcenters: int = 1, *settings: dict):
    return _margin_extremes(subcenters, *settings, key="centers_per_class")


_PROXY = {"float_args": (0, 2), "batch_args": (0, 1)}

CASES = {
    "proxy_anchor_loss": Case(
        make=_make(block_size=2),
        extremes=_extremes(1, {}, {"alpha": 1e4, "block_size": 2}),
        mean_is_mean_of_none=False, **_PROXY),
    "proxy_nca_loss": Case(
        make=_make(softmax_scale=3.0),
        extremes=_extremes(1, {"block_size": 2}, {"softmax_scale": 1e4}), **_PROXY),
    "normalized_softmax_loss": Case(
        make=_make(temperature=0.1, block_size=2),
        extremes=_extremes(1, {}, {"temperature": 1e-4, "block_size": 3}), **_PROXY),
    "soft_triple_loss": Case(
        make=_make(subcenters=3, centers_per_class=3, la=8.0, gamma=0.2),
        extremes=_extremes(3, {}, {"la": 1e4, "gamma": 1e-4, "block_size": 2}), **_PROXY),
    "lifted_structure_loss": Case(
        make=_make_batch(neg_margin=0.8), extremes=_batch_extremes({"pos_margin": 0.5}),
        float_args=(0,), mean_is_mean_of_none=False),
    "fast_ap_loss": Case(
        make=_make_batch(), extremes=_batch_extremes(),
        float_args=(0,), mean_is_mean_of_none=False),
}

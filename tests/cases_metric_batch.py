"""Battery cases for jaxloss/metric/batch.py (see tests/_case.py).

The batch-wide losses (batch_triplet, npair, circle, multi_similarity) couple
the rows: a row is also a positive or negative of the others. The battery's
weights test compares ``weights`` 0 on row 0 (row 0 stays a key) with
``where`` False on row 0 (row 0 leaves the batch), so their inputs put row 0
in a class of its own, on the far side of the sphere from a tight cluster
holding every other row: as a key it then changes no other row's loss (to
far below float32 resolution). Their own tests (tests/test_metric_batch.py)
check ``where``/``weights`` on generic inputs.
"""

from __future__ import annotations

import numpy as np

from tests._case import Case

_LABELS = np.array([9, 1, 1, 2, 2, 1, 1, 2, 2, 3], np.int32)


def _clustered(rng: np.random.Generator, n: int = 10, d: int = 6) -> np.ndarray:
    axis = np.zeros(d, np.float32)
    axis[0] = 3.0
    x = axis + 0.5 * rng.normal(size=(n, d))
    x[0] = -axis + 0.5 * rng.normal(size=d)
    return x.astype(np.float32)


def _make_batch(**kwargs):
    def make(rng):
        return (_clustered(rng), _LABELS.copy()), dict(kwargs)

    return make


def _batch_extremes(*settings):
    settings = settings or ({},)

    def extremes():
        rng = np.random.default_rng(1)
        zeros = np.zeros((4, 3), np.float32)
        pairs = np.array([0, 0, 1, 1], np.int32)
        huge = (1e4 * rng.normal(size=(6, 3))).astype(np.float32)
        same = np.tile(rng.normal(size=(1, 3)).astype(np.float32), (4, 1))
        tiny = (1e-30 * rng.normal(size=(4, 3))).astype(np.float32)
        inputs = [
            (zeros, pairs),                                      # zero-norm embeddings
            (huge, np.array([0, 1, 0, 1, 2, 2], np.int32)),
            (same, pairs),                                       # identical embeddings
            (tiny, pairs),
            (rng.normal(size=(1, 3)).astype(np.float32), np.array([0], np.int32)),  # N = 1
            (rng.normal(size=(5, 3)).astype(np.float32), np.zeros(5, np.int32)),    # one label
            (rng.normal(size=(4, 3)).astype(np.float32), np.arange(4, dtype=np.int32)),
        ]
        # Every input at the first setting; the other settings see the three
        # that stress them most (zero norms, huge norms, identical embeddings).
        return ([(args, dict(settings[0])) for args in inputs]
                + [(args, dict(kw)) for kw in settings[1:] for args in inputs[:3]])

    return extremes


CASES = {
    "batch_triplet_loss": Case(
        make=_make_batch(mining="hard", margin=0.1),
        extremes=_batch_extremes({"mining": "all"}, {"mining": "hard"},
                                 {"mining": "semihard", "margin": 0.5},
                                 {"mining": "all", "distance": "cosine"},
                                 {"mining": "hard", "distance": "squared", "normalize": False}),
        float_args=(0,), mean_is_mean_of_none=False),
    "npair_loss": Case(make=_make_batch(), extremes=_batch_extremes({}, {"normalize": False}),
                       float_args=(0,), mean_is_mean_of_none=False),
    "circle_loss": Case(make=_make_batch(), extremes=_batch_extremes(),
                        float_args=(0,), mean_is_mean_of_none=False),
    "multi_similarity_loss": Case(make=_make_batch(), extremes=_batch_extremes(),
                                  float_args=(0,)),
}

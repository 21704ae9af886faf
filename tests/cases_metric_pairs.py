"""Battery cases for jaxloss/metric/pairs.py (see tests/_case.py).

The batch-wide losses (batch_triplet, npair, circle, multi_similarity) couple
the rows: a row is also a positive or negative of the others. The battery's
weights test compares ``weights`` 0 on row 0 (row 0 stays a key) with
``where`` False on row 0 (row 0 leaves the batch), so their inputs put row 0
in a class of its own, on the far side of the sphere from a tight cluster
holding every other row: as a key it then changes no other row's loss (to
far below float32 resolution). Their own tests (tests/test_metric_pairs.py)
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


def _make_pairs(**kwargs):
    def make(rng):
        x1 = rng.normal(size=(8, 5)).astype(np.float32)
        x2 = rng.normal(size=(8, 5)).astype(np.float32)
        similar = np.arange(8) % 3 == 0
        return (x1, x2, similar), dict(kwargs)

    return make


def _pair_extremes():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    zeros = np.zeros((4, 3), np.float32)
    mixed = np.array([True, False, True, False])
    out = []
    for kw in ({}, {"squared": True}, {"normalize": False}, {"distance": "squared"},
               {"distance": "cosine"}, {"margin": 0.0}):
        out += [((x, x.copy(), mixed), kw), ((zeros, zeros, mixed), kw),
                ((1e4 * x, -1e4 * x, mixed), kw), ((x, zeros, mixed), kw)]
    return out


def _make_triplets(**kwargs):
    def make(rng):
        return tuple(rng.normal(size=(8, 5)).astype(np.float32) for _ in range(3)), dict(kwargs)

    return make


def _triplet_extremes():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    zeros = np.zeros((4, 3), np.float32)
    out = []
    for kw in ({}, {"eps": 0.0}, {"p": 1.0}, {"p": 3.0}, {"p": 0.5, "eps": 0.0},
               {"swap": True, "eps": 0.0}):
        out += [((x, x.copy(), x.copy()), kw), ((zeros, zeros, zeros), kw),
                ((1e4 * x, -1e4 * x, x), kw), ((x, x - np.float32(1e-6), zeros), kw)]
    return out


def _make_center(rng):
    x = rng.normal(size=(8, 4)).astype(np.float32)
    labels = (np.arange(8) % 3).astype(np.int32)
    centers = rng.normal(size=(3, 4)).astype(np.float32)
    return (x, labels, centers), {}


def _center_extremes():
    rng = np.random.default_rng(4)
    centers = rng.normal(size=(3, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 0], np.int32)
    return [
        ((centers[labels], labels, centers), {}),                       # on the centres
        ((1e4 * np.ones((4, 4), np.float32), labels, -1e4 * np.ones((3, 4), np.float32)), {}),
        ((np.zeros((4, 4), np.float32), labels, np.zeros((3, 4), np.float32)), {}),
        ((np.zeros((1, 4), np.float32), np.array([2], np.int32), centers), {}),
    ]


CASES = {
    "contrastive_loss": Case(make=_make_pairs(margin=1.2), extremes=_pair_extremes,
                             elementwise=True),
    "triplet_margin_loss": Case(make=_make_triplets(margin=0.8, p=2.0),
                                extremes=_triplet_extremes, float_args=(0, 1, 2),
                                elementwise=True),
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
    "center_loss": Case(make=_make_center, extremes=_center_extremes, float_args=(0, 2),
                        batch_args=(0, 1)),
}

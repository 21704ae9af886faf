"""Battery cases for jaxloss/metric/pairs.py (see tests/_case.py): explicit pairs and
triplets, and the center loss."""

from __future__ import annotations

import numpy as np

from tests._case import Case


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
    "center_loss": Case(make=_make_center, extremes=_center_extremes, float_args=(0, 2),
                        batch_args=(0, 1)),
}

"""Battery cases for the dense-head detection losses (see tests/_case.py), and the random
problems the reference tests of the assignment and the YOLOv8 criterion share.

Extremes: logits of +-1e4, targets exactly 0 and 1 (and probabilities
exactly 0 and 1 with ``from_logits=False``); DFL targets at the bins' ends
and on bin edges; degenerate, identical, disjoint and far-apart boxes for
SIoU; zero-size, thin, identical and far-apart rotated boxes and angles of
+-pi/2 for ProbIoU and KLD.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from tests._case import Case
from tests.cases_detection import _box_make, extreme_box_pairs

F32 = np.float32


def _score_arrays(rng: np.random.Generator, shape=(6, 5)):
    logits = (3 * rng.normal(size=shape)).astype(F32)
    positive = rng.random(shape) < 0.3
    targets = np.where(positive, rng.uniform(0.05, 1.0, shape), 0.0).astype(F32)
    return logits, targets


def _score_make(rng):
    return _score_arrays(rng), {}


def _score_extremes():
    logits, targets = _score_arrays(np.random.default_rng(1))
    huge = np.where(logits > 0, 1e4, -1e4).astype(F32)
    ones, zeros = np.ones_like(targets), np.zeros_like(targets)
    probs = (logits > 0).astype(F32)                              # probabilities 0 and 1
    return [((huge, targets), {}), ((-huge, targets), {}), ((huge, ones), {}),
            ((huge, zeros), {}), ((zeros, zeros), {}),
            ((probs, targets), {"from_logits": False}),
            ((probs, 1 - probs), {"from_logits": False}),
            ((probs, ones), {"from_logits": False})]


def _heatmaps(rng: np.random.Generator):
    logits = (2 * rng.normal(size=(4, 5, 5, 2))).astype(F32)
    heat = (rng.uniform(0, 1, logits.shape) ** 3).astype(F32)
    heat[:, 2, 2, 0] = 1.0
    heat[:, 1, 3, 1] = 1.0
    return logits, heat


def _heat_make(rng):
    return _heatmaps(rng), {}


def _heat_extremes():
    logits, heat = _heatmaps(np.random.default_rng(2))
    huge = np.where(logits > 0, 1e4, -1e4).astype(F32)
    probs = (logits > 0).astype(F32)
    return [((huge, heat), {}), ((-huge, heat), {}), ((huge, (heat == 1).astype(F32)), {}),
            ((np.zeros_like(logits), np.zeros_like(heat)), {}),
            ((probs, heat), {"from_logits": False}), ((1 - probs, heat), {"from_logits": False})]


def _dfl_arrays(rng: np.random.Generator, bins: int = 8):
    logits = (2 * rng.normal(size=(6, 4, bins))).astype(F32)
    targets = rng.uniform(0, bins - 1, (6, 4)).astype(F32)
    return logits, targets


def _dfl_make(rng):
    return _dfl_arrays(rng), {}


def _dfl_extremes():
    logits, targets = _dfl_arrays(np.random.default_rng(3))
    huge = np.where(logits > 0, 1e4, -1e4).astype(F32)
    edges = np.tile(np.array([0.0, 7.0, 3.0, 6.999], F32), (6, 1))   # 0, R, a bin, just below R
    return [((huge, targets), {}), ((huge, edges), {}), ((logits, edges), {}),
            ((np.zeros_like(logits), np.zeros_like(targets)), {}),
            ((-huge, np.full_like(targets, 7.0)), {})]


def random_rotated(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """``(cx, cy, w, h, theta)`` boxes ``shape + (5,)``: sides in [0.5, 5), any angle."""
    xy = rng.uniform(0, 10, shape + (2,))
    wh = rng.uniform(0.5, 5.0, shape + (2,))
    theta = rng.uniform(-np.pi, np.pi, shape + (1,))
    return np.concatenate([xy, wh, theta], axis=-1).astype(F32)


def _siou_extremes():
    # xyxy only (the formats share the IoU family's tested conversion): default eps and 0
    return [((p, t), kw) for p, t in extreme_box_pairs() for kw in ({}, {"eps": 0.0})]


def _rotated_make(rng):
    b1 = random_rotated(rng, (6,))
    b2 = b1 + rng.normal(scale=0.5, size=b1.shape)
    b2[:, 2:4] = np.abs(b2[:, 2:4]) + 0.1
    far = random_rotated(rng, (6,))
    pick = rng.random((6, 1)) < 0.5
    return (b1, np.where(pick, b2, far).astype(F32)), {}


def _rotated_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    h = np.pi / 2
    pairs = {
        "zero_size": ([[0, 0, 0, 0, 0], [1, 1, 0, 3, h], [0, 0, 2, 0, 0.3], [0, 0, 0, 0, 0]],
                      [[0, 0, 0, 0, 0], [1, 1, 2, 3, 0], [0, 0, 2, 0, 0.3], [1, 1, 2, 2, 0]]),
        "identical": ([[1, 2, 3, 4, 0.5], [0, 0, 1e-3, 1e-3, 0], [5, 5, 4, 4, h],
                       [0, 0, 1, 1, -h]],
                      [[1, 2, 3, 4, 0.5], [0, 0, 1e-3, 1e-3, 0], [5, 5, 4, 4, h],
                       [0, 0, 1, 1, -h]]),
        "right_angles": ([[0, 0, 4, 2, h], [0, 0, 4, 2, -h], [0, 0, 4, 2, h], [0, 0, 1e-3, 9, h]],
                         [[0, 0, 4, 2, 0], [0, 0, 4, 2, h], [1, 1, 4, 2, -h], [0, 0, 9, 1e-3, 0]]),
        "far_apart": ([[0, 0, 1, 1, 0], [-1e4, -1e4, 1, 1, 0], [0, 0, 1e4, 1, 0.1],
                       [1e4, 0, 2, 3, 1.0]],
                      [[1e4, 1e4, 1, 1, 0], [1e4, 1e4, 2, 3, 0], [0, 0, 1, 1e4, 0.1],
                       [-1e4, 0, 2, 3, -1.0]]),
    }
    return [(np.asarray(a, F32), np.asarray(b, F32)) for a, b in pairs.values()]


def _probiou_extremes():
    return [((a, b), kw) for a, b in _rotated_pairs() for kw in ({}, {"eps": 0.0})]


def _kld_extremes():
    settings = ({}, {"fun": "sqrt", "tau": 0.0})
    return [((a, b), kw) for a, b in _rotated_pairs() for kw in settings]


CASES = {
    "varifocal_loss": Case(make=_score_make, extremes=_score_extremes, elementwise=True),
    "quality_focal_loss": Case(make=_score_make, extremes=_score_extremes, elementwise=True),
    "gaussian_focal_loss": Case(make=_heat_make, extremes=_heat_extremes, elementwise=True),
    "distribution_focal_loss": Case(make=_dfl_make, extremes=_dfl_extremes),
    "siou_loss": Case(make=_box_make((6, 3)), extremes=_siou_extremes, elementwise=True),
    "probiou_loss": Case(make=_rotated_make, extremes=_probiou_extremes, elementwise=True),
    "kld_rotated_loss": Case(make=_rotated_make, extremes=_kld_extremes, elementwise=True,
                             half_rtol=5e-2),
}


# ----------------------------------------------------------------------------- problems


def assign_problem(rng: np.random.Generator):
    """A task-aligned assignment with ties, padding, an empty image and overlapping boxes.

    Three images on a 6 x 6 grid of unit cells; scores drawn from three values and
    predicted boxes from four, so that many anchors tie in the metric; image 1 has no
    ground truth, image 2 two boxes and two padded slots (label -1, zero box).
    """
    n, c, m = 3, 3, 4
    ys, xs = np.meshgrid(np.arange(6.0), np.arange(6.0), indexing="ij")
    anchors = (np.stack([xs.ravel(), ys.ravel()], -1) + 0.5).astype(F32)       # [36, 2]
    a = anchors.shape[0]
    scores = rng.choice(np.array([0.2, 0.5, 0.8], F32), size=(n, a, c))
    candidates = np.array([[1, 1, 3, 3], [2, 1, 5, 4], [0, 2, 4, 5], [3, 3, 6, 6]], F32)
    boxes = candidates[rng.integers(0, 4, size=(n, a))]
    labels = rng.integers(0, c, size=(n, m)).astype(np.int32)
    gt = np.zeros((n, m, 4), F32)
    mask = np.zeros((n, m), bool)
    for i, count in enumerate((4, 0, 2)):
        for j in range(count):
            xy = rng.uniform(0, 3, 2)
            gt[i, j] = np.concatenate([xy, xy + rng.uniform(1.5, 3.0, 2)])
            mask[i, j] = True
    gt[0, 3] = gt[0, 0] + np.array([0.5, 0.0, 0.5, 0.0], F32)                 # overlapping pair
    labels[~mask] = -1
    return scores, boxes, anchors, labels, gt, mask


def yolo_problem(rng: np.random.Generator):
    """Two levels (8 x 8 at stride 8, 4 x 4 at stride 16), two images, the second empty."""
    reg_max, c, n, m = 8, 3, 2, 3
    anchors, strides = [], []
    for size, stride in ((8, 8.0), (4, 16.0)):
        ys, xs = np.meshgrid(np.arange(size, dtype=F32), np.arange(size, dtype=F32),
                             indexing="ij")
        anchors.append(np.stack([xs.ravel(), ys.ravel()], -1) + 0.5)
        strides.append(np.full(size * size, stride, F32))
    anchors = np.concatenate(anchors).astype(F32)
    strides = np.concatenate(strides)
    a = anchors.shape[0]
    cls_logits = rng.normal(size=(n, a, c)).astype(F32)
    box_logits = rng.normal(size=(n, a, 4 * reg_max)).astype(F32)
    gt = np.zeros((n, m, 4), F32)
    for j in range(m):
        xy = rng.uniform(0, 34, 2)
        gt[0, j] = np.concatenate([xy, xy + rng.uniform(12, 30, 2)])
    labels = rng.integers(0, c, size=(n, m)).astype(np.int32)
    mask = np.zeros((n, m), bool)
    mask[0] = True
    return (cls_logits, box_logits, anchors, strides, labels, gt, mask), reg_max


@functools.cache
def yolo_step(seed: int = 3):
    """``(problem arrays, jit(value_and_grad(yolo_criterion)))`` in the class and box logits,
    with ``gt_mask`` an argument: one compiled program for the tests that share it."""
    import jaxloss

    problem, reg_max = yolo_problem(np.random.default_rng(seed))
    _, _, anchors, strides, labels, gt, _ = problem

    def loss(x, d, mask):
        return jaxloss.yolo_criterion(x, d, anchors, strides, labels, gt, mask, reg_max=reg_max)

    return problem, reg_max, jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))

"""Battery cases for the detection family (see tests/_case.py).

Boxes are ``(N, 4)`` or ``(N, A, 4)`` with the batch (masked) axis first; the
extremes are zero-area, identical, disjoint, zero-width (``x1 == x2``),
zero-height, point and far-apart (1e4) boxes, with the default eps and with
``eps=0``, in every box format; SSD with 0 positives, only positives and
saturated logits; Mask R-CNN with saturated logits.
"""

from __future__ import annotations

import numpy as np

from tests._case import Case

IOU_LOSSES = ("iou_loss", "giou_loss", "diou_loss", "ciou_loss", "eiou_loss")


def random_xyxy(rng: np.random.Generator, shape: tuple[int, ...], low: float = 0.0,
                high: float = 10.0) -> np.ndarray:
    """Legal ``xyxy`` boxes ``shape + (4,)``: corners in [low, high), sides in [0.5, 5)."""
    xy = rng.uniform(low, high, size=shape + (2,))
    wh = rng.uniform(0.5, 5.0, size=shape + (2,))
    return np.concatenate([xy, xy + wh], axis=-1).astype(np.float32)


def _box_make(shape: tuple[int, ...]):
    def make(rng):
        p = random_xyxy(rng, shape)
        # Half of the targets near their prediction (overlapping), half anywhere.
        near = p + rng.normal(scale=0.7, size=p.shape).astype(np.float32)
        near = np.concatenate([np.minimum(near[..., :2], near[..., 2:]),
                               np.maximum(near[..., :2], near[..., 2:])], axis=-1)
        far = random_xyxy(rng, shape)
        pick = rng.random(shape)[..., None] < 0.5
        return (p, np.where(pick, near, far).astype(np.float32)), {}

    return make


def _xyxy_to(boxes: np.ndarray, fmt: str) -> np.ndarray:
    x1, y1, x2, y2 = np.moveaxis(boxes, -1, 0)
    if fmt == "xywh":
        out = (x1, y1, x2 - x1, y2 - y1)
    elif fmt == "cxcywh":
        out = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    else:
        out = (x1, y1, x2, y2)
    return np.stack(out, axis=-1).astype(np.float32)


def extreme_box_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Degenerate and extreme matched pairs, each ``(4, 4)`` xyxy."""
    f = np.float32
    square = [1.0, 1.0, 3.0, 3.0]
    pairs = {
        # zero-area boxes: points, a zero-width and a zero-height box, a point on a box
        "zero_area": ([[1, 1, 1, 1], [0, 0, 0, 5], [0, 2, 3, 2], [2, 2, 2, 2]],
                      [[1, 1, 1, 1], [0, 0, 3, 3], [0, 2, 3, 2], [1, 1, 3, 3]]),
        "identical": ([square, [0, 0, 1e-3, 1e-3], [-5, -5, 5, 5], [0, 0, 1e4, 1e4]],
                      [square, [0, 0, 1e-3, 1e-3], [-5, -5, 5, 5], [0, 0, 1e4, 1e4]]),
        "disjoint": ([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]],
                     [[5, 5, 6, 6], [1, 0, 2, 1], [0, 1, 1, 2], [2, 2, 2, 2]]),
        "x1_eq_x2": ([[2, 0, 2, 3], [2, 2, 2, 2], [0, 0, 0, 0], [1, 0, 1, 4]],
                     [[1, 1, 4, 4], [2, 0, 2, 4], [0, 0, 1, 1], [1, 0, 1, 4]]),
        "far_apart": ([[0, 0, 1, 1], [-1e4, -1e4, -1e4 + 1, -1e4 + 1], [0, 0, 1e4, 1],
                       [-1e4, -1e4, 1e4, 1e4]],
                      [[1e4, 1e4, 1e4 + 1, 1e4 + 1], [1e4, 1e4, 1e4 + 2, 1e4 + 3],
                       [0, 0, 1, 1e4], [0, 0, 1, 1]]),
    }
    return [(np.asarray(p, f), np.asarray(t, f)) for p, t in pairs.values()]


def _box_extremes():
    out = []
    for p, t in extreme_box_pairs():
        for kwargs in ({}, {"eps": 0.0}):
            out.append(((p, t), dict(kwargs)))
        for fmt in ("xywh", "cxcywh"):
            out.append(((_xyxy_to(p, fmt), _xyxy_to(t, fmt)), {"box_format": fmt}))
    return out


def _ssd_arrays(rng: np.random.Generator, n: int = 4, a: int = 12, c: int = 3,
                positive_rate: float = 0.25):
    logits = rng.normal(scale=2.0, size=(n, a, c)).astype(np.float32)
    positive = rng.random((n, a)) < positive_rate
    labels = np.where(positive, rng.integers(1, c, size=(n, a)), 0).astype(np.int32)
    regression = rng.normal(size=(n, a, 4)).astype(np.float32)
    targets = rng.normal(size=(n, a, 4)).astype(np.float32)
    return logits, regression, labels, targets


def _ssd_make(rng):
    return _ssd_arrays(rng), {}


def _ssd_extremes():
    rng = np.random.default_rng(7)
    logits, regression, labels, targets = _ssd_arrays(rng)
    zeros = np.zeros_like(labels)
    all_pos = np.ones_like(labels)
    saturated = (np.where(rng.random(logits.shape) < 0.5, 1e4, -1e4)).astype(np.float32)
    nan_at_negatives = np.where((labels > 0)[..., None], targets, np.nan).astype(np.float32)
    return [
        ((logits, regression, zeros, targets), {}),                     # 0 positives
        ((logits, regression, all_pos, targets), {}),                   # no negatives
        ((saturated, regression, labels, targets), {}),
        ((np.zeros_like(logits), regression, labels, targets), {}),     # all CE tied
        ((logits, 1e4 * np.ones_like(regression), labels, -1e4 * np.ones_like(targets)), {}),
        ((logits, regression, labels, nan_at_negatives), {}),
        ((logits, regression, labels, targets), {"neg_pos_ratio": 0}),
        ((logits, regression, labels, targets), {"neg_pos_ratio": 100}),
    ]


def _mask_arrays(rng: np.random.Generator, r: int = 5, m: int = 4, k: int = 3):
    logits = rng.normal(scale=2.0, size=(r, m, m, k)).astype(np.float32)
    targets = (rng.random((r, m, m)) < 0.5).astype(np.float32)
    labels = rng.integers(0, k, size=(r,)).astype(np.int32)
    return logits, targets, labels


def _mask_make(rng):
    return _mask_arrays(rng), {}


def _mask_extremes():
    logits, targets, labels = _mask_arrays(np.random.default_rng(3))
    huge = np.where(logits > 0, 1e4, -1e4).astype(np.float32)
    return [((huge, targets, labels), {}), ((-huge, targets, labels), {}),
            ((np.zeros_like(logits), targets, labels), {}),
            ((logits, np.zeros_like(targets), labels), {}),
            ((logits, np.ones_like(targets), labels), {})]


CASES = {
    **{name: Case(make=_box_make((6, 3) if i % 2 == 0 else (8,)), extremes=_box_extremes,
                  elementwise=True)
       for i, name in enumerate(IOU_LOSSES)},
    # "mean" divides by the batch's positives (torchvision), "none" is the per-image sums.
    "ssd_multibox_loss": Case(make=_ssd_make, extremes=_ssd_extremes, float_args=(0, 1, 3),
                              mean_is_mean_of_none=False),
    "mask_rcnn_mask_loss": Case(make=_mask_make, extremes=_mask_extremes, float_args=(0, 1)),
}

"""Battery cases for the cross-entropy half of the classification family (see tests/_case.py)."""

from __future__ import annotations

import numpy as np

from tests._case import Case

BIG = 1e4


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _saturated(num_classes: int = 5, rows: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Logits of +-1e4 (a confident right or wrong answer per row) and index labels."""
    logits = np.full((rows, num_classes), -BIG, np.float32)
    logits[np.arange(rows), np.arange(rows) % num_classes] = BIG
    labels = np.array([0, 2, 2, 1][:rows], np.int32)   # rows 0 and 2 right, 1 and 3 wrong
    return logits, labels


def _masked_class(num_classes: int = 5, rows: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Random logits with class 4 masked out by -inf; labels never point at it."""
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(rows, num_classes)).astype(np.float32)
    logits[:, -1] = -np.inf
    labels = (np.arange(rows) % (num_classes - 1)).astype(np.int32)
    return logits, labels


def _one_hot(labels: np.ndarray, num_classes: int = 5) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


# binary_cross_entropy_loss / sigmoid_focal_loss: elementwise (6, 5).
def _make_bce(rng):
    logits = (2 * rng.normal(size=(6, 5))).astype(np.float32)
    targets = rng.uniform(size=(6, 5)).astype(np.float32)
    targets[:3] = np.round(targets[:3])                      # hard and soft labels
    pos_weight = rng.uniform(0.5, 2.0, size=(5,)).astype(np.float32)
    return (logits, targets), dict(pos_weight=pos_weight, label_smoothing=0.05)


def _bce_extremes():
    x = np.array([[BIG, -BIG, 0.0], [-BIG, BIG, 1.0]] * 2, np.float32)
    hard = np.array([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]] * 2, np.float32)
    soft = np.full_like(x, 0.5)
    probs = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 1.0]] * 2, np.float32)
    return [
        ((x, hard), {}),
        ((x, soft), dict(pos_weight=np.float32(3.0))),
        ((x, hard), dict(label_smoothing=0.1)),
        ((probs, hard), dict(from_logits=False)),
        ((probs, soft), dict(from_logits=False, label_smoothing=0.2)),
    ]


def _make_sigmoid_focal(rng):
    logits = (2 * rng.normal(size=(6, 5))).astype(np.float32)
    targets = (rng.uniform(size=(6, 5)) < 0.3).astype(np.float32)
    return (logits, targets), dict(gamma=2.0, alpha=0.25)


def _sigmoid_focal_extremes():
    x = np.array([[BIG, -BIG, 0.0], [-BIG, BIG, 1.0]] * 2, np.float32)
    hard = np.array([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]] * 2, np.float32)
    return [
        ((x, hard), dict(gamma=0.5)),
        ((x, hard), dict(gamma=2.0, alpha=None)),
        ((x, np.full_like(x, 0.3)), dict(gamma=0.25)),
        ((x, hard), dict(gamma=0.0)),
    ]


# cross_entropy_loss: logits (6, 5), index targets (6,).
def _make_ce(rng):
    logits = (2 * rng.normal(size=(6, 5))).astype(np.float32)
    labels = rng.integers(0, 5, size=(6,)).astype(np.int32)
    return (logits, labels), dict(label_smoothing=0.1)


def _ce_extremes():
    sat, labels = _saturated()
    masked, masked_labels = _masked_class()
    probs = _one_hot(labels)
    return [
        ((sat, labels), {}),
        ((sat, labels), dict(label_smoothing=0.2, class_weights=np.arange(1, 6, dtype=np.float32))),
        ((sat, _one_hot(labels)), dict(label_smoothing=0.1)),
        ((masked, masked_labels), {}),
        ((masked, _one_hot(masked_labels)), {}),
        # Zero class weight on the masked class: smoothing stays finite.
        ((masked, masked_labels),
         dict(label_smoothing=0.1, class_weights=np.array([1, 1, 1, 1, 0], np.float32))),
        ((probs, labels), dict(from_logits=False)),
        ((sat, np.full((4,), -100, np.int32)), {}),             # everything ignored
    ]


# focal_loss: logits (4, 3, 3, 5), index targets (4, 3, 3).
def _make_focal(rng):
    logits = (2 * rng.normal(size=(4, 3, 3, 5))).astype(np.float32)
    labels = rng.integers(0, 5, size=(4, 3, 3)).astype(np.int32)
    return (logits, labels), dict(gamma=2.0, alpha=0.25)


def _focal_extremes():
    sat, labels = _saturated()
    masked, masked_labels = _masked_class()
    return [
        ((sat, labels), dict(gamma=0.5)),
        ((sat, labels), dict(gamma=2.0, alpha=0.25)),
        ((sat, _one_hot(labels)), dict(gamma=0.5)),
        ((sat, labels), dict(gamma=0.0)),
        ((masked, masked_labels), dict(gamma=0.5)),
        ((masked, _one_hot(masked_labels)), dict(gamma=0.5, alpha=np.ones(5, np.float32))),
    ]


# poly1_cross_entropy_loss: logits (4, 3, 3, 5), soft probability targets.
def _make_poly(rng):
    logits = (2 * rng.normal(size=(4, 3, 3, 5))).astype(np.float32)
    targets = _softmax(rng.normal(size=(4, 3, 3, 5)))
    return (logits, targets), dict(epsilon=2.0)


def _poly_extremes():
    sat, labels = _saturated()
    masked, masked_labels = _masked_class()
    return [
        ((sat, labels), {}),
        ((sat, _one_hot(labels)), dict(epsilon=-1.0)),
        ((masked, masked_labels), {}),
        ((masked, _one_hot(masked_labels)), {}),
    ]


CASES = {
    "binary_cross_entropy_loss": Case(make=_make_bce, extremes=_bce_extremes, elementwise=True),
    "sigmoid_focal_loss": Case(make=_make_sigmoid_focal, extremes=_sigmoid_focal_extremes,
                               elementwise=True),
    "cross_entropy_loss": Case(make=_make_ce, extremes=_ce_extremes, float_args=(0,)),
    "focal_loss": Case(make=_make_focal, extremes=_focal_extremes, float_args=(0,)),
    "poly1_cross_entropy_loss": Case(make=_make_poly, extremes=_poly_extremes),
}

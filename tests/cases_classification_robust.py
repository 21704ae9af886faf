"""Battery cases for the hinge, divergence, noise-robust and CTC losses (see tests/_case.py)."""

from __future__ import annotations

import numpy as np

from tests._case import Case

BIG = 1e4
C = 5


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _one_hot(labels: np.ndarray, num_classes: int = C) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


def _saturated(rows: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Logits of +-1e4 (a confident right or wrong answer per row) and index labels."""
    logits = np.full((rows, C), -BIG, np.float32)
    logits[np.arange(rows), np.arange(rows) % C] = BIG
    labels = np.array([0, 2, 2, 1][:rows], np.int32)   # rows 0 and 2 right, 1 and 3 wrong
    return logits, labels


def _masked_class(rows: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Random logits with the last class masked out by -inf; labels never point at it."""
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(rows, C)).astype(np.float32)
    logits[:, -1] = -np.inf
    labels = (np.arange(rows) % (C - 1)).astype(np.int32)
    return logits, labels


def _hard_probabilities() -> tuple[np.ndarray, np.ndarray]:
    """Probabilities with exact 0 and 1 (confident right, confident wrong, mixed)."""
    probs = np.array([[1.0, 0.0, 0.0, 0.0, 0.0],
                      [0.0, 1.0, 0.0, 0.0, 0.0],
                      [0.5, 0.5, 0.0, 0.0, 0.0],
                      [0.0, 0.0, 0.25, 0.25, 0.5]], np.float32)
    labels = np.array([0, 0, 1, 2], np.int32)
    return probs, labels


# hinge_loss / squared_hinge_loss: elementwise (6, 5), targets in {-1, +1}.
def _make_binary(rng):
    predictions = (2 * rng.normal(size=(6, 5))).astype(np.float32)
    targets = np.where(rng.uniform(size=(6, 5)) < 0.5, -1.0, 1.0).astype(np.float32)
    return (predictions, targets), {}


def _binary_extremes():
    x = np.array([[BIG, -BIG, 0.0], [-BIG, BIG, 1.0]] * 2, np.float32)
    signed = np.array([[1.0, -1.0, 1.0], [1.0, -1.0, 1.0]] * 2, np.float32)
    zero_one = np.array([[1, 0, 1], [1, 0, 0]] * 2, np.int32)
    return [
        ((x, signed), {}),
        ((x, zero_one), {}),
        ((x, zero_one.astype(bool)), {}),
        ((np.zeros((4, 3), np.float32), signed), {}),
    ]


# multiclass_hinge_loss: logits (6, 5), index targets (6,).
def _make_multiclass_hinge(rng):
    logits = (2 * rng.normal(size=(6, C))).astype(np.float32)
    labels = rng.integers(0, C, size=(6,)).astype(np.int32)
    class_weights = rng.uniform(0.5, 2.0, size=(C,)).astype(np.float32)
    return (logits, labels), dict(margin=1.0, p=1, class_weights=class_weights)


def _multiclass_hinge_extremes():
    saturated, labels = _saturated()
    masked, masked_labels = _masked_class()
    return [
        ((saturated, labels), {}),
        ((saturated, labels), dict(p=2, margin=0.5)),
        ((masked, masked_labels), dict(p=2)),
        ((np.zeros((4, C), np.float32), labels), dict(margin=0.0)),
    ]


# kl_divergence_loss / js_divergence_loss: predictions (6, 5), probability targets (6, 5).
def _make_divergence(rng):
    predictions = (2 * rng.normal(size=(6, C))).astype(np.float32)
    targets = _softmax(2 * rng.normal(size=(6, C)))
    targets[0] = _one_hot(np.array(2))                     # exact zeros in the targets
    return (predictions, targets), {}


def _divergence_extremes():
    saturated, labels = _saturated()
    masked, masked_labels = _masked_class()
    probs, prob_labels = _hard_probabilities()
    uniform = np.full((4, C), 1.0 / C, np.float32)
    return [
        ((saturated, _one_hot(labels)), {}),
        ((saturated, uniform), {}),
        ((masked, _one_hot(masked_labels)), {}),
        ((probs, _one_hot(prob_labels)), dict(from_logits=False)),
        ((probs, probs), dict(from_logits=False)),
        ((probs, uniform), dict(from_logits=False)),
    ]


# generalized_cross_entropy_loss / symmetric_cross_entropy_loss: logits (6, 5), targets (6,).
def _make_noise_robust(**kwargs):
    def make(rng):
        logits = (2 * rng.normal(size=(6, C))).astype(np.float32)
        labels = rng.integers(0, C, size=(6,)).astype(np.int32)
        return (logits, labels), dict(kwargs)

    return make


def _noise_robust_extremes(small: dict, large: dict):
    def extremes():
        saturated, labels = _saturated()
        masked, masked_labels = _masked_class()
        probs, prob_labels = _hard_probabilities()
        return [
            ((saturated, labels), small),
            ((saturated, labels), large),
            ((saturated, _one_hot(labels)), small),
            ((masked, masked_labels), large),
            ((masked, _one_hot(masked_labels)), small),
            ((probs, prob_labels), dict(small, from_logits=False)),
            ((probs, _one_hot(prob_labels)), dict(large, from_logits=False)),
        ]

    return extremes


# ctc_loss: logits (B=4, T=8, K=5), labels (4, 3), paddings (4, 8) and (4, 3).
def _make_ctc(rng):
    logits = rng.normal(size=(4, 8, C)).astype(np.float32)
    labels = rng.integers(1, C, size=(4, 3)).astype(np.int32)
    labels[1, 1] = labels[1, 0]                               # a repeated label
    logit_paddings = np.zeros((4, 8), np.float32)
    logit_paddings[2, 6:] = 1.0
    label_paddings = np.zeros((4, 3), np.float32)
    label_paddings[3, 1:] = 1.0
    return (logits, labels, logit_paddings, label_paddings), {}


def _ctc_extremes():
    rng = np.random.default_rng(3)
    signs = np.where(rng.uniform(size=(4, 6, C)) < 0.5, -BIG, BIG).astype(np.float32)
    labels = np.array([[1, 2, 3], [1, 1, 1], [4, 4, 2], [2, 3, 4]], np.int32)
    no_pad = np.zeros((4, 6), np.float32)
    all_pad = np.ones((4, 6), np.float32)
    no_label_pad = np.zeros((4, 3), np.float32)
    all_label_pad = np.ones((4, 3), np.float32)
    logits = rng.normal(size=(4, 6, C)).astype(np.float32)
    short = logits[:, :2]                                     # infeasible: 2 frames, 3+ labels
    return [
        ((signs, labels, no_pad, no_label_pad), {}),
        ((short, labels, no_pad[:, :2], no_label_pad), {}),
        ((logits, labels, no_pad, all_label_pad), {}),         # label length 0
        ((logits, labels, all_pad, all_label_pad), {}),        # no frames, no labels
        ((logits, labels, all_pad, no_label_pad), {}),         # no frames, labels: infeasible
        ((signs, labels - 1, no_pad, no_label_pad), dict(blank_id=4)),
    ]


CASES = {
    "hinge_loss": Case(make=_make_binary, extremes=_binary_extremes, elementwise=True),
    "squared_hinge_loss": Case(make=_make_binary, extremes=_binary_extremes, elementwise=True),
    "multiclass_hinge_loss": Case(make=_make_multiclass_hinge,
                                  extremes=_multiclass_hinge_extremes, float_args=(0,)),
    "kl_divergence_loss": Case(make=_make_divergence, extremes=_divergence_extremes,
                               elementwise=True),
    "js_divergence_loss": Case(make=_make_divergence, extremes=_divergence_extremes,
                               elementwise=True),
    "generalized_cross_entropy_loss": Case(
        make=_make_noise_robust(q=0.7),
        extremes=_noise_robust_extremes(dict(q=0.05), dict(q=1.0)),
        float_args=(0,)),
    "symmetric_cross_entropy_loss": Case(
        make=_make_noise_robust(alpha=0.1, beta=1.0),
        extremes=_noise_robust_extremes(dict(alpha=0.1, beta=1.0), dict(alpha=1.0, beta=0.0)),
        float_args=(0,)),
    "ctc_loss": Case(make=_make_ctc, extremes=_ctc_extremes, float_args=(0, 2, 3)),
}

"""Battery cases for the distillation, long-tail, multi-label and bi-tempered losses
(see tests/_case.py). Extremes: logits of +-1e4, class counts of 0 and 1, all labels
ignored, zero vectors, images with a single class."""

from __future__ import annotations

import numpy as np

from tests._case import Case

BIG = 1e4
C = 5
COUNTS = np.array([500.0, 60.0, 7.0, 1.0, 0.0], np.float32)     # a class of one, an empty one


def _saturated(rows: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Logits of +-1e4 (confident right for rows 0 and 2, confident wrong for 1 and 3)."""
    logits = np.full((rows, C), -BIG, np.float32)
    logits[np.arange(rows), np.arange(rows) % C] = BIG
    labels = np.array([0, 2, 2, 1][:rows], np.int32)
    return logits, labels


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(C, dtype=np.float32)[labels]


def _make_counted(**kwargs):
    """logits (6, 5), labels (6,), class counts (5,) with an empty class and a class of one."""
    def make(rng):
        logits = (2 * rng.normal(size=(6, C))).astype(np.float32)
        labels = rng.integers(0, C, size=(6,)).astype(np.int32)
        return (logits, labels, COUNTS.copy()), dict(kwargs)

    return make


def _counted_extremes(*settings: dict):
    def extremes():
        logits, labels = _saturated()
        rare = np.array([3, 4, 4, 0], np.int32)           # labels of the classes with 1 and 0
        ignored = np.full(4, -100, np.int32)
        zeros, ones = np.zeros(C, np.float32), np.ones(C, np.float32)
        cases = []
        for kwargs in settings:
            cases += [((logits, labels, COUNTS), kwargs), ((logits, rare, COUNTS), kwargs),
                      ((-logits, rare, zeros), kwargs), ((logits, labels, ones), kwargs),
                      ((logits, ignored, COUNTS), kwargs)]
        return cases

    return extremes


def _make_logit_adjusted(rng):
    logits = (2 * rng.normal(size=(6, C))).astype(np.float32)
    labels = rng.integers(0, C, size=(6,)).astype(np.int32)
    return (logits, labels, COUNTS / COUNTS.sum()), dict(tau=1.0)


def _logit_adjusted_extremes():
    logits, labels = _saturated()
    rare = np.array([3, 4, 4, 0], np.int32)
    priors = COUNTS / COUNTS.sum()
    return [((logits, labels, priors), {}), ((-logits, rare, priors), dict(tau=2.0)),
            ((logits, _one_hot(rare), priors), {}), ((logits, rare, np.zeros(C, np.float32)), {}),
            ((logits, np.full(4, -100, np.int32), priors), dict(tau=0.0))]


def _make_ohem(rng):
    logits = (2 * rng.normal(size=(4, 3, 3, C))).astype(np.float32)
    labels = rng.integers(0, C, size=(4, 3, 3)).astype(np.int32)
    # min_kept=0: the threshold alone decides, so masking a row equals slicing it off
    return (logits, labels), dict(threshold=0.7, min_kept=0)


def _ohem_extremes():
    logits, labels = _saturated()
    ignored = np.full(4, -100, np.int32)
    return [((logits, labels), {}), ((logits, labels), dict(threshold=0.0, min_kept=1)),
            ((logits, ignored), {}), ((logits, labels), dict(threshold=1.0, min_kept=0)),
            ((np.zeros((4, C), np.float32), labels), dict(min_kept=0))]


def _make_pair(scale_second: float = 3.0):
    def make(rng):
        first = (2 * rng.normal(size=(6, C))).astype(np.float32)
        second = (scale_second * rng.normal(size=(6, C))).astype(np.float32)
        return (first, second), {}

    return make


def _distillation_extremes():
    logits, _ = _saturated()
    return [((logits, -logits), {}), ((logits, logits), dict(temperature=0.5)),
            ((-logits, logits), dict(temperature=20.0)),
            ((np.zeros((4, C), np.float32), logits), {})]


def _make_jsd(rng):
    clean = (2 * rng.normal(size=(6, C))).astype(np.float32)
    aug1 = clean + rng.normal(size=(6, C)).astype(np.float32)
    aug2 = (2 * rng.normal(size=(6, C))).astype(np.float32)
    return (clean, aug1, aug2), {}


def _jsd_extremes():
    logits, _ = _saturated()
    rolled = np.roll(logits, 1, axis=1)
    return [((logits, rolled, -logits), {}), ((logits, logits, logits), {}),
            ((np.zeros((4, C), np.float32), logits, rolled), {})]


def _cosine_extremes():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    zero = np.zeros((4, 3), np.float32)
    return [((zero, x), {}), ((x, zero), {}), ((zero, zero), dict(eps=0.0)), ((x, x), {}),
            ((BIG * x, -BIG * x), {}), ((x, -x), dict(eps=0.0))]


def _make_multilabel(rng):
    logits = (2 * rng.normal(size=(6, C))).astype(np.float32)
    targets = (rng.uniform(size=(6, C)) < 0.3).astype(np.float32)
    return (logits, targets), {}


def _asymmetric_extremes():
    signs = np.where(np.random.default_rng(2).uniform(size=(4, C)) < 0.5, -BIG, BIG)
    signs = signs.astype(np.float32)
    targets = (np.arange(4 * C).reshape(4, C) % 3 == 0).astype(np.float32)
    return [((signs, targets), {}), ((signs, targets), dict(clip=0.0, gamma_pos=0.0)),
            ((signs, 1 - targets), dict(gamma_neg=0.5, gamma_pos=0.5)),
            ((np.zeros((4, C), np.float32), targets), dict(clip=1.0))]


def _balanced_extremes():
    signs = np.where(np.random.default_rng(3).uniform(size=(4, C)) < 0.5, -BIG, BIG)
    signs = signs.astype(np.float32)
    targets = np.zeros((4, C), np.float32)
    targets[0] = 1.0                                  # an image of positives only
    targets[2, :2] = 1.0                              # row 1 and 3: negatives only
    return [((signs, targets), {}), ((-signs, targets), {}),
            ((np.zeros((4, C), np.float32), targets), {})]


def _make_bi_tempered(rng):
    logits = (2 * rng.normal(size=(6, C))).astype(np.float32)
    labels = rng.integers(0, C, size=(6,)).astype(np.int32)
    return (logits, labels), dict(t1=0.8, t2=1.2)


def _bi_tempered_extremes():
    logits, labels = _saturated()
    return [((logits, labels), {}), ((logits, labels), dict(t1=0.8, t2=1.2)),
            ((logits, labels), dict(t1=0.5, t2=2.0, label_smoothing=0.1)),
            ((logits, labels), dict(t1=0.2, t2=0.7)),
            ((-logits, _one_hot(labels)), dict(t1=0.8, t2=1.2)),
            ((np.zeros((4, C), np.float32), labels), dict(t1=0.5, t2=0.5))]


CASES = {
    "seesaw_loss": Case(make=_make_counted(p=0.8, q=2.0),
                        extremes=_counted_extremes({}, dict(p=0.0, q=0.0, eps=1.0)),
                        float_args=(0,), batch_args=(0, 1)),
    "ldam_loss": Case(make=_make_counted(max_margin=0.5, scale=30.0),
                      extremes=_counted_extremes(
                          {}, dict(class_weights=np.array([0.2, 1, 2, 5, 0], np.float32))),
                      float_args=(0,), batch_args=(0, 1)),
    "logit_adjusted_loss": Case(make=_make_logit_adjusted, extremes=_logit_adjusted_extremes,
                                float_args=(0,), batch_args=(0, 1)),
    "ohem_cross_entropy_loss": Case(make=_make_ohem, extremes=_ohem_extremes, float_args=(0,),
                                    mean_is_mean_of_none=False),
    "distillation_loss": Case(make=_make_pair(), extremes=_distillation_extremes,
                              elementwise=True),
    "jsd_consistency_loss": Case(make=_make_jsd, extremes=_jsd_extremes, float_args=(0, 1, 2),
                                 elementwise=True),
    "cosine_distance_loss": Case(make=_make_pair(1.0), extremes=_cosine_extremes,
                                 elementwise=True),
    "asymmetric_loss": Case(make=_make_multilabel, extremes=_asymmetric_extremes,
                            elementwise=True),
    "balanced_binary_cross_entropy_loss": Case(make=_make_multilabel,
                                               extremes=_balanced_extremes, elementwise=True),
    "bi_tempered_logistic_loss": Case(make=_make_bi_tempered, extremes=_bi_tempered_extremes,
                                      float_args=(0,)),
}

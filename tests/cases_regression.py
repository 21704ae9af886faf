"""Battery cases for the regression family (see tests/_case.py)."""

from __future__ import annotations

import numpy as np

from tests._case import Case


def _pair(rng: np.random.Generator, shape=(6, 5)):
    predictions = rng.normal(size=shape).astype(np.float32)
    targets = rng.normal(size=shape).astype(np.float32)
    return predictions, targets


def _make_pair(**kwargs):
    def make(rng):
        return _pair(rng), dict(kwargs)

    return make


def _residual_extremes():
    """Zero residuals, |r| = 1e4 both ways, and a mix with tiny (1e-30) residuals."""
    zeros = np.zeros((4, 3), np.float32)
    huge = np.full((4, 3), 1e4, np.float32)
    mixed = np.array([[0.0, 1e4, -1e4], [1e-30, -1e-30, 3.0]] * 2, np.float32)
    tiny = np.array([[1e-7, -1e-7, 1e-20], [2e-38, -3e-4, 1e-3]] * 2, np.float32)
    return [(zeros, zeros), (huge, -huge), (mixed, np.zeros_like(mixed)),
            (tiny, np.zeros_like(tiny))]


def _pair_extremes(*settings):
    """Every residual extreme under every hyperparameter setting (default: none)."""
    settings = settings or ({},)

    def extremes():
        return [(args, dict(kw)) for kw in settings for args in _residual_extremes()]

    return extremes


def _gaussian_make(rng):
    mean, targets = _pair(rng)
    var = rng.uniform(0.1, 2.0, size=mean.shape).astype(np.float32)
    return (mean, targets, var), {}


def _gaussian_extremes():
    out = []
    for (mean, targets) in _residual_extremes():
        for var in (np.zeros_like(mean), np.full_like(mean, 1e-12), np.full_like(mean, 1e-6),
                    np.full_like(mean, 1e4)):
            out.append(((mean, targets, var), {}))
        # Homoscedastic: one variance per row, last axis of size 1.
        out.append(((mean, targets, np.full(mean.shape[:-1] + (1,), 1e-9, np.float32)),
                    {"full": True}))
    return out


_ROBUST_ALPHAS = (0.0, 2.0, -np.inf, np.inf, -2.0, 1.0, 1e3, -1e3, 1e-7, 2.0 + 1e-6)

CASES = {
    "mse_loss": Case(make=_make_pair(), extremes=_pair_extremes(), elementwise=True),
    "mae_loss": Case(make=_make_pair(), extremes=_pair_extremes(), elementwise=True),
    "huber_loss": Case(
            make=_make_pair(delta=0.7),
            extremes=_pair_extremes({}, {"delta": 1e-4}, {"delta": 1e5}),
            elementwise=True),
    "smooth_l1_loss": Case(
            make=_make_pair(beta=0.8),
            extremes=_pair_extremes({}, {"beta": 0.0}, {"beta": 1e-6}, {"beta": 1e5}),
            elementwise=True),
    "log_cosh_loss": Case(make=_make_pair(), extremes=_pair_extremes(), elementwise=True),
    "charbonnier_loss": Case(
            make=_make_pair(eps=1e-3),
            extremes=_pair_extremes({}, {"eps": 0.0}, {"eps": 1.0}),
            elementwise=True),
    "cauchy_loss": Case(
            make=_make_pair(scale=1.5),
            extremes=_pair_extremes({}, {"scale": 1e-3}, {"scale": 1e4}),
            elementwise=True),
    "geman_mcclure_loss": Case(
            make=_make_pair(scale=1.5),
            extremes=_pair_extremes({}, {"scale": 1e-3}, {"scale": 1e4}),
            elementwise=True),
    "welsch_loss": Case(
            make=_make_pair(scale=1.5),
            extremes=_pair_extremes({}, {"scale": 1e-3}, {"scale": 1e4}),
            elementwise=True),
    "robust_loss": Case(
            make=_make_pair(alpha=0.7, scale=1.3),
            extremes=_pair_extremes(*({"alpha": a} for a in _ROBUST_ALPHAS),
                                    {"alpha": 0.0, "scale": 1e-2}, {"alpha": 5.0, "scale": 1e3}),
            elementwise=True),
    "quantile_loss": Case(
            make=_make_pair(tau=0.3),
            extremes=_pair_extremes({}, {"tau": 0.0}, {"tau": 1.0}),
            elementwise=True),
    "gaussian_nll_loss": Case(
            make=_gaussian_make, extremes=_gaussian_extremes, float_args=(0, 1, 2),
            elementwise=True),
}

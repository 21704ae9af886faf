"""Battery cases for the keypoint family (see tests/_case.py)."""

from __future__ import annotations

import numpy as np

from tests._case import Case

N, K = 6, 4


def _coordinates(rng: np.random.Generator, scale: float, shape=(N, K, 2)):
    p = (scale * rng.normal(size=shape)).astype(np.float32)
    t = (scale * rng.normal(size=shape)).astype(np.float32)
    return p, t


def _make_coordinates(scale: float, **kwargs):
    def make(rng):
        return _coordinates(rng, scale), dict(kwargs)

    return make


def _coordinate_extremes(*settings, coords: int = 2):
    """Zero residuals (Wing's log at 0, MPJPE's norm at 0), |r| = 1e4 both ways, tiny ones."""
    settings = settings or ({},)
    shape = (4, 3, coords)
    zeros = np.zeros(shape, np.float32)
    huge = np.full(shape, 1e4, np.float32)
    mixed = zeros.copy()
    mixed[0, 0], mixed[1, 1], mixed[2, 2] = 1e4, -1e4, 1e-30
    tiny = np.full(shape, 1e-20, np.float32)
    tiny[::2] = 2e-38
    pairs = [(zeros, zeros), (huge, -huge), (mixed, zeros), (tiny, zeros)]

    def extremes():
        return [(args, dict(kw)) for kw in settings for args in pairs]

    return extremes


# ----------------------------------------------------------------------------- heatmaps


def _heatmaps(rng: np.random.Generator, shape=(N, 5, 6, K)):
    targets = rng.uniform(0.0, 1.0, size=shape).astype(np.float32)
    predictions = (targets + 0.4 * rng.normal(size=shape)).astype(np.float32)
    return predictions, targets


def _adaptive_wing_make(rng):
    return _heatmaps(rng), {"theta": 0.3}


def _adaptive_wing_extremes():
    shape = (4, 3, 3, 2)
    zeros, ones = np.zeros(shape, np.float32), np.ones(shape, np.float32)
    half = np.full(shape, 0.5, np.float32)
    pairs = [(zeros, zeros), (ones, ones), (half, half), (np.full(shape, 1e4, np.float32), zeros),
             (np.full(shape, -1e4, np.float32), ones), (np.full(shape, 1e-30, np.float32), zeros),
             (half + np.float32(1e-7), half)]
    settings = ({}, {"alpha": 1.0 + 1e-6}, {"theta": 1e-6}, {"epsilon": 1e-3, "omega": 1e3})
    return [(pair, dict(kw)) for kw in settings for pair in pairs]


def _heatmap_mse_make(rng):
    # joint weights (K,): the battery slices the positional arrays, not the keywords
    (p, t), weights = _heatmaps(rng), rng.uniform(0.0, 2.0, size=K).astype(np.float32)
    return (p, t), {"keypoint_weights": weights, "top_k": 2}


def _heatmap_mse_extremes():
    shape = (4, 3, 3, 2)
    zeros = np.zeros(shape, np.float32)
    huge = np.full(shape, 1e4, np.float32)
    pairs = [(zeros, zeros), (huge, -huge), (np.full(shape, 1e-30, np.float32), zeros)]
    settings = ({}, {"top_k": 1}, {"top_k": 2, "keypoint_weights": np.zeros((4, 2), np.float32)})
    return [(pair, dict(kw)) for kw in settings for pair in pairs]


# ----------------------------------------------------------------------------- OKS


def _oks_make(rng):
    k = 17  # COCO's sigmas by default
    t = rng.uniform(0.0, 64.0, size=(N, k, 2)).astype(np.float32)
    p = (t + 4.0 * rng.normal(size=t.shape)).astype(np.float32)
    visibility = rng.uniform(size=(N, k)) < 0.7
    visibility[1] = False  # an instance with nothing visible
    areas = rng.uniform(100.0, 2000.0, size=N).astype(np.float32)
    return (p, t, visibility, areas), {}


def _oks_extremes():
    n, k = 4, 3
    sigmas = {"sigmas": np.array([0.05, 0.1, 1.0], np.float32)}
    t = np.zeros((n, k, 2), np.float32)
    near = t + np.float32(1e-3)
    visible, invisible = np.ones((n, k), bool), np.zeros((n, k), bool)
    areas = np.full(n, 100.0, np.float32)
    cases = [
        (t, t, visible, areas),                                   # identical
        (near, t, invisible, areas),                              # nothing visible
        (near, t, visible, np.zeros(n, np.float32)),              # zero area
        (t, t, visible, np.zeros(n, np.float32)),                 # zero area, zero error
        (np.full_like(t, 1e4), -np.full_like(t, 1e4), visible, areas),
        (near, t, visible, np.full(n, 1e30, np.float32)),
        (near, t, visible.astype(np.float32) * 1e-30, areas),     # tiny visibility weights
    ]
    return [(args, dict(sigmas)) for args in cases]


# ----------------------------------------------------------------------------- SimCC


def _simcc_make(rng):
    bins_x, bins_y = 8, 6
    zx = rng.normal(size=(N, K, bins_x)).astype(np.float32)
    zy = rng.normal(size=(N, K, bins_y)).astype(np.float32)
    qx = np.exp(-0.5 * (np.arange(bins_x) - rng.uniform(0, bins_x, size=(N, K, 1))) ** 2)
    qy = np.exp(-0.5 * (np.arange(bins_y) - rng.uniform(0, bins_y, size=(N, K, 1))) ** 2)
    return (zx, zy, qx.astype(np.float32), qy.astype(np.float32)), {"beta": 2.0}


def _simcc_extremes():
    shape_x, shape_y = (4, 2, 5), (4, 2, 3)
    onehot_x = np.zeros(shape_x, np.float32)
    onehot_x[..., 1] = 1.0
    onehot_y = np.zeros(shape_y, np.float32)
    onehot_y[..., 0] = 1.0
    big_x = np.where(onehot_x > 0, 1e4, -1e4).astype(np.float32)
    big_y = np.where(onehot_y > 0, -1e4, 1e4).astype(np.float32)  # confidently wrong
    zeros_x, zeros_y = np.zeros(shape_x, np.float32), np.zeros(shape_y, np.float32)
    arrays = [(big_x, big_y, onehot_x, onehot_y), (zeros_x, zeros_y, zeros_x, zeros_y),
              (big_x, big_y, zeros_x, zeros_y)]
    settings = ({}, {"label_softmax": False}, {"beta": 1e-3, "label_beta": 1e3})
    return [(a, dict(kw)) for kw in settings for a in arrays]


CASES = {
    "wing_loss": Case(
        make=_make_coordinates(8.0),
        extremes=_coordinate_extremes({}, {"omega": 1e-3, "epsilon": 1e-3}, {"omega": 1e4}),
        elementwise=True),
    "soft_wing_loss": Case(
        make=_make_coordinates(3.0),
        extremes=_coordinate_extremes({}, {"omega1": 1e-3, "epsilon": 1e-3}, {"omega2": 1e4}),
        elementwise=True),
    "mpjpe_loss": Case(
        make=lambda rng: (_coordinates(rng, 2.0, (N, K, 3)), {}),
        extremes=_coordinate_extremes(coords=3),
        elementwise=True),
    "oks_loss": Case(make=_oks_make, extremes=_oks_extremes, float_args=(0, 1, 3),
                     elementwise=True),
    "adaptive_wing_loss": Case(make=_adaptive_wing_make, extremes=_adaptive_wing_extremes,
                               elementwise=True),
    "heatmap_mse_loss": Case(make=_heatmap_mse_make, extremes=_heatmap_mse_extremes,
                             elementwise=True),
    "simcc_loss": Case(make=_simcc_make, extremes=_simcc_extremes, float_args=(0, 1, 2, 3)),
}

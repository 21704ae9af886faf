"""jaxloss.keypoint against its reference formulas, value and gradient.

mmpose, pycocotools and ultralytics are not importable here (mmpose needs a
compiled mmcv; ultralytics pulls OpenCV), so each reference is the formula of
the cited file rewritten in torch float64 (numpy for pycocotools), below or in
``bench/families_torch.py`` (shared with the ``families`` benchmark suite), and
fed the same random float32 inputs as jaxloss (torch's channels-first heatmaps
transposed to our channels-last):

* mmpose 1.x ``mmpose/models/losses/regression_loss.py``: ``WingLoss``,
  ``SoftWingLoss``, ``MPJPELoss``;
* mmpose 1.x ``mmpose/models/losses/heatmap_loss.py``: ``AdaptiveWingLoss``,
  ``KeypointMSELoss``, ``KeypointOHKMMSELoss``;
* mmpose 1.x ``mmpose/models/losses/classification_loss.py``: ``KLDiscretLoss``
  (with ``beta``, ``label_softmax``, ``label_beta``);
* pycocotools ``pycocotools/cocoeval.py``: ``COCOeval.computeOks``;
* ultralytics ``ultralytics/utils/loss.py``: ``KeypointLoss``;
* mmpose 1.x ``mmpose/codecs/utils/gaussian_heatmap.py``:
  ``generate_unbiased_gaussian_heatmaps``; ``mmpose/codecs/simcc_label.py``:
  ``SimCCLabel._generate_gaussian``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss
from bench.families_torch import mmpose_adaptive_wing as _mmpose_adaptive_wing
from bench.families_torch import mmpose_keypoint_mse as _mmpose_keypoint_mse
from bench.families_torch import mmpose_kl_discret as _mmpose_kl_discret
from bench.families_torch import mmpose_wing as _mmpose_wing
from bench.families_torch import ultralytics_keypoint_loss as _ultralytics_keypoint_loss
from jaxloss.keypoint._common import COCO_SIGMAS

RTOL, ATOL = 1e-5, 1e-6


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _torch_value_and_grad(fn, *arrays):
    """``fn(*tensors)`` in float64 and its gradient with respect to the first array."""
    tensors = [torch.tensor(np.asarray(a, np.float64), requires_grad=i == 0)
               for i, a in enumerate(arrays)]
    out = fn(*tensors)
    out.sum().backward()
    return out.detach().numpy(), tensors[0].grad.numpy()


def _jax_value_and_grad(fn, *arrays):
    arrays = tuple(jnp.asarray(a) for a in arrays)
    return jax.jit(jax.value_and_grad(lambda x, *rest: jnp.sum(fn(x, *rest))))(*arrays)


def _nchw(x):
    """torch's (N, K, H, W) heatmaps from our channels-last (N, H, W, K)."""
    return x.permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------- Wing family


def _mmpose_soft_wing(pred, target, omega1, omega2, epsilon):
    # SoftWingLoss.criterion: where(delta < omega1, delta, omega2 log(1 + delta/eps) + B)
    b = omega1 - omega2 * math.log(1.0 + omega1 / epsilon)
    delta = (target - pred).abs()
    losses = torch.where(delta < omega1, delta, omega2 * torch.log(1.0 + delta / epsilon) + b)
    return torch.mean(torch.sum(losses, dim=[1, 2]), dim=0)


WING = [
    ("wing", jaxloss.wing_loss, {}, lambda p, t: _mmpose_wing(p, t, 10.0, 2.0)),
    ("wing_1_0.5", jaxloss.wing_loss, {"omega": 1.0, "epsilon": 0.5},
     lambda p, t: _mmpose_wing(p, t, 1.0, 0.5)),
    ("soft_wing", jaxloss.soft_wing_loss, {}, lambda p, t: _mmpose_soft_wing(p, t, 2.0, 20.0, 0.5)),
    ("soft_wing_1_5_2", jaxloss.soft_wing_loss, {"omega1": 1.0, "omega2": 5.0, "epsilon": 2.0},
     lambda p, t: _mmpose_soft_wing(p, t, 1.0, 5.0, 2.0)),
]


@pytest.mark.parametrize("label, fn, kw, ref", WING, ids=[w[0] for w in WING])
def test_wing_family_against_mmpose(label, fn, kw, ref):
    shape = (3, 5, 2) if kw else (2, 17, 3)  # each loss at both shapes, one setting each
    rng = np.random.default_rng(len(shape) + shape[1])
    # residuals on both sides of every threshold (omega = 10 for Wing), and exact zeros
    p = (6.0 * rng.standard_normal(shape)).astype(np.float32)
    t = (6.0 * rng.standard_normal(shape)).astype(np.float32)
    p[0, 0] = t[0, 0]
    expected, g_expected = _torch_value_and_grad(ref, p, t)
    # mmpose sums over (K, D) and averages over N: K * D times our mean
    scale = shape[1] * shape[2]
    value, grad = _jax_value_and_grad(lambda a, b: scale * fn(a, b, **kw), p, t)
    _close(value, expected)
    _close(grad, g_expected)


def test_mpjpe_against_mmpose():
    rng = np.random.default_rng(0)
    p = rng.standard_normal((4, 6, 3)).astype(np.float32)
    t = rng.standard_normal((4, 6, 3)).astype(np.float32)
    t[1, 2] = p[1, 2]  # zero distance: torch's norm has a zero subgradient there too
    expected, g_expected = _torch_value_and_grad(
        lambda a, b: torch.mean(torch.norm(a - b, dim=-1)), p, t)  # MPJPELoss.forward
    value, grad = _jax_value_and_grad(jaxloss.mpjpe_loss, p, t)
    _close(value, expected)
    _close(grad, g_expected)


# ----------------------------------------------------------------------------- heatmaps


def _heatmaps(seed, shape):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, 1.0, size=shape).astype(np.float32)
    t[..., 0] = 0.0  # a background channel
    p = (t + 0.5 * rng.standard_normal(shape)).astype(np.float32)
    return p, t


@pytest.mark.parametrize("kw, shape", [
    ({}, (2, 6, 5, 3)), ({"alpha": 2.5, "omega": 5.0, "epsilon": 0.5, "theta": 0.2}, (3, 4, 4, 1))])
def test_adaptive_wing_against_mmpose(kw, shape):
    p, t = _heatmaps(len(kw) + shape[-1], shape)
    full = {"alpha": 2.1, "omega": 14.0, "epsilon": 1.0, "theta": 0.5, **kw}
    expected, g_expected = _torch_value_and_grad(
        lambda a, b: _mmpose_adaptive_wing(_nchw(a), _nchw(b), **full), p, t)
    value, grad = _jax_value_and_grad(lambda a, b: jaxloss.adaptive_wing_loss(a, b, **kw), p, t)
    _close(value, expected)
    _close(grad, g_expected)


def _mmpose_ohkm(output, target, target_weights, topk):
    # KeypointOHKMMSELoss.forward: both maps times the weight, mean over (H, W), then the
    # mean of each sample's topk, averaged over the batch
    w = target_weights[:, :, None, None]
    losses = ((output * w - target * w) ** 2).mean(dim=(2, 3))
    top = torch.topk(losses, k=topk, dim=1, sorted=False)[0]
    return (top.sum(dim=1) / topk).mean()


@pytest.mark.parametrize("shape", [(3, 6, 5, 4), (2, 8, 8, 17)])
def test_heatmap_mse_against_mmpose(shape):
    p, t = _heatmaps(shape[-1], shape)
    n, k = shape[0], shape[-1]
    visible = (np.random.default_rng(1).uniform(size=(n, k)) < 0.7).astype(np.float32)
    expected, g_expected = _torch_value_and_grad(
        lambda a, b: _mmpose_keypoint_mse(_nchw(a), _nchw(b)), p, t)
    value, grad = _jax_value_and_grad(jaxloss.heatmap_mse_loss, p, t)
    _close(value, expected)
    _close(grad, g_expected)
    # use_target_weight=True with 0/1 visibility weights
    expected, g_expected = _torch_value_and_grad(
        lambda a, b, w: _mmpose_keypoint_mse(_nchw(a), _nchw(b), w), p, t, visible)
    value, grad = _jax_value_and_grad(
        lambda a, b, w: jaxloss.heatmap_mse_loss(a, b, keypoint_weights=w), p, t, visible)
    _close(value, expected)
    _close(grad, g_expected)


@pytest.mark.parametrize("shape, topk", [((3, 6, 5, 4), 1), ((2, 8, 8, 17), 8)])
def test_heatmap_ohkm_against_mmpose(shape, topk):
    p, t = _heatmaps(topk + shape[-1], shape)
    weights = np.random.default_rng(topk).uniform(0.0, 2.0, size=(shape[0], shape[-1]))
    weights = weights.astype(np.float32)
    expected, g_expected = _torch_value_and_grad(
        lambda a, b, w: _mmpose_ohkm(_nchw(a), _nchw(b), w, topk), p, t, weights)
    value, grad = _jax_value_and_grad(
        lambda a, b, w: jaxloss.heatmap_mse_loss(a, b, keypoint_weights=w, top_k=topk),
        p, t, weights)
    _close(value, expected)
    _close(grad, g_expected)


# ----------------------------------------------------------------------------- SimCC


@pytest.mark.parametrize("kw, shape", [
    ({}, (2, 17, 16, 16)), ({"beta": 1.0, "label_softmax": False}, (3, 4, 12, 10)),
    ({"beta": 3.0, "label_beta": 2.0}, (3, 4, 12, 10))])
def test_simcc_against_mmpose(kw, shape):
    n, k, bins_x, bins_y = shape
    rng = np.random.default_rng(bins_x + len(kw))
    zx = rng.standard_normal((n, k, bins_x)).astype(np.float32)
    zy = rng.standard_normal((n, k, bins_y)).astype(np.float32)
    centres = rng.uniform(0.0, bins_y / 2, size=(n, k, 2)).astype(np.float32)
    visible = rng.uniform(size=(n, k)) < 0.8
    qx, qy = jaxloss.simcc_targets(jnp.asarray(centres), shape=(bins_y // 2, bins_x // 2),
                                   sigma=1.5, visibility=jnp.asarray(visible))
    qx, qy = np.asarray(qx), np.asarray(qy)
    weights = visible.astype(np.float32)
    full = {"beta": 10.0, "label_softmax": True, "label_beta": 10.0, **kw}

    def ref(a, b, c, d, w):
        return _mmpose_kl_discret(a, b, c, d, w, **full)

    expected, g_expected = _torch_value_and_grad(ref, zx, zy, qx, qy, weights)
    # mmpose sums over the samples and divides by K: our weighted sum over K
    value, grad = _jax_value_and_grad(
        lambda a, b, c, d, w: jaxloss.simcc_loss(a, b, c, d, weights=w, reduction="sum", **kw)
        / k, zx, zy, qx, qy, weights)
    _close(value, expected)
    _close(grad, g_expected)


# ----------------------------------------------------------------------------- OKS


def _coco_oks(pred, gt, flags, area, sigmas):
    """COCOeval.computeOks for one detection against its own ground truth (numpy float64)."""
    vars_ = (sigmas * 2) ** 2
    xg, yg, vg = gt[:, 0], gt[:, 1], flags
    xd, yd = pred[:, 0], pred[:, 1]
    dx, dy = xd - xg, yd - yg
    e = (dx**2 + dy**2) / vars_ / (area + np.spacing(1)) / 2
    e = e[vg > 0]
    return np.sum(np.exp(-e)) / e.shape[0]


def _torch_oks_loss(pred, gt, visible, area, sigmas):
    # the same formula, per instance, in torch (for the gradient)
    d2 = ((pred - gt) ** 2).sum(-1)
    e = d2 / ((2 * sigmas) ** 2)[None] / (area[:, None] + np.spacing(1)) / 2
    return 1.0 - (visible * torch.exp(-e)).sum(-1) / visible.sum(-1)


def _oks_inputs(seed, n, k, scale=8.0):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.0, 100.0, size=(n, k, 2)).astype(np.float32)
    pred = (gt + scale * rng.standard_normal(gt.shape)).astype(np.float32)
    flags = rng.integers(0, 3, size=(n, k))  # COCO's 0 (unlabelled), 1, 2
    flags[:, 0] = 2  # at least one visible keypoint per instance
    areas = rng.uniform(50.0, 5000.0, size=n).astype(np.float32)
    return pred, gt, flags, areas


@pytest.mark.parametrize("n, k", [(5, 17), (3, 6)])
def test_oks_against_pycocotools(n, k):
    pred, gt, flags, areas = _oks_inputs(k, n, k)
    sigmas = np.asarray(COCO_SIGMAS) if k == 17 else np.linspace(0.03, 0.1, k)
    expected = np.array([1.0 - _coco_oks(pred[i].astype(np.float64), gt[i].astype(np.float64),
                                         flags[i], float(areas[i]), sigmas) for i in range(n)])
    visible = (flags > 0).astype(np.float32)
    kw = {} if k == 17 else {"sigmas": jnp.asarray(sigmas, jnp.float32)}
    got = jaxloss.oks_loss(pred, gt, flags > 0, areas, reduction="none", **kw)
    _close(got, expected)
    _, g_expected = _torch_value_and_grad(
        lambda a, b, v, s: _torch_oks_loss(a, b, v, s, torch.tensor(sigmas)),
        pred, gt, visible, areas)
    _, grad = _jax_value_and_grad(
        lambda a, b, v, s: jaxloss.oks_loss(a, b, v, s, reduction="sum", **kw),
        pred, gt, visible, areas)
    _close(grad, g_expected)


def test_oks_agrees_with_ultralytics_for_binary_masks():
    """ultralytics' mean over (instances, keypoints) with its K / visible factor is our
    ``"mean"`` of 1 - OKS, an instance with nothing visible counting as 0 in both. They
    differ only in the area's epsilon (1e-9 against np.spacing(1)) and for non-binary
    masks (ultralytics counts ``mask != 0`` but weights by the mask; we divide by its sum).
    """
    pred, gt, flags, areas = _oks_inputs(3, 6, 17)
    mask = (flags > 0).astype(np.float32)
    mask[2] = 0.0  # nothing visible
    sigmas = torch.tensor(COCO_SIGMAS, dtype=torch.float64)
    expected, g_expected = _torch_value_and_grad(
        lambda a, b, m, s: _ultralytics_keypoint_loss(a, b, m, s[:, None], sigmas),
        pred, gt, mask, areas)
    value, grad = _jax_value_and_grad(jaxloss.oks_loss, pred, gt, mask, areas)
    _close(value, expected)
    _close(grad, g_expected)
    assert np.all(np.asarray(grad)[2] == 0)


# ----------------------------------------------------------------------------- targets


def _mmpose_unbiased_heatmaps(keypoints, visible, size, sigma):
    """generate_unbiased_gaussian_heatmaps (one instance), channels-first (K, H, W)."""
    w, h = size
    k = keypoints.shape[0]
    heatmaps = np.zeros((k, h, w), np.float64)
    x = np.arange(0, w, 1)
    y = np.arange(0, h, 1)[:, None]
    for i in range(k):
        if visible[i] < 0.5:
            continue
        mu = keypoints[i]
        heatmaps[i] = np.exp(-((x - mu[0]) ** 2 + (y - mu[1]) ** 2) / (2 * sigma**2))
    return heatmaps


def test_gaussian_heatmaps_against_mmpose():
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(-2.0, 14.0, size=(3, 5, 2)).astype(np.float32)
    visible = rng.uniform(size=(3, 5)) < 0.7
    got = jaxloss.gaussian_heatmaps(keypoints, shape=(10, 12), sigma=1.7, visibility=visible)
    assert got.shape == (3, 10, 12, 5)
    for n in range(3):
        expected = _mmpose_unbiased_heatmaps(keypoints[n].astype(np.float64), visible[n],
                                             (12, 10), 1.7)
        _close(np.moveaxis(np.asarray(got[n]), -1, 0), expected)


@pytest.mark.parametrize("normalize", [False, True])
def test_simcc_targets_against_mmpose(normalize):
    rng = np.random.default_rng(1)
    ratio, sigma, (w, h) = 2.0, (2.5, 3.0), (12, 9)
    keypoints = rng.uniform(0.0, 9.0, size=(2, 4, 2)).astype(np.float32)
    # SimCCLabel._map_coordinates rounds the centre to a bin: pass it rounded
    rounded = (np.around(keypoints * ratio) / ratio).astype(np.float32)
    qx, qy = jaxloss.simcc_targets(rounded, shape=(h, w), split_ratio=ratio, sigma=sigma,
                                   normalize=normalize)
    mu = np.around(keypoints.astype(np.float64) * ratio)
    x, y = np.arange(round(w * ratio)), np.arange(round(h * ratio))
    expected_x = np.exp(-((x - mu[..., :1]) ** 2) / (2 * sigma[0] ** 2))
    expected_y = np.exp(-((y - mu[..., 1:]) ** 2) / (2 * sigma[1] ** 2))
    if normalize:
        expected_x /= sigma[0] * np.sqrt(2 * np.pi)
        expected_y /= sigma[1] * np.sqrt(2 * np.pi)
    _close(qx, expected_x)
    _close(qy, expected_y)

"""Keypoint and pose losses, and the targets and decoding around them.

Conventions: keypoints are ``(N, K, D)`` coordinates (``(x, y)`` in pixels for
images); heatmaps are channels-last ``(N, *spatial, K)``, one channel per
keypoint; SimCC logits and targets are ``(N, K, bins)``. The Wing losses are
elementwise; MPJPE, heatmap MSE and SimCC are per keypoint ``(N, K)``
(heatmap MSE with ``top_k``: ``(N,)``); OKS is per instance ``(N,)``.

Modules: ``regression`` (Wing, Soft Wing, MPJPE, OKS), ``heatmap`` (adaptive
Wing, heatmap MSE with OHKM, SimCC), ``targets`` (Gaussian heatmaps and SimCC
labels rendered under ``jit``, and decoding); ``_common`` holds their helpers.
"""

from jaxloss.keypoint.heatmap import adaptive_wing_loss as adaptive_wing_loss
from jaxloss.keypoint.heatmap import heatmap_mse_loss as heatmap_mse_loss
from jaxloss.keypoint.heatmap import simcc_loss as simcc_loss
from jaxloss.keypoint.regression import mpjpe_loss as mpjpe_loss
from jaxloss.keypoint.regression import oks_loss as oks_loss
from jaxloss.keypoint.regression import soft_wing_loss as soft_wing_loss
from jaxloss.keypoint.regression import wing_loss as wing_loss
from jaxloss.keypoint.targets import decode_heatmaps as decode_heatmaps
from jaxloss.keypoint.targets import decode_simcc as decode_simcc
from jaxloss.keypoint.targets import gaussian_heatmaps as gaussian_heatmaps
from jaxloss.keypoint.targets import simcc_targets as simcc_targets

__all__ = [
    "adaptive_wing_loss",
    "decode_heatmaps",
    "decode_simcc",
    "gaussian_heatmaps",
    "heatmap_mse_loss",
    "mpjpe_loss",
    "oks_loss",
    "simcc_loss",
    "simcc_targets",
    "soft_wing_loss",
    "wing_loss",
]

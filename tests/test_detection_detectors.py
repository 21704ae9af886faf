"""Properties, conventions and errors of jaxloss.detection.detectors (SSD, Mask R-CNN),
and RetinaNet's use of ``sigmoid_focal_loss``.

Agreement with torchvision's formulas is in
tests/reference/test_detection_reference.py. Here: SSD's hard negative mining
against a numpy reference and its invariance to the anchor order, the batch
normaliser across shards, masks, out-of-range labels under ``jit``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from tests.cases_detection import _ssd_arrays


def _finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree.leaves(tree))


# ------------------------------------------------------------------ SSD

def _numpy_ssd(logits, regression, labels, targets, ratio=3):
    """Per-image SSD loss and the mined negatives, float64, written from the paper."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    ce = -np.take_along_axis(log_p, labels[..., None].astype(np.int64), -1)[..., 0]
    losses, mined_sets = [], []
    for i in range(logits.shape[0]):
        positive = labels[i] > 0
        negatives = np.flatnonzero(~positive)
        k = int(np.ceil(ratio * positive.sum()))   # the ranks below r |P|
        hardest = negatives[np.argsort(-ce[i, negatives], kind="stable")[:k]]
        mined_sets.append(set(hardest.tolist()))
        r = np.abs(regression[i][positive].astype(np.float64) - targets[i][positive])
        smooth = np.where(r < 1, 0.5 * r**2, r - 0.5).sum()
        losses.append((smooth + ce[i, positive].sum() + ce[i, hardest].sum())
                      / max(1, positive.sum()))
    return np.array(losses), mined_sets


@pytest.mark.parametrize("ratio", [3, 1, 2.5])
@pytest.mark.parametrize("seed", range(3))
def test_ssd_mines_exactly_the_hardest_negatives(seed, ratio):
    logits, regression, labels, targets = _ssd_arrays(np.random.default_rng(seed), n=4, a=30,
                                                      c=4, positive_rate=0.2)
    expected, mined_sets = _numpy_ssd(logits, regression, labels, targets, ratio)
    # The per-image normaliser is an option since the batch normaliser became the default.
    value = jaxloss.ssd_multibox_loss(logits, regression, labels, targets,
                                      neg_pos_ratio=ratio, normalize="image", reduction="none")
    np.testing.assert_allclose(np.asarray(value), expected, rtol=1e-5, atol=1e-6)
    # The CE gradient (softmax - onehot) is nonzero exactly on the anchors that count.
    grad = jax.grad(lambda x: jaxloss.ssd_multibox_loss(
        x, regression, labels, targets, neg_pos_ratio=ratio, reduction="sum"))(logits)
    used = np.any(np.asarray(grad) != 0, axis=-1)
    for i in range(logits.shape[0]):
        got = set(np.flatnonzero(used[i] & (labels[i] == 0)).tolist())
        assert got == mined_sets[i], (i, got, mined_sets[i])


@pytest.mark.parametrize("seed", range(3))
def test_ssd_invariant_to_anchor_order(seed):
    rng = np.random.default_rng(seed)
    logits, regression, labels, targets = _ssd_arrays(rng, n=3, a=25, c=5)
    base = jaxloss.ssd_multibox_loss(logits, regression, labels, targets, reduction="none")
    perm = rng.permutation(25)
    permuted = jaxloss.ssd_multibox_loss(logits[:, perm], regression[:, perm], labels[:, perm],
                                         targets[:, perm], reduction="none")
    np.testing.assert_allclose(np.asarray(permuted), np.asarray(base), rtol=1e-6, atol=1e-6)
    # Ties (all logits equal) do not make the value depend on the order either.
    flat = np.zeros_like(logits)
    tied = jaxloss.ssd_multibox_loss(flat, regression, labels, targets, reduction="none")
    tied_perm = jaxloss.ssd_multibox_loss(flat[:, perm], regression[:, perm], labels[:, perm],
                                          targets[:, perm], reduction="none")
    np.testing.assert_allclose(np.asarray(tied_perm), np.asarray(tied), rtol=1e-6)


def test_ssd_zero_positives_is_zero_and_finite():
    logits, regression, _, targets = _ssd_arrays(np.random.default_rng(0), n=3, a=10, c=3)
    labels = np.zeros((3, 10), np.int32)
    labels[1, 4] = 2   # one image with a positive
    values = jaxloss.ssd_multibox_loss(logits, regression, labels, targets, reduction="none")
    assert float(values[0]) == 0.0 and float(values[2]) == 0.0 and float(values[1]) > 0
    value, grad = jax.value_and_grad(lambda x: jaxloss.ssd_multibox_loss(
        x, regression, np.zeros_like(labels), targets))(logits)
    assert float(value) == 0.0 and np.all(np.asarray(grad) == 0)


def test_ssd_where_drops_images_and_nan():
    logits, regression, labels, targets = _ssd_arrays(np.random.default_rng(1), n=4, a=10, c=3)
    keep = np.array([True, False, True, False])
    poisoned = np.where(keep[:, None, None], regression, np.nan).astype(np.float32)
    value, grad = jax.jit(jax.value_and_grad(lambda r: jaxloss.ssd_multibox_loss(
        logits, r, labels, targets, where=keep)))(poisoned)
    expected = jaxloss.ssd_multibox_loss(logits[keep], regression[keep], labels[keep],
                                         targets[keep])
    np.testing.assert_allclose(float(value), float(expected), rtol=1e-6)
    assert _finite(grad) and np.all(np.asarray(grad)[~keep] == 0)


def test_ssd_traced_ratio_under_jit():
    logits, regression, labels, targets = _ssd_arrays(np.random.default_rng(2), n=2, a=16, c=3)
    jitted = jax.jit(lambda r: jaxloss.ssd_multibox_loss(logits, regression, labels, targets,
                                                         neg_pos_ratio=r))
    for ratio in (0, 1, 3):
        np.testing.assert_allclose(
            float(jitted(jnp.float32(ratio))),
            float(jaxloss.ssd_multibox_loss(logits, regression, labels, targets,
                                            neg_pos_ratio=ratio)), rtol=1e-6)


# ------------------------------------------------------------------ Mask R-CNN

def test_mask_rcnn_roi_where_drops_padded_rois():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4, 4, 3)).astype(np.float32)
    targets = (rng.random((5, 4, 4)) < 0.5).astype(np.float32)
    labels = np.array([0, 2, 1, 0, 2], np.int32)
    keep = np.array([True, True, False, True, False])
    poisoned = np.where(keep[:, None, None, None], logits, np.nan).astype(np.float32)
    value, grad = jax.jit(jax.value_and_grad(lambda x: jaxloss.mask_rcnn_mask_loss(
        x, targets, labels, where=keep)))(poisoned)
    expected = jaxloss.mask_rcnn_mask_loss(logits[keep], targets[keep], labels[keep])
    np.testing.assert_allclose(float(value), float(expected), rtol=1e-6)
    assert _finite(grad) and np.all(np.asarray(grad)[~keep] == 0)
    # Only the ground-truth class's mask receives a gradient.
    grad = np.asarray(jax.grad(lambda x: jaxloss.mask_rcnn_mask_loss(x, targets, labels))(logits))
    other = np.ones((5, 3), bool)
    other[np.arange(5), labels] = False
    assert np.all(grad.transpose(0, 3, 1, 2)[other] == 0)
    # (R,) weights are per RoI as well.
    w = np.array([1.0, 2.0, 0.0, 1.0, 3.0], np.float32)
    none = jaxloss.mask_rcnn_mask_loss(logits, targets, labels, reduction="none")
    np.testing.assert_allclose(
        float(jaxloss.mask_rcnn_mask_loss(logits, targets, labels, weights=w, reduction="sum")),
        float(jnp.sum(none * w[:, None, None])), rtol=1e-5)


# ------------------------------------------------------------------ RetinaNet (dense detection)

def _torchvision_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0):
    """torchvision/ops/focal_loss.py, reduction='none'."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * loss


def test_sigmoid_focal_loss_as_retinanet_uses_it():
    """torchvision/models/detection/retinanet.py RetinaNetClassificationHead.compute_loss:
    per image, the focal loss summed over valid anchors and classes divided by the number
    of foreground anchors (at least 1); the images' losses averaged."""
    rng = np.random.default_rng(0)
    n, a, c = 3, 50, 6
    logits = rng.normal(scale=2.0, size=(n, a, c)).astype(np.float32)
    matched = rng.choice([-2, -1, 0, 1, 2], size=(n, a), p=[0.1, 0.6, 0.1, 0.1, 0.1])
    matched[2] = -1   # an image without foreground
    gt_labels = rng.integers(0, c, size=(n, 3))
    foreground = matched >= 0
    onehot = np.zeros((n, a, c), np.float32)
    for i in range(n):
        idx = np.flatnonzero(foreground[i])
        onehot[i, idx, gt_labels[i, matched[i, idx]]] = 1.0
    valid = matched != -2   # BETWEEN_THRESHOLDS anchors are ignored

    t_logits = torch.tensor(logits, requires_grad=True)
    losses = []
    for i in range(n):
        v = torch.tensor(valid[i])
        losses.append(_torchvision_sigmoid_focal_loss(
            t_logits[i][v], torch.tensor(onehot[i])[v]).sum() / max(1, int(foreground[i].sum())))
    expected = sum(losses) / n
    expected.backward()

    def ours(x):
        per_anchor_class = jaxloss.sigmoid_focal_loss(
            x, onehot, where=jnp.broadcast_to(valid[..., None], x.shape), reduction="none")
        per_image = jnp.sum(per_anchor_class, axis=(1, 2)) / jnp.maximum(
            jnp.sum(foreground, axis=1), 1).astype(jnp.float32)
        return jnp.mean(per_image)

    value, grad = jax.value_and_grad(ours)(logits)
    np.testing.assert_allclose(float(value), expected.item(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(grad), t_logits.grad.numpy(), rtol=1e-5, atol=1e-6)



# ------------------------------------------------------------------ no silent wrong answers

def test_ssd_out_of_range_labels_raise_eagerly_and_give_nan_under_jit():
    logits, regression, labels, targets = _ssd_arrays(np.random.default_rng(4), n=3, a=10, c=3)
    for bad_label in (3, -1):
        bad = labels.copy()
        bad[1, 2] = bad_label
        with pytest.raises(ValueError, match="cls_targets"):
            jaxloss.ssd_multibox_loss(logits, regression, bad, targets)
        jitted = jax.jit(lambda lab, r="none": jaxloss.ssd_multibox_loss(
            logits, regression, lab, targets, reduction=r), static_argnames="r")
        values = np.asarray(jitted(bad))
        assert np.isnan(values[1]) and np.all(np.isfinite(values[[0, 2]])), values
        for reduction in ("mean", "sum"):
            assert np.isnan(float(jitted(bad, reduction))), reduction
        # An image dropped by where does not count, whatever its labels.
        keep = np.array([True, False, True])
        masked = jax.jit(lambda lab, w=keep: jaxloss.ssd_multibox_loss(
            logits, regression, lab, targets, where=w))(bad)
        np.testing.assert_allclose(float(masked), float(jaxloss.ssd_multibox_loss(
            logits[keep], regression[keep], labels[keep], targets[keep])), rtol=1e-6)


def test_mask_rcnn_out_of_range_labels_raise_eagerly_and_give_nan_under_jit():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
    targets = (rng.random((4, 3, 3)) < 0.5).astype(np.float32)
    for bad_label in (2, -1):
        labels = np.array([0, bad_label, 1, 0], np.int32)
        with pytest.raises(ValueError, match="labels"):
            jaxloss.mask_rcnn_mask_loss(logits, targets, labels)
        jitted = jax.jit(lambda lab, r="none": jaxloss.mask_rcnn_mask_loss(
            logits, targets, lab, reduction=r), static_argnames="r")
        values = np.asarray(jitted(labels))
        assert np.all(np.isnan(values[1])) and np.all(np.isfinite(values[[0, 2, 3]]))
        assert np.isnan(float(jitted(labels, "mean")))
        # A dropped RoI's label does not poison the loss.
        value = jax.jit(lambda lab: jaxloss.mask_rcnn_mask_loss(
            logits, targets, lab, where=np.array([True, False, True, True])))(labels)
        assert np.isfinite(float(value))


def test_ssd_axis_name_equals_the_global_batch():
    """normalize="batch" divides by the global batch's positives: two shards mapped with an
    axis name give the single-device loss and gradient."""
    logits, regression, labels, targets = _ssd_arrays(np.random.default_rng(9), n=4, a=12, c=3)
    labels[0] = 0

    def global_loss(lg):
        return jaxloss.ssd_multibox_loss(lg, regression, labels, targets)

    def shard(arrays):
        return [a.reshape((2, 2) + a.shape[1:]) for a in arrays]

    def sharded(lg):
        per_shard = jax.vmap(lambda x, r, lab, tg: jaxloss.ssd_multibox_loss(
            x, r, lab, tg, axis_name="data"), axis_name="data")(
            lg.reshape((2, 2) + lg.shape[1:]), *shard([regression, labels, targets]))
        return per_shard[0]

    np.testing.assert_allclose(float(jax.jit(sharded)(logits)), float(global_loss(logits)),
                               rtol=1e-6)
    np.testing.assert_allclose(np.asarray(jax.grad(sharded)(logits)),
                               np.asarray(jax.grad(global_loss)(logits)), rtol=1e-5, atol=1e-7)

"""Overlap losses against MONAI, kornia and smp's published formula (value and gradient).

The references are channels-first ``(N, C, *spatial)``; jaxloss is channels-last,
so the tests move the class axis.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

torch = pytest.importorskip("torch")
monai_losses = pytest.importorskip("monai.losses")
kornia_losses = pytest.importorskip("kornia.losses")

SHAPES = [(3, 7, 5), (2, 5, 6, 3)]  # (N, H, W) and (N, D, H, W), odd sizes


def _inputs(shape, num_classes, seed, absent=None):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(*shape, num_classes)) * 2).astype(np.float32)
    labels = rng.integers(0, num_classes, size=shape).astype(np.int64)
    if absent is not None:
        labels[labels == absent] = 0  # a class absent from the whole batch
    return logits, labels


def _channels_first(x):
    return np.moveaxis(x, -1, 1)


def _torch_value_and_grad(fn, logits):
    t = torch.tensor(_channels_first(logits), dtype=torch.float64, requires_grad=True)
    value = fn(t)
    value.sum().backward()
    return value.detach().numpy(), np.moveaxis(t.grad.numpy(), 1, -1)


def _ours_value_and_grad(fn, logits):
    value = fn(jnp.asarray(logits))
    grad = jax.grad(lambda x: jnp.sum(fn(x)))(jnp.asarray(logits))
    return np.asarray(value), np.asarray(grad)


def _close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=rtol, atol=atol)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("include_background", [True, False])
def test_dice_against_monai(shape, per_image, squared, include_background):
    logits, labels = _inputs(shape, 4, seed=len(shape) + squared, absent=3)
    monai = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, batch=not per_image,
                                  squared_pred=squared, include_background=include_background,
                                  smooth_nr=1e-5, smooth_dr=1e-5, reduction="none")
    target = torch.tensor(labels[:, None])
    expected, expected_grad = _torch_value_and_grad(lambda x: monai(x, target), logits)

    def ours(x):
        return jaxloss.dice_loss(x, jnp.asarray(labels, jnp.int32), per_image=per_image,
                                 squared=squared, include_background=include_background,
                                 reduction="none")

    value, grad = _ours_value_and_grad(ours, logits)
    _close(value, expected.reshape(value.shape))
    _close(grad, expected_grad)


@pytest.mark.parametrize("shape", SHAPES)
def test_dice_multilabel_and_ignore_index_against_monai(shape):
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(*shape, 3)).astype(np.float32)
    targets = (rng.random((*shape, 3)) < 0.3).astype(np.float32)
    monai = monai_losses.DiceLoss(sigmoid=True, reduction="none")
    expected, expected_grad = _torch_value_and_grad(
        lambda x: monai(x, torch.tensor(_channels_first(targets), dtype=torch.float64)), logits)
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.dice_loss(x, jnp.asarray(targets), mode="multilabel",
                                    reduction="none"), logits)
    _close(value, expected.reshape(value.shape))
    _close(grad, expected_grad)

    logits, labels = _inputs(shape, 4, seed=3)
    labels[..., :2] = 255  # an ignored band
    monai = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, ignore_index=255,
                                  reduction="none")
    expected, expected_grad = _torch_value_and_grad(
        lambda x: monai(x, torch.tensor(labels[:, None])), logits)
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.dice_loss(x, jnp.asarray(labels, jnp.int32), ignore_index=255,
                                    reduction="none"), logits)
    _close(value, expected.reshape(value.shape))
    _close(grad, expected_grad)


def test_dice_class_weights_is_weighted_mean_of_monai_per_class():
    logits, labels = _inputs((3, 6, 5), 4, seed=11)
    w = np.array([0.5, 1.0, 2.0, 0.0], np.float32)
    monai = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, reduction="none")
    per_class, _ = _torch_value_and_grad(lambda x: monai(x, torch.tensor(labels[:, None])),
                                         logits)
    per_class = per_class.reshape(3, 4)
    expected = (per_class * w).sum() / (3 * w.sum())
    got = jaxloss.dice_loss(jnp.asarray(logits), jnp.asarray(labels, jnp.int32),
                            class_weights=jnp.asarray(w))
    _close(got, expected)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize(("alpha", "beta"), [(0.5, 0.5), (0.3, 0.7)])
def test_tversky_against_monai(shape, per_image, alpha, beta):
    logits, labels = _inputs(shape, 3, seed=5, absent=2)
    monai = monai_losses.TverskyLoss(softmax=True, to_onehot_y=True, alpha=alpha, beta=beta,
                                     batch=not per_image, reduction="none")
    expected, expected_grad = _torch_value_and_grad(
        lambda x: monai(x, torch.tensor(labels[:, None])), logits)
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.tversky_loss(x, jnp.asarray(labels, jnp.int32), alpha=alpha,
                                       beta=beta, per_image=per_image, reduction="none"),
        logits)
    _close(value, expected.reshape(value.shape))
    _close(grad, expected_grad)


def _present_mean(per_image_class, labels, num_classes):
    present = np.stack([(labels == c).reshape(labels.shape[0], -1).any(1)
                        for c in range(num_classes)], axis=1)
    return (per_image_class * present).sum(1) / np.maximum(present.sum(1), 1)


@pytest.mark.parametrize(("alpha", "beta"), [(0.5, 0.5), (0.3, 0.7)])
def test_tversky_against_kornia(alpha, beta):
    # kornia averages the per-class index over the classes present in each image.
    logits, labels = _inputs((3, 7, 5), 4, seed=2, absent=3)
    expected, expected_grad = _torch_value_and_grad(
        lambda x: kornia_losses.tversky_loss(x, torch.tensor(labels), alpha, beta, eps=1e-12),
        logits)

    def ours(x):
        index = 1 - jaxloss.tversky_loss(x, jnp.asarray(labels, jnp.int32), alpha=alpha,
                                         beta=beta, smooth=0.0, reduction="none")
        present = np.stack([(labels == c).reshape(3, -1).any(1) for c in range(4)], 1)
        present = jnp.asarray(present, jnp.float32)
        per_image = jnp.sum(index * present, axis=1) / jnp.maximum(jnp.sum(present, 1), 1.0)
        return 1 - jnp.mean(per_image)

    value, grad = _ours_value_and_grad(ours, logits)
    _close(value, expected)
    _close(grad, expected_grad)


def _smp_jaccard(logits, labels, smooth=0.0, eps=1e-7):
    """segmentation_models_pytorch JaccardLoss (multiclass, from_logits, dims=(0, 2)),
    written from losses/jaccard.py and losses/_functional.py::soft_jaccard_score."""
    n, c = logits.shape[:2]
    y_pred = logits.log_softmax(dim=1).exp().view(n, c, -1)
    y_true = torch.nn.functional.one_hot(labels.view(n, -1), c).permute(0, 2, 1)
    y_true = y_true.type_as(y_pred)
    intersection = torch.sum(y_pred * y_true, dim=(0, 2))
    cardinality = torch.sum(y_pred + y_true, dim=(0, 2))
    union = cardinality - intersection
    score = (intersection + smooth) / (union + smooth).clamp_min(eps)
    loss = 1.0 - score
    loss = loss * (y_true.sum((0, 2)) > 0).to(loss.dtype)
    return loss


@pytest.mark.parametrize("shape", SHAPES)
def test_jaccard_against_smp_formula(shape):
    logits, labels = _inputs(shape, 4, seed=9, absent=1)
    expected, expected_grad = _torch_value_and_grad(
        lambda x: _smp_jaccard(x, torch.tensor(labels)), logits)
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.jaccard_loss(x, jnp.asarray(labels, jnp.int32), reduction="none"),
        logits)
    _close(value, expected)
    _close(grad, expected_grad)


def _smp_dice(logits, labels, smooth=0.0, eps=1e-7):
    """segmentation_models_pytorch DiceLoss (multiclass, from_logits), from losses/dice.py."""
    n, c = logits.shape[:2]
    y_pred = logits.log_softmax(dim=1).exp().view(n, c, -1)
    y_true = torch.nn.functional.one_hot(labels.view(n, -1), c).permute(0, 2, 1)
    y_true = y_true.type_as(y_pred)
    intersection = torch.sum(y_pred * y_true, dim=(0, 2))
    cardinality = torch.sum(y_pred + y_true, dim=(0, 2))
    score = (2.0 * intersection + smooth) / (cardinality + smooth).clamp_min(eps)
    return (1.0 - score) * (y_true.sum((0, 2)) > 0).to(score.dtype)


def test_dice_reaches_smp_convention():
    logits, labels = _inputs((3, 7, 5), 4, seed=4, absent=2)
    expected, expected_grad = _torch_value_and_grad(
        lambda x: _smp_dice(x, torch.tensor(labels), smooth=0.5), logits)
    present = jnp.asarray(np.isin(np.arange(4), labels))
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.dice_loss(x, jnp.asarray(labels, jnp.int32), smooth=0.5, eps=1e-7,
                                    per_image=False, where=present, reduction="none"),
        logits)
    _close(value, expected)
    _close(grad, expected_grad)


def test_dice_micro_against_kornia():
    logits, labels = _inputs((3, 7, 5), 4, seed=6)
    expected, expected_grad = _torch_value_and_grad(
        lambda x: kornia_losses.dice_loss(x, torch.tensor(labels), average="micro", eps=1e-12),
        logits)
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.dice_loss(x, jnp.asarray(labels, jnp.int32), average="micro",
                                    smooth=0.0), logits)
    _close(value, expected)
    _close(grad, expected_grad)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("weight_type", ["square", "simple", "uniform"])
def test_generalized_dice_against_monai(shape, per_image, weight_type):
    logits, labels = _inputs(shape, 4, seed=12, absent=3)
    labels[0][labels[0] == 2] = 1  # class 2 also absent from the first image
    monai = monai_losses.GeneralizedDiceLoss(softmax=True, to_onehot_y=True, batch=not per_image,
                                             w_type=weight_type, reduction="none")
    expected, expected_grad = _torch_value_and_grad(
        lambda x: monai(x, torch.tensor(labels[:, None])), logits)
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.generalized_dice_loss(x, jnp.asarray(labels, jnp.int32),
                                                weight_type=weight_type, per_image=per_image,
                                                reduction="none"), logits)
    _close(value, expected.reshape(value.shape))
    _close(grad, expected_grad)


def _berman_lovasz_grad(gt_sorted):
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if len(gt_sorted) > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def _berman_lovasz_softmax(logits, labels, classes="present", per_image=False, ignore=None):
    """Berman's lovasz_softmax (as in smp losses/lovasz.py), written plainly in torch."""
    probas = logits.softmax(1)

    def flat(prob, lab):
        c = prob.shape[0]
        prob = prob.reshape(c, -1).t()
        lab = lab.reshape(-1)
        if ignore is not None:
            keep = lab != ignore
            prob, lab = prob[keep], lab[keep]
        losses = []
        for k in range(c):
            fg = (lab == k).to(prob.dtype)
            if classes == "present" and fg.sum() == 0:
                continue
            errors = (fg - prob[:, k]).abs()
            errors_sorted, perm = torch.sort(errors, 0, descending=True)
            losses.append(torch.dot(errors_sorted, _berman_lovasz_grad(fg[perm])))
        return torch.stack(losses).mean() if losses else prob.sum() * 0

    if per_image:
        return torch.stack([flat(p, y) for p, y in zip(probas, labels, strict=True)])
    pooled = probas.transpose(0, 1).reshape(probas.shape[1], 1, -1)
    return flat(pooled[:, 0], labels.reshape(-1))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("classes", ["present", "all"])
def test_lovasz_softmax_against_berman(shape, per_image, classes):
    logits, labels = _inputs(shape, 4, seed=13, absent=3)
    labels[0, 0] = 255
    expected, expected_grad = _torch_value_and_grad(
        lambda x: _berman_lovasz_softmax(x, torch.tensor(labels), classes, per_image, 255),
        logits)
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.lovasz_softmax_loss(x, jnp.asarray(labels, jnp.int32), classes=classes,
                                              per_image=per_image, ignore_index=255,
                                              reduction="none"), logits)
    _close(value, expected)
    _close(grad, expected_grad)


def test_lovasz_softmax_against_kornia():
    logits, labels = _inputs((3, 7, 5), 4, seed=14)
    expected, expected_grad = _torch_value_and_grad(
        lambda x: kornia_losses.lovasz_softmax_loss(x, torch.tensor(labels)), logits)
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.lovasz_softmax_loss(x, jnp.asarray(labels, jnp.int32), classes="all",
                                              per_image=True), logits)
    _close(value, expected)
    _close(grad, expected_grad)


@pytest.mark.parametrize("shape", [(3, 7, 5), (2, 9, 4)])
def test_lovasz_hinge_against_kornia(shape):
    rng = np.random.default_rng(15)
    logits = rng.normal(size=shape).astype(np.float32) * 2
    targets = (rng.random(shape) < 0.4).astype(np.int64)
    t = torch.tensor(logits[:, None], dtype=torch.float64, requires_grad=True)
    expected = kornia_losses.lovasz_hinge_loss(t, torch.tensor(targets))
    expected.backward()
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.lovasz_hinge_loss(x, jnp.asarray(targets, jnp.int32)), logits)
    _close(value, expected.detach().numpy())
    _close(grad, t.grad.numpy()[:, 0])


def _berman_lovasz_hinge_flat(logits, labels):
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True)
    return torch.dot(torch.relu(errors_sorted), _berman_lovasz_grad(labels[perm]))


def test_lovasz_hinge_pooled_with_ignore_against_berman():
    rng = np.random.default_rng(16)
    logits = rng.normal(size=(3, 6, 5)).astype(np.float32)
    targets = (rng.random((3, 6, 5)) < 0.4).astype(np.int64)
    targets[1, :2] = 255
    keep = targets.reshape(-1) != 255

    def reference(x):
        flat = x.reshape(-1)[torch.tensor(keep)]
        return _berman_lovasz_hinge_flat(flat, torch.tensor(targets.reshape(-1)[keep],
                                                            dtype=torch.float64))

    t = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    expected = reference(t)
    expected.backward()
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.lovasz_hinge_loss(x, jnp.asarray(targets, jnp.int32), per_image=False,
                                            ignore_index=255), logits)
    _close(value, expected.detach().numpy())
    _close(grad, t.grad.numpy())


SPATIAL_SHAPES = [(2, 9, 7), (2, 5, 6, 7)]  # (N, H, W) and (N, D, H, W), odd sizes


def _blobs(shape, num_classes, seed):
    """Labels with blobs, so that distance maps have real boundaries; one empty class."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int64)
    for n in range(shape[0]):
        for c in range(1, num_classes - 1):
            lo = [rng.integers(0, s - 2) for s in shape[1:]]
            hi = [lo_i + rng.integers(1, 4) for lo_i in lo]
            labels[(n, *[slice(a, b) for a, b in zip(lo, hi, strict=True)])] = c
    logits = (rng.normal(size=(*shape, num_classes)) * 2).astype(np.float32)
    return logits, labels


@pytest.mark.parametrize("shape", SPATIAL_SHAPES)
@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("include_background", [True, False])
def test_boundary_against_monai(shape, per_image, include_background):
    logits, labels = _blobs(shape, 4, seed=21)
    monai = monai_losses.BoundaryLoss(softmax=True, to_onehot_y=True, batch=not per_image,
                                      include_background=include_background, reduction="none")
    expected, expected_grad = _torch_value_and_grad(
        lambda x: monai(x, torch.tensor(labels[:, None])), logits)
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.boundary_loss(x, jnp.asarray(labels, jnp.int32), per_image=per_image,
                                        include_background=include_background,
                                        reduction="none"), logits)
    _close(value, expected.reshape(value.shape))
    _close(grad, expected_grad)


@pytest.mark.parametrize("shape", SPATIAL_SHAPES)
@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("alpha", [2.0, 1.0])
def test_hausdorff_against_monai(shape, per_image, alpha):
    logits, labels = _blobs(shape, 4, seed=22)
    monai = monai_losses.HausdorffDTLoss(softmax=True, to_onehot_y=True, alpha=alpha,
                                         batch=not per_image, reduction="none")
    expected, expected_grad = _torch_value_and_grad(
        lambda x: monai(x, torch.tensor(labels[:, None])), logits)
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.hausdorff_dt_loss(x, jnp.asarray(labels, jnp.int32), alpha=alpha,
                                            per_image=per_image, reduction="none"), logits)
    _close(value, expected.reshape(value.shape))
    _close(grad, expected_grad)


@pytest.mark.parametrize("shape", SPATIAL_SHAPES)
@pytest.mark.parametrize("iterations", [0, 3])
def test_cldice_against_monai(shape, iterations):
    logits, labels = _blobs(shape, 3, seed=23)
    monai = monai_losses.SoftclDiceLoss(iter_=iterations, softmax=True, to_onehot_y=True,
                                        reduction="none")
    expected, expected_grad = _torch_value_and_grad(
        lambda x: monai(x, torch.tensor(labels[:, None])), logits)
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.cldice_loss(x, jnp.asarray(labels, jnp.int32), iterations=iterations,
                                      reduction="none"), logits)
    _close(value, expected)
    _close(grad, expected_grad)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("include_background", [True, False])
def test_dice_ce_against_monai(shape, include_background):
    logits, labels = _inputs(shape, 4, seed=31, absent=3)
    monai = monai_losses.DiceCELoss(softmax=True, to_onehot_y=True, lambda_dice=0.7,
                                    lambda_ce=1.3, include_background=include_background)
    expected, expected_grad = _torch_value_and_grad(
        lambda x: monai(x, torch.tensor(labels[:, None])), logits)
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.dice_ce_loss(x, jnp.asarray(labels, jnp.int32), lambda_dice=0.7,
                                       lambda_ce=1.3, include_background=include_background),
        logits)
    _close(value, expected)
    _close(grad, expected_grad)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("gamma", [2.0, 0.5])
def test_dice_focal_against_monai(shape, include_background, gamma):
    logits, labels = _inputs(shape, 4, seed=32, absent=3)
    monai = monai_losses.DiceFocalLoss(softmax=True, to_onehot_y=True, gamma=gamma,
                                       lambda_dice=0.6, lambda_focal=1.4,
                                       include_background=include_background)
    expected, expected_grad = _torch_value_and_grad(
        lambda x: monai(x, torch.tensor(labels[:, None])), logits)
    value, grad = _ours_value_and_grad(
        lambda x: jaxloss.dice_focal_loss(x, jnp.asarray(labels, jnp.int32), gamma=gamma,
                                          lambda_dice=0.6, lambda_focal=1.4,
                                          include_background=include_background), logits)
    _close(value, expected)
    _close(grad, expected_grad)

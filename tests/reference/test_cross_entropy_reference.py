"""jaxloss.classification.cross_entropy against torch, kornia and optax: value AND gradient.

Expected values and gradients come from the reference libraries, computed in the
same process (torch 2.13 CPU, kornia, optax). jaxloss is channels-last (class
axis -1); torch and kornia are channels-first, so the torch side moves the class
axis to dim 1 inside the reference function and the gradients come back in the
jaxloss layout. Non-scalar outputs (reduction="none") are compared through a
vector-Jacobian product with the same random cotangent on both sides.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import kornia
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

import jaxloss

REDUCTIONS = ("mean", "sum", "none")
RTOL, ATOL = 1e-5, 1e-6


def _compare(jax_fn, torch_fn, x: np.ndarray, *, seed: int = 0, rtol=RTOL, atol=ATOL):
    """Value and vector-Jacobian product (w.r.t. ``x``) of ``jax_fn`` and ``torch_fn``."""
    value, vjp = jax.vjp(jax_fn, jnp.asarray(x))
    cot = np.random.default_rng(seed + 100).normal(size=value.shape).astype(np.float32)
    (grad,) = vjp(jnp.asarray(cot, value.dtype))
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    expected = torch_fn(xt)
    expected.backward(torch.tensor(cot))
    assert value.shape == tuple(expected.shape)
    np.testing.assert_allclose(np.asarray(value), expected.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.asarray(grad), xt.grad.numpy(), rtol=rtol, atol=atol)


def _channels_first(x: torch.Tensor) -> torch.Tensor:
    return torch.movedim(x, -1, 1)


def _softmax_np(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


SHAPES = [(7, 5), (3, 4, 5, 3), (2, 3, 1, 5, 4), (1, 2)]


# --------------------------------------------------------------------------- cross_entropy_loss

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [None, -100, 1])
def test_cross_entropy_index_targets_vs_torch(reduction, shape, smoothing, weighted, ignore):
    rng = np.random.default_rng([len(shape), shape[-1], int(smoothing * 100), weighted,
                                 {None: 0, -100: 1, 1: 2}[ignore]])
    num_classes = shape[-1]
    x = (2 * rng.normal(size=shape)).astype(np.float32)
    labels = rng.integers(0, num_classes, size=shape[:-1]).astype(np.int64)
    if ignore == -100:
        labels.reshape(-1)[::3] = -100
    weight = rng.uniform(0.2, 3.0, size=num_classes).astype(np.float32) if weighted else None
    kwargs = dict(label_smoothing=smoothing, class_weights=weight, reduction=reduction,
                  ignore_index=-100 if ignore is None else ignore)

    def ours(z):
        return jaxloss.cross_entropy_loss(z, jnp.asarray(labels, jnp.int32), **kwargs)

    if ignore is not None and np.all(labels == ignore) and reduction == "mean":
        # torch gives 0/0 = NaN when every target is ignored; jaxloss's mean over nothing is 0
        value, grad = jax.value_and_grad(ours)(jnp.asarray(x))
        assert float(value) == 0.0
        np.testing.assert_array_equal(np.asarray(grad), 0.0)
        return

    def reference(z):
        return F.cross_entropy(
            _channels_first(z), torch.tensor(labels),
            weight=None if weight is None else torch.tensor(weight),
            ignore_index=kwargs["ignore_index"], label_smoothing=smoothing, reduction=reduction)

    _compare(ours, reference, x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_probability_targets_vs_torch(reduction, shape, smoothing, weighted):
    rng = np.random.default_rng(len(shape) * 31 + int(smoothing * 10) + weighted)
    x = (2 * rng.normal(size=shape)).astype(np.float32)
    targets = _softmax_np(rng.normal(size=shape) * 2)
    weight = rng.uniform(0.2, 3.0, size=shape[-1]).astype(np.float32) if weighted else None

    def ours(z):
        return jaxloss.cross_entropy_loss(z, jnp.asarray(targets), class_weights=weight,
                                          label_smoothing=smoothing, reduction=reduction)

    def reference(z):
        return F.cross_entropy(
            _channels_first(z), _channels_first(torch.tensor(targets)),
            weight=None if weight is None else torch.tensor(weight),
            label_smoothing=smoothing, reduction=reduction)

    _compare(ours, reference, x)


@pytest.mark.parametrize("shape", [(8, 6), (2, 3, 4, 6)])
def test_cross_entropy_vs_optax(shape):
    rng = np.random.default_rng(3)
    x = jnp.asarray(3 * rng.normal(size=shape), jnp.float32)
    labels = jnp.asarray(rng.integers(0, shape[-1], size=shape[:-1]), jnp.int32)
    soft = jnp.asarray(_softmax_np(rng.normal(size=shape)))

    def ours_int(z):
        return jaxloss.cross_entropy_loss(z, labels, reduction="none")

    def ref_int(z):
        return optax.losses.softmax_cross_entropy_with_integer_labels(z, labels)

    def ours_soft(z):
        return jaxloss.cross_entropy_loss(z, soft, reduction="none")

    def ref_soft(z):
        return optax.losses.softmax_cross_entropy(z, soft)

    for ours, ref in ((ours_int, ref_int), (ours_soft, ref_soft)):
        np.testing.assert_allclose(ours(x), ref(x), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(jax.grad(lambda z, f=ours: jnp.sum(f(z)))(x),
                                   jax.grad(lambda z, f=ref: jnp.sum(f(z)))(x),
                                   rtol=RTOL, atol=ATOL)


def test_cross_entropy_from_probabilities_vs_torch_nll():
    rng = np.random.default_rng(12)
    p = _softmax_np(rng.normal(size=(6, 4)))
    labels = rng.integers(0, 4, size=(6,)).astype(np.int64)

    def ours(z):
        return jaxloss.cross_entropy_loss(z, jnp.asarray(labels, jnp.int32), from_logits=False,
                                          reduction="none")

    def reference(z):
        return F.nll_loss(torch.log(z), torch.tensor(labels), reduction="none")

    _compare(ours, reference, p)


def test_cross_entropy_axis_1_vs_torch():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(3, 4, 5, 2)).astype(np.float32)              # channels-first (N, C, H, W)
    labels = rng.integers(0, 4, size=(3, 5, 2)).astype(np.int64)

    def ours(z):
        return jaxloss.cross_entropy_loss(z, jnp.asarray(labels, jnp.int32), axis=1,
                                          label_smoothing=0.1)

    def reference(z):
        return F.cross_entropy(z, torch.tensor(labels), label_smoothing=0.1)

    _compare(ours, reference, x)


# --------------------------------------------------------------------- binary_cross_entropy_loss

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(9,), (6, 5), (2, 3, 4, 3)])
@pytest.mark.parametrize("pos_weight", [None, "scalar", "vector"])
def test_bce_with_logits_vs_torch(reduction, shape, pos_weight):
    rng = np.random.default_rng(len(shape))
    x = (3 * rng.normal(size=shape)).astype(np.float32)
    x.reshape(-1)[0] = 0.0                                  # the kink of max(x, 0)
    t = rng.uniform(size=shape).astype(np.float32)
    t.reshape(-1)[1::2] = np.round(t.reshape(-1)[1::2])
    pw = {None: None, "scalar": np.float32(2.5),
          "vector": rng.uniform(0.3, 3.0, size=shape[-1]).astype(np.float32)}[pos_weight]

    def ours(z):
        return jaxloss.binary_cross_entropy_loss(z, jnp.asarray(t), pos_weight=pw,
                                                 reduction=reduction)

    def reference(z):
        return F.binary_cross_entropy_with_logits(
            z, torch.tensor(t), pos_weight=None if pw is None else torch.tensor(pw),
            reduction=reduction)

    _compare(ours, reference, x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_label_smoothing_vs_torch(reduction):
    rng = np.random.default_rng(5)
    x = (3 * rng.normal(size=(6, 4))).astype(np.float32)
    t = (rng.uniform(size=(6, 4)) < 0.5).astype(np.int32)          # integer labels are cast
    s = 0.2
    smoothed = (t * (1 - s) + s / 2).astype(np.float32)

    def ours(z):
        return jaxloss.binary_cross_entropy_loss(z, jnp.asarray(t), label_smoothing=s,
                                                 reduction=reduction)

    def reference(z):
        return F.binary_cross_entropy_with_logits(z, torch.tensor(smoothed), reduction=reduction)

    _compare(ours, reference, x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(10,), (3, 4, 5)])
def test_bce_probabilities_vs_torch(reduction, shape):
    rng = np.random.default_rng(7)
    p = rng.uniform(0.01, 0.99, size=shape).astype(np.float32)
    t = rng.uniform(size=shape).astype(np.float32)

    def ours(z):
        return jaxloss.binary_cross_entropy_loss(z, jnp.asarray(t), from_logits=False,
                                                 reduction=reduction)

    def reference(z):
        return F.binary_cross_entropy(z, torch.tensor(t), reduction=reduction)

    # torch's backward divides by max(p (1 - p), 1e-12) after rounding p - t:
    # a few ulps apart from the autodiff quotient, so rtol 1e-5 on the gradient
    # holds only with an atol at the gradient's float32 resolution.
    _compare(ours, reference, p, atol=1e-5)


def test_bce_probabilities_at_0_and_1_match_torch_value():
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5], np.float32)
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.3], np.float32)
    ours = jaxloss.binary_cross_entropy_loss(p, t, from_logits=False, reduction="none")
    expected = F.binary_cross_entropy(torch.tensor(p), torch.tensor(t), reduction="none")
    np.testing.assert_allclose(ours, expected.numpy(), rtol=RTOL, atol=ATOL)
    grad = jax.grad(lambda z: jaxloss.binary_cross_entropy_loss(z, t, from_logits=False))(p)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_bce_vs_optax():
    rng = np.random.default_rng(8)
    x = jnp.asarray(5 * rng.normal(size=(5, 7)), jnp.float32)
    t = jnp.asarray(rng.uniform(size=(5, 7)), jnp.float32)
    np.testing.assert_allclose(
        jaxloss.binary_cross_entropy_loss(x, t, reduction="none"),
        optax.losses.sigmoid_binary_cross_entropy(x, t), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        jax.grad(lambda z: jaxloss.binary_cross_entropy_loss(z, t, reduction="sum"))(x),
        jax.grad(lambda z: jnp.sum(optax.losses.sigmoid_binary_cross_entropy(z, t)))(x),
        rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------------- focal_loss

@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("shape", [(8, 4), (2, 3, 5, 6)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_focal_vs_kornia(gamma, alpha, shape, reduction):
    rng = np.random.default_rng(int(gamma * 10) + len(shape))
    x = (2 * rng.normal(size=shape)).astype(np.float32)
    labels = rng.integers(0, shape[-1], size=shape[:-1]).astype(np.int64)
    positions = int(np.prod(shape[:-1]))

    def ours(z):
        return jaxloss.focal_loss(z, jnp.asarray(labels, jnp.int32), gamma=gamma, alpha=alpha,
                                  reduction=reduction)

    def reference(z):
        kornia_reduction = "none" if reduction == "none" else "sum"
        out = kornia.losses.focal_loss(_channels_first(z), torch.tensor(labels), alpha=alpha,
                                       gamma=gamma, reduction=kornia_reduction)
        if reduction == "none":
            return out.sum(dim=1)          # kornia keeps the class axis, zeros off target
        if reduction == "mean":
            return out / positions         # kornia's mean also divides by C
        return out

    _compare(ours, reference, x)


def _torch_focal_soft(z, t, gamma, alpha_vec):
    """sum_c -alpha_c t_c (1 - p_c)^gamma log p_c per position (class axis last)."""
    log_p = torch.log_softmax(z, dim=-1)
    return -(alpha_vec * t * (1 - log_p.exp()) ** gamma * log_p).sum(-1)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_probability_targets_and_class_alpha(gamma):
    rng = np.random.default_rng(13)
    x = (2 * rng.normal(size=(6, 5))).astype(np.float32)
    soft = _softmax_np(rng.normal(size=(6, 5)) * 2)
    alpha = rng.uniform(0.1, 1.0, size=5).astype(np.float32)

    def ours(z):
        return jaxloss.focal_loss(z, jnp.asarray(soft), gamma=gamma, alpha=alpha,
                                  reduction="none")

    def reference(z):
        return _torch_focal_soft(z, torch.tensor(soft), gamma, torch.tensor(alpha))

    _compare(ours, reference, x)

    # One-hot float targets equal index targets; kornia's scalar alpha as a vector.
    labels = rng.integers(0, 5, size=(6,))
    one_hot = np.eye(5, dtype=np.float32)[labels]
    vec = np.array([0.75, 0.25, 0.25, 0.25, 0.25], np.float32)

    def ours_one_hot(z):
        return jaxloss.focal_loss(z, jnp.asarray(one_hot), gamma=gamma, alpha=vec,
                                  reduction="sum")

    def reference_kornia(z):
        return kornia.losses.focal_loss(z, torch.tensor(labels), alpha=0.25, gamma=gamma,
                                        reduction="sum")

    _compare(ours_one_hot, reference_kornia, x)


# -------------------------------------------------------------------------- sigmoid_focal_loss

def _torchvision_sigmoid_focal(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """The formula of torchvision/ops/focal_loss.py (sigmoid_focal_loss), re-written in torch:
    torchvision does not import with this torch. alpha < 0 disables the weighting."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("alpha", [None, 0.25, 0.9])
def test_sigmoid_focal_vs_torchvision_formula(reduction, gamma, alpha):
    rng = np.random.default_rng(int(gamma * 10))
    x = (3 * rng.normal(size=(6, 9, 4))).astype(np.float32)
    t = (rng.uniform(size=(6, 9, 4)) < 0.3).astype(np.float32)
    t[0] = rng.uniform(size=(9, 4))                                  # soft targets too

    def ours(z):
        return jaxloss.sigmoid_focal_loss(z, jnp.asarray(t), gamma=gamma, alpha=alpha,
                                          reduction=reduction)

    def reference(z):
        return _torchvision_sigmoid_focal(z, torch.tensor(t), alpha=-1 if alpha is None else alpha,
                                          gamma=gamma, reduction=reduction)

    _compare(ours, reference, x)


def test_sigmoid_focal_vs_optax():
    rng = np.random.default_rng(21)
    x = jnp.asarray(3 * rng.normal(size=(7, 6)), jnp.float32)
    t = jnp.asarray(rng.uniform(size=(7, 6)) < 0.4, jnp.float32)
    ours = jaxloss.sigmoid_focal_loss(x, t, gamma=1.5, alpha=0.3, reduction="none")
    np.testing.assert_allclose(
        ours, optax.losses.sigmoid_focal_loss(x, t, alpha=0.3, gamma=1.5), rtol=RTOL, atol=ATOL)


def test_sigmoid_focal_retinanet_normalisation():
    """RetinaNet: focal loss summed over all anchors and classes / number of positive anchors."""
    rng = np.random.default_rng(22)
    anchors, classes = 50, 4
    x = (2 * rng.normal(size=(2, anchors, classes))).astype(np.float32)
    labels = rng.integers(-1, classes, size=(2, anchors))           # -1: background anchor
    t = np.zeros((2, anchors, classes), np.float32)
    positive = labels >= 0
    t[positive, labels[positive]] = 1.0
    num_positive = max(1, int(positive.sum()))

    def ours(z):
        return jaxloss.sigmoid_focal_loss(z, jnp.asarray(t), reduction="sum") / num_positive

    def reference(z):
        return _torchvision_sigmoid_focal(z, torch.tensor(t), reduction="sum") / num_positive

    _compare(ours, reference, x)


# -------------------------------------------------------------------- poly1_cross_entropy_loss

@pytest.mark.parametrize("epsilon", [2.0, -1.0, 0.5])
@pytest.mark.parametrize("shape", [(8, 5), (2, 3, 4, 6)])
def test_poly1_vs_optax(epsilon, shape):
    rng = np.random.default_rng(len(shape) + int(abs(epsilon) * 10))
    x = jnp.asarray(2 * rng.normal(size=shape), jnp.float32)
    labels = jnp.asarray(rng.integers(0, shape[-1], size=shape[:-1]), jnp.int32)
    one_hot = jax.nn.one_hot(labels, shape[-1], dtype=jnp.float32)
    soft = jnp.asarray(_softmax_np(rng.normal(size=shape)))
    for targets, labels_ref in ((labels, one_hot), (one_hot, one_hot), (soft, soft)):
        def ours(z, targets=targets):
            return jaxloss.poly1_cross_entropy_loss(z, targets, epsilon=epsilon, reduction="none")

        def ref(z, labels_ref=labels_ref):
            return optax.losses.poly_loss_cross_entropy(z, labels_ref, epsilon=epsilon)

        np.testing.assert_allclose(ours(x), ref(x), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(jax.grad(lambda z, f=ours: jnp.sum(f(z)))(x),
                                   jax.grad(lambda z, f=ref: jnp.sum(f(z)))(x),
                                   rtol=RTOL, atol=ATOL)
        for reduction, reduce in (("mean", jnp.mean), ("sum", jnp.sum)):
            np.testing.assert_allclose(
                jaxloss.poly1_cross_entropy_loss(x, targets, epsilon=epsilon,
                                                 reduction=reduction),
                reduce(ref(x)), rtol=RTOL, atol=ATOL)


def test_poly1_default_epsilon_is_optax_default():
    rng = np.random.default_rng(30)
    x = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    soft = jnp.asarray(_softmax_np(rng.normal(size=(4, 3))))
    np.testing.assert_allclose(jaxloss.poly1_cross_entropy_loss(x, soft, reduction="none"),
                               optax.losses.poly_loss_cross_entropy(x, soft),
                               rtol=RTOL, atol=ATOL)

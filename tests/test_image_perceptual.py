"""Tests of jaxloss/image/perceptual.py: gram_matrix, style_loss, perceptual_loss.

References, computed independently of jaxloss:
  * ``gram_matrix``: a float64 ``numpy.einsum``.
  * ``style_loss`` and ``perceptual_loss``: PyTorch (torch 2.13, float64). The
    same tiny conv net as tests/cases_image_perceptual.py, built from
    ``torch.nn.Conv2d`` layers with the weights copied (HWIO -> OIHW), run on
    the images transposed to NCHW; Gram matrices via ``torch.bmm``; the
    distances via ``torch.nn.functional.l1_loss`` / ``mse_loss``; gradients
    with respect to the predictions via autograd, transposed back to NHWC.
"""

from __future__ import annotations

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from tests import cases_image_perceptual as cases

# float32 jaxloss against a float64 reference: a few float32 roundings in the
# convolutions (27 and 36 products) and the sums.
RTOL, ATOL = 1e-5, 1e-6


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


# --------------------------------------------------------------------------------------
# The torch reference network: the tiny conv net of the battery case, weights copied.
# --------------------------------------------------------------------------------------


def _torch_conv(w, b, stride):
    conv = torch.nn.Conv2d(w.shape[2], w.shape[3], 3, stride=stride, padding=1).double()
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))))
        conv.bias.copy_(torch.from_numpy(b))
    return conv


_TORCH_NET = torch.nn.ModuleList([
        torch.nn.Sequential(_torch_conv(cases._W1, cases._B1, 1), torch.nn.ReLU()),
        torch.nn.Sequential(_torch_conv(cases._W2, cases._B2, 2), torch.nn.ReLU()),
])


def _torch_features(x):
    """NCHW float64 -> [relu1, relu2], as cases.tiny_features."""
    h1 = _TORCH_NET[0](x)
    return [h1, _TORCH_NET[1](h1)]


def _torch_gram(f):
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def _nchw(x):
    return torch.tensor(np.asarray(x, np.float64).transpose(0, 3, 1, 2), requires_grad=True)


def _torch_value_and_grad(per_image_fn, x, y, reduction="mean"):
    """Per-image torch loss -> (reduced value, d/d predictions in NHWC)."""
    tx, ty = _nchw(x), _nchw(y)
    per_image = per_image_fn(tx, ty)
    value = {"mean": per_image.mean(), "sum": per_image.sum()}[reduction]
    value.backward()
    return (per_image.detach().numpy(), value.item(),
            tx.grad.numpy().transpose(0, 2, 3, 1))


def _torch_style(weights, features=_torch_features):
    def per_image(tx, ty):
        total = 0
        for w, fx, fy in zip(weights, features(tx), features(ty), strict=True):
            total = total + w * ((_torch_gram(fx) - _torch_gram(fy)) ** 2).sum((1, 2))
        return total

    return per_image


def _torch_perceptual(weights, distance):
    fn = F.l1_loss if distance == "l1" else F.mse_loss

    def per_image(tx, ty):
        total = 0
        for w, fx, fy in zip(weights, _torch_features(tx), _torch_features(ty), strict=True):
            total = total + w * fn(fx, fy, reduction="none").mean((1, 2, 3))
        return total

    return per_image


def _images(seed, shape=(3, 8, 8, 3)):
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=shape).astype(np.float32),
            rng.uniform(size=shape).astype(np.float32))


def _jax_value_and_grad(loss, x, y, **kwargs):
    return jax.jit(jax.value_and_grad(lambda p, t: loss(p, t, **kwargs)))(x, y)


# --------------------------------------------------------------------------------------
# gram_matrix
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (1, 1, 1, 4), (3, 6, 2), (2, 2, 3, 4, 5)])
def test_gram_matrix_matches_float64_einsum(shape):
    f = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    flat = f.astype(np.float64).reshape(shape[0], -1, shape[-1])
    expected = np.einsum("npc,npd->ncd", flat, flat) / (flat.shape[1] * shape[-1])
    got = jaxloss.gram_matrix(f)
    assert got.shape == (shape[0], shape[-1], shape[-1]) and got.dtype == jnp.float32
    _close(got, expected)


@hypothesis.settings(max_examples=10, deadline=None)
@hypothesis.given(n=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6),
                  c=st.integers(1, 5), scale=st.sampled_from([1e-3, 1.0, 1e3]),
                  seed=st.integers(0, 2**16))
def test_gram_matrix_property(n, h, w, c, scale, seed):
    f = (scale * np.random.default_rng(seed).normal(size=(n, h, w, c))).astype(np.float32)
    flat = f.astype(np.float64).reshape(n, h * w, c)
    expected = np.einsum("npc,npd->ncd", flat, flat) / (h * w * c)
    got = np.asarray(jaxloss.gram_matrix(f), np.float64)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * scale**2)
    np.testing.assert_array_equal(got, got.transpose(0, 2, 1))  # symmetric


def test_gram_matrix_half_precision_and_errors():
    f = np.random.default_rng(1).normal(size=(2, 4, 4, 3)).astype(np.float32)
    half = jnp.asarray(f, jnp.bfloat16)
    got = jaxloss.gram_matrix(half)
    assert got.dtype == jnp.bfloat16  # accumulated in float32, returned in bfloat16
    _close(got.astype(jnp.float32), jaxloss.gram_matrix(half.astype(jnp.float32)),
           rtol=1e-2, atol=1e-2)  # bfloat16 output rounding (8 bits of mantissa)
    with pytest.raises(ValueError, match="rank >= 3"):
        jaxloss.gram_matrix(f[:, 0, 0, :])
    with pytest.raises(TypeError, match="features"):
        jaxloss.gram_matrix(np.ones((2, 3, 3, 2), np.int32))


# --------------------------------------------------------------------------------------
# style_loss against torch
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_style_loss_list_outputs_matches_torch(reduction):
    x, y = _images(0)
    weights = (1.0, 0.5)
    per_image, value, grad = _torch_value_and_grad(_torch_style(weights), x, y, reduction)
    kwargs = dict(feature_fn=cases.tiny_features, layer_weights=weights)
    got, got_grad = _jax_value_and_grad(jaxloss.style_loss, x, y, reduction=reduction, **kwargs)
    _close(got, value)
    _close(got_grad, grad, atol=1e-7)
    _close(jaxloss.style_loss(x, y, reduction="none", **kwargs), per_image)


def test_style_loss_dict_outputs_subset_matches_torch():
    x, y = _images(1)
    # Only relu2 counts, with weight 3: torch's reference uses that layer alone.
    def second_only(t):
        return _torch_features(t)[1:]

    per_image, value, grad = _torch_value_and_grad(_torch_style((3.0,), second_only), x, y)
    kwargs = dict(feature_fn=cases.tiny_named_features, layer_weights={"relu2": 3.0})
    got, got_grad = _jax_value_and_grad(jaxloss.style_loss, x, y, **kwargs)
    _close(got, value)
    _close(got_grad, grad, atol=1e-7)
    _close(jaxloss.style_loss(x, y, reduction="none", **kwargs), per_image)
    # Default weights: every layer with weight 1.
    _, value_all, _ = _torch_value_and_grad(_torch_style((1.0, 1.0)), x, y)
    _close(jaxloss.style_loss(x, y, feature_fn=cases.tiny_named_features), value_all)


def test_style_loss_without_feature_fn_is_on_feature_maps():
    rng = np.random.default_rng(2)
    fx = rng.normal(size=(3, 5, 4, 6)).astype(np.float32)
    fy = rng.normal(size=(3, 5, 4, 6)).astype(np.float32)
    per_image, value, grad = _torch_value_and_grad(_torch_style((1.0,), lambda t: [t]), fx, fy)
    got, got_grad = _jax_value_and_grad(jaxloss.style_loss, fx, fy)
    _close(got, value)
    _close(got_grad, grad, atol=1e-7)
    _close(jaxloss.style_loss(fx, fy, reduction="none"), per_image)
    # A one-element layer_weights scales the single layer.
    _close(jaxloss.style_loss(fx, fy, layer_weights=[2.5]), 2.5 * value)


# --------------------------------------------------------------------------------------
# perceptual_loss against torch
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("distance", ["l1", "l2"])
@pytest.mark.parametrize("weights", [None, (0.25, 2.0)])
def test_perceptual_loss_list_outputs_matches_torch(distance, weights):
    x, y = _images(3)
    torch_weights = (1.0, 1.0) if weights is None else weights
    per_image, value, grad = _torch_value_and_grad(
            _torch_perceptual(torch_weights, distance), x, y)
    kwargs = dict(feature_fn=cases.tiny_features, layer_weights=weights, distance=distance)
    got, got_grad = _jax_value_and_grad(jaxloss.perceptual_loss, x, y, **kwargs)
    _close(got, value)
    _close(got_grad, grad, atol=1e-7)
    _close(jaxloss.perceptual_loss(x, y, reduction="none", **kwargs), per_image)


def test_perceptual_loss_mean_is_torch_mean_over_everything():
    # With equal-sized images, the "mean" over images of the per-layer means is
    # torch's l1_loss(fx, fy) (reduction="mean") over the whole batch.
    x, y = _images(4)
    tx, ty = _nchw(x), _nchw(y)
    expected = sum(F.l1_loss(fx, fy) for fx, fy in zip(_torch_features(tx), _torch_features(ty),
                                                        strict=True))
    _close(jaxloss.perceptual_loss(x, y, feature_fn=cases.tiny_features), expected.item())


def test_perceptual_loss_dict_outputs_subset_matches_torch():
    x, y = _images(5)
    per_image, value, grad = _torch_value_and_grad(_torch_perceptual((0.0, 1.5), "l2"), x, y)
    kwargs = dict(feature_fn=cases.tiny_named_features, layer_weights={"relu2": 1.5},
                  distance="l2")
    got, got_grad = _jax_value_and_grad(jaxloss.perceptual_loss, x, y, **kwargs)
    _close(got, value)
    _close(got_grad, grad, atol=1e-7)
    _close(jaxloss.perceptual_loss(x, y, reduction="none", **kwargs), per_image)


def test_single_array_output_is_one_layer():
    x, y = _images(6)
    one = jaxloss.perceptual_loss(x, y, feature_fn=lambda t: cases.tiny_features(t)[0])
    listed = jaxloss.perceptual_loss(x, y, feature_fn=lambda t: cases.tiny_features(t)[:1])
    _close(one, listed, rtol=0, atol=0)


# --------------------------------------------------------------------------------------
# Flat and identical images, jit, traced layer weights, where.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [jaxloss.style_loss, jaxloss.perceptual_loss])
def test_flat_and_identical_images_are_finite(loss):
    x, _ = _images(7)
    flat = np.full_like(x, 0.5)
    value_and_grad = jax.jit(jax.value_and_grad(
            lambda p, t: loss(p, t, feature_fn=cases.tiny_features)))
    for p, t in ((x, x.copy()), (flat, flat.copy()), (np.zeros_like(x), np.zeros_like(x))):
        value, grad = value_and_grad(p, t)
        # Under jit XLA may evaluate the two feature passes with different fusions, so
        # identical images give 0 up to float32 rounding, not always exactly.
        _close(value, 0.0, rtol=0, atol=1e-12)
        _close(grad, np.zeros_like(x), rtol=0, atol=1e-6)
    value, grad = value_and_grad(flat, np.zeros_like(x))
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize("loss", [jaxloss.style_loss, jaxloss.perceptual_loss])
def test_jit_and_traced_layer_weights(loss):
    x, y = _images(8)
    eager = loss(x, y, feature_fn=cases.tiny_features, layer_weights=(0.5, 2.0))

    @jax.jit
    def f(p, t, w):
        return loss(p, t, feature_fn=cases.tiny_features, layer_weights=(w[0], w[1]))

    w = jnp.array([0.5, 2.0])
    _close(f(x, y, w), eager)
    # The loss is linear in the layer weights: d/dw_l is layer l's term alone.
    dw = jax.grad(f, argnums=2)(x, y, w)
    first = loss(x, y, feature_fn=lambda t: cases.tiny_features(t)[:1])
    second = loss(x, y, feature_fn=lambda t: cases.tiny_features(t)[1:])
    _close(dw, [first, second])
    # A 1-D array of weights works too, traced or not.
    _close(jax.jit(lambda p, t, w: loss(p, t, feature_fn=cases.tiny_features,
                                        layer_weights=w))(x, y, w), eager)


def test_where_drops_images_before_feature_fn():
    x, y = _images(9)
    seen = []

    def spy(t):
        seen.append(t)
        return cases.tiny_features(t)

    keep = np.array([True, False, True])
    poisoned = x.copy()
    poisoned[1] = np.nan
    value = jaxloss.perceptual_loss(poisoned, y, feature_fn=spy, where=keep)
    assert not np.any(np.isnan(np.asarray(seen[0])))  # the NaN image never reached it
    _close(value, jaxloss.perceptual_loss(x[keep], y[keep], feature_fn=cases.tiny_features))


# --------------------------------------------------------------------------------------
# Errors.
# --------------------------------------------------------------------------------------


def test_errors_layer_weights():
    x, y = _images(10, shape=(2, 4, 4, 3))
    named, listed = cases.tiny_named_features, cases.tiny_features
    for loss in (jaxloss.style_loss, jaxloss.perceptual_loss):
        with pytest.raises(ValueError, match=r"unknown layers \['relu9'\].*relu1"):
            loss(x, y, feature_fn=named, layer_weights={"relu9": 1.0})
        with pytest.raises(ValueError, match="selects no layer"):
            loss(x, y, feature_fn=named, layer_weights={})
        with pytest.raises(TypeError, match="must be a dict"):
            loss(x, y, feature_fn=named, layer_weights=(1.0, 1.0))
        with pytest.raises(TypeError, match="sequence of weights"):
            loss(x, y, feature_fn=listed, layer_weights={"relu1": 1.0})
        with pytest.raises(ValueError, match="3 entries but feature_fn returns 2"):
            loss(x, y, feature_fn=listed, layer_weights=(1.0, 1.0, 1.0))
        with pytest.raises(ValueError, match=r"layer_weights\[1\] must lie in"):
            loss(x, y, feature_fn=listed, layer_weights=(1.0, -1.0))
        with pytest.raises(TypeError, match="must be callable"):
            loss(x, y, feature_fn="vgg")
        with pytest.raises(TypeError, match="list/tuple or a dict"):
            loss(x, y, feature_fn=lambda t: None)
        with pytest.raises(ValueError, match="no feature maps"):
            loss(x, y, feature_fn=lambda t: [])


def test_errors_inputs():
    x, y = _images(11, shape=(2, 4, 4, 3))
    with pytest.raises(ValueError, match="perceptual_loss needs feature_fn"):
        jaxloss.perceptual_loss(x, y)
    with pytest.raises(ValueError, match="distance must be one of"):
        jaxloss.perceptual_loss(x, y, feature_fn=cases.tiny_features, distance="l3")
    # Wrong rank: style_loss on rank-2 "feature maps", feature maps without the batch axis.
    with pytest.raises(ValueError, match=r"predictions must be \(N, H, W, C\) feature maps"):
        jaxloss.style_loss(x[:, 0, 0, :], y[:, 0, 0, :])
    with pytest.raises(ValueError, match="batch axis first"):
        jaxloss.perceptual_loss(x, y, feature_fn=lambda t: [t[0]])
    with pytest.raises(ValueError, match=r"rank >= 3"):  # a Gram needs spatial axes
        jaxloss.style_loss(x, y, feature_fn=lambda t: [t.mean(axis=(1, 2))])
    with pytest.raises(ValueError, match="predictions must be an image batch"):
        jaxloss.perceptual_loss(np.float32(1.0), np.float32(1.0), feature_fn=lambda t: t)
    with pytest.raises(ValueError, match="targets has shape"):
        jaxloss.perceptual_loss(x, y[:1], feature_fn=cases.tiny_features)
    with pytest.raises(TypeError, match="targets must be a floating"):
        jaxloss.style_loss(x, (255 * y).astype(np.uint8), feature_fn=cases.tiny_features)
    with pytest.raises(TypeError, match="feature map 0 of the predictions"):
        jaxloss.perceptual_loss(x, y, feature_fn=lambda t: [(t > 0.5).astype(jnp.int32)])
    with pytest.raises(ValueError, match="same layers for both"):
        calls = iter([{"a": x}, {"b": y}])
        jaxloss.perceptual_loss(x, y, feature_fn=lambda t: next(calls))

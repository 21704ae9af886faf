"""Overlap losses: conventions, shapes, extremes, bad input and identities."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss


def _inputs(seed=0, shape=(3, 5, 4), num_classes=3):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(rng.normal(size=(*shape, num_classes)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, num_classes, size=shape), jnp.int32)
    return logits, labels


@pytest.mark.parametrize(
    ("kwargs", "shape"),
    [({}, (3, 3)), ({"per_image": False}, (3,)), ({"average": "micro"}, (3,)),
     ({"per_image": False, "average": "micro"}, ()), ({"include_background": False}, (3, 2))])
def test_unreduced_shapes(kwargs, shape):
    logits, labels = _inputs()
    assert jaxloss.dice_loss(logits, labels, **kwargs, reduction="none").shape == shape
    assert jaxloss.tversky_loss(logits, labels, **kwargs, reduction="none").shape == shape


def test_empty_prediction_against_empty_target():
    probs = jnp.zeros((2, 4, 4, 1))
    empty = jnp.zeros((2, 4, 4, 1))

    def loss(p, **kw):
        return jaxloss.dice_loss(p, empty, mode="binary", from_logits=False, **kw)

    # smooth > 0: 1 - smooth / smooth = 0; smooth = 0: 1 (the safe division gives score 0).
    for kwargs, expected in (({}, 0.0), ({"smooth": 0.0}, 1.0), ({"smooth": 0.0, "eps": 1e-7},
                                                                  1.0)):
        value, grad = jax.value_and_grad(lambda p, kw=kwargs: loss(p, **kw))(probs)
        assert float(value) == pytest.approx(expected, abs=1e-6)
        assert np.all(np.isfinite(np.asarray(grad)))


def test_probability_inputs_under_jit_and_vmap():
    logits, labels = _inputs(1)
    probs = jax.nn.softmax(logits)
    fn = jax.jit(lambda p: jaxloss.dice_loss(p, labels, from_logits=False))
    np.testing.assert_allclose(fn(probs), jaxloss.dice_loss(logits, labels), rtol=1e-6)
    per_sample = jax.vmap(lambda p, t: jaxloss.dice_loss(p[None], t[None], from_logits=False))(
        probs, labels)
    np.testing.assert_allclose(jnp.mean(per_sample),
                               jaxloss.dice_loss(probs, labels, from_logits=False), rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_dice_equals_tversky_half_and_focal_gamma_one(seed, per_image):
    logits, labels = _inputs(seed)
    dice = jaxloss.dice_loss(logits, labels, per_image=per_image, reduction="none")
    tversky = jaxloss.tversky_loss(logits, labels, per_image=per_image, reduction="none")
    focal = jaxloss.focal_tversky_loss(logits, labels, gamma=1.0, alpha=0.5, beta=0.5,
                                       per_image=per_image, reduction="none")
    # Dice with smooth s equals Tversky(0.5, 0.5) with smooth s/2 (both fractions halved).
    tversky_half = jaxloss.tversky_loss(logits, labels, smooth=0.5e-5, per_image=per_image,
                                        reduction="none")
    np.testing.assert_allclose(dice, tversky_half, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(focal, tversky, rtol=1e-5, atol=1e-6)


def test_jaccard_equals_tversky_one_one_when_classes_present():
    logits, labels = _inputs(3, shape=(4, 6, 6))
    jaccard = jaxloss.jaccard_loss(logits, labels, eps=0.0, reduction="none")
    tversky = jaxloss.tversky_loss(logits, labels, alpha=1.0, beta=1.0, smooth=0.0,
                                   per_image=False, reduction="none")
    np.testing.assert_allclose(jaccard, tversky, rtol=1e-5)


def test_jaccard_absent_class_contributes_zero():
    logits, labels = _inputs(4)
    labels = jnp.where(labels == 2, 0, labels)
    values = jaxloss.jaccard_loss(logits, labels, reduction="none")
    assert float(values[2]) == 0.0 and float(values[0]) > 0


def test_focal_tversky_gradient_finite_at_perfect_prediction():
    labels = jnp.array([[[0, 1], [1, 0]]])
    logits = jnp.where(jax.nn.one_hot(labels, 2) > 0, 1e4, -1e4)
    grad = jax.grad(lambda x: jaxloss.focal_tversky_loss(x, labels, gamma=0.5))(logits)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_bad_inputs_name_the_argument():
    logits, labels = _inputs()
    with pytest.raises(ValueError, match="targets"):
        jaxloss.dice_loss(logits, labels[:, :, :1])
    with pytest.raises(ValueError, match="mode"):
        jaxloss.dice_loss(logits, labels, mode="softmax")
    with pytest.raises(ValueError, match="binary"):
        jaxloss.dice_loss(logits, jnp.zeros(logits.shape), mode="binary")
    with pytest.raises(ValueError, match="class_weights"):
        jaxloss.dice_loss(logits, labels, class_weights=jnp.ones(2))
    with pytest.raises(ValueError, match="smooth"):
        jaxloss.dice_loss(logits, labels, smooth=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        jaxloss.focal_tversky_loss(logits, labels, gamma=0.0)
    with pytest.raises(ValueError, match="alpha"):
        jaxloss.tversky_loss(logits, labels, alpha=-0.1)
    with pytest.raises(ValueError, match="average"):
        jaxloss.tversky_loss(logits, labels, average="weighted")
    with pytest.raises(ValueError, match="include_background"):
        jaxloss.dice_loss(logits[..., :1], jnp.zeros(logits.shape[:-1] + (1,)), mode="binary",
                          include_background=False)
    with pytest.raises(ValueError, match="targets"):
        jaxloss.dice_loss(logits, labels + 5)  # out of range, eager
    with pytest.raises(TypeError, match="logits"):
        jaxloss.dice_loss(labels, labels)

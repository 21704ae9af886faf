"""dice_ce_loss and dice_focal_loss: kernels that equal the sum of the public parts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss import _numerics
from jaxloss.segmentation import compound


def _inputs(seed=0, shape=(3, 5, 6), num_classes=4):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(rng.normal(size=(*shape, num_classes)) * 2, jnp.float32)
    labels = jnp.asarray(rng.integers(0, num_classes, size=shape), jnp.int32)
    return logits, labels


def test_compound_losses_do_not_call_public_losses():
    # the conventions page: a compound loss adds kernels; it does not reduce two or three times.
    public = set(jaxloss.classification.__all__) | set(jaxloss.segmentation.__all__)
    called = public & set(vars(compound)) - set(compound.__all__)
    assert not called, called


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("include_background", [True, False])
def test_dice_ce_with_ignore_index_is_dice_plus_ce(smoothing, include_background):
    logits, labels = _inputs(1)
    labels = labels.at[:, 0, :2].set(255)  # the same number of ignored pixels in every image
    got = jaxloss.dice_ce_loss(logits, labels, ignore_index=255, label_smoothing=smoothing,
                               include_background=include_background, lambda_dice=0.7,
                               lambda_ce=1.3)
    dice = jaxloss.dice_loss(logits, labels, ignore_index=255,
                             include_background=include_background)
    ce = jaxloss.cross_entropy_loss(logits, labels, ignore_index=255,
                                    label_smoothing=smoothing)
    np.testing.assert_allclose(got, 0.7 * dice + 1.3 * ce, rtol=1e-5)
    onehot = jax.nn.one_hot(labels, 4)
    np.testing.assert_allclose(
        jaxloss.dice_ce_loss(logits, onehot, label_smoothing=smoothing),
        jaxloss.dice_loss(logits, onehot) + jaxloss.cross_entropy_loss(
            logits, onehot, label_smoothing=smoothing), rtol=1e-5)


@pytest.mark.parametrize(("gamma", "alpha"), [(2.0, None), (0.5, 0.25)])
@pytest.mark.parametrize("include_background", [True, False])
def test_dice_focal_with_ignore_index_is_dice_plus_focal(gamma, alpha, include_background):
    logits, labels = _inputs(2)
    labels = labels.at[:, 1, 3:].set(255)
    got = jaxloss.dice_focal_loss(logits, labels, ignore_index=255, gamma=gamma, alpha=alpha,
                                  include_background=include_background)
    dice = jaxloss.dice_loss(logits, labels, ignore_index=255,
                             include_background=include_background)
    valid = (labels != 255)[..., None]
    onehot = jax.nn.one_hot(labels, 4)  # 255 gives a zero row
    start = 0 if include_background else 1
    x, t = logits[..., start:], onehot[..., start:]
    focal = jaxloss.sigmoid_focal_loss(x, t, gamma=gamma, alpha=alpha,
                                       where=jnp.broadcast_to(valid, x.shape))
    np.testing.assert_allclose(got, dice + focal, rtol=1e-5)


def test_sigmoid_focal_values_is_the_classification_formula():
    rng = np.random.default_rng(3)
    x = jnp.asarray(np.concatenate([rng.normal(size=50) * 3, [1e4, -1e4, 0.0]]), jnp.float32)
    t = jnp.asarray(np.concatenate([rng.random(50), [1.0, 0.0, 1.0]]), jnp.float32)
    for gamma, alpha in ((2.0, None), (0.5, 0.25), (0.0, 0.75)):
        got = _numerics.sigmoid_focal_values(x, t, gamma=jnp.float32(gamma),
                                             alpha=None if alpha is None else jnp.float32(alpha))
        expected = jaxloss.sigmoid_focal_loss(x, t, gamma=gamma, alpha=alpha, reduction="none")
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    grad = jax.grad(lambda v: jnp.sum(_numerics.sigmoid_focal_values(
        v, t, gamma=jnp.float32(0.5), alpha=None)))(x)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_an_image_without_kept_pixels_has_a_zero_ce_part():
    logits, labels = _inputs(4)
    labels = labels.at[0].set(255)
    values = jaxloss.dice_ce_loss(logits, labels, ignore_index=255, lambda_dice=0.0,
                                  reduction="none")
    assert float(values[0]) == 0.0 and np.all(np.asarray(values[1:]) > 0)
    grad = jax.grad(lambda x: jaxloss.dice_ce_loss(x, labels, ignore_index=255))(logits)
    assert np.all(np.isfinite(np.asarray(grad))) and np.all(np.asarray(grad[0]) == 0)

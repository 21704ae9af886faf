"""The segmentation family's shared options and contracts, for every class-based loss.

* out-of-range labels: eager calls raise; under ``jit`` the image (or pooled
  batch) holding the label is NaN, never a clipped label's loss (the conventions page, guarantee 5);
* ``ignore_index`` drops those pixels (equals cropping them away where the
  loss has no spatial structure; invariance and zero gradient otherwise);
* ``axis=1`` equals ``jnp.moveaxis``;
* channels-first inputs get the "looks like (N, C, H, W)" message;
* distance-map losses are finite on full and empty channels under ``jit``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

C = 4
# name -> keyword arguments giving a per-image unreduced loss with the batch axis first.
PER_IMAGE = {
    "dice_loss": {},
    "jaccard_loss": {"per_image": True},
    "tversky_loss": {"alpha": 0.3, "beta": 0.7},
    "focal_tversky_loss": {},
    "generalized_dice_loss": {"per_image": True},
    "lovasz_softmax_loss": {"per_image": True},
    "boundary_loss": {},
    "hausdorff_dt_loss": {},
    "cldice_loss": {},
    "dice_ce_loss": {},
    "dice_focal_loss": {},
}
POOLED = {
    "dice_loss": {"per_image": False},
    "jaccard_loss": {},
    "generalized_dice_loss": {},
    "lovasz_softmax_loss": {},
    "boundary_loss": {"per_image": False},
}
# Losses without spatial structure: ignoring pixels equals cropping them away.
CROPPABLE = ["dice_loss", "jaccard_loss", "tversky_loss", "focal_tversky_loss",
             "generalized_dice_loss", "lovasz_softmax_loss", "dice_ce_loss", "dice_focal_loss"]
SPATIAL = ["boundary_loss", "hausdorff_dt_loss", "cldice_loss"]


def _inputs(seed=0, shape=(3, 6, 8)):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(rng.normal(size=(*shape, C)) * 2, jnp.float32)
    labels = np.zeros(shape, np.int32)
    labels[:, 1:4, 2:6] = 1
    labels[:, 3:5, 4:7] = 2
    labels[1:, 0, :3] = 3
    return logits, jnp.asarray(labels)


def _fn(name, kwargs):
    fn = getattr(jaxloss, name)
    return lambda x, y, **kw: fn(x, y, **kwargs, **kw)


@pytest.mark.parametrize("name", sorted(PER_IMAGE))
def test_out_of_range_label_is_nan_under_jit(name):
    fn = _fn(name, PER_IMAGE[name])
    logits, labels = _inputs()
    bad = labels.at[1, 2, 3].set(7).at[2, 0, 0].set(-2)
    values = np.asarray(jax.jit(lambda x, y: fn(x, y, reduction="none"))(logits, bad))
    assert np.all(np.isnan(values[1:])), values
    assert np.all(np.isfinite(values[0])), values
    np.testing.assert_allclose(values[0], np.asarray(fn(logits, labels, reduction="none"))[0],
                               rtol=1e-6)
    assert np.isnan(float(jax.jit(fn)(logits, bad)))
    # ignore_index is not out of range; a dropped image's labels do not matter.
    ignored = labels.at[1, 2, 3].set(255)
    assert np.isfinite(float(jax.jit(lambda x, y: fn(x, y, ignore_index=255))(logits, ignored)))
    keep = jnp.array([True, False, False])
    masked = jax.jit(lambda x, y: fn(x, y, where=keep))(logits, bad)
    np.testing.assert_allclose(float(masked), float(fn(logits[:1], labels[:1])), rtol=1e-6)
    with pytest.raises(ValueError, match=r"outside \[0, 4\)"):
        fn(logits, bad)


@pytest.mark.parametrize("name", sorted(POOLED))
def test_out_of_range_label_poisons_the_pooled_batch(name):
    fn = _fn(name, POOLED[name])
    logits, labels = _inputs()
    bad = labels.at[1, 2, 3].set(C)
    assert np.all(np.isnan(np.asarray(jax.jit(lambda x, y: fn(x, y, reduction="none"))(
        logits, bad))))


@pytest.mark.parametrize(("name", "kwargs"), [
    ("dice_loss", {"mode": "binary"}), ("tversky_loss", {"mode": "binary"}),
    ("lovasz_hinge_loss", {}), ("boundary_loss", {"mode": "binary"})])
def test_binary_int_targets_outside_0_1_are_nan_under_jit(name, kwargs):
    fn = _fn(name, kwargs)
    logits, labels = _inputs()
    targets = (labels > 0).astype(jnp.int32)
    if name != "lovasz_hinge_loss":
        logits, targets = logits[..., :1], targets[..., None]
    else:
        logits = logits[..., 0]
    bad = targets.at[1, 2, 3].set(2)
    values = np.asarray(jax.jit(lambda x, y: fn(x, y, reduction="none"))(logits, bad))
    assert np.all(np.isnan(values[1])) and np.all(np.isfinite(values[0]))
    with pytest.raises(ValueError, match="targets"):
        fn(logits, bad)


_POOLABLE = ("dice_loss", "jaccard_loss", "tversky_loss", "generalized_dice_loss",
             "lovasz_softmax_loss")


@pytest.mark.parametrize(("name", "per_image"), [
    *[(name, True) for name in CROPPABLE],
    *[(name, False) for name in CROPPABLE if name in _POOLABLE]])
def test_ignore_index_equals_cropping(name, per_image):
    kwargs = dict(PER_IMAGE[name])
    if name in _POOLABLE:
        kwargs["per_image"] = per_image
    fn = _fn(name, kwargs)
    logits, labels = _inputs(1)
    ignored = labels.at[:, :, 6:].set(255)

    def ours(x):
        return fn(x, ignored, ignore_index=255, reduction="none")

    def cropped(x):
        return fn(x[:, :, :6], labels[:, :, :6], reduction="none")

    np.testing.assert_allclose(ours(logits), cropped(logits), rtol=1e-5, atol=1e-6)
    grad = jax.grad(lambda x: jnp.sum(ours(x)))(logits)
    np.testing.assert_allclose(grad[:, :, :6], jax.grad(lambda x: jnp.sum(cropped(x)))(logits)
                               [:, :, :6], rtol=1e-5, atol=1e-7)
    assert np.all(np.asarray(grad[:, :, 6:]) == 0)


@pytest.mark.parametrize("name", SPATIAL)
def test_ignore_index_drops_pixels_of_distance_losses(name):
    fn = _fn(name, PER_IMAGE[name])
    logits, labels = _inputs(2)
    ignored = labels.at[:, :, 7:].set(255)

    def ours(x):
        return fn(x, ignored, ignore_index=255, reduction="none")

    value, grad = jax.value_and_grad(lambda x: jnp.sum(ours(x)))(logits)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
    assert np.all(np.asarray(grad[:, :, 7:]) == 0)
    changed = logits.at[:, :, 7:].set(-logits[:, :, 7:] * 3)
    np.testing.assert_allclose(ours(changed), ours(logits), rtol=1e-6)


ALL_CLASS_LOSSES = sorted(PER_IMAGE)


@pytest.mark.parametrize("name", ALL_CLASS_LOSSES)
def test_axis_one_equals_moveaxis(name):
    fn = _fn(name, PER_IMAGE[name])
    logits, labels = _inputs(3)
    expected = fn(logits, labels, reduction="none")
    first = jnp.moveaxis(logits, -1, 1)
    np.testing.assert_allclose(fn(first, labels, axis=1, reduction="none"), expected,
                               rtol=1e-6, atol=1e-7)
    grad = jax.grad(lambda x: fn(x, labels, axis=1))(first)
    np.testing.assert_allclose(jnp.moveaxis(grad, 1, -1),
                               jax.grad(lambda x: fn(x, labels))(logits), rtol=1e-5, atol=1e-8)
    onehot = jax.nn.one_hot(labels, C)
    np.testing.assert_allclose(fn(first, jnp.moveaxis(onehot, -1, 1), axis=1, reduction="none"),
                               fn(logits, onehot, reduction="none"), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_axis_one_in_sigmoid_modes(mode):
    logits, labels = _inputs(4)
    targets = jax.nn.one_hot(labels, C)
    if mode == "binary":
        logits, targets = logits[..., :1], targets[..., 1:2]
    for name in ("dice_loss", "jaccard_loss", "tversky_loss", "boundary_loss"):
        fn = getattr(jaxloss, name)
        np.testing.assert_allclose(
            fn(jnp.moveaxis(logits, -1, 1), jnp.moveaxis(targets, -1, 1), mode=mode, axis=1,
               reduction="none"),
            fn(logits, targets, mode=mode, reduction="none"), rtol=1e-6, atol=1e-7)


def test_axis_zero_is_refused():
    logits, labels = _inputs()
    with pytest.raises(ValueError, match="batch axis"):
        jaxloss.dice_loss(jnp.moveaxis(logits, -1, 0), labels, axis=0)


HINT = r"looks like \(N, C, H, W\); jaxloss is channels-last: jnp.moveaxis\(logits, 1, -1\)"


@pytest.mark.parametrize("name", ALL_CLASS_LOSSES)
def test_channels_first_input_gets_the_hint(name):
    fn = _fn(name, PER_IMAGE[name])
    logits, labels = _inputs(5)
    first = jnp.moveaxis(logits, -1, 1)                          # (3, 4, 6, 8)
    with pytest.raises(ValueError, match=HINT):
        fn(first, labels)                                        # class indices (N, H, W)
    with pytest.raises(ValueError, match=HINT):
        fn(first, jnp.moveaxis(jax.nn.one_hot(labels, C), -1, 1))  # one-hot, 8 > 6 "classes"


def test_channels_first_sigmoid_modes_get_the_hint():
    logits, labels = _inputs(6)
    targets = jnp.moveaxis(jax.nn.one_hot(labels, C), -1, 1)     # (3, 4, 6, 8)
    first = jnp.moveaxis(logits, -1, 1)
    with pytest.raises(ValueError, match=HINT):
        jaxloss.dice_loss(first, targets, mode="multilabel")
    with pytest.raises(ValueError, match=HINT):
        jaxloss.dice_loss(first[:, :1], targets[:, :1], mode="binary")
    with pytest.raises(ValueError, match=HINT):
        jaxloss.dice_ce_loss(first, targets)


def test_small_channels_last_shapes_still_run():
    # More classes than pixels across is legal channels-last when integer targets fix the
    # layout (the battery's 3 x 3 images with 4 classes), and one-hot targets with fewer
    # classes than the width.
    rng = np.random.default_rng(7)
    tiny = jnp.asarray(rng.normal(size=(2, 3, 3, C)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, C, size=(2, 3, 3)), jnp.int32)
    for name in ALL_CLASS_LOSSES:
        assert np.isfinite(float(_fn(name, PER_IMAGE[name])(tiny, labels))), name
    # One-hot targets and more classes than the width: refused with the default axis=-1,
    # accepted when the layout is stated with a non-negative class axis.
    onehot = jax.nn.one_hot(labels, C)
    with pytest.raises(ValueError, match="channels-last"):
        jaxloss.dice_loss(tiny, onehot)
    np.testing.assert_allclose(jaxloss.dice_loss(tiny, onehot, axis=3),
                               jaxloss.dice_loss(tiny, labels), rtol=1e-6)
    multilabel = (rng.random((2, 3, 3, C)) < 0.5).astype(np.float32)
    assert np.isfinite(float(jaxloss.dice_loss(tiny, multilabel, mode="multilabel", axis=3)))
    volume = jnp.asarray(rng.normal(size=(2, 5, 6, 4, C)), jnp.float32)
    onehot = jax.nn.one_hot(jnp.asarray(rng.integers(0, C, size=(2, 5, 6, 4))), C)
    assert np.isfinite(float(jaxloss.dice_loss(volume, onehot)))


@pytest.mark.parametrize("name", ["boundary_loss", "hausdorff_dt_loss", "cldice_loss"])
def test_distance_losses_finite_on_full_and_empty_channels_under_jit(name):
    fn = _fn(name, PER_IMAGE[name])
    logits, _ = _inputs(8)
    full = jnp.zeros((3, 6, 8), jnp.int32).at[1].set(2)  # image 0, 2: all background
    value, grad = jax.jit(jax.value_and_grad(lambda x: fn(x, full)))(logits)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
    values = jax.jit(lambda x: fn(x, full, reduction="none"))(logits)
    assert np.all(np.isfinite(np.asarray(values)))


def test_where_of_images_selects_images_of_a_per_class_loss():
    logits, labels = _inputs(9)
    keep = jnp.array([True, False, True])
    np.testing.assert_allclose(jaxloss.dice_loss(logits, labels, where=keep),
                               jaxloss.dice_loss(logits[keep], labels[keep]), rtol=1e-6)

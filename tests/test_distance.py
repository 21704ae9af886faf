"""distance_transform and signed_distance_map against scipy.ndimage."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jaxloss

ndimage = pytest.importorskip("scipy.ndimage")


def _assert_edt_close(actual, expected):
    # The bar: max abs error <= 1e-4 x the largest distance.
    scale = max(1.0, float(np.max(expected)))
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=0, atol=1e-4 * scale)


@pytest.mark.parametrize("shape", [(17, 23), (1, 9), (31, 1), (7, 9, 11), (5, 1, 6)])
@pytest.mark.parametrize("density", [0.05, 0.5, 0.95])
def test_matches_scipy(shape, density):
    rng = np.random.default_rng(hash((shape, density)) % 2**32)
    mask = rng.random(shape) < density
    mask.flat[rng.integers(mask.size)] = False  # at least one zero
    _assert_edt_close(jaxloss.distance_transform(mask), ndimage.distance_transform_edt(mask))


@pytest.mark.parametrize("sampling", [(2.0, 0.5), (0.3, 1.7, 1.0)])
def test_anisotropic_sampling(sampling):
    rng = np.random.default_rng(1)
    mask = rng.random((12, 9, 7)[: len(sampling)]) < 0.7
    mask.flat[0] = False
    expected = ndimage.distance_transform_edt(mask, sampling=sampling)
    _assert_edt_close(jaxloss.distance_transform(mask, sampling=sampling), expected)


def test_batched_spatial_axes_and_jit():
    rng = np.random.default_rng(2)
    masks = rng.random((3, 14, 10, 2)) < 0.6
    masks[:, 0, 0, :] = False
    fn = jax.jit(lambda m: jaxloss.distance_transform(m, spatial_axes=(1, 2)))
    got = fn(masks)
    for n in range(3):
        for c in range(2):
            _assert_edt_close(got[n, :, :, c], ndimage.distance_transform_edt(masks[n, :, :, c]))
    vmapped = jax.vmap(jaxloss.distance_transform)(masks[..., 0])
    np.testing.assert_array_equal(np.asarray(vmapped), np.asarray(got[..., 0]))


def test_large_image_uses_chunks():
    rng = np.random.default_rng(3)
    mask = rng.random((300, 301)) < 0.999
    mask[150, 150] = False
    _assert_edt_close(jaxloss.distance_transform(mask), ndimage.distance_transform_edt(mask))


def test_all_background_and_all_foreground():
    assert np.all(np.asarray(jaxloss.distance_transform(np.zeros((4, 5)))) == 0)
    # the conventions page, guarantee 6: a mask with no zero gives the grid's diagonal,
    # sqrt(4^2 + 5^2), not inf
    # (the old contract was inf).
    np.testing.assert_allclose(np.asarray(jaxloss.distance_transform(np.ones((4, 5)))),
                               np.full((4, 5), np.hypot(4.0, 5.0)), rtol=1e-6)
    for full in (np.zeros((4, 5)), np.ones((4, 5))):
        assert np.all(np.asarray(jaxloss.signed_distance_map(full)) == 0)


def test_mask_without_zero_is_finite_under_jit():
    masks = np.ones((3, 6, 4, 2), bool)
    masks[0, 2, 1, 0] = False  # one image-channel with a zero, the others full
    edt = jax.jit(lambda m: jaxloss.distance_transform(m, spatial_axes=(1, 2),
                                                       sampling=(2.0, 0.5)))(masks)
    edt = np.asarray(edt)
    assert np.all(np.isfinite(edt))
    np.testing.assert_allclose(edt[1:], np.hypot(6 * 2.0, 4 * 0.5), rtol=1e-6)
    np.testing.assert_allclose(edt[..., 1], np.hypot(6 * 2.0, 4 * 0.5), rtol=1e-6)
    _assert_edt_close(edt[0, :, :, 0],
                      ndimage.distance_transform_edt(masks[0, :, :, 0], sampling=(2.0, 0.5)))
    # Every real distance is below the diagonal: adding a zero only lowers the map.
    assert edt[0, :, :, 0].max() < np.hypot(12.0, 2.0)
    signed = jax.jit(lambda m: jaxloss.signed_distance_map(m, spatial_axes=(1, 2)))(masks)
    assert np.all(np.asarray(signed)[1:] == 0) and np.all(np.isfinite(np.asarray(signed)))
    grad = jax.grad(lambda x: jnp.sum(jaxloss.distance_transform(x > 0)))(jnp.ones((3, 3)))
    assert np.all(np.asarray(grad) == 0)


@settings(max_examples=15, deadline=None)
@given(hnp.arrays(np.bool_, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=8)),
       st.data())
def test_signed_distance_map_property(mask, data):
    signed = np.asarray(jaxloss.signed_distance_map(mask))
    if mask.all() or not mask.any():
        assert np.all(signed == 0)
        return
    expected = ndimage.distance_transform_edt(~mask) - ndimage.distance_transform_edt(mask)
    _assert_edt_close(signed, expected)
    assert np.all(signed[mask] < 0) and np.all(signed[~mask] > 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="sampling"):
        jaxloss.distance_transform(np.ones((3, 3)), sampling=(1.0, -1.0))
    with pytest.raises(ValueError, match="spatial_axes"):
        jaxloss.distance_transform(np.ones((3, 3)), spatial_axes=(0, 0))
    with pytest.raises(ValueError, match="sampling"):
        jaxloss.distance_transform(np.ones((3, 3)), sampling=(1.0, 2.0, 3.0))

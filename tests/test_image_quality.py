"""Properties, edge cases and errors of the image-quality losses.

Reference agreement is in tests/reference/test_image_quality_reference.py;
jit/vmap/half precision/where/weights in the shared battery.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss
from jaxloss.image import ssim


def _images(seed, shape):
    rng = np.random.default_rng(seed)
    x = rng.random(shape).astype(np.float32)
    y = np.clip(x + 0.2 * rng.normal(size=shape), 0.0, 1.0).astype(np.float32)
    return x, y


def _finite(value, grad):
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(np.asarray(grad)))


SSIM_LIKE = [
    ("ssim_valid", lambda a, b: jaxloss.ssim_loss(a, b, window_size=5)),
    ("ssim_same", lambda a, b: jaxloss.ssim_loss(a, b, window_size=5, padding="same")),
    ("ms_ssim_same", lambda a, b: jaxloss.ms_ssim_loss(a, b, window_size=3, padding="same",
                                                       power_factors=(0.5, 0.5))),
]


@pytest.mark.parametrize("name, loss", SSIM_LIKE, ids=[n for n, _ in SSIM_LIKE])
def test_flat_and_identical_images(name, loss):
    """Identical images: loss 0; flat images: finite value and gradient (variance clamp)."""
    x, _ = _images(0, (2, 10, 11, 2))
    flat = np.full(x.shape, 0.5, np.float32)
    vag = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    value, grads = vag(x, x)
    np.testing.assert_allclose(float(value), 0.0, atol=1e-6)
    _finite(value, grads)
    # at identical images the loss is minimal: the gradient vanishes
    np.testing.assert_allclose(np.asarray(grads[0]), 0.0, atol=1e-6)
    for a, b in ((flat, flat), (flat, x), (np.zeros_like(x), np.ones_like(x))):
        value, grads = vag(a, b)
        _finite(value, grads)
    np.testing.assert_allclose(float(vag(flat, flat)[0]), 0.0, atol=1e-6)


def test_psnr_and_tv_at_their_extremes():
    x, _ = _images(1, (2, 4, 5, 3))
    value, grad = jax.jit(jax.value_and_grad(lambda a: jaxloss.psnr_loss(a, x)))(x)
    np.testing.assert_allclose(float(value), -100.0, rtol=1e-6)  # 10 log10(1 / 1e-10)
    assert np.all(np.asarray(grad) == 0)
    flat = jnp.full((2, 4, 5, 3), 3.0)
    for isotropic in (False, True):
        value, grad = jax.jit(jax.value_and_grad(
            lambda a, i=isotropic: jaxloss.total_variation_loss(a, isotropic=i)))(flat)
        assert float(value) == 0.0 and np.all(np.asarray(grad) == 0)


def test_chunked_batch_equals_one_pass(monkeypatch):
    """Large batches go through lax.map in chunks of images: same value and gradient."""
    x, y = _images(2, (6, 9, 8, 2))
    w = jnp.arange(1.0, 7.0)

    def loss(a, b):
        return jnp.sum(w * jaxloss.ssim_loss(a, b, window_size=3, padding="same",
                                             reduction="none"))

    one_pass = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, y)
    # 2 images per chunk (9 * 8 * 2 values each); a fresh trace of the jitted core
    monkeypatch.setattr(ssim, "_CHUNK_ELEMENTS", 2 * 9 * 8 * 2)
    ssim._ssim_values.clear_cache()
    assert ssim._chunk_size(6, 9 * 8 * 2) == 2
    chunked = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, y)
    ssim._ssim_values.clear_cache()
    np.testing.assert_allclose(float(chunked[0]), float(one_pass[0]), rtol=1e-6)
    for a, b in zip(chunked[1], one_pass[1], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-9)


def test_chunk_size():
    assert ssim._chunk_size(16, 256 * 256 * 3) == 2
    assert ssim._chunk_size(7, 256 * 256 * 3) == 1  # prime batch: one image at a time
    assert ssim._chunk_size(4, 10) == 4  # small images: no chunking
    assert ssim._chunk_size(0, 10) == 1


def test_second_order_and_forward_mode():
    """The analytic custom_jvp rule is itself differentiable: hessian-vector products work."""
    x, y = _images(3, (1, 7, 7, 1))

    def loss(a):
        return jaxloss.ssim_loss(a, y, window_size=3)

    v = jnp.asarray(np.random.default_rng(4).normal(size=x.shape).astype(np.float32))
    hvp = jax.jit(lambda a: jax.jvp(jax.grad(loss), (a,), (v,))[1])(x)
    grad = jax.jit(jax.grad(loss))
    eps = 1e-2  # central difference of the gradient along v, in float32
    fd = (grad(x + eps * v) - grad(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(np.asarray(hvp), np.asarray(fd), rtol=2e-2,
                               atol=2e-2 * float(jnp.max(jnp.abs(fd))))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.05, 300.0))
def test_ssim_symmetric_and_scale_invariant(seed, scale):
    """SSIM(x, y) = SSIM(y, x), and scaling images and max_val together changes nothing."""
    x, y = _images(seed, (2, 9, 9, 2))
    fn = jax.jit(lambda a, b, m: jaxloss.ssim_loss(a, b, window_size=5, max_val=m,
                                                   reduction="none"))
    base = np.asarray(fn(x, y, 1.0))
    np.testing.assert_allclose(np.asarray(fn(y, x, 1.0)), base, rtol=1e-5, atol=1e-6)
    scaled = np.asarray(fn(np.float32(scale) * x, np.float32(scale) * y, scale))
    np.testing.assert_allclose(scaled, base, rtol=1e-4, atol=1e-5)
    assert np.all(base >= 0.0) and np.all(base <= 2.0)


# ----------------------------------------------------------------------------- errors


def test_error_rank():
    x = np.zeros((8, 8, 3), np.float32)
    for fn in (jaxloss.ssim_loss, jaxloss.ms_ssim_loss, jaxloss.psnr_loss):
        with pytest.raises(ValueError, match=r"predictions must be a batch of images of rank 4"):
            fn(x, x)
    with pytest.raises(ValueError, match="rank 4"):
        jaxloss.total_variation_loss(x)


def test_error_window_larger_than_image():
    x = np.zeros((1, 8, 12, 1), np.float32)
    with pytest.raises(ValueError, match=r"8x12, smaller than window_size=11"):
        jaxloss.ssim_loss(x, x)
    with pytest.raises(ValueError, match=r"needs H and W > 5"):
        jaxloss.ssim_loss(x[:, :5], x[:, :5], padding="same")
    jaxloss.ssim_loss(x, x, padding="same")  # 8 > 5: reflect padding is possible
    big = np.zeros((1, 40, 40, 1), np.float32)
    with pytest.raises(ValueError, match=r"coarsest of the 5 scales"):
        jaxloss.ms_ssim_loss(big, big, window_size=5)


def test_error_hyperparameters():
    x = np.zeros((1, 12, 12, 1), np.float32)
    with pytest.raises(ValueError, match="window_size must be odd"):
        jaxloss.ssim_loss(x, x, window_size=4)
    with pytest.raises(ValueError, match="window_size must be odd"):
        jaxloss.ms_ssim_loss(x, x, window_size=4, power_factors=(1.0,))
    with pytest.raises(TypeError, match="window_size"):
        jaxloss.ssim_loss(x, x, window_size=5.0)
    with pytest.raises(ValueError, match="padding must be one of"):
        jaxloss.ssim_loss(x, x, padding="reflect")
    with pytest.raises(ValueError, match="padding must be one of"):
        jaxloss.ms_ssim_loss(x, x, padding="SAME", power_factors=(1.0,))
    with pytest.raises(ValueError, match="sigma"):
        jaxloss.ssim_loss(x, x, sigma=0.0)
    with pytest.raises(ValueError, match="max_val"):
        jaxloss.ssim_loss(x, x, max_val=-1.0)
    with pytest.raises(ValueError, match="k2"):
        jaxloss.ssim_loss(x, x, k2=0.0)
    with pytest.raises(ValueError, match="power_factors must hold at least one"):
        jaxloss.ms_ssim_loss(x, x, power_factors=())
    with pytest.raises(ValueError, match="power_factors"):
        jaxloss.ms_ssim_loss(x, x, window_size=3, power_factors=(0.5, -0.5))
    with pytest.raises(TypeError, match="power_factors"):
        jaxloss.ms_ssim_loss(x, x, power_factors=jnp.ones(2))
    with pytest.raises(ValueError, match="eps"):
        jaxloss.psnr_loss(x, x, eps=0.0)
    with pytest.raises(TypeError, match="isotropic"):
        jaxloss.total_variation_loss(x, isotropic=1)


def test_error_traced_window():
    x = jnp.zeros((1, 12, 12, 1))
    with pytest.raises(TypeError, match="sigma must be a static"):
        jax.jit(lambda s: jaxloss.ssim_loss(x, x, sigma=s))(1.5)


@pytest.mark.parametrize("name", ["ssim_loss", "ms_ssim_loss", "total_variation_loss",
                                  "psnr_loss"])
def test_channels_first_images_are_rejected_with_the_layout_hint(name):
    # (N, C, H, W) = (2, 3, 48, 64) read as channels-last would be 64 channels of 3 x 48.
    nchw = jnp.ones((2, 3, 48, 64))
    fn = getattr(jaxloss, name)
    args = (nchw,) if name == "total_variation_loss" else (nchw, nchw)
    with pytest.raises(ValueError, match=r"looks like \(N, C, H, W\).*jnp.moveaxis"):
        jax.jit(fn)(*args)
    # The same images channels-last run.
    nhwc = jnp.moveaxis(nchw, 1, -1)
    args = (nhwc,) if name == "total_variation_loss" else (nhwc, nhwc)
    kwargs = {"window_size": 3} if name == "ms_ssim_loss" else {}
    if name == "ms_ssim_loss":
        kwargs["power_factors"] = (0.5, 0.5)
    assert np.isfinite(float(fn(*args, **kwargs)))

"""Battery cases for jaxloss/image/perceptual.py (see tests/_case.py).

The losses take images and a ``feature_fn`` (a keyword argument, so the
battery passes it through unchanged): here a tiny two-layer convolutional
network in pure ``jax.numpy``/``lax`` with fixed random weights, cast to the
images' dtype so that bfloat16/float16 images run through it in their own
dtype (as a user's network would) under strict dtype promotion.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tests._case import Case

_RNG = np.random.default_rng(1234)
_W1 = (0.4 * _RNG.normal(size=(3, 3, 3, 4))).astype(np.float32)  # HWIO
_B1 = (0.1 * _RNG.normal(size=(4,))).astype(np.float32)
_W2 = (0.3 * _RNG.normal(size=(3, 3, 4, 5))).astype(np.float32)
_B2 = (0.1 * _RNG.normal(size=(5,))).astype(np.float32)
_PAD = ((1, 1), (1, 1))


def _conv(x, w, b, stride):
    y = jax.lax.conv_general_dilated(
            x, jnp.asarray(w, x.dtype), (stride, stride), _PAD,
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.maximum(y + jnp.asarray(b, x.dtype)[None, None, None, :], jnp.zeros((), x.dtype))


def tiny_features(x):
    """Two conv3x3 + ReLU layers (the second with stride 2): ``[(N,H,W,4), (N,H/2,W/2,5)]``."""
    h1 = _conv(x, _W1, _B1, 1)
    h2 = _conv(h1, _W2, _B2, 2)
    return [h1, h2]


def tiny_named_features(x):
    h1, h2 = tiny_features(x)
    return {"relu1": h1, "relu2": h2}


def _images(rng, shape=(4, 4, 4, 3)):
    return (rng.uniform(size=shape).astype(np.float32),
            rng.uniform(size=shape).astype(np.float32))


def _make(**kwargs):
    def make(rng):
        return _images(rng), dict(kwargs)

    return make


def _extremes(**kwargs):
    def extremes():
        rng = np.random.default_rng(0)
        x, _ = _images(rng)
        zeros = np.zeros_like(x)
        huge = np.full_like(x, 1e3)
        return [((x, x.copy()), dict(kwargs)),            # identical images: zero loss
                ((zeros, zeros), dict(kwargs)),           # flat black, identical
                ((huge, -huge), dict(kwargs))]            # large, flat, far apart

    return extremes


_STYLE = {"feature_fn": tiny_named_features, "layer_weights": {"relu1": 1.0, "relu2": 0.5}}
_PERCEPTUAL = {"feature_fn": tiny_features, "layer_weights": (1.0, 2.0), "distance": "l1"}

CASES = {
    "style_loss": Case(make=_make(**_STYLE), extremes=_extremes(**_STYLE), elementwise=True),
    "perceptual_loss": Case(make=_make(**_PERCEPTUAL), extremes=_extremes(**_PERCEPTUAL),
                            elementwise=True),
}

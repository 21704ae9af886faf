"""Battery case for lpips_loss (see tests/_case.py).

The battery runs the loss with a tiny two-layer stand-in network (pure JAX,
no Flax), which exercises everything the loss itself computes (the channel
normalisation, the heads, the spatial means over several maps);
tests/reference/test_lpips_reference.py checks the real AlexNet and VGG-16
networks against a torch rewrite of the lpips package.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from tests._case import Case


class TinyLPIPSNetwork:
    """Two feature maps: a 1x1 projection with a ReLU, and its 2x2 average pool projected again."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.w1 = jnp.asarray(rng.normal(size=(3, 4)).astype(np.float32))
        self.w2 = jnp.asarray(rng.normal(size=(4, 5)).astype(np.float32))
        self.linear_weights = (jnp.asarray(rng.random(4).astype(np.float32)),
                               jnp.asarray(rng.random(5).astype(np.float32)))

    def __call__(self, images):
        f1 = jnp.maximum(jnp.einsum("nhwc,cd->nhwd", images, self.w1), 0.0)
        n, h, w, c = f1.shape
        pooled = f1[:, :h - h % 2, :w - w % 2].reshape(n, h // 2, 2, w // 2, 2, c).mean((2, 4))
        return [f1, jnp.tanh(jnp.einsum("nhwc,cd->nhwd", pooled, self.w2))]

    def __repr__(self):  # a stable key for the battery's cache of programs
        return "TinyLPIPSNetwork(0)"


_NETWORK = TinyLPIPSNetwork()


def _make(rng):
    x = rng.uniform(-1.0, 1.0, (4, 6, 7, 3)).astype(np.float32)
    y = np.clip(x + 0.3 * rng.normal(size=x.shape), -1.0, 1.0).astype(np.float32)
    return (x, y), {"network": _NETWORK}


def _extremes():
    x = np.random.default_rng(0).uniform(-1.0, 1.0, (2, 4, 5, 3)).astype(np.float32)
    zeros = np.zeros_like(x)
    kw = {"network": _NETWORK}
    return [((x, x.copy()), kw),  # identical
            ((zeros, zeros.copy()), kw),  # all-zero features at every position
            ((zeros, x), kw),
            ((np.ones_like(x), -np.ones_like(x)), kw),
            ((x[:1], zeros[:1]), kw)]


CASES = {"lpips_loss": Case(make=_make, extremes=_extremes, elementwise=True)}

"""Battery cases for the margin-softmax losses (see tests/_case.py).

Arguments are ``(embeddings (N, d), labels (N,), kernel (d, C))``: the
kernel is floating (cast in the half-precision test) but has no batch axis.
Two of the four cases run the chunked path (``block_size=2`` with ``C = 5``,
a non-divisor) so that the battery's jit/vmap/where/jacfwd checks cover the
scan too.
"""

from __future__ import annotations

import numpy as np

from tests._case import Case

N, D, C = 6, 8, 5


def _make(subcenters: int = 1, **kwargs):
    def make(rng):
        x = rng.normal(size=(N, D)).astype(np.float32)
        labels = rng.integers(0, C, size=N).astype(np.int32)
        kernel = rng.normal(size=(D, C * subcenters)).astype(np.float32)
        return (x, labels, kernel), dict(kwargs)

    return make


def extreme_inputs(subcenters: int = 1) -> list[tuple[tuple[np.ndarray, ...], dict]]:
    """Legal inputs at the extremes, without hyperparameters: ``[(args, label), ...]``.

    Embeddings exactly on their class weight (cosine exactly 1: axis-aligned
    vectors) and exactly opposite (-1), embeddings equal to a random class
    column (cosine 1 up to rounding), zero-norm embeddings, zero-norm kernel
    columns (the target's too), huge embeddings, and a single class.
    """
    rng = np.random.default_rng(0)
    columns = C * subcenters
    eye = np.eye(D, columns, dtype=np.float32)                      # column j = e_j
    labels = np.array([0, 1, 2, 3, 4, 0], np.int32)
    target_columns = labels * subcenters                             # first sub-centre
    on_weight = 3.0 * eye[:, target_columns].T                       # cos = 1 exactly
    opposite = -eye[:, target_columns].T                             # cos = -1 exactly
    kernel = rng.normal(size=(D, columns)).astype(np.float32)
    on_random = kernel[:, target_columns].T.copy()                   # cos = 1 +- 1 ulp
    x = rng.normal(size=(N, D)).astype(np.float32)
    zero_rows = x.copy()
    zero_rows[::2] = 0.0
    zero_columns = kernel.copy()
    zero_columns[:, target_columns[:3]] = 0.0                        # rows 0-2's targets
    out = [
        ((on_weight, labels, eye), "embedding on its class weight"),
        ((opposite, labels, eye), "embedding opposite its class weight"),
        ((on_random, labels, kernel), "embedding equal to its (random) class column"),
        ((zero_rows, labels, kernel), "zero-norm embeddings"),
        ((x, labels, zero_columns), "zero-norm kernel columns"),
        ((np.zeros((N, D), np.float32), labels, np.zeros_like(kernel)), "all zero"),
        ((1e4 * x, labels, 1e4 * kernel), "huge norms"),
        ((x, np.zeros(N, np.int32), kernel[:, :subcenters]), "a single class"),
    ]
    return out


def _extremes(subcenters: int = 1, *settings: dict, key: str = "num_subcenters"):
    settings = settings or ({},)
    base = {key: subcenters} if subcenters > 1 else {}

    def extremes():
        # Every extreme input at the first setting; the other settings (extreme
        # scales and margins, blocks) see the four inputs that stress them most
        # (cosine exactly +-1, all zero, huge norms) rather than the full cross
        # product, which cost the battery about a minute for little more coverage.
        inputs = [args for args, _ in extreme_inputs(subcenters)]
        stressing = [inputs[0], inputs[1], inputs[5], inputs[6]]
        return ([(args, dict(base, **settings[0])) for args in inputs]
                + [(args, dict(base, **kw)) for kw in settings[1:] for args in stressing])

    return extremes


_SCALES = ({"scale": 1e4}, {"scale": 1e-6})

CASES = {
    "arcface_loss": Case(
        make=_make(scale=16.0, margin=0.3),
        extremes=_extremes(1, {}, *_SCALES, {"margin": 0.0}, {"margin": 3.0},
                           {"block_size": 2}, {"block_size": 3, "scale": 1e4}),
        float_args=(0, 2), batch_args=(0, 1)),
    "cosface_loss": Case(
        make=_make(scale=16.0, margin=0.2, block_size=2),
        extremes=_extremes(1, {}, *_SCALES, {"margin": 0.0}, {"margin": 5.0},
                           {"block_size": 2}),
        float_args=(0, 2), batch_args=(0, 1)),
    "sphereface_loss": Case(
        make=_make(scale=2.0, margin=3),
        extremes=_extremes(1, {}, *_SCALES, {"margin": 1}, {"margin": 2}, {"margin": 7},
                           {"block_size": 2}),
        float_args=(0, 2), batch_args=(0, 1)),
    "subcenter_arcface_loss": Case(
        make=_make(subcenters=3, num_subcenters=3, scale=16.0, margin=0.3, block_size=2),
        extremes=_extremes(3, {}, *_SCALES, {"margin": 0.0}, {"margin": 3.0},
                           {"block_size": 2}),
        float_args=(0, 2), batch_args=(0, 1)),
}

"""Battery cases for the geometry losses (see tests/_case.py).

Small maps keep the battery fast; tests/test_geometry.py and
tests/reference/test_geometry_reference.py cover the defaults and 3-D inputs.
The extremes include what the conventions page asks of this family: constant
images, zero flow, a depth map without a valid pixel, zero displacement.
"""

from __future__ import annotations

import numpy as np

from tests._case import Case


def _depth(shape, **kwargs):
    def make(rng):
        p = rng.uniform(0.5, 3.0, shape).astype(np.float32)
        t = (p * np.exp(0.3 * rng.normal(size=shape))).astype(np.float32)
        t[rng.random(shape) < 0.2] = 0.0  # pixels without ground truth
        return (p, t), dict(kwargs)

    return make


def _depth_extremes(shape, **kwargs):
    def extremes():
        rng = np.random.default_rng(0)
        p = rng.uniform(0.5, 3.0, shape).astype(np.float32)
        zeros = np.zeros(shape, np.float32)
        ones = np.ones(shape, np.float32)
        return [
            ((p, zeros), dict(kwargs)),  # no valid pixel
            ((zeros, p), dict(kwargs)),  # predictions at 0 (below eps)
            ((p, p.copy()), dict(kwargs)),  # perfect
            ((ones, p), dict(kwargs)),  # constant prediction
            ((1e4 * p, p), dict(kwargs)),  # far off
            ((p[:1], 3.0 * p[:1]), dict(kwargs)),  # a batch of one, scaled
        ]

    return extremes


def _ssi_extremes(shape, **kwargs):
    def extremes():
        base = _depth_extremes(shape, **kwargs)()
        p = np.random.default_rng(1).uniform(0.5, 3.0, shape).astype(np.float32)
        return base + [((p, 2.0 * p), {**kwargs, "mask": np.zeros(shape, bool)})]  # no valid

    return extremes


def _smoothness(rng):
    d = rng.uniform(0.0, 1.0, (4, 6, 7, 1)).astype(np.float32)
    image = rng.random((4, 6, 7, 3)).astype(np.float32)
    return (d, image), {}


def _smoothness_extremes():
    rng = np.random.default_rng(0)
    d = rng.random((2, 5, 6, 1)).astype(np.float32)
    image = rng.random((2, 5, 6, 3)).astype(np.float32)
    zeros = np.zeros_like(image)
    return [((np.zeros_like(d), image), {}),  # flat disparity
            ((d, zeros), {}),  # constant image
            ((1e4 * d, 255.0 * image), {}),
            ((d[:1], image[:1]), {})]


def _flow(rng):
    p = rng.normal(size=(4, 5, 6, 2)).astype(np.float32)
    return (p, (p + rng.normal(size=p.shape)).astype(np.float32)), {}


def _flow_extremes():
    p = np.random.default_rng(0).normal(size=(2, 3, 4, 2)).astype(np.float32)
    zeros = np.zeros_like(p)
    return [((zeros, zeros.copy()), {}),  # zero flow
            ((p, p.copy()), {}),  # exact
            ((1e4 * p, -1e4 * p), {}),
            ((p[:1], zeros[:1]), {})]


def _images(shape, **kwargs):
    def make(rng):
        x = rng.random(shape).astype(np.float32)
        y = np.clip(x + 0.3 * rng.normal(size=shape), 0.0, 1.0).astype(np.float32)
        return (x, y), dict(kwargs)

    return make


def _image_extremes(shape, volume, **kwargs):
    def extremes():
        rng = np.random.default_rng(0)
        x = rng.random(shape).astype(np.float32)
        zeros = np.zeros(shape, np.float32)
        ones = np.ones(shape, np.float32)
        v = rng.random(volume).astype(np.float32)
        return [((zeros, zeros.copy()), dict(kwargs)),  # constant images
                ((ones, x), dict(kwargs)),  # constant against textured
                ((x, x.copy()), dict(kwargs)),  # identical
                ((1e4 * x, -1e4 * x), dict(kwargs)),  # far outside [0, 1]
                ((v, np.ones_like(v)), dict(kwargs)),  # a volume, constant target
                ((x[:1], ones[:1]), dict(kwargs))]

    return extremes


def _displacement(rng):
    return (rng.normal(size=(4, 6, 7, 2)).astype(np.float32),), {}


def _displacement_extremes():
    u = np.random.default_rng(0).normal(size=(2, 5, 6, 2)).astype(np.float32)
    v = np.random.default_rng(1).normal(size=(2, 4, 5, 6, 3)).astype(np.float32)
    return [((np.zeros_like(u),), {}),  # zero displacement
            ((np.zeros_like(v),), {}),  # zero 3-D displacement
            ((1e4 * u,), {}),
            ((v,), {"normalize": True}),
            ((u[:1],), {})]


CASES = {
    "silog_loss": Case(make=_depth((4, 6, 7, 1)), extremes=_depth_extremes((2, 5, 6, 1)),
                       elementwise=True),
    "scale_shift_invariant_loss": Case(make=_depth((4, 8, 8, 1), scales=2),
                                       extremes=_ssi_extremes((2, 8, 8, 1), scales=2),
                                       elementwise=True),
    "edge_aware_smoothness_loss": Case(make=_smoothness, extremes=_smoothness_extremes),
    "endpoint_error_loss": Case(make=_flow, extremes=_flow_extremes, elementwise=True),
    "lncc_loss": Case(make=_images((4, 7, 8, 1), kernel_size=3),
                      extremes=_image_extremes((2, 6, 7, 1), (2, 4, 5, 6, 1), kernel_size=3),
                      elementwise=True),
    "mutual_information_loss": Case(make=_images((4, 6, 7, 1), num_bins=8),
                                    extremes=_image_extremes((2, 6, 7, 1), (2, 4, 5, 6, 1),
                                                             num_bins=8),
                                    elementwise=True),
    "bending_energy_loss": Case(make=_displacement, extremes=_displacement_extremes,
                                float_args=(0,)),
}

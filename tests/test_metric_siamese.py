"""jaxloss.metric.siamese: stop-gradients and argument errors.

Reference agreement (MONAI, PML, torch) is in
tests/reference/test_metric_siamese_reference.py; sharding in
tests/test_sharding_metric_self_supervised.py.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxloss
from tests.test_metric_contrastive import _data


def test_stop_gradient_placement():
    a, b, _, _ = _data(3)
    for fn in (jaxloss.byol_loss, jaxloss.simsiam_loss):
        grad_p, grad_z = jax.grad(fn, argnums=(0, 1))(a, b)
        assert np.all(np.asarray(grad_z) == 0), fn.__name__
        assert np.any(np.asarray(grad_p) != 0), fn.__name__
    # The symmetric SimSiam objective: each view gets gradient only through its predictor.
    p1, z2 = a, b
    p2, z1 = b * 0.5 + 1.0, a * 2.0
    grads = jax.grad(lambda p1, z2, p2, z1: 0.5 * (jaxloss.simsiam_loss(p1, z2)
                                                   + jaxloss.simsiam_loss(p2, z1)),
                     argnums=(0, 1, 2, 3))(p1, z2, p2, z1)
    assert np.all(np.asarray(grads[1]) == 0) and np.all(np.asarray(grads[3]) == 0)
    np.testing.assert_allclose(jaxloss.byol_loss(a, b),
                               2 + 2 * jaxloss.simsiam_loss(a, b), rtol=1e-6)


def test_errors():
    a, b, _, _ = _data(7)
    with pytest.raises(ValueError, match="lambd"):
        jaxloss.barlow_twins_loss(a, b, lambd=-1.0)
    with pytest.raises(ValueError, match="eps"):
        jaxloss.vicreg_loss(a, b, eps=0.0)
    with pytest.raises(ValueError, match="rank 2"):
        jaxloss.byol_loss(a[0], b[0])

"""jaxloss.metric.siamese against its references, value and gradient.

References (run in this process on the same random float32 inputs): MONAI
(``BarlowTwinsLoss``), pytorch-metric-learning 2.9 (``VICRegLoss``), and
torch implementations of BYOL (``2 - 2 * <F.normalize(q),
F.normalize(z.detach())>``) and SimSiam (``-F.cosine_similarity(p,
z.detach())``). Embeddings are ``(N, d)``, so no layout transposition is
needed.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as tf
from monai.losses import BarlowTwinsLoss
from pytorch_metric_learning import losses as pml

import jaxloss
from tests.reference.test_metric_contrastive_reference import (
    _close,
    _close_grad,
    _jax,
    _pairs,
    _torch,
)

# --------------------------------------------------------------------------------------
# BYOL and SimSiam: torch, with the stop-gradient where the papers put it.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,d", [(5, 3), (16, 32)])
def test_byol_and_simsiam_match_torch(n, d):
    p, z = _pairs(n, d, 3 * n)

    def byol(q, t):
        return (2 - 2 * (tf.normalize(q, dim=-1) * tf.normalize(t.detach(), dim=-1)).sum(-1)
                ).mean()

    def simsiam(q, t):
        return -tf.cosine_similarity(q, t.detach(), dim=-1).mean()

    for fn, reference in ((jaxloss.byol_loss, byol), (jaxloss.simsiam_loss, simsiam)):
        want, (want_grad,) = _torch(reference, p, z)
        got, (got_grad, target_grad) = _jax(fn, p, z, grad_of=(0, 1))
        _close(got, want)
        _close_grad(got_grad, want_grad)
        assert np.all(np.asarray(target_grad) == 0)  # the stop-gradient


# --------------------------------------------------------------------------------------
# Barlow Twins (MONAI) and VICReg (PML).
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,d,lambd", [(6, 3, 5e-3), (16, 8, 0.3), (3, 5, 5e-3)])
def test_barlow_twins_matches_monai(n, d, lambd):
    a, b = _pairs(n, d, 5 * n)
    want, want_grads = _torch(lambda x, y: BarlowTwinsLoss(lambd=lambd)(x, y), a, b,
                              grad_of=(0, 1))
    got, got_grads = _jax(lambda x, y: jaxloss.barlow_twins_loss(x, y, lambd=lambd), a, b,
                          grad_of=(0, 1))
    # float32 statistics (mean, unbiased std, cross-correlation) accumulated in a
    # different order than torch's: relative 2e-5.
    _close(got, want, rtol=2e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        _close_grad(g, w)


@pytest.mark.parametrize("kwargs", [{}, dict(invariance_lambda=1.0, variance_mu=3.0,
                                             covariance_v=0.5, eps=1e-2)])
@pytest.mark.parametrize("n,d", [(6, 3), (30, 4)])
def test_vicreg_matches_pml(n, d, kwargs):
    a, b = _pairs(n, d, 7 * n)
    a = 0.3 * a  # standard deviations below 1: the variance hinge is active
    want, want_grads = _torch(lambda x, y: pml.VICRegLoss(**kwargs)(x, ref_emb=y), a, b,
                              grad_of=(0, 1))
    got, got_grads = _jax(lambda x, y: jaxloss.vicreg_loss(x, y, **kwargs), a, b,
                          grad_of=(0, 1))
    _close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        _close_grad(g, w)


def test_batch_statistics_where_equals_the_references_on_the_kept_rows():
    a, b = _pairs(12, 4, 0)
    keep = np.arange(12) % 4 != 0
    _close(jaxloss.barlow_twins_loss(a, b, where=jnp.asarray(keep)),
           float(BarlowTwinsLoss()(torch.tensor(a[keep]), torch.tensor(b[keep]))), rtol=2e-5)
    _close(jaxloss.vicreg_loss(a, b, where=jnp.asarray(keep)),
           float(pml.VICRegLoss()(torch.tensor(a[keep]), ref_emb=torch.tensor(b[keep]))))

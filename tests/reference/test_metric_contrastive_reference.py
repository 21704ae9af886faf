"""jaxloss.metric.contrastive against its references, value and gradient.

References (run in this process on the same random float32 inputs):
pytorch-metric-learning 2.9 (``NTXentLoss``, ``SupConLoss``), optax
(``optax.losses.ntxent``), and for the losses without a library in the venv,
torch implementations of the papers' pseudocode: CLIP (Radford et al. 2021,
Fig. 3: symmetric ``F.cross_entropy``) and SigLIP (Zhai et al. 2023,
Algorithm 1: ``F.logsigmoid``). Embeddings are ``(N, d)``, so no layout
transposition is needed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as tf
from pytorch_metric_learning import losses as pml
from pytorch_metric_learning.reducers import DoNothingReducer

import jaxloss

RTOL, ATOL = 1e-5, 1e-6


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _close_grad(actual, expected):
    # Sums over many pairs are accumulated in different orders: compare at the scale of
    # the gradient (an absolute tolerance of 1e-5 of its largest entry).
    expected = np.asarray(expected, np.float64)
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    _close(actual, expected, rtol=RTOL, atol=1e-5 * scale)


def _torch(fn, *arrays, grad_of=(0,)):
    tensors = [torch.tensor(a, requires_grad=i in grad_of) if isinstance(a, np.ndarray)
               and a.dtype.kind == "f" else torch.tensor(a) for i, a in enumerate(arrays)]
    out = fn(*tensors)
    out.backward()
    return float(out.detach()), [tensors[i].grad.numpy() for i in grad_of]


def _jax(fn, *arrays, grad_of=(0,)):
    arrays = tuple(jnp.asarray(a) for a in arrays)
    value, grads = jax.jit(jax.value_and_grad(fn, argnums=grad_of))(*arrays)
    return float(value), grads


def _embeddings(n, d, seed, classes):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    labels = rng.integers(0, classes, size=(n,)).astype(np.int64)
    return x, labels


LABELLED = [(12, 5, 0, 3), (20, 8, 1, 6), (9, 3, 2, 2), (16, 4, 3, 16)]  # last: no positives


# --------------------------------------------------------------------------------------
# NT-Xent: PML and optax.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,d,seed,classes,temperature,block_size", [
    (12, 5, 0, 3, 0.07, None), (20, 8, 1, 6, 0.5, 5), (9, 3, 2, 2, 0.07, 4),
    (9, 3, 2, 2, 0.5, None)])
def test_ntxent_matches_pml_and_optax(n, d, seed, classes, temperature, block_size):
    x, labels = _embeddings(n, d, seed, classes)
    want, (want_grad,) = _torch(lambda e, y: pml.NTXentLoss(temperature)(e, y), x, labels)
    # optax's ntxent mixes bool and int internally: run it under standard promotion.
    with jax.numpy_dtype_promotion("standard"):
        opt, (opt_grad,) = _jax(lambda e, y: optax.losses.ntxent(e, y, temperature), x, labels)
    for name in ("ntxent_loss", "info_nce_loss"):
        fn = jaxloss.get(name, temperature=temperature, block_size=block_size)
        got, (got_grad,) = _jax(fn, x, labels.astype(np.int32))
        _close(got, want)
        _close_grad(got_grad, want_grad)
        _close(got, opt)
        _close_grad(got_grad, opt_grad)


def test_ntxent_without_positives_is_zero_like_pml():
    x, _ = _embeddings(*LABELLED[3])
    labels = np.arange(16)
    want = float(pml.NTXentLoss()(torch.tensor(x), torch.tensor(labels)))
    assert want == 0.0
    value, grad = jax.jit(jax.value_and_grad(jaxloss.ntxent_loss))(
        jnp.asarray(x), jnp.asarray(labels, jnp.int32))
    assert float(value) == 0.0 and np.all(np.asarray(grad) == 0)


@pytest.mark.parametrize("n,d,block_size", [(6, 4, None), (10, 7, 3)])
def test_two_view_ntxent_is_pml_on_the_concatenated_views(n, d, block_size):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, d)).astype(np.float32)
    b = (a + 0.3 * rng.normal(size=(n, d))).astype(np.float32)
    pair = np.concatenate([np.arange(n), np.arange(n)])

    def reference(ta, tb):
        return pml.NTXentLoss(0.2)(torch.cat([ta, tb]), torch.tensor(pair))

    want, want_grads = _torch(reference, a, b, grad_of=(0, 1))
    got, got_grads = _jax(lambda u, v: jaxloss.info_nce_loss(
        u, v, temperature=0.2, block_size=block_size), a, b, grad_of=(0, 1))
    _close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        _close_grad(g, w)


def test_ntxent_where_and_weights_match_pml_on_the_kept_rows():
    x, labels = _embeddings(14, 5, 7, 3)
    keep = np.arange(14) % 3 != 1
    want = float(pml.NTXentLoss()(torch.tensor(x[keep]), torch.tensor(labels[keep])))
    got = jaxloss.ntxent_loss(x, labels.astype(np.int32), where=jnp.asarray(keep))
    _close(got, want)
    # Per-anchor weights weigh the anchor's positive pairs (PML's per-pair mean, weighted).
    w = np.random.default_rng(0).uniform(0.5, 2.0, size=14).astype(np.float32)
    per_pair = pml.NTXentLoss(reducer=DoNothingReducer())(torch.tensor(x), torch.tensor(labels))
    anchors = per_pair["loss"]["indices"][0].numpy()
    values = per_pair["loss"]["losses"].detach().numpy()
    want = np.sum(w[anchors] * values) / np.sum(w[anchors])
    _close(jaxloss.ntxent_loss(x, labels.astype(np.int32), weights=w), want)


# --------------------------------------------------------------------------------------
# SupCon: PML.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,d,seed,classes,temperature,block_size", [
    (12, 5, 0, 3, 0.1, None), (20, 8, 1, 6, 0.7, 6), (9, 3, 2, 2, 0.1, 4),
    (16, 4, 3, 16, 0.7, None), (16, 4, 3, 16, 0.1, 5)])
def test_supcon_matches_pml(n, d, seed, classes, temperature, block_size):
    x, labels = _embeddings(n, d, seed, classes)
    if classes == 16:
        labels[:4] = [0, 0, 1, 1]  # two positive pairs; the other anchors have none
    want, (want_grad,) = _torch(lambda e, y: pml.SupConLoss(temperature)(e, y), x, labels)
    fn = jaxloss.get("supcon_loss", temperature=temperature, block_size=block_size)
    got, (got_grad,) = _jax(fn, x, labels.astype(np.int32))
    _close(got, want)
    _close_grad(got_grad, want_grad)


def test_supcon_unreduced_matches_pml_per_anchor():
    x, labels = _embeddings(11, 4, 5, 4)
    labels[-1] = 99  # an anchor without positives: 0 in both
    want = pml.SupConLoss(reducer=DoNothingReducer())(torch.tensor(x), torch.tensor(labels))
    got = jaxloss.supcon_loss(x, labels.astype(np.int32), reduction="none")
    _close(got, want["loss"]["losses"].detach().numpy())


# --------------------------------------------------------------------------------------
# CLIP and SigLIP: the papers' pseudocode in torch; learnable temperature, scale, bias.
# --------------------------------------------------------------------------------------


def _pairs(n, d, seed):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(n, d)).astype(np.float32)
    text = (image + rng.normal(size=(n, d))).astype(np.float32)
    return image, text


def _torch_clip(image, text, temperature):
    logits = tf.normalize(image, dim=-1) @ tf.normalize(text, dim=-1).T / temperature
    target = torch.arange(image.shape[0])
    return (tf.cross_entropy(logits, target) + tf.cross_entropy(logits.T, target)) / 2


def _torch_siglip(image, text, scale, bias):
    logits = scale * tf.normalize(image, dim=-1) @ tf.normalize(text, dim=-1).T + bias
    z = 2 * torch.eye(image.shape[0]) - 1
    return -tf.logsigmoid(z * logits).sum() / image.shape[0]


@pytest.mark.parametrize("n,d,temperature,block_size", [(8, 4, 0.07, None), (13, 6, 0.5, 3),
                                                         (2, 3, 1.0, None)])
def test_clip_matches_torch_including_the_temperature_gradient(n, d, temperature, block_size):
    image, text = _pairs(n, d, n)
    t = np.float32(temperature)
    want, want_grads = _torch(_torch_clip, image, text, np.asarray(t), grad_of=(0, 1, 2))
    got, got_grads = _jax(lambda a, b, tau: jaxloss.clip_loss(
        a, b, temperature=tau, block_size=block_size), image, text, t, grad_of=(0, 1, 2))
    _close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        _close_grad(g, w)


@pytest.mark.parametrize("n,d,scale,bias,block_size", [(8, 4, 10.0, -10.0, None),
                                                        (11, 6, 3.0, 0.5, 5),
                                                        (3, 2, 25.0, -4.0, None)])
def test_siglip_matches_torch_including_scale_and_bias_gradients(n, d, scale, bias, block_size):
    image, text = _pairs(n, d, n + 1)
    sb = (np.asarray(np.float32(scale)), np.asarray(np.float32(bias)))
    want, want_grads = _torch(_torch_siglip, image, text, *sb, grad_of=(0, 1, 2, 3))
    got, got_grads = _jax(lambda a, b, s, c: jaxloss.siglip_loss(
        a, b, scale=s, bias=c, block_size=block_size), image, text, *sb, grad_of=(0, 1, 2, 3))
    _close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        _close_grad(g, w)

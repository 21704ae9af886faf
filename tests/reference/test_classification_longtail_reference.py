"""Distillation, long-tail, multi-label and bi-tempered losses against their references.

The reference libraries do not install here (timm pulls torchvision, mmdet and
mmseg need a compiled mmcv; the bi-tempered loss is not packaged), so each
reference is the cited file's formula rewritten in torch (run in float64), with
the file named (in ``bench/families_torch.py``, shared with the ``families``
benchmark suite, or below); optax's ``cosine_distance`` is called directly. Expected
values and gradients come from the reference in float64; jaxloss runs in
float32 (rtol 1e-5, atol 1e-6 unless a test says why not).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from bench.families_torch import bi_tempered as _bi_tempered_reference
from bench.families_torch import ldam as _ldam_reference
from bench.families_torch import mmdet_kd as _kd_reference
from bench.families_torch import mmdet_seesaw as _seesaw_reference
from bench.families_torch import timm_asl as _asl_reference

SHAPES = [(7, 5), (3, 4, 6)]


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _check(jax_fn, torch_fn, x: np.ndarray, rtol=1e-5, atol=1e-6, nan_grad_is_zero=False):
    """Value of ``jax_fn(x)`` and the gradient of its sum against ``torch_fn`` (float64).

    ``nan_grad_is_zero``: where torch's gradient is 0 * inf = NaN (a power below 1 at 0
    inside a clamped region), the exact derivative is 0, which jaxloss gives."""
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    expected = torch_fn(xt)
    expected.sum().backward()
    # one jitted program (the suite is compile-bound: op-by-op dispatch compiles every op)
    got, grad = jax.jit(lambda z: (jax_fn(z), jax.grad(lambda u: jnp.sum(jax_fn(u)))(z)))(
        jnp.asarray(x))
    _close(got, expected.detach().numpy(), rtol, atol)
    want = xt.grad.numpy()
    if nan_grad_is_zero:
        want = np.nan_to_num(want, nan=0.0)
    _close(grad, want, rtol, atol)


def _logits(rng, shape, scale=2.0):
    return (scale * rng.normal(size=shape)).astype(np.float32)


def _flat(xt: torch.Tensor) -> torch.Tensor:
    """``[..., C]`` to ``(M, C)``, the layout of the references' (N, C) code."""
    return xt.reshape(-1, xt.shape[-1])


# --------------------------------------------------------------------------- distillation


@pytest.mark.parametrize("shape", SHAPES)
def test_distillation_matches_mmdet_kd(shape):
    rng = np.random.default_rng(0)
    s, t = _logits(rng, shape), _logits(rng, shape, scale=4.0)
    for T in (1.0, 4.0):
        _check(lambda z, T=T: jaxloss.distillation_loss(z, t, temperature=T, reduction="none"),
               lambda z, T=T: _kd_reference(z, torch.tensor(t, dtype=torch.float64), T), s)
    # the teacher gets no gradient; the axis moves
    grad_t = jax.grad(lambda u: jaxloss.distillation_loss(jnp.asarray(s), u))(jnp.asarray(t))
    assert np.all(np.asarray(grad_t) == 0)
    moved = jaxloss.distillation_loss(jnp.moveaxis(jnp.asarray(s), -1, 0),
                                      jnp.moveaxis(jnp.asarray(t), -1, 0), axis=0)
    _close(moved, jaxloss.distillation_loss(s, t))


def _jsd_reference(clean, aug1, aug2):
    # timm/loss/jsd.py JsdCrossEntropy, the consistency term per sample (alpha = 1)
    probs = [F.softmax(z, dim=-1) for z in (clean, aug1, aug2)]
    log_mixture = torch.clamp(torch.stack(probs).mean(0), 1e-7, 1).log()
    return sum(F.kl_div(log_mixture, p, reduction="none").sum(-1) for p in probs) / 3


@pytest.mark.parametrize("shape", SHAPES)
def test_jsd_matches_timm(shape):
    rng = np.random.default_rng(1)
    clean = _logits(rng, shape)
    aug1 = clean + _logits(rng, shape, scale=1.0)
    aug2 = _logits(rng, shape, scale=3.0)
    a1, a2 = (torch.tensor(a, dtype=torch.float64) for a in (aug1, aug2))
    _check(lambda z: jaxloss.jsd_consistency_loss(z, aug1, aug2, reduction="none"),
           lambda z: _jsd_reference(z, a1, a2), clean)
    # timm's batchmean over the first axis is our mean (2-D logits)
    if len(shape) == 2:
        c = torch.tensor(clean, dtype=torch.float64)
        _close(jaxloss.jsd_consistency_loss(clean, aug1, aug2),
               _jsd_reference(c, a1, a2).sum() / shape[0])
    # the mixture floor is reached: still the reference
    far = np.stack([np.full(shape[-1], -40.0)] * shape[0]).astype(np.float32)
    far[:, 0] = 40.0
    _check(lambda z: jaxloss.jsd_consistency_loss(z, far, -far, reduction="none"),
           lambda z: _jsd_reference(z, torch.tensor(far, dtype=torch.float64),
                                    torch.tensor(-far, dtype=torch.float64)),
           clean[:, 0] if len(shape) == 3 else clean)


@pytest.mark.parametrize("eps,shape", [(1e-8, (2, 3, 5)), (0.5, (6, 4))])
def test_cosine_distance_matches_optax(eps, shape):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)
    x[0] = 0.05 * x[0]   # a short vector: the floor matters at eps = 0.5

    @jax.jit
    def both(x, y):
        def ours(z):
            return jaxloss.cosine_distance_loss(z, y, eps=eps, reduction="none")

        def theirs(z):
            return optax.losses.cosine_distance(z, y, epsilon=eps)

        return [(f(x), jax.grad(lambda z, f=f: jnp.sum(f(z)))(x)) for f in (ours, theirs)]

    (got, got_grad), (want, want_grad) = both(x, y)
    _close(got, want)
    _close(got_grad, want_grad, atol=1e-5)
    moved = jaxloss.cosine_distance_loss(np.moveaxis(x, -1, 0), np.moveaxis(y, -1, 0), axis=0,
                                         eps=eps, reduction="none")
    _close(moved, got)


# --------------------------------------------------------------------------- multi-label


@pytest.mark.parametrize("settings", [{}, dict(gamma_neg=2.0, gamma_pos=0.0, clip=0.0),
                                      dict(gamma_neg=0.5, gamma_pos=2.0, clip=0.2, eps=1e-3)])
def test_asymmetric_matches_timm(settings):
    rng = np.random.default_rng(3)
    x = _logits(rng, (6, 7))
    y = (rng.uniform(size=(6, 7)) < 0.3).astype(np.float32)
    y[0] = rng.uniform(size=7)   # soft targets
    yt = torch.tensor(y, dtype=torch.float64)
    _check(lambda z: jaxloss.asymmetric_loss(z, y, **settings, reduction="none"),
           lambda z: _asl_reference(z, yt, **settings), x,
           nan_grad_is_zero=settings.get("gamma_neg", 4.0) < 1)
    # timm's module returns the sum
    _close(jaxloss.asymmetric_loss(x, y, **settings, reduction="sum"),
           _asl_reference(torch.tensor(x, dtype=torch.float64), yt, **settings).sum())


def _hed_reference(x, t):
    # Xie & Tu 2015 (HED) eq. 2, beta = |Y-| / |Y| per image
    beta = (1 - t).flatten(1).mean(1).reshape((-1,) + (1,) * (t.ndim - 1))
    return -(beta * t * F.logsigmoid(x) + (1 - beta) * (1 - t) * F.logsigmoid(-x))


@pytest.mark.parametrize("shape", [(3, 10), (2, 5, 6, 1)])
def test_balanced_bce_matches_hed(shape):
    rng = np.random.default_rng(4)
    x = _logits(rng, shape)
    t = (rng.uniform(size=shape) < 0.15).astype(np.float32)
    tt = torch.tensor(t, dtype=torch.float64)
    _check(lambda z: jaxloss.balanced_binary_cross_entropy_loss(z, t, reduction="none"),
           lambda z: _hed_reference(z, tt), x)
    # where= restricts beta to the selected elements: equal to the loss on the slice
    keep = np.zeros(shape, bool)
    keep[:, :3] = True
    masked, sliced = jax.jit(lambda x, t, s, u: (
        jaxloss.balanced_binary_cross_entropy_loss(x, t, where=keep, reduction="sum"),
        jaxloss.balanced_binary_cross_entropy_loss(s, u, reduction="sum")))(
        x, t, x[:, :3], t[:, :3])
    _close(masked, sliced)


# --------------------------------------------------------------------------- long tail


def _counts(rng, num_classes):
    counts = np.round(1000.0 * 0.3 ** np.arange(num_classes)).astype(np.float32)
    counts[-1] = 0.0   # an empty class and (for C = 6) a class of one sample
    return rng.permutation(counts)


@pytest.mark.parametrize("shape", SHAPES)
def test_seesaw_matches_mmdet(shape):
    rng = np.random.default_rng(5)
    x = _logits(rng, shape)
    y = rng.integers(0, shape[-1], size=shape[:-1]).astype(np.int32)
    counts = _counts(rng, shape[-1])
    yt = torch.tensor(y.reshape(-1), dtype=torch.long)
    ct = torch.tensor(counts, dtype=torch.float64)
    for settings in ({}, dict(p=0.0, q=1.0, eps=0.1), dict(p=1.5, q=0.0)):
        _check(lambda z, s=settings: jaxloss.seesaw_loss(z, y, counts, **s, reduction="none"),
               lambda z, s=settings: _seesaw_reference(_flat(z), yt, ct, **s).reshape(shape[:-1]),
               x)


@pytest.mark.parametrize("shape", SHAPES)
def test_ldam_matches_authors(shape):
    rng = np.random.default_rng(6)
    x = _logits(rng, shape, scale=0.3)
    y = rng.integers(0, shape[-1], size=shape[:-1]).astype(np.int32)
    counts = _counts(rng, shape[-1])
    yt = torch.tensor(y.reshape(-1), dtype=torch.long)
    w = rng.uniform(0.5, 2.0, size=shape[-1]).astype(np.float32)
    for settings in (dict(max_margin=0.5, scale=30.0), dict(max_margin=0.2, scale=10.0)):
        _check(lambda z, s=settings: jaxloss.ldam_loss(z, y, counts, **s),
               lambda z, s=settings: _ldam_reference(
                   _flat(z), yt, counts, max_m=s["max_margin"], s=s["scale"]), x)
    _check(lambda z: jaxloss.ldam_loss(z, y, counts, class_weights=w),
           lambda z: _ldam_reference(_flat(z), yt, counts,
                                     weight=torch.tensor(w, dtype=torch.float64)), x)


@pytest.mark.parametrize("shape", SHAPES)
def test_logit_adjusted_matches_formula_and_balanced_softmax(shape):
    rng = np.random.default_rng(7)
    x = _logits(rng, shape)
    y = rng.integers(0, shape[-1], size=shape[:-1]).astype(np.int32)
    counts = np.maximum(_counts(rng, shape[-1]), 1.0)
    priors = counts / counts.sum()
    yt = torch.tensor(y.reshape(-1), dtype=torch.long)
    log_prior = torch.log(torch.tensor(priors, dtype=torch.float64))
    for tau in (0.5, 2.0):
        # Menon et al. 2021: cross-entropy of logits + tau log(prior)
        _check(lambda z, tau=tau: jaxloss.logit_adjusted_loss(z, y, priors, tau=tau,
                                                             reduction="none"),
               lambda z, tau=tau: F.cross_entropy(_flat(z) + tau * log_prior, yt,
                                                  reduction="none").reshape(shape[:-1]), x)

    # tau = 1 is the balanced softmax (Ren et al. 2020): -log(n_y e^z_y / sum_j n_j e^z_j),
    # with the counts themselves (only the ratios matter)
    def balanced_softmax(z):
        n = torch.tensor(counts, dtype=torch.float64)
        z = _flat(z)
        weighted = n * torch.exp(z - z.max(-1, keepdim=True).values)
        return -torch.log(weighted[torch.arange(len(yt)), yt] / weighted.sum(-1)).reshape(
            shape[:-1])

    _check(lambda z: jaxloss.logit_adjusted_loss(z, y, counts, reduction="none"),
           balanced_softmax, x)
    # probability targets: the soft cross-entropy of the adjusted logits
    soft = jax.nn.softmax(jnp.asarray(_logits(rng, shape)), axis=-1)
    _close(jaxloss.logit_adjusted_loss(x, soft, priors),
           jaxloss.cross_entropy_loss(x + np.log(priors), soft))


def test_class_balanced_weights_match_cui():
    counts = np.array([5000, 2000, 500, 100, 10, 1, 0])

    def cui(counts, beta):  # the authors' class_balanced_loss.py, a count of 0 left out
        present = counts > 0
        effective = 1.0 - np.power(beta, counts[present].astype(np.float64))
        weights = np.zeros(len(counts))
        weights[present] = (1.0 - beta) / effective
        return weights / weights.sum() * len(counts)

    for beta in (0.0, 0.9, 0.999, 0.9999):
        got = jaxloss.class_balanced_weights(jnp.asarray(counts), beta=beta)
        assert got.shape == (7,) and got.dtype == jnp.float32
        _close(got, cui(counts, beta), rtol=2e-5)
    traced = jax.jit(lambda b: jaxloss.class_balanced_weights(counts, beta=b))(0.9)
    _close(traced, cui(counts, 0.9), rtol=2e-5)
    np.testing.assert_array_equal(jaxloss.class_balanced_weights(np.zeros(3)), np.zeros(3))


def _ohem_reference(logits, labels, thresh, min_kept, ignore_index=-100):
    # mmseg structures/sampler/ohem_pixel_sampler.py OHEMPixelSampler.sample (thresh given),
    # then the mean cross-entropy over the kept pixels; logits (N, C, ...)
    with torch.no_grad():
        batch_kept = min_kept * labels.size(0)
        valid = labels != ignore_index
        weight = logits.new_zeros(size=labels.size())
        valid_weight = weight[valid]
        prob = F.softmax(logits, dim=1)
        tmp = labels.clone().unsqueeze(1)
        tmp[tmp == ignore_index] = 0
        prob = prob.gather(1, tmp).squeeze(1)
        sort_prob, _ = prob[valid].sort()
        min_threshold = sort_prob[min(batch_kept, sort_prob.numel() - 1)] if (
            sort_prob.numel() > 0) else 0.0
        threshold = max(min_threshold, thresh)
        valid_weight[prob[valid] < threshold] = 1.0
        weight[valid] = valid_weight
    ce = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none")
    return (ce * weight).sum() / weight.sum()


@pytest.mark.parametrize("threshold,min_kept", [(0.7, 0), (0.3, 4), (0.2, 1000)])
def test_ohem_matches_mmseg(threshold, min_kept):
    rng = np.random.default_rng(8)
    shape = (2, 5, 4, 3)                                   # (N, H, W, C)
    x = _logits(rng, shape)
    y = rng.integers(0, 3, size=shape[:-1]).astype(np.int32)
    y[0, 0] = -100                                         # an ignored row of pixels
    yt = torch.tensor(y, dtype=torch.long)
    _check(lambda z: jaxloss.ohem_cross_entropy_loss(z, y, threshold=threshold,
                                                     min_kept=min_kept),
           lambda z: _ohem_reference(z.permute(0, 3, 1, 2), yt, threshold, min_kept), x)
    traced = jax.jit(lambda z, t, k: jaxloss.ohem_cross_entropy_loss(
        z, y, threshold=t, min_kept=k))(x, threshold, min_kept)
    _close(traced, _ohem_reference(torch.tensor(x, dtype=torch.float64).permute(0, 3, 1, 2),
                                   yt, threshold, min_kept).item())


# --------------------------------------------------------------------------- bi-tempered
# google/bi-tempered-loss jax/loss.py, in torch float64 in bench/families_torch.py


# (t1 = t2 = 1, the cross-entropy, is in tests/test_classification_longtail.py)
@pytest.mark.parametrize("t1,t2,smoothing", [(0.8, 1.2, 0.0), (0.5, 2.0, 0.1),
                                             (0.2, 0.7, 0.0), (0.7, 1.0, 0.2)])
def test_bi_tempered_matches_authors(t1, t2, smoothing):
    rng = np.random.default_rng(9)
    for shape in SHAPES:
        x = _logits(rng, shape)
        labels = rng.integers(0, shape[-1], size=shape[:-1]).astype(np.int32)
        onehot = np.eye(shape[-1], dtype=np.float32)[labels]
        want, want_grad = _bi_tempered_reference(
            torch.tensor(x.reshape(-1, shape[-1]), dtype=torch.float64),
            torch.tensor(onehot.reshape(-1, shape[-1]), dtype=torch.float64), t1, t2, smoothing)

        def loss(z, targets, s=smoothing):
            return jaxloss.bi_tempered_logistic_loss(z, targets, t1=t1, t2=t2,
                                                     label_smoothing=s, reduction="none")

        @jax.jit
        def program(z, labels, onehot):
            # value and gradient; one-hot targets equal indices; forward mode equals the
            # custom reverse-mode gradient
            total = lambda u: jnp.sum(loss(u, labels))  # noqa: E731
            return loss(z, labels), jax.grad(total)(z), loss(z, onehot), jax.jacfwd(total)(z)

        value, grad, from_onehot, forward = program(x, labels, onehot)
        _close(value, want.numpy().reshape(shape[:-1]))
        _close(grad, want_grad.numpy().reshape(shape))
        _close(from_onehot, want.numpy().reshape(shape[:-1]))
        _close(forward, want_grad.numpy().reshape(shape))
    # traced temperatures take the same branches at run time
    traced = jax.jit(lambda z, a, b: jaxloss.bi_tempered_logistic_loss(
        z, labels, t1=a, t2=b, label_smoothing=smoothing, reduction="none"))(x, t1, t2)
    _close(traced, want.numpy().reshape(shape[:-1]))


def test_bi_tempered_gradient_is_the_true_gradient_when_converged():
    """With enough iterations the authors' closed form is the derivative of the loss."""
    rng = np.random.default_rng(10)
    x = _logits(rng, (4, 5)).astype(np.float64)
    onehot = np.eye(5)[rng.integers(0, 5, size=4)]
    a = torch.tensor(x, requires_grad=True)
    labels = torch.tensor(onehot)
    loss, _ = _bi_tempered_reference(a, labels, 0.8, 1.3, num_iters=60)
    loss.sum().backward()
    grad = jax.jit(jax.grad(lambda z: jaxloss.bi_tempered_logistic_loss(
        z, jnp.asarray(onehot, jnp.float32), t1=0.8, t2=1.3, num_iters=60, reduction="sum")))(
        jnp.asarray(x, jnp.float32))
    _close(grad, a.grad.numpy(), atol=1e-5)

"""ctc_loss against optax.ctc_loss (optax 0.2.8) and torch.nn.functional.ctc_loss (torch 2.13).

Value and gradient with respect to the logits. optax is compared on any
padding, including infeasible alignments (there in float64, where the
log_epsilon-penalised paths are resolved exactly; in float32 their log
weights near 1e5 carry rounding of ~1e-2); torch, which gives inf there, on
feasible inputs. Note the argument orders: jaxloss (logits, labels,
logit_paddings, label_paddings) against optax (logits, logit_paddings,
labels, label_paddings); torch takes time-major log-probabilities and lengths.
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

# (batch, frames, classes, max label length)
SHAPES = [(3, 7, 5, 3), (4, 12, 6, 4), (1, 5, 3, 2), (2, 20, 10, 6)]


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _required_frames(labels: np.ndarray, length: int) -> int:
    """Frames a label sequence needs: its length plus a blank between equal neighbours."""
    seq = labels[:length]
    return length + int(np.sum(seq[1:] == seq[:-1]))


def _batch(rng, batch, frames, classes, max_labels, *, blank_id=0, feasible=True,
           repeats=True):
    """Random logits, right-padded labels and paddings (optax's convention)."""
    logits = rng.normal(size=(batch, frames, classes)).astype(np.float32)
    choices = np.array([c for c in range(classes) if c != blank_id])
    labels = rng.choice(choices, size=(batch, max_labels)).astype(np.int32)
    if repeats and max_labels >= 2:
        labels[0, 1] = labels[0, 0]
    label_lengths = rng.integers(0, max_labels + 1, size=(batch,))
    label_lengths[0] = max_labels
    input_lengths = np.empty(batch, np.int64)
    for b in range(batch):
        low = _required_frames(labels[b], label_lengths[b]) if feasible else 0
        if low > frames:                          # too long for the frames: shorten it
            label_lengths[b] = min(label_lengths[b], frames // 2)
            low = _required_frames(labels[b], label_lengths[b])
        input_lengths[b] = rng.integers(low, frames + 1)
    input_lengths[-1] = frames
    logit_paddings = (np.arange(frames)[None, :] >= input_lengths[:, None]).astype(np.float32)
    label_paddings = (np.arange(max_labels)[None, :] >= label_lengths[:, None]).astype(np.float32)
    return logits, labels, logit_paddings, label_paddings


def _optax_grad(logits, labels, logit_paddings, label_paddings, **kwargs):
    def loss(x):
        return jnp.sum(optax.ctc_loss(x, logit_paddings, labels, label_paddings, **kwargs))

    return jax.value_and_grad(loss)(logits)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("blank_id", [0, 2])
def test_matches_optax_value_and_gradient(shape, blank_id):
    rng = np.random.default_rng(sum(shape) + blank_id)
    logits, labels, lp, lbp = _batch(rng, *shape, blank_id=blank_id)
    expected = optax.ctc_loss(logits, lp, labels, lbp, blank_id=blank_id)
    _close(jaxloss.ctc_loss(logits, labels, lp, lbp, blank_id=blank_id, reduction="none"),
           expected)
    _close(jaxloss.ctc_loss(logits, labels, lp, lbp, blank_id=blank_id), jnp.mean(expected))
    total, grad = _optax_grad(logits, labels, lp, lbp, blank_id=blank_id)
    _close(jaxloss.ctc_loss(logits, labels, lp, lbp, blank_id=blank_id, reduction="sum"), total)
    ours = jax.grad(lambda x: jaxloss.ctc_loss(x, labels, lp, lbp, blank_id=blank_id,
                                               reduction="sum"))(logits)
    _close(ours, grad, rtol=1e-5, atol=1e-5)


def test_weighted_mean_matches_optax():
    rng = np.random.default_rng(11)
    logits, labels, lp, lbp = _batch(rng, 4, 9, 5, 3)
    w = np.array([0.5, 2.0, 0.0, 1.0], np.float32)
    per_seq = optax.ctc_loss(logits, lp, labels, lbp)
    _close(jaxloss.ctc_loss(logits, labels, lp, lbp, weights=w),
           jnp.sum(per_seq * w) / np.sum(w))


@pytest.mark.parametrize("log_epsilon", [-1e5, -50.0])
def test_infeasible_matches_optax_in_float64(log_epsilon):
    with jax.enable_x64(True):
        rng = np.random.default_rng(12)
        logits, labels, lp, lbp = _batch(rng, 5, 4, 4, 4, feasible=False)
        labels[1] = [2, 2, 2, 2]                  # needs 7 frames, has at most 4
        lbp[1] = 0.0
        lp[2] = 1.0                               # no frames at all
        lbp[2] = [0.0, 1.0, 1.0, 1.0]
        logits, lp, lbp = (a.astype(np.float64) for a in (logits, lp, lbp))
        # optax mixes a float32 constant into its recursion: let it promote.
        with jax.numpy_dtype_promotion("standard"):
            expected = optax.ctc_loss(logits, lp, labels, lbp, log_epsilon=log_epsilon)
            _, grad = _optax_grad(logits, labels, lp, lbp, log_epsilon=log_epsilon)
        assert np.all(np.asarray(expected)[1:3] > -0.5 * log_epsilon)   # infeasible rows
        _close(jaxloss.ctc_loss(logits, labels, lp, lbp, log_epsilon=log_epsilon,
                                reduction="none"),
               expected, rtol=1e-10, atol=1e-9)
        ours = jax.grad(lambda x: jaxloss.ctc_loss(x, labels, lp, lbp, log_epsilon=log_epsilon,
                                                   reduction="sum"))(logits)
        _close(ours, grad, rtol=1e-8, atol=1e-9)


def test_infeasible_float32_is_large_finite_and_close_to_optax():
    rng = np.random.default_rng(13)
    logits = rng.normal(size=(2, 3, 4)).astype(np.float32)
    labels = np.array([[1, 1, 1], [1, 2, 3]], np.int32)        # 5 and 3 frames needed
    lp = np.zeros((2, 3), np.float32)
    lp[1, 2] = 1.0                                              # row 1: 2 frames for 3 labels
    lbp = np.zeros((2, 3), np.float32)
    ours = jaxloss.ctc_loss(logits, labels, lp, lbp, reduction="none")
    _close(ours, optax.ctc_loss(logits, lp, labels, lbp), rtol=1e-5)
    grad = jax.grad(lambda x: jaxloss.ctc_loss(x, labels, lp, lbp))(logits)
    assert np.all(np.isfinite(np.asarray(grad)))
    assert np.all(np.asarray(ours) > 5e4)


def _torch_ctc(logits, labels, logit_paddings, label_paddings, blank_id):
    x = torch.tensor(logits.astype(np.float64), requires_grad=True)
    log_probs = F.log_softmax(x, dim=-1).transpose(0, 1)       # (T, B, K)
    input_lengths = torch.tensor((1 - logit_paddings).sum(1).astype(np.int64))
    target_lengths = torch.tensor((1 - label_paddings).sum(1).astype(np.int64))
    loss = F.ctc_loss(log_probs, torch.tensor(labels.astype(np.int64)), input_lengths,
                      target_lengths, blank=blank_id, reduction="none", zero_infinity=False)
    loss.sum().backward()
    return loss.detach().numpy(), x.grad.numpy()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("blank_id", [0, 1, "last"])
def test_matches_torch_on_feasible_inputs(shape, blank_id):
    blank_id = shape[2] - 1 if blank_id == "last" else blank_id
    rng = np.random.default_rng(100 + sum(shape) + blank_id)
    logits, labels, lp, lbp = _batch(rng, *shape, blank_id=blank_id)
    expected, expected_grad = _torch_ctc(logits, labels, lp, lbp, blank_id)
    assert np.all(np.isfinite(expected))
    value = jaxloss.ctc_loss(logits, labels, lp, lbp, blank_id=blank_id, reduction="none")
    _close(value, expected)
    grad = jax.grad(lambda x: jaxloss.ctc_loss(x, labels, lp, lbp, blank_id=blank_id,
                                               reduction="sum"))(logits)
    _close(grad, expected_grad, rtol=1e-5, atol=1e-5)


def test_special_sequences_match_torch():
    # Repeated labels (blanks needed between), label length 0, full-length labels using every
    # frame, and a sequence whose frames are all valid with no labels.
    logits = np.random.default_rng(14).normal(size=(4, 5, 4)).astype(np.float32)
    labels = np.array([[2, 2, 2], [1, 3, 0], [3, 1, 2], [1, 1, 0]], np.int32)
    lbp = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0], [0, 0, 1]], np.float32)
    lp = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
                  np.float32)
    expected, expected_grad = _torch_ctc(logits, labels, lp, lbp, 0)
    _close(jaxloss.ctc_loss(logits, labels, lp, lbp, reduction="none"), expected)
    grad = jax.grad(lambda x: jaxloss.ctc_loss(x, labels, lp, lbp, reduction="sum"))(logits)
    _close(grad, expected_grad, rtol=1e-5, atol=1e-5)
    _close(jaxloss.ctc_loss(logits, labels, lp, lbp, reduction="none"),
           optax.ctc_loss(logits, lp, labels, lbp))

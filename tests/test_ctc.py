"""ctc_loss: properties against a brute-force sum over alignments, conventions and errors.

optax and torch agreement is in tests/reference/test_ctc_reference.py.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss

SETTINGS = settings(max_examples=25, deadline=None)
B, T, K, N = 2, 4, 3, 2


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _collapse(path, blank):
    out, previous = [], None
    for symbol in path:
        if symbol != previous and symbol != blank:
            out.append(symbol)
        previous = symbol
    return out


def _brute_force(logits, labels, frames, blank):
    """-log of the total probability of every alignment that collapses to ``labels``."""
    log_probs = logits[:frames] - np.log(np.sum(np.exp(logits[:frames]), -1, keepdims=True))
    total = 0.0
    for path in itertools.product(range(logits.shape[-1]), repeat=frames):
        if _collapse(path, blank) == list(labels):
            total += math.exp(sum(log_probs[t, s] for t, s in enumerate(path)))
    return -math.log(total) if total > 0 else math.inf


_jitted = jax.jit(jaxloss.ctc_loss, static_argnames=("blank_id", "reduction"))


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), blank=st.integers(0, K - 1),
       frames=st.integers(0, T), lengths=st.lists(st.integers(0, N), min_size=B, max_size=B))
def test_matches_brute_force_sum_over_alignments(seed, blank, frames, lengths):
    rng = np.random.default_rng(seed)
    logits = (2 * rng.normal(size=(B, T, K))).astype(np.float64)
    others = [c for c in range(K) if c != blank]
    labels = rng.choice(others, size=(B, N)).astype(np.int32)
    logit_paddings = np.zeros((B, T), np.float32)
    logit_paddings[0, frames:] = 1.0                # sequence 0 has `frames` frames, 1 has T
    label_paddings = (np.arange(N)[None, :] >= np.array(lengths)[:, None]).astype(np.float32)
    values = _jitted(logits.astype(np.float32), labels, logit_paddings, label_paddings,
                     blank_id=blank, reduction="none")
    for b, (n_frames, length) in enumerate(zip((frames, T), lengths, strict=True)):
        expected = _brute_force(logits[b], labels[b, :length], n_frames, blank)
        if math.isfinite(expected):
            _close(values[b], expected, rtol=1e-5, atol=1e-5)
        else:                                       # infeasible: large and finite
            assert 1e4 < float(values[b]) < math.inf


def test_repeated_labels_need_blanks_between():
    # "1 1" needs 3 frames ("1 - 1"); with 2 frames it is infeasible, "1 2" is not.
    logits = jnp.zeros((2, 3, 3))
    labels = jnp.array([[1, 1], [1, 2]])
    no_pad = jnp.zeros((2, 2))
    values = jaxloss.ctc_loss(logits, labels, jnp.zeros((2, 3)), no_pad, reduction="none")
    _close(values, [-math.log(1 / 27), -math.log(5 / 27)])  # "1-1" only; "112","122","-12",...
    short = jaxloss.ctc_loss(logits[:, :2], labels, jnp.zeros((2, 2)), no_pad, reduction="none")
    assert float(short[0]) > 1e4
    _close(short[1], -math.log(1 / 9))


def test_empty_labels_and_full_padding():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 4)).astype(np.float32)
    labels = np.array([[1, 2], [1, 2], [3, 3]], np.int32)
    label_paddings = np.array([[1, 1], [1, 1], [0, 0]], np.float32)
    logit_paddings = np.array([[0] * 5, [1] * 5, [1] * 5], np.float32)
    values = jaxloss.ctc_loss(logits, labels, logit_paddings, label_paddings, reduction="none")
    log_blank = np.asarray(jax.nn.log_softmax(logits)[0, :, 0])
    _close(values[0], -np.sum(log_blank))            # no labels: all blank
    _close(values[1], 0.0)                            # no frames, no labels
    assert 1e4 < float(values[2]) < math.inf          # no frames, two labels
    grad = jax.grad(lambda x: jaxloss.ctc_loss(x, labels, logit_paddings, label_paddings))(logits)
    assert np.all(np.isfinite(np.asarray(grad)))
    assert np.all(np.asarray(grad)[1:] == 0)


def test_padded_frames_are_skipped_anywhere():
    # optax's convention: a padded frame keeps the state, wherever it is.
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 6, 4)).astype(np.float32)
    labels = np.array([[1, 2, 2]], np.int32)
    padding = np.array([[0, 1, 0, 0, 1, 0]], np.float32)
    kept = logits[:, padding[0] == 0]
    _close(jaxloss.ctc_loss(logits, labels, padding, np.zeros((1, 3))),
           jaxloss.ctc_loss(kept, labels, np.zeros((1, 4)), np.zeros((1, 3))))


def test_blank_id_is_a_relabelling():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(3, 7, 5)).astype(np.float32)
    labels = rng.integers(1, 5, size=(3, 3)).astype(np.int32)
    lp, lbp = np.zeros((3, 7), np.float32), np.zeros((3, 3), np.float32)
    # Move class 0 (the blank) to index 4 and shift the others down by one.
    permuted = np.concatenate([logits[..., 1:], logits[..., :1]], axis=-1)
    _close(jaxloss.ctc_loss(permuted, labels - 1, lp, lbp, blank_id=4, reduction="none"),
           jaxloss.ctc_loss(logits, labels, lp, lbp, reduction="none"))


def test_where_is_per_sequence_and_jit_vmap_work():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 6, 5)).astype(np.float32)
    labels = rng.integers(1, 5, size=(4, 2)).astype(np.int32)
    lp, lbp = np.zeros((4, 6), np.float32), np.zeros((4, 2), np.float32)
    keep = np.array([True, False, True, True])
    poisoned = logits.copy()
    poisoned[1] = np.nan
    value, grad = jax.value_and_grad(
        lambda x: jaxloss.ctc_loss(x, labels, lp, lbp, where=keep))(poisoned)
    _close(value, jaxloss.ctc_loss(logits[keep], labels[keep], lp[keep], lbp[keep]))
    assert np.all(np.isfinite(np.asarray(grad))) and np.all(np.asarray(grad)[1] == 0)
    per_seq = jax.vmap(lambda *a: jaxloss.ctc_loss(*(x[None] for x in a), reduction="none")[0])(
        logits, labels, lp, lbp)
    _close(per_seq, jaxloss.ctc_loss(logits, labels, lp, lbp, reduction="none"))


def test_traced_log_epsilon_and_half_precision():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(2, 2, 3)).astype(np.float32)
    labels = np.array([[1, 1], [1, 2]], np.int32)      # row 0 infeasible in 2 frames
    lp, lbp = np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32)
    loss = jax.jit(lambda e: jaxloss.ctc_loss(logits, labels, lp, lbp, log_epsilon=e,
                                              reduction="none"))
    _close(loss(-50.0), jaxloss.ctc_loss(logits, labels, lp, lbp, log_epsilon=-50.0,
                                         reduction="none"))
    # float16 cannot hold -1e5: the recursion runs in float32 and only the result is cast.
    half = jaxloss.ctc_loss(logits.astype(jnp.float16), labels, lp, lbp, log_epsilon=-50.0,
                            reduction="none")
    assert half.dtype == jnp.float16 and np.all(np.isfinite(np.asarray(half)))


def test_errors_name_the_argument():
    logits = jnp.zeros((2, 5, 4))
    labels = jnp.ones((2, 3), jnp.int32)
    lp, lbp = jnp.zeros((2, 5)), jnp.zeros((2, 3))
    cases = [
        (TypeError, "logits", (jnp.zeros((2, 5, 4), jnp.int32), labels, lp, lbp), {}),
        (ValueError, "logits", (jnp.zeros((2, 5)), labels, lp, lbp), {}),
        (TypeError, "labels", (logits, labels.astype(jnp.float32), lp, lbp), {}),
        (ValueError, "labels", (logits, jnp.ones((2, 3, 1), jnp.int32), lp, lbp), {}),
        (ValueError, "labels", (logits, jnp.ones((6,), jnp.int32), lp, lbp), {}),
        (ValueError, "labels", (logits, jnp.ones((3, 3), jnp.int32), lp, jnp.zeros((3, 3))), {}),
        (ValueError, "label_paddings", (logits, labels, lp, jnp.zeros((2, 4))), {}),
        (ValueError, "label_paddings", (logits, labels, lp, jnp.zeros((2, 3, 1))), {}),
        (ValueError, "logit_paddings", (logits, labels, jnp.zeros((2, 4)), lbp), {}),
        (ValueError, "blank_id", (logits, labels, lp, lbp), dict(blank_id=4)),
        (TypeError, "blank_id", (logits, labels, lp, lbp), dict(blank_id=1.0)),
        (ValueError, "labels", (logits, labels.at[0, 1].set(4), lp, lbp), {}),
        (ValueError, "log_epsilon", (logits, labels, lp, lbp), dict(log_epsilon=1.0)),
        (ValueError, "log_epsilon", (logits, labels, lp, lbp), dict(log_epsilon=-math.inf)),
        (ValueError, "reduction", (logits, labels, lp, lbp), dict(reduction="batchmean")),
    ]
    for error, name, args, kwargs in cases:
        with pytest.raises(error, match=name):
            jaxloss.ctc_loss(*args, **kwargs)
    # A padded label may hold anything (e.g. -1).
    assert np.isfinite(float(jaxloss.ctc_loss(logits, labels.at[0, 2].set(-1), lp,
                                              lbp.at[0, 2].set(1.0))))

"""Properties and errors of the distillation, long-tail, multi-label and bi-tempered losses.

Reference agreement is in tests/reference/test_classification_longtail_reference.py,
the shared checks (jit, vmap, half precision, extremes, where) in the battery.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss

RNG = np.random.default_rng(0)
LOGITS = (2 * RNG.normal(size=(6, 4))).astype(np.float32)
LABELS = np.array([0, 1, 2, 3, 1, 0], np.int32)
COUNTS = np.array([100.0, 20.0, 1.0, 0.0], np.float32)


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


@jax.jit
def _invariances(x, y, counts, factor, shift):
    """Losses that must not change: priors rescaled (only ratios matter), every logit shifted
    by one constant (softmax invariance), for logit adjustment, seesaw and bi-tempered."""
    la = jaxloss.logit_adjusted_loss(x, y, counts, reduction="none")
    return (
        (la, jaxloss.logit_adjusted_loss(x, y, factor * counts, reduction="none")),
        (la, jaxloss.logit_adjusted_loss(x + shift, y, counts, reduction="none")),
        (jaxloss.seesaw_loss(x, y, counts, reduction="none"),
         jaxloss.seesaw_loss(x + shift, y, counts, reduction="none")),
        (jaxloss.bi_tempered_logistic_loss(x, y, t1=0.8, t2=1.3, reduction="none"),
         jaxloss.bi_tempered_logistic_loss(x + shift, y, t1=0.8, t2=1.3, reduction="none")),
    )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), factor=st.floats(0.01, 100.0), shift=st.floats(-20.0, 20.0))
def test_invariances(seed, factor, shift):
    rng = np.random.default_rng(seed)
    x = (3 * rng.normal(size=(5, 4))).astype(np.float32)
    y = rng.integers(0, 4, size=5).astype(np.int32)
    counts = rng.integers(1, 200, size=4).astype(np.float32)
    for got, want in _invariances(x, y, counts, np.float32(factor), np.float32(shift)):
        _close(got, want, rtol=2e-4, atol=2e-4)   # float32 logits up to ~30: ulp-level shifts


def test_special_settings_reduce_to_cross_entropy():
    @jax.jit
    def program(x, y):
        return (jaxloss.cross_entropy_loss(x, y),
                jaxloss.seesaw_loss(x, y, COUNTS, p=0.0, q=0.0),
                jaxloss.ldam_loss(x, y, COUNTS, max_margin=0.0, scale=1.0),
                jaxloss.logit_adjusted_loss(x, y, COUNTS, tau=0.0),
                jaxloss.logit_adjusted_loss(x, y, jnp.ones(4)),          # uniform priors
                jaxloss.bi_tempered_logistic_loss(x, y),
                jaxloss.ohem_cross_entropy_loss(x, y, threshold=1.0, min_kept=0))

    ce, *others = program(LOGITS, LABELS)
    for value in others:
        _close(value, ce)


def test_ignore_index_equals_dropping_the_positions():
    ignored = LABELS.copy()
    ignored[[1, 4]] = -100
    keep = ignored != -100

    @jax.jit
    def program(x, y, x_kept, y_kept):
        calls = (lambda a, b: jaxloss.seesaw_loss(a, b, COUNTS),
                 lambda a, b: jaxloss.ldam_loss(a, b, COUNTS, class_weights=jnp.arange(1.0, 5.0)),
                 lambda a, b: jaxloss.logit_adjusted_loss(a, b, COUNTS, tau=0.7),
                 lambda a, b: jaxloss.ohem_cross_entropy_loss(a, b, min_kept=1))
        return [(f(x, y), f(x_kept, y_kept)) for f in calls]

    for got, want in program(LOGITS, ignored, LOGITS[keep], LABELS[keep]):
        _close(got, want)


@pytest.mark.parametrize("name,extra", [("seesaw_loss", (COUNTS,)), ("ldam_loss", (COUNTS,)),
                                        ("logit_adjusted_loss", (COUNTS,)),
                                        ("ohem_cross_entropy_loss", ()),
                                        ("bi_tempered_logistic_loss", ())])
def test_out_of_range_labels_are_nan_under_jit_and_raise_eagerly(name, extra):
    fn = getattr(jaxloss, name)
    bad = LABELS.copy()
    bad[2] = 9
    kwargs = {"min_kept": 0} if name.startswith("ohem") else {}
    none, mean = jax.jit(lambda x, y: (fn(x, y, *extra, reduction="none", **kwargs),
                                       fn(x, y, *extra, **kwargs)))(LOGITS, bad)
    assert np.isnan(np.asarray(none)[2]) and np.isnan(float(mean))
    assert np.all(np.isfinite(np.delete(np.asarray(none), 2)))
    with pytest.raises(ValueError, match=r"outside \[0, 4\)"):
        fn(LOGITS, bad, *extra, **kwargs)


@pytest.mark.parametrize("loss", [
    lambda x, axis: jaxloss.seesaw_loss(x, LABELS.reshape(2, 3), COUNTS, axis=axis,
                                        reduction="none"),
    lambda x, axis: jaxloss.ldam_loss(x, LABELS.reshape(2, 3), COUNTS, axis=axis,
                                      reduction="none"),
    lambda x, axis: jaxloss.bi_tempered_logistic_loss(x, LABELS.reshape(2, 3), t1=0.8, t2=1.2,
                                                      axis=axis, reduction="none"),
    lambda x, axis: jaxloss.distillation_loss(x, -x, axis=axis, reduction="none"),
])
def test_class_axis_moves(loss):
    x = LOGITS.reshape(2, 3, 4)
    _close(loss(np.moveaxis(x, -1, 1), 1), loss(x, -1))


def test_traced_hyperparameters_are_differentiable_where_it_makes_sense():
    @jax.jit
    def grads(temperature, tau, gamma_neg, threshold):
        return jax.grad(lambda a, b, c: (
            jaxloss.distillation_loss(LOGITS, LOGITS[::-1], temperature=a)
            + jaxloss.logit_adjusted_loss(LOGITS, LABELS, COUNTS, tau=b)
            + jaxloss.asymmetric_loss(LOGITS, (LOGITS > 0).astype(jnp.float32), gamma_neg=c)
            + jaxloss.ohem_cross_entropy_loss(LOGITS, LABELS, threshold=threshold)),
            argnums=(0, 1, 2))(temperature, tau, gamma_neg)

    for g in grads(4.0, 1.0, 4.0, 0.7):
        assert np.isfinite(float(g)) and float(g) != 0.0


def test_class_balanced_weights_limits_and_bi_tempered_bound():
    counts = np.array([1000, 100, 10, 1], np.int32)
    wrong = jnp.array([[-1e4, 1e4, -1e4]])

    @jax.jit
    def program(counts, wrong):
        return (jaxloss.class_balanced_weights(counts, beta=0.0),
                jaxloss.class_balanced_weights(counts, beta=1 - 1e-9),
                jax.grad(lambda b: jaxloss.class_balanced_weights(counts, beta=b)[0])(0.99),
                jaxloss.bi_tempered_logistic_loss(wrong, jnp.array([0]), t1=0.5, t2=1.5),
                jaxloss.bi_tempered_logistic_loss(wrong, jnp.array([0])))

    equal, inverse_frequency, grad, bounded, cross_entropy = program(counts, wrong)
    _close(equal, np.ones(4))
    inverse = 1.0 / counts
    _close(inverse_frequency, inverse / inverse.sum() * 4, rtol=1e-3)  # traced 1 - beta
    assert np.isfinite(float(grad))
    # a confidently wrong answer costs at most 1 / (1 - t1) (Amid et al.): robust to outliers
    assert float(bounded) <= 2.0 + 1e-5
    assert float(cross_entropy) > 1e3


@pytest.mark.parametrize("call,error,match", [
    (lambda: jaxloss.seesaw_loss(LOGITS, LABELS, COUNTS[:3]), ValueError, r"class_counts.*\(4,\)"),
    (lambda: jaxloss.seesaw_loss(LOGITS, LABELS.astype(np.float32), COUNTS), TypeError,
     "integer class indices"),
    (lambda: jaxloss.seesaw_loss(LOGITS, LABELS, -COUNTS), ValueError, "class_counts"),
    (lambda: jaxloss.seesaw_loss(LOGITS, LABELS, COUNTS, eps=0.0), ValueError, "eps"),
    (lambda: jaxloss.ldam_loss(LOGITS, LABELS, COUNTS, scale=0.0), ValueError, "scale"),
    (lambda: jaxloss.ldam_loss(LOGITS, LABELS, COUNTS, class_weights=np.ones(3)), ValueError,
     "class_weights"),
    (lambda: jaxloss.logit_adjusted_loss(LOGITS, LABELS, np.ones((4, 1))), ValueError,
     "class_priors"),
    (lambda: jaxloss.class_balanced_weights(COUNTS, beta=1.0), ValueError, "beta"),
    (lambda: jaxloss.class_balanced_weights(np.ones((2, 2))), ValueError, "class_counts"),
    (lambda: jaxloss.ohem_cross_entropy_loss(LOGITS, LABELS, threshold=1.5), ValueError,
     "threshold"),
    (lambda: jaxloss.ohem_cross_entropy_loss(LOGITS, LABELS, min_kept=2.5), TypeError,
     "min_kept"),
    (lambda: jaxloss.bi_tempered_logistic_loss(LOGITS, LABELS, t1=2.0), ValueError, "t1"),
    (lambda: jaxloss.bi_tempered_logistic_loss(LOGITS, LABELS, t2=0.0), ValueError, "t2"),
    (lambda: jaxloss.bi_tempered_logistic_loss(LOGITS, LABELS, num_iters=0), ValueError,
     "num_iters"),
    (lambda: jaxloss.bi_tempered_logistic_loss(LOGITS[:, :1], LABELS * 0), ValueError,
     "at least 2 classes"),
    (lambda: jaxloss.distillation_loss(LOGITS, LOGITS, temperature=0.0), ValueError,
     "temperature"),
    (lambda: jaxloss.distillation_loss(LOGITS, LOGITS[:, :3]), ValueError, "teacher_logits"),
    (lambda: jaxloss.jsd_consistency_loss(LOGITS, LOGITS, LOGITS[:3]), ValueError,
     "aug2_logits"),
    (lambda: jaxloss.asymmetric_loss(LOGITS, LOGITS > 0, clip=2.0), ValueError, "clip"),
    (lambda: jaxloss.cosine_distance_loss(LOGITS, LOGITS, eps=-1.0), ValueError, "eps"),
    (lambda: jaxloss.balanced_binary_cross_entropy_loss(LOGITS[0], LOGITS[0] > 0), ValueError,
     "rank"),
])
def test_bad_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()

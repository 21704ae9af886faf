"""Out-of-range class labels under ``jit`` give NaN, never the loss of a clipped label.

The guarantee "never a plausible wrong number": eager calls raise; under ``jit``
the labels' values are unknown at trace time, so the loss is NaN at the
offending positions (and any reduction over them), while the other positions
keep their values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

LOGITS = jax.random.normal(jax.random.PRNGKey(0), (4, 5))
BAD = jnp.array([1, 7, -2, 0])      # 7 and -2 are outside [0, 5)
GOOD_ROWS = np.array([True, False, False, True])

CLASS_LOSSES = {
    "cross_entropy_loss": {},
    "cross_entropy_loss_ignore": {"ignore_index": -100},
    "focal_loss": {"gamma": 2.0},
    "poly1_cross_entropy_loss": {},
    "multiclass_hinge_loss": {},
    "generalized_cross_entropy_loss": {},
    "symmetric_cross_entropy_loss": {},
}


@pytest.mark.parametrize("name", sorted(CLASS_LOSSES))
def test_out_of_range_labels_are_nan_under_jit(name):
    kwargs = dict(CLASS_LOSSES[name])
    fn = getattr(jaxloss, name.removesuffix("_ignore"))
    per_position = jax.jit(lambda x, y: fn(x, y, reduction="none", **kwargs))(LOGITS, BAD)
    per_position = np.asarray(per_position)
    assert np.all(np.isnan(per_position[~GOOD_ROWS])), per_position
    assert np.all(np.isfinite(per_position[GOOD_ROWS])), per_position
    # The good positions keep the value they have with valid labels.
    valid = jnp.where(jnp.asarray(GOOD_ROWS), BAD, 0)
    reference = np.asarray(fn(LOGITS, valid, reduction="none", **kwargs))
    np.testing.assert_allclose(per_position[GOOD_ROWS], reference[GOOD_ROWS], rtol=1e-6)
    assert np.isnan(float(jax.jit(lambda x, y: fn(x, y, **kwargs))(LOGITS, BAD)))
    # Eager calls raise a clear error instead.
    with pytest.raises(ValueError, match="outside \\[0, 5\\)"):
        fn(LOGITS, BAD, **kwargs)


def test_ignore_index_is_not_out_of_range_and_where_drops_bad_labels():
    labels = jnp.array([1, -100, 2, 0])
    got = jax.jit(lambda x, y: jaxloss.cross_entropy_loss(x, y, ignore_index=-100))(LOGITS,
                                                                                      labels)
    assert np.isfinite(float(got))
    keep = jnp.asarray(GOOD_ROWS)
    masked = jax.jit(lambda x, y: jaxloss.cross_entropy_loss(x, y, where=keep))(LOGITS, BAD)
    expected = jaxloss.cross_entropy_loss(LOGITS[GOOD_ROWS], BAD[GOOD_ROWS])
    np.testing.assert_allclose(float(masked), float(expected), rtol=1e-6)

"""linear_sum_assignment against scipy, hungarian_match and detr_criterion properties.

The agreement with scipy is checked on thousands of matrices at once: each group
of one shape is a single jitted, batched call (one compilation), then scipy runs
on every matrix on the host. An assignment is right when it is valid (distinct
rows and columns, ``min(N, M)`` pairs) and its total cost equals scipy's optimum
(ties may pick other indices). Costs are float32; the optimum is compared in
float64 with a tolerance of float32 rounding of the matrix's magnitude
(``1e-5 * min(N, M) * max |C|``), and exactly for small integers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.optimize import linear_sum_assignment as scipy_lsa

import jaxloss

lsa = jax.jit(jaxloss.linear_sum_assignment)


def _check_optimal(cost: np.ndarray, rows: np.ndarray, cols: np.ndarray, *, exact: bool = False
                   ) -> None:
    """Every matrix of the batch ``cost`` ``(B, N, M)``: a valid, optimal assignment."""
    b, n, m = cost.shape
    k = min(n, m)
    assert rows.shape == cols.shape == (b, k)
    assert rows.dtype == cols.dtype == np.int32
    c64 = cost.astype(np.float64)
    for i in range(b):
        r, c = rows[i], cols[i]
        assert len(set(r.tolist())) == k and r.min() >= 0 and r.max() < n, (i, r)
        # scipy's order where N <= M (rows 0..N-1); the columns in order where N > M
        np.testing.assert_array_equal(r if n <= m else c, np.arange(k))
        assert len(set(c.tolist())) == k and c.min() >= 0 and c.max() < m, (i, c)
        best_r, best_c = scipy_lsa(c64[i])
        best = c64[i][best_r, best_c].sum()
        ours = c64[i][r, c].sum()
        if exact:
            assert ours == best, (i, ours, best)
        else:
            tol = 1e-5 * k * np.abs(c64[i]).max()
            assert abs(ours - best) <= tol, (i, ours, best, tol)


def _mixed_batch(rng: np.random.Generator, size: int, shape: tuple[int, int]) -> np.ndarray:
    """Normal costs, uniform costs, and costs scaled from 1e-30 to 1e30 (each matrix its own
    scale), and a few matrices holding values near float32's largest."""
    normal = rng.normal(size=(size // 4, *shape))
    uniform = rng.random((size // 4, *shape))
    scales = 10.0 ** rng.uniform(-30, 30, size=(size // 4, 1, 1))
    scaled = rng.normal(size=(size // 4, *shape)) * scales
    huge = rng.uniform(-3e38, 3e38, size=(size - 3 * (size // 4), *shape))
    return np.concatenate([normal, uniform, scaled, huge]).astype(np.float32)


@pytest.mark.parametrize("shape", [(9, 9), (6, 11), (11, 6)])
def test_optimal_total_cost_on_thousands_of_matrices(shape):
    rng = np.random.default_rng(sum(shape))
    cost = _mixed_batch(rng, 1200, shape)
    rows, cols = lsa(cost)
    _check_optimal(cost, np.asarray(rows), np.asarray(cols))


def test_ties_and_integer_costs_are_exact():
    rng = np.random.default_rng(1)
    ties = rng.integers(0, 3, size=(600, 9, 9))          # many ties, int64 input
    rows, cols = lsa(ties)
    _check_optimal(ties, np.asarray(rows), np.asarray(cols), exact=True)
    constant = np.full((2, 9, 9), 7.0, np.float32)       # every assignment is optimal
    rows, cols = lsa(constant)
    _check_optimal(constant, np.asarray(rows), np.asarray(cols), exact=True)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([(1, 1), (3, 5), (5, 3), (4, 4)]).flatmap(
    lambda shape: hnp.arrays(np.float32, shape, elements=st.floats(
        -1e6, 1e6, width=32, allow_subnormal=False))))
def test_property_optimal_and_valid(cost):
    rows, cols = lsa(cost)
    _check_optimal(cost[None], np.asarray(rows)[None], np.asarray(cols)[None])


def test_vmap_and_grad():
    rng = np.random.default_rng(2)
    cost = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)

    def total(c):
        r, k = jaxloss.linear_sum_assignment(c)
        return jnp.sum(c[r, k])

    @jax.jit
    def run(cost):
        mapped = jax.vmap(jax.vmap(jaxloss.linear_sum_assignment))(cost)
        return mapped, jax.grad(total)(cost[0, 0])       # the assignment carries no gradient

    (rows, cols), grad = run(cost)
    _check_optimal(cost.reshape(12, 5, 6), np.asarray(rows).reshape(12, 5),
                   np.asarray(cols).reshape(12, 5))
    expected = np.zeros((5, 6), np.float32)
    expected[np.asarray(rows[0, 0]), np.asarray(cols[0, 0])] = 1.0
    np.testing.assert_array_equal(grad, expected)


def test_empty_and_bad_costs():
    rows, cols = jaxloss.linear_sum_assignment(jnp.zeros((0, 4)))
    assert rows.shape == cols.shape == (0,)
    with pytest.raises(ValueError, match="cost must have rank"):
        jaxloss.linear_sum_assignment(jnp.zeros(3))
    with pytest.raises(TypeError, match="real"):
        jaxloss.linear_sum_assignment(jnp.zeros((2, 2), jnp.complex64))
    with pytest.raises(ValueError, match=r"non-finite entry \(nan\) at index \(1, 0\)"):
        jaxloss.linear_sum_assignment(jnp.array([[0.0, 1.0], [jnp.nan, 2.0]]))
    # under jit the values cannot be checked: -1 columns, never a plausible assignment
    _, cols = lsa(jnp.array([[[0.0, 1.0], [jnp.inf, 2.0]], [[0.0, 1.0], [3.0, 2.0]]]))
    np.testing.assert_array_equal(cols, [[-1, -1], [0, 1]])


# ----------------------------------------------------------------------------- DETR


def _detr_inputs(rng, n=2, q=5, m=3, k=4, counts=(2, 0)):
    logits = jnp.asarray(rng.normal(size=(n, q, k)), jnp.float32)
    boxes = jnp.asarray(np.concatenate([rng.uniform(0.2, 0.8, (n, q, 2)),
                                        rng.uniform(0.1, 0.3, (n, q, 2))], -1), jnp.float32)
    labels = jnp.asarray(rng.integers(0, k - 1, (n, m)), jnp.int32)
    t_boxes = jnp.asarray(np.concatenate([rng.uniform(0.2, 0.8, (n, m, 2)),
                                          rng.uniform(0.1, 0.3, (n, m, 2))], -1), jnp.float32)
    mask = jnp.asarray(np.arange(m)[None] < np.asarray(counts)[:, None])
    return logits, boxes, labels, t_boxes, mask


@jax.jit
def _value_and_grads(logits, boxes, labels, t_boxes, mask):
    def objective(x, b):
        return jaxloss.detr_criterion(x, b, labels, t_boxes, mask)

    return jax.value_and_grad(objective, argnums=(0, 1), has_aux=True)(logits, boxes)


def test_no_targets_and_extremes_are_finite():
    rng = np.random.default_rng(0)
    logits, boxes, labels, t_boxes, _ = _detr_inputs(rng)
    none = jnp.zeros((2, 3), bool)
    (total, parts), grads = _value_and_grads(logits, boxes, labels, t_boxes, none)
    # nothing matched: every query's target is "no object", the box terms are 0
    expected = -jax.nn.log_softmax(logits)[..., -1].mean()
    np.testing.assert_allclose(parts["class"], expected, rtol=1e-6)
    assert float(parts["bbox"]) == float(parts["giou"]) == 0.0
    assert np.isfinite(total) and all(np.all(np.isfinite(g)) for g in grads)
    # saturated logits, identical, zero-area and far-apart boxes
    extreme_logits = logits.at[0].set(1e4).at[1].set(-1e4)
    same = boxes.at[0, :3].set(t_boxes[0]).at[1, :, 2:].set(0.0).at[1, 0].set(1e4)
    mask = jnp.ones((2, 3), bool)
    (total, parts), grads = _value_and_grads(extreme_logits, same, labels, t_boxes, mask)
    assert np.isfinite(total) and all(np.all(np.isfinite(g)) for g in grads), parts


def test_match_is_a_valid_assignment_of_real_targets_only():
    rng = np.random.default_rng(5)
    logits, boxes, labels, t_boxes, mask = _detr_inputs(rng, n=3, q=4, m=6, counts=(6, 2, 0))
    match = np.asarray(jax.jit(jaxloss.hungarian_match)(logits, boxes, labels, t_boxes, mask))
    # image 0: 6 targets, 4 queries: every query matched; image 1: 2 of 4; image 2: none
    assert [int(np.sum(row >= 0)) for row in match] == [4, 2, 0]
    for row, real in zip(match, np.asarray(mask), strict=True):
        taken = row[row >= 0]
        assert len(set(taken.tolist())) == len(taken) and np.all(real[taken])


def test_half_precision_and_unmatched_boxes_get_no_box_gradient():
    rng = np.random.default_rng(6)
    logits, boxes, labels, t_boxes, mask = _detr_inputs(rng)
    half = [x.astype(jnp.bfloat16) for x in (logits, boxes, t_boxes)]
    total, parts = jaxloss.detr_criterion(half[0], half[1], labels, half[2], mask)
    assert total.dtype == jnp.bfloat16 and parts["giou"].dtype == jnp.bfloat16
    (expected, _), (_, g_boxes) = _value_and_grads(logits, boxes, labels, t_boxes, mask)
    np.testing.assert_allclose(float(total), float(expected), rtol=2e-2)
    match = np.asarray(jaxloss.hungarian_match(logits, boxes, labels, t_boxes, mask))
    assert np.all(np.asarray(g_boxes)[match < 0] == 0.0)


def test_bad_inputs_raise_or_give_nan_under_jit():
    rng = np.random.default_rng(7)
    logits, boxes, labels, t_boxes, mask = _detr_inputs(rng)
    bad_label = labels.at[0, 0].set(3)                     # C = 3 real classes + no object
    with pytest.raises(ValueError, match="target_labels holds class index 3"):
        jaxloss.detr_criterion(logits, boxes, bad_label, t_boxes, mask)
    (total, _), _ = _value_and_grads(logits, boxes, bad_label, t_boxes, mask)
    assert np.isnan(total)
    inverted = t_boxes.at[0, 1, 2].set(-0.1)
    with pytest.raises(ValueError, match="negative width or height"):
        jaxloss.detr_criterion(logits, boxes, labels, inverted, mask)
    (total, _), _ = _value_and_grads(logits, boxes, labels, inverted, mask)
    assert np.isnan(total)
    (total, _), _ = _value_and_grads(logits, boxes.at[1, 2, 0].set(jnp.nan), labels, t_boxes,
                                     mask)
    assert np.isnan(total)                                 # not the loss of "no match"
    # the same label and box in a padded slot are ignored
    padded = ~mask
    (total, _), _ = _value_and_grads(logits, boxes, bad_label, inverted, mask & padded)
    assert np.isfinite(total)
    with pytest.raises(ValueError, match=r"pred_boxes must have shape \(N, Q, 4\)"):
        jaxloss.detr_criterion(logits, boxes[:, :4], labels, t_boxes, mask)
    with pytest.raises(ValueError, match="target_mask must have shape"):
        jaxloss.hungarian_match(logits, boxes, labels, t_boxes, mask[:, :2])
    with pytest.raises(TypeError, match="target_labels must hold integer"):
        jaxloss.hungarian_match(logits, boxes, t_boxes[..., 0], t_boxes, mask)
    with pytest.raises(ValueError, match="no object"):
        jaxloss.detr_criterion(logits[..., :1], boxes, labels, t_boxes, mask)
    with pytest.raises(ValueError, match="box_format"):
        jaxloss.hungarian_match(logits, boxes, labels, t_boxes, mask, box_format="yxyx")


def test_deep_supervision_over_decoder_layers():
    rng = np.random.default_rng(8)
    logits, boxes, labels, t_boxes, mask = _detr_inputs(rng)
    layers = [(logits, boxes), (logits * 0.5, boxes[:, ::-1])]
    aux = jaxloss.deep_supervision(jaxloss.detr_criterion, weights="same", eos_coef=0.1)
    total, parts = jax.jit(aux)(layers, (labels, t_boxes, mask))
    # each layer alone (the program the other tests compiled)
    expected = [_value_and_grads(*layer, labels, t_boxes, mask)[0] for layer in layers]
    np.testing.assert_allclose(total, (expected[0][0] + expected[1][0]) / 2, rtol=1e-6)
    assert sorted(parts) == ["bbox_0", "bbox_1", "class_0", "class_1", "giou_0", "giou_1"]
    np.testing.assert_allclose(parts["giou_1"], expected[1][1]["giou"], rtol=1e-6)

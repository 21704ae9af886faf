"""Exact minimum-cost assignment under ``jit`` and DETR's bipartite matcher.

``linear_sum_assignment`` is the Jonker–Volgenant shortest augmenting path
algorithm (the one scipy's ``linear_sum_assignment`` runs, after Crouse 2016)
written with ``lax.fori_loop`` over the rows and ``lax.while_loop`` for each
shortest-path search, so it compiles once, runs inside ``jit``, batches under
``vmap`` and needs no host callback. ``hungarian_match`` builds DETR's matching
cost (class probability, L1 of the boxes, −GIoU; Deformable DETR's focal class
cost with ``focal=True``) for targets padded to a common count and matches every
image of the batch at once. Matching is not differentiated: both stop the
gradient at the cost.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss.detection._common import BoxFormat, as_boxes, check_format, convert
from jaxloss.detection._giou import giou_forward

__all__ = ["hungarian_match", "linear_sum_assignment"]


# --------------------------------------------------------------------------------------
# The assignment kernel: rows <= columns, finite costs of moderate magnitude.
# --------------------------------------------------------------------------------------


def _assign_rows(cost: Array) -> Array:
    """``col4row`` ``(n,)``: the optimal column of each row of ``cost`` ``(n, m)``, ``n <= m``.

    One shortest augmenting path per row (Dijkstra over the reduced costs
    ``c_ij - u_i - v_j``, the duals ``u``, ``v`` kept feasible), then the
    duals are updated and the path flipped. Among columns of equal path
    length a free one is taken first (it ends the search), as scipy does.
    """
    n, m = cost.shape
    dtype = cost.dtype
    inf = jnp.asarray(jnp.inf, dtype)
    columns = jnp.arange(m)
    rows = jnp.arange(n)
    # Every loop carry starts from these zeros derived from the cost, so that it has the
    # cost's type under shard_map (varying over the mapped axis) and under vmap.
    zero = cost[0, 0] * 0
    izero = zero.astype(jnp.int32)
    no = izero != 0

    def add_row(cur_row, carry):
        u, v, col4row, row4col = carry

        def search(state):
            # Index updates are written as selects against an iota, not scatters: under
            # vmap they stay elementwise and fuse.
            i, min_val, spc, path, scanned_rows, scanned_cols, _ = state
            scanned_rows = scanned_rows | (rows == i)
            reduced = min_val + cost[i] - u[i] - v                          # [m]
            better = ~scanned_cols & (reduced < spc)
            path = jnp.where(better, i, path)
            spc = jnp.where(better, reduced, spc)
            open_costs = jnp.where(scanned_cols, inf, spc)
            lowest = jnp.min(open_costs)
            # The nearest open column, a free one first among equals (it ends the search).
            rank = jnp.where(open_costs == lowest, jnp.where(row4col < 0, 0, 1), 2)
            j = jnp.argmin(rank)
            scanned_cols = scanned_cols | (columns == j)
            owner = row4col[j]
            sink = jnp.where(owner < 0, j, -1)
            i = jnp.where(owner < 0, i, owner)
            return i, lowest, spc, path, scanned_rows, scanned_cols, sink

        start = (cur_row + izero, zero, jnp.full((m,), inf) + zero,
                 jnp.full((m,), -1) + izero, jnp.zeros((n,), bool) | no,
                 jnp.zeros((m,), bool) | no, izero - 1)
        _, min_val, spc, path, scanned_rows, scanned_cols, sink = jax.lax.while_loop(
            lambda s: s[6] < 0, search, start)
        # Dual update (keeps every reduced cost >= 0 and the matched ones at 0).
        assigned_spc = spc[jnp.clip(col4row, 0, m - 1)]                      # [n]
        raise_u = scanned_rows & (rows != cur_row)
        u = u + jnp.where(raise_u, min_val - assigned_spc, jnp.zeros_like(u))
        u = u + jnp.where(rows == cur_row, min_val, jnp.zeros_like(u))
        v = v - jnp.where(scanned_cols, min_val - spc, jnp.zeros_like(v))

        # Flip the augmenting path from the sink back to cur_row.
        def augment(state):
            j, col4row, row4col, _ = state
            i = path[j]
            row4col = jnp.where(columns == j, i, row4col)
            previous = col4row[i]
            col4row = jnp.where(rows == i, j, col4row)
            return previous, col4row, row4col, i == cur_row

        _, col4row, row4col, _ = jax.lax.while_loop(
            lambda s: ~s[3], augment, (sink, col4row, row4col, no))
        return u, v, col4row, row4col

    init = (jnp.zeros((n,), dtype) + zero, jnp.zeros((m,), dtype) + zero,
            jnp.full((n,), -1) + izero, jnp.full((m,), -1) + izero)
    _, _, col4row, _ = jax.lax.fori_loop(0, n, add_row, init)
    return col4row


def _normalised(cost: Array) -> tuple[Array, Array]:
    """``cost`` times a power of two that brings ``max |cost|`` into ``[1, 2)`` (or as near as
    the exponent range allows: a factor within ``2^{+-100}``, ``2^{+-1000}`` in float64). Exact
    (only the exponent changes), and the duals cannot overflow whatever the magnitude.
    Non-finite entries (and all entries of a matrix holding one) are replaced by 0. Returns
    it and whether all were finite."""
    finite = jnp.all(jnp.isfinite(cost))
    cost = jnp.where(finite, cost, jnp.zeros_like(cost))
    scale = jnp.max(jnp.abs(cost))
    # The factor is built from exponent bits: a division by a large power of two would
    # go through its subnormal reciprocal, which the CPU flushes to 0.
    wide = cost.dtype == jnp.float64
    bits, bias, mantissa, limit = (jnp.int64, 1023, 52, 1000) if wide else (jnp.int32, 127, 23,
                                                                            100)
    biased = jax.lax.shift_right_logical(jax.lax.bitcast_convert_type(scale, bits),
                                         jnp.asarray(mantissa, bits))
    shift = jnp.clip(bias - biased, -limit, limit)                          # -exponent
    factor = jax.lax.bitcast_convert_type(
        jax.lax.shift_left(shift + bias, jnp.asarray(mantissa, bits)), cost.dtype)
    return cost * factor, finite


def _assignment(cost: Array) -> tuple[Array, Array]:
    """``(rows, cols)`` of one ``(n, m)`` matrix; cols are -1 if the matrix is not finite."""
    n, m = cost.shape
    k = min(n, m)
    if k == 0:
        empty = jnp.zeros((0,), jnp.int32)
        return empty, empty
    scaled, finite = _normalised(cost)
    if n <= m:
        rows = jnp.arange(n, dtype=jnp.int32)
        cols = _assign_rows(scaled).astype(jnp.int32)
    else:
        rows = _assign_rows(scaled.T).astype(jnp.int32)                     # row of each col
        cols = jnp.arange(m, dtype=jnp.int32)
    return rows, jnp.where(finite, cols, -jnp.ones_like(cols))


def _check_finite(cost: Array) -> None:
    if _checks.is_traced(cost):
        return
    _checks.refuse_concrete(~jnp.isfinite(cost), lambda index: (
        f"cost holds a non-finite entry ({np.asarray(cost)[index]}) at index {index}; give "
        "finite costs (a large finite cost forbids a pair: any magnitude is exact here)."))


def linear_sum_assignment(cost: ArrayLike) -> tuple[Array, Array]:
    r"""Exact minimum-cost assignment of a rectangular cost matrix, inside ``jit``.

    Finds the rows :math:`r_k` and distinct columns :math:`c_k`,
    :math:`k < \min(N, M)`, that minimise :math:`\sum_k C_{r_k c_k}` (every row
    assigned when :math:`N \le M`, every column when :math:`N > M`): the
    Jonker–Volgenant shortest augmenting path algorithm, one Dijkstra search per
    row of the smaller side in ``lax.while_loop``, so it compiles once for a
    shape and batches under ``vmap`` (leading axes of ``cost`` are batched the
    same way). No host callback.

    Convention: any optimal assignment is correct (with ties the indices may
    differ from scipy's; the total cost is the same). For :math:`N \le M`
    ``rows`` is ``0, 1, ..., N - 1`` as scipy's; for :math:`N > M` ``cols``
    is ``0, ..., M - 1`` and ``rows`` is not sorted (scipy sorts the pairs
    by row). The matrix is scaled by a power of two first (exact),
    so any finite magnitude works, 1e30 as well as 1e-30, with no sentinel
    values. Costs are computed in float32 (float64 for float64 input), integer
    costs are converted: integers above :math:`2^{24}` then round. The output
    is not differentiable: the gradient is stopped at ``cost``. A non-finite
    entry raises eagerly; under ``jit`` it makes every column index of that
    matrix -1.

    Args:
      cost: ``(..., N, M)`` real cost matrix (float or int), any leading batch
        axes.

    Returns:
      ``(rows, cols)``, int32 arrays of shape ``(..., min(N, M))``: row
      ``rows[k]`` is assigned column ``cols[k]``.

    Raises:
      ValueError: rank below 2, or a non-finite entry (eager).
      TypeError: complex or boolean ``cost``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> cost = jnp.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
      >>> rows, cols = jaxloss.linear_sum_assignment(cost)
      >>> cols.tolist(), float(cost[rows, cols].sum())
      ([1, 0, 2], 5.0)

    References:
      Jonker and Volgenant, `A shortest augmenting path algorithm for dense and
      sparse linear assignment problems <https://doi.org/10.1007/BF02278710>`_,
      1987; Crouse, `On implementing 2D rectangular assignment algorithms
      <https://doi.org/10.1109/TAES.2016.140952>`_, 2016. Equivalent to
      ``scipy.optimize.linear_sum_assignment(cost)`` (same total cost).
    """
    array = jnp.asarray(cost)
    if array.dtype == jnp.bool_ or jnp.issubdtype(array.dtype, jnp.complexfloating):
        raise TypeError(f"cost must be a real (float or int) matrix; got dtype {array.dtype}.")
    _checks.check_rank(array, "cost", min_rank=2)
    if jnp.issubdtype(array.dtype, jnp.integer):
        array = array.astype(jax.dtypes.canonicalize_dtype(jnp.float64))  # float32 without x64
    compute, _ = _checks.compute_dtype(array)
    array = jax.lax.stop_gradient(array.astype(compute))
    _check_finite(array)
    return assign(array)


@jax.jit
def assign(cost: Array) -> tuple[Array, Array]:
    """:func:`linear_sum_assignment` of a validated floating ``(..., N, M)`` ``cost``.

    Jitted, so that an eager call compiles one program instead of dispatching the loops'
    operations one by one (inside a user's ``jit`` it is inlined)."""
    fn = _assignment
    for _ in range(cost.ndim - 2):
        fn = jax.vmap(fn)
    return fn(jax.lax.stop_gradient(cost))


# --------------------------------------------------------------------------------------
# DETR's matcher.
# --------------------------------------------------------------------------------------


def matching_inputs(pred_logits: ArrayLike, pred_boxes: ArrayLike, target_labels: ArrayLike,
                    target_boxes: ArrayLike, target_mask: ArrayLike, *, num_labels: int | None,
                    box_format: str) -> tuple[Array, Array, Array, Array, Array, jnp.dtype]:
    """Validated, masked inputs of the matcher and the criterion, in the compute dtype.

    Padded targets (``target_mask`` False) get label 0 and the unit box, so that a NaN or an
    out-of-range value there reaches neither the cost nor the loss. Labels of real targets
    must lie in ``[0, num_labels)`` (default: the number of logits).
    """
    check_format(box_format, "box_format")
    logits = _checks.float_input(pred_logits, "pred_logits")
    _checks.check_rank(logits, "pred_logits", rank=3)
    n, q, k = logits.shape
    boxes = as_boxes(pred_boxes, "pred_boxes")
    if boxes.shape != (n, q, 4):
        raise ValueError(f"pred_boxes must have shape (N, Q, 4) = {(n, q, 4)} to match "
                         f"pred_logits {logits.shape}; got {boxes.shape}.")
    labels = jnp.asarray(target_labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"target_labels must hold integer class indices; got {labels.dtype}.")
    if labels.ndim != 2 or labels.shape[0] != n:
        raise ValueError(f"target_labels must have shape (N, M) with N = {n} (targets padded "
                         f"to M per image); got {labels.shape}.")
    m = labels.shape[1]
    t_boxes = as_boxes(target_boxes, "target_boxes")
    if t_boxes.shape != (n, m, 4):
        raise ValueError(f"target_boxes must have shape (N, M, 4) = {(n, m, 4)} to match "
                         f"target_labels {labels.shape}; got {t_boxes.shape}.")
    mask = jnp.asarray(target_mask)
    if mask.shape != (n, m):
        raise ValueError(f"target_mask must have shape (N, M) = {(n, m)} (True for real "
                         f"targets, False for padding); got {mask.shape}.")
    mask = mask.astype(bool)
    compute, dtype = _checks.compute_dtype(logits, boxes, t_boxes)
    labels = jnp.where(mask, labels, jnp.zeros_like(labels))
    limit = k if num_labels is None else num_labels
    _checks.check_labels_in_range(labels, limit, "target_labels")
    unit = jnp.asarray(convert(jnp.array([0.0, 0.0, 1.0, 1.0], compute), "xyxy", box_format))
    t_boxes = jnp.where(mask[..., None], t_boxes.astype(compute), unit)
    return logits.astype(compute), boxes.astype(compute), labels, t_boxes, mask, dtype


def matching_cost(logits: Array, boxes: Array, labels: Array, t_boxes: Array, *,
                  class_cost: Array, bbox_cost: Array, giou_cost: Array, focal: bool,
                  alpha: Array, gamma: Array, box_format: str) -> Array:
    """DETR's cost matrices ``(N, Q, M)`` (no gradient; padded targets not yet handled)."""
    logits, boxes, t_boxes = (jax.lax.stop_gradient(x) for x in (logits, boxes, t_boxes))
    index = jnp.broadcast_to(labels[:, None, :], (*logits.shape[:2], labels.shape[1]))
    if focal:
        # Deformable DETR's models/matcher.py, with its 1e-8 inside the logs.
        prob = jax.nn.sigmoid(logits)
        neg = (1 - alpha) * prob**gamma * -jnp.log(1 - prob + 1e-8)
        pos = alpha * (1 - prob) ** gamma * -jnp.log(prob + 1e-8)
        cls = jnp.take_along_axis(pos - neg, index, axis=-1)                 # [N, Q, M]
    else:
        cls = -jnp.take_along_axis(jax.nn.softmax(logits, axis=-1), index, axis=-1)
    l1 = jnp.sum(jnp.abs(boxes[:, :, None, :] - t_boxes[:, None, :, :]), axis=-1)
    p_xyxy = convert(boxes, box_format, "xyxy")[:, :, None, :]              # [N, Q, 1, 4]
    t_xyxy = convert(t_boxes, box_format, "xyxy")[:, None, :, :]            # [N, 1, M, 4]
    neg_giou = giou_forward(p_xyxy, t_xyxy, jnp.zeros((), boxes.dtype)) - 1  # -GIoU
    return bbox_cost * l1 + class_cost * cls + giou_cost * neg_giou


def match_queries(cost: Array, mask: Array) -> Array:
    """``(N, Q)`` index of the target matched to each query (-1: none) from ``(N, Q, M)``.

    Padded targets cost one constant per image above every real pair's cost, so an optimal
    assignment of the padded problem uses as many real targets as it can and, restricted to
    them, is an optimal assignment of the real targets alone.
    """
    n, q, m = cost.shape
    real = mask[:, None, :]                                                  # [N, 1, M]
    real_cost = jnp.where(real, cost, -jnp.inf)
    top = jnp.max(real_cost, axis=(1, 2), keepdims=True)                     # [N, 1, 1]
    top = jnp.where(jnp.isfinite(top), top, jnp.zeros_like(top))
    cost = jnp.where(real, cost, top + jnp.abs(top) + 1)
    rows, cols = assign(cost)                                                # [N, K]
    matched = (cols >= 0) & jnp.take_along_axis(mask, jnp.clip(cols, 0, m - 1), axis=1)
    values = jnp.where(matched, cols, -jnp.ones_like(cols))
    batch = jnp.arange(n)[:, None]
    return jnp.full((n, q), -1, jnp.int32).at[batch, rows].set(values)


def hungarian_match(
    pred_logits: ArrayLike,
    pred_boxes: ArrayLike,
    target_labels: ArrayLike,
    target_boxes: ArrayLike,
    target_mask: ArrayLike,
    *,
    class_cost: ArrayLike = 1.0,
    bbox_cost: ArrayLike = 5.0,
    giou_cost: ArrayLike = 2.0,
    focal: bool = False,
    alpha: ArrayLike = 0.25,
    gamma: ArrayLike = 2.0,
    box_format: BoxFormat = "cxcywh",
) -> Array:
    r"""DETR's bipartite matching of predicted queries to padded targets, batched under ``jit``.

    Per image, the cost of query :math:`q` and target :math:`t` is

    .. math::
        C_{qt} = \lambda_{cls}\, c_{cls}(q, t)
                 + \lambda_{L1} \lVert b_q - b_t \rVert_1
                 - \lambda_{giou}\, \mathrm{GIoU}(b_q, b_t)

    with :math:`c_{cls} = -\mathrm{softmax}(x_q)_{y_t}` (DETR) or, with
    ``focal=True``, Deformable DETR's
    :math:`\alpha (1-p)^\gamma (-\log(p + 10^{-8})) - (1-\alpha) p^\gamma
    (-\log(1 - p + 10^{-8}))` at :math:`p = \sigma(x_{q y_t})`. The L1 term is
    in ``box_format`` coordinates (cxcywh, as DETR), the GIoU on the boxes
    converted to xyxy. Each image's real targets (``target_mask``) are matched
    to distinct queries with :func:`linear_sum_assignment` (exact, ties may
    pick other indices than scipy with the same total cost); padded targets are
    never matched. The gradient is stopped.

    Args:
      pred_logits: floating ``(N, Q, K)`` class logits (softmax over ``K``,
        the last one DETR's "no object"; or ``K`` sigmoid logits with
        ``focal=True``).
      pred_boxes: floating ``(N, Q, 4)`` predicted boxes in ``box_format``.
      target_labels: int ``(N, M)`` classes in ``[0, K)`` (any value where
        padded).
      target_boxes: floating ``(N, M, 4)`` target boxes (any values where
        padded).
      target_mask: bool ``(N, M)``, True for real targets, False for padding.
      class_cost: weight of the class cost (Python or traced scalar).
      bbox_cost: weight of the L1 cost.
      giou_cost: weight of the −GIoU cost.
      focal: Deformable DETR's focal class cost (static).
      alpha: focal cost's :math:`\alpha`.
      gamma: focal cost's :math:`\gamma`.
      box_format: ``"cxcywh"`` (default, DETR), ``"xyxy"`` or ``"xywh"``.

    Returns:
      int32 ``(N, Q)``: the index in ``[0, M)`` of the target matched to each
      query, -1 for unmatched queries.

    Raises:
      ValueError: shapes disagree, unknown ``box_format``, a real target's
        label outside ``[0, K)`` (eager).
      TypeError: integer logits or boxes, non-integer labels.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.zeros((1, 3, 2))
      >>> boxes = jnp.array([[[0.2, 0.2, 0.1, 0.1], [0.5, 0.5, 0.2, 0.2],
      ...                     [0.8, 0.8, 0.1, 0.1]]])
      >>> t_boxes = jnp.array([[[0.8, 0.8, 0.1, 0.1], [0.0, 0.0, 0.0, 0.0]]])
      >>> jaxloss.hungarian_match(logits, boxes, jnp.array([[0, 0]]), t_boxes,
      ...                         jnp.array([[True, False]])).tolist()
      [[-1, -1, 0]]

    References:
      Carion et al., `End-to-End Object Detection with Transformers
      <https://arxiv.org/abs/2005.12872>`_, 2020, DETR ``models/matcher.py``
      ``HungarianMatcher``; Zhu et al., `Deformable DETR
      <https://arxiv.org/abs/2010.04159>`_, 2021, ``models/matcher.py``.
    """
    if not isinstance(focal, bool):
        raise TypeError(f"focal must be a static Python bool; got {focal!r}.")
    logits, boxes, labels, t_boxes, mask, _ = matching_inputs(
        pred_logits, pred_boxes, target_labels, target_boxes, target_mask, num_labels=None,
        box_format=box_format)
    compute = logits.dtype
    weights = {name: _checks.hyperparameter(value, name, compute) for name, value in (
        ("class_cost", class_cost), ("bbox_cost", bbox_cost), ("giou_cost", giou_cost),
        ("alpha", alpha), ("gamma", gamma))}
    return _match(logits, boxes, labels, t_boxes, mask, weights, focal=focal,
                  box_format=box_format)


@partial(jax.jit, static_argnames=("focal", "box_format"))
def _match(logits: Array, boxes: Array, labels: Array, t_boxes: Array, mask: Array,
           weights: dict[str, Array], *, focal: bool, box_format: str) -> Array:
    """``hungarian_match`` after validation, one jitted program (see :func:`assign`)."""
    cost = matching_cost(logits, boxes, labels, t_boxes, focal=focal, box_format=box_format,
                         **weights)
    return match_queries(cost, mask)

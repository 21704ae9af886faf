"""Shared pieces of the metric-learning family: normalisation, distance matrices, masks,
the cross-device gather that makes batch-wide losses shard-exact, the blockwise
(chunked) online log-sum-exp, and the validation of embeddings, labels and paired views.

Row masks and reductions are not here: every loss uses ``jaxloss._reduce``
(``rows_kept``, ``mask_rows``, ``reduce_loss``)."""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._numerics import safe_log, safe_sqrt

Distance = Literal["euclidean", "squared", "cosine"]
DISTANCES: tuple[str, ...] = ("euclidean", "squared", "cosine")


def l2_normalize(x: Array, *, axis: int = -1, eps: float = 1e-12) -> Array:
    """``x / max(||x||, eps)`` (torch's ``F.normalize``), with a finite gradient at ``x = 0``."""
    norm = safe_sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
    return x / jnp.maximum(norm, eps)


def squared_distance_matrix(a: Array, b: Array) -> Array:
    """``||a_i - b_j||^2`` for ``a (N, d)``, ``b (M, d)``: ``(N, M)``, clamped at 0."""
    a_sq = jnp.sum(jnp.square(a), axis=-1)[:, None]                 # [N, 1]
    b_sq = jnp.sum(jnp.square(b), axis=-1)[None, :]                 # [1, M]
    return jnp.maximum(a_sq + b_sq - 2 * (a @ b.T), 0.0)


def distance_matrix(a: Array, b: Array, *, distance: str) -> Array:
    """``(N, M)`` distances: Euclidean (finite gradient at 0), squared, or ``1 - cos``."""
    _checks.check_choice(distance, "distance", DISTANCES)
    if distance == "cosine":
        return 1 - l2_normalize(a) @ l2_normalize(b).T
    squared = squared_distance_matrix(a, b)
    return squared if distance == "squared" else safe_sqrt(squared)


def same_label(labels_a: Array, labels_b: Array) -> Array:
    """``(N, M)`` boolean: ``labels_a[i] == labels_b[j]``."""
    return labels_a[:, None] == labels_b[None, :]


def embeddings_and_labels(
    embeddings: ArrayLike, labels: ArrayLike, *, embeddings_name: str = "embeddings",
    labels_name: str = "labels",
) -> tuple[Array, Array, jnp.dtype]:
    """Validates ``(N, d)`` float embeddings and ``(N,)`` int labels; returns them in the
    compute dtype, and the result dtype."""
    embeddings = _checks.float_input(embeddings, embeddings_name)
    _checks.check_rank(embeddings, embeddings_name, rank=2)
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{labels_name} must be integer class labels; got dtype {labels.dtype}.")
    if labels.shape != embeddings.shape[:1]:
        raise ValueError(
            f"{labels_name} must have shape ({embeddings.shape[0]},), one label per row of "
            f"{embeddings_name}; got {labels.shape}."
        )
    compute, dtype = _checks.compute_dtype(embeddings)
    return embeddings.astype(compute), labels, dtype


def gather_batch(x: Array, axis_name: str | None) -> Array:
    """The global batch under ``shard_map``/``pmap``: ``all_gather`` along axis 0 (tiled).

    Without ``axis_name`` it returns ``x``. Gradients flow back to each
    device's own shard (``all_gather``'s transpose is a reduce-scatter).
    """
    if axis_name is None:
        return x
    return jax.lax.all_gather(x, axis_name, axis=0, tiled=True)


def shard_offset(local_size: int, axis_name: str | None) -> Array | int:
    """Index of this device's first row in the gathered batch (0 without ``axis_name``)."""
    if axis_name is None:
        return 0
    return jax.lax.axis_index(axis_name) * local_size


# --------------------------------------------------------------------------------------
# Blockwise (chunked) computation over the columns of a similarity matrix.
# --------------------------------------------------------------------------------------


def scan_column_blocks(
    body,
    init,
    keys: Array,
    *,
    block_size: int,
    extras: tuple[Array, ...] = (),
):
    """Runs ``carry = body(carry, key_block, columns, valid, *extra_blocks)`` over column blocks.

    ``keys`` ``(M, d)`` (and each array of ``extras``, leading axis ``M``) is
    split into blocks of ``block_size`` rows (the last block padded; ``valid``
    marks real columns, ``columns`` holds their global indices). The body is
    wrapped in ``jax.checkpoint``, so the backward pass recomputes each
    ``(N, block_size)`` block instead of storing it: memory stays
    ``O(N * block_size + N * d)``, never ``O(N * M)``.
    """
    block_size = _checks.static_int(block_size, "block_size", low=1)
    total = keys.shape[0]
    blocks = -(-total // block_size)
    pad = blocks * block_size - total

    def split(array: Array) -> Array:
        padded = jnp.pad(array, [(0, pad)] + [(0, 0)] * (array.ndim - 1))
        return padded.reshape((blocks, block_size) + array.shape[1:])

    columns = jnp.arange(blocks * block_size).reshape(blocks, block_size)
    valid = columns < total
    xs = (split(keys), columns, valid, *[split(e) for e in extras])

    @jax.checkpoint
    def step(carry, block):
        return body(carry, *block), None

    carry, _ = jax.lax.scan(step, init, xs)
    return carry


def logsumexp_init(rows: int, dtype: jnp.dtype) -> tuple[Array, Array]:
    """Initial ``(running_max, running_sum)`` of an online log-sum-exp over ``rows`` rows."""
    return jnp.full((rows,), -jnp.inf, dtype), jnp.zeros((rows,), dtype)


def logsumexp_update(state: tuple[Array, Array], logits: Array, mask: Array,
                     ) -> tuple[Array, Array]:
    """Folds a block of ``logits`` ``(N, b)`` (entries with ``mask`` False ignored) into an
    online log-sum-exp state; stable for any magnitudes and for fully masked blocks."""
    running_max, running_sum = state
    masked = jnp.where(mask, logits, -jnp.inf)
    block_max = jax.lax.stop_gradient(jnp.max(masked, axis=-1))
    new_max = jnp.maximum(running_max, block_max)
    safe_max = jnp.where(jnp.isfinite(new_max), new_max, 0.0)
    rescale = jnp.where(jnp.isfinite(running_max), jnp.exp(running_max - safe_max), 0.0)
    # Double where: a masked entry far above the running max must not overflow exp (its
    # inf would turn into a NaN gradient through the select).
    shifted = jnp.where(mask, logits - safe_max[:, None], -jnp.inf)
    block_sum = jnp.sum(jnp.exp(shifted), axis=-1)
    return new_max, running_sum * rescale + block_sum


def logsumexp_finish(state: tuple[Array, Array]) -> Array:
    """``log(sum(exp))`` of an online state; ``-inf`` for rows that saw no entry."""
    running_max, running_sum = state
    safe_max = jnp.where(jnp.isfinite(running_max), running_max, 0.0)
    positive = running_sum > 0
    safe_sum = jnp.where(positive, running_sum, 1.0)
    return jnp.where(positive, jnp.log(safe_sum) + safe_max, -jnp.inf)


def masked_logsumexp(logits: Array, mask: Array, *, add_one: bool = False) -> Array:
    """``log(sum_{mask} exp(logits))`` over the last axis, stable and NaN-free.

    ``add_one`` adds ``exp(0)`` to the sum (``log(1 + sum)``, PML's
    ``add_one``). Rows with nothing selected give ``-inf`` (0 with
    ``add_one``) and a zero gradient; entries outside ``mask`` never reach the
    exponential (double where), whatever their size.
    """
    masked = jnp.where(mask, logits, -jnp.inf)
    row_max = jnp.max(masked, axis=-1)
    if add_one:
        row_max = jnp.maximum(row_max, 0.0)
    row_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(row_max), row_max, 0.0))
    total = jnp.sum(jnp.exp(masked - row_max[..., None]), axis=-1)
    if add_one:
        total = total + jnp.exp(-row_max)
    return safe_log(total) + row_max


# --------------------------------------------------------------------------------------
# Validation and row selection shared by the batch-wide losses.
# --------------------------------------------------------------------------------------


def all_rows_if_none(kept: Array | None, rows: int) -> Array:
    """``kept`` (a ``(rows,)`` boolean from ``_reduce.rows_kept``), or all True if None."""
    return jnp.ones((rows,), jnp.bool_) if kept is None else kept


def check_block_size(block_size: int | None) -> int | None:
    """``None`` (the dense path) or a static int ``>= 1``."""
    if block_size is None:
        return None
    return _checks.static_int(block_size, "block_size", low=1)


def positive_hyperparameter(value: ArrayLike, name: str, dtype: jnp.dtype) -> Array:
    """A numeric hyperparameter that must be ``> 0`` (checked when concrete), in ``dtype``."""
    _checks.check_range(value, name, low=0.0, low_inclusive=False)
    return _checks.hyperparameter(value, name, dtype)


def two_views(embeddings: ArrayLike, other: ArrayLike, name: str, other_name: str,
              ) -> tuple[Array, Array, jnp.dtype]:
    """Validates a float ``(N, d)`` pair of views; both in the compute dtype, and the result
    dtype."""
    embeddings = _checks.float_input(embeddings, name)
    _checks.check_rank(embeddings, name, rank=2)
    other = _checks.float_input(other, other_name)
    _checks.check_same_shape(other, other_name, embeddings, name)
    compute, dtype = _checks.compute_dtype(embeddings, other)
    return embeddings.astype(compute), other.astype(compute), dtype


def masked_views(a: ArrayLike, b: ArrayLike, names: tuple[str, str], where: ArrayLike | None,
                 weights: ArrayLike | None) -> tuple[Array, Array, Array | None, jnp.dtype]:
    """:func:`two_views`, the rows kept (``where`` True and, if ``weights`` is given, a
    nonzero weight; None when neither is given), and both views with the other rows
    zeroed (the first half of the double where: a NaN there cannot leak)."""
    x, y, dtype = two_views(a, b, *names)
    kept = _reduce.rows_kept(where, weights, x.shape[:1])
    x, y = _reduce.mask_rows(kept, x, y)
    return x, y, kept, dtype


def over_columns(body, init, keys: Array, extras: tuple[Array, ...], block_size: int | None,
                 axis_name: str | None):
    """``body`` over all key columns at once (dense) or in checkpointed blocks (chunked).

    ``body(carry, key_block, columns, valid, *extra_blocks)`` as in
    :func:`scan_column_blocks`; the dense path calls it once on every column.
    """
    if block_size is None:
        columns = jnp.arange(keys.shape[0])
        valid = jnp.ones((keys.shape[0],), jnp.bool_)
        return body(init, keys, columns, valid, *extras)
    return scan_column_blocks(body, varying(init, axis_name), keys, block_size=block_size,
                              extras=extras)


def varying(init, axis_name: str | None):
    """A scan's initial carry marked as varying over ``axis_name`` (unchanged without it):
    under ``shard_map`` a carry that depends on the local rows varies over the axis."""
    if axis_name is None:
        return init
    return jax.tree.map(lambda c: jax.lax.pcast(c, axis_name, to="varying"), init)


# --------------------------------------------------------------------------------------
# The pairs of a batch-wide loss: the batch's rows (anchors) against the keys, which are
# the (gathered) batch itself or a reference set (``ref_embeddings``: a memory bank).
# --------------------------------------------------------------------------------------


class References(NamedTuple):
    """A validated reference set (PML's ``ref_emb``/``ref_labels``)."""

    keys: Array      # [M, d] in the compute dtype
    labels: Array    # [M]
    pairs: Array     # [n, M] pairs (anchor, reference) that take part


def references(ref_embeddings: ArrayLike | None, ref_labels: ArrayLike | None,
               ref_where: ArrayLike | None, embeddings: Array,
               ) -> References | None:
    """Validates a reference set for the ``(n, d)`` anchors ``embeddings`` (None if
    ``ref_embeddings`` is None): float ``(M, d)``, int ``(M,)`` labels, and ``ref_where``
    broadcastable to ``(n, M)`` (``(M,)``: references in use; ``(n, M)``: pairs)."""
    if ref_embeddings is None and ref_labels is None:
        if ref_where is not None:
            raise ValueError("ref_where needs ref_embeddings and ref_labels; got neither.")
        return None
    if ref_embeddings is None or ref_labels is None:
        raise ValueError("ref_embeddings and ref_labels go together: pass both (the "
                         "reference set and its labels) or neither.")
    keys, labels, _ = embeddings_and_labels(ref_embeddings, ref_labels,
                                            embeddings_name="ref_embeddings",
                                            labels_name="ref_labels")
    if keys.shape[1] != embeddings.shape[1]:
        raise ValueError(f"ref_embeddings must have shape (M, {embeddings.shape[1]}), rows of "
                         f"the embeddings' width; got {keys.shape}.")
    shape = (embeddings.shape[0], keys.shape[0])
    if ref_where is None:
        pairs = jnp.ones(shape, jnp.bool_)
    else:
        ref_where = jnp.asarray(ref_where)
        fits = ref_where.ndim <= 2 and all(
            a in (1, b) for a, b in zip(ref_where.shape[::-1], shape[::-1], strict=False))
        if not fits:
            raise ValueError(f"ref_where must be broadcastable to (N, M) = {shape}, the pairs "
                             f"of anchors and references; got shape {ref_where.shape}.")
        pairs = jnp.broadcast_to(ref_where.astype(jnp.bool_), shape)
    return References(keys.astype(embeddings.dtype), labels, pairs)


class PairBatch(NamedTuple):
    """Validated anchors, their keys and the pair masks of a batch-wide loss."""

    queries: Array      # [n, d] local rows, masked rows zeroed
    keys: Array         # [M, d] the gathered global batch, or the references
    key_labels: Array   # [M]
    key_valid: Array    # [M] rows of the global batch that ``where`` keeps
    rows: Array         # [n] global indices of the local rows
    positive: Array     # [n, M] same label, not the row itself, both kept
    negative: Array     # [n, M] different label, both kept
    mask: Array | None  # [n] ``where`` as booleans (None: every row)
    dtype: jnp.dtype    # result dtype


def pair_batch(embeddings: ArrayLike, labels: ArrayLike, where: ArrayLike | None,
               axis_name: str | None,
               refs: tuple[ArrayLike | None, ArrayLike | None, ArrayLike | None] = (
                   None, None, None),
               ) -> PairBatch:
    """The common set-up of the batch-wide losses: validation, masking (rows ``where`` drops
    are zeroed, first half of the double where), the keys and the pair masks.

    ``refs`` = ``(ref_embeddings, ref_labels, ref_where)``: with a reference set the keys
    are the references (used as given on every device; no pair is a self-comparison), as
    PML's ``ref_emb``; otherwise the (gathered) batch, without the pairs ``(i, i)``.
    """
    x, labels, dtype = embeddings_and_labels(embeddings, labels)
    n = x.shape[0]
    mask = _reduce.rows_kept(where, None, (n,))
    (x,) = _reduce.mask_rows(mask, x)
    valid = all_rows_if_none(mask, n)
    rows = shard_offset(n, axis_name) + jnp.arange(n)
    ref = references(*refs, x)
    if ref is None:
        keys = gather_batch(x, axis_name)
        key_labels = gather_batch(labels, axis_name)
        key_valid = gather_batch(valid, axis_name)
        pair_valid = valid[:, None] & key_valid[None, :]              # [n, M]
        pair_valid = pair_valid & (rows[:, None] != jnp.arange(keys.shape[0])[None, :])
    else:
        keys, key_labels = ref.keys, ref.labels
        key_valid = jnp.any(ref.pairs, axis=0)
        pair_valid = valid[:, None] & ref.pairs
    same = same_label(labels, key_labels)
    return PairBatch(x, keys, key_labels, key_valid, rows, same & pair_valid,
                     ~same & pair_valid, mask, dtype)


# The keys of the contrastive losses (NT-Xent, SupCon): the batch or a reference set.


class ContrastiveKeys(NamedTuple):
    """The keys of the local anchors: the global batch, or a reference set."""

    keys: Array           # [M, d] gathered (normalised) rows, or the references
    labels: Array | None  # [M] their labels (None: unlabelled pairs)
    present: Array        # [M] rows in the batch (``where`` True, weight nonzero)
    index: Array  # type: ignore[assignment]  # shadows tuple.index; [n] global index of each local row (-1: no self-pair)
    pairs: Array | None = None  # [n, M] with a reference set: the pairs that take part


def batch_keys(x: Array, labels: Array | None, kept: Array | None,
               axis_name: str | None) -> ContrastiveKeys:
    """Gathers the (already masked and normalised) local rows ``x`` into the keys."""
    rows = x.shape[0]
    key_labels = None if labels is None else gather_batch(labels, axis_name)
    present = gather_batch(all_rows_if_none(kept, rows), axis_name)
    index = shard_offset(rows, axis_name) + jnp.arange(rows)
    return ContrastiveKeys(gather_batch(x, axis_name), key_labels, present, index)


def contrastive_keys(x: Array, labels: Array, kept: Array | None, axis_name: str | None,
                     ref: References | None) -> ContrastiveKeys:
    """The keys of the (normalised) anchors ``x``: the batch, or the references ``ref``
    (normalised; no self-pair; anchors ``where`` drops take no pair)."""
    if ref is None:
        return batch_keys(x, labels, kept, axis_name)
    rows, total = x.shape[0], ref.keys.shape[0]
    pairs = ref.pairs & all_rows_if_none(kept, rows)[:, None]
    return ContrastiveKeys(l2_normalize(ref.keys), ref.labels, jnp.ones((total,), jnp.bool_),
                           jnp.full((rows,), -1), pairs)

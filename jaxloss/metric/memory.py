"""Cross-batch memory: a ring buffer of past embeddings that a jitted train step carries.

The memory is a pytree (a ``NamedTuple`` of arrays), created once with
:meth:`CrossBatchMemory.init` and replaced at every step by
:meth:`CrossBatchMemory.update`; it is state, like an optimiser's, passed in
and returned by the train step. Its :meth:`CrossBatchMemory.references` are
the ``ref_embeddings``/``ref_labels``/``ref_where`` keywords of the batch pair
losses (``batch_triplet_loss``, ``multi_similarity_loss``, ``circle_loss``,
``ntxent_loss``/``info_nce_loss``, ``supcon_loss``), so that the batch's
anchors meet positives and negatives from the memory.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike, DTypeLike

from jaxloss import _checks, _reduce
from jaxloss.metric._common import embeddings_and_labels

__all__ = ["CrossBatchMemory"]


class CrossBatchMemory(NamedTuple):
    r"""A cross-batch memory (XBM): the last ``size`` embeddings and their labels.

    Fields (all arrays, so the memory is a pytree that ``jit`` carries):
    ``embeddings`` ``(size, d)``, ``labels`` ``(size,)``, ``filled``
    ``(size,)`` (slots written at least once), ``source`` ``(size,)`` (the row
    of the latest batch that wrote each slot, ``-1`` for older slots), and
    ``position`` (the next slot to write).

    The memory follows PML's ``CrossBatchMemory``: :meth:`update` enqueues
    the batch (without gradient) first, overwriting the oldest slots, and the
    loss then pairs each row of the batch with every filled slot but its own
    copy, so the batch's rows meet each other (as constants) and the past
    batches:

    .. code-block:: python

        memory = memory.update(embeddings, labels)
        loss = jaxloss.supcon_loss(embeddings, labels,
                                   **memory.references(embeddings.shape[0]))

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> memory = jaxloss.CrossBatchMemory.init(4, 2)
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> memory = memory.update(x, jnp.array([0, 1]))
      >>> memory = memory.update(-x, jnp.array([1, 0]))
      >>> memory.labels.tolist(), int(memory.position)
      ([0, 1, 1, 0], 0)
      >>> refs = memory.references(2)
      >>> refs["ref_where"].tolist()  # each row of the last batch is not its own pair
      [[True, True, False, True], [True, True, True, False]]
      >>> # PML CrossBatchMemory(SupConLoss(), 2, memory_size=4) on the same batches: 0.69317
      >>> round(float(jaxloss.supcon_loss(-x, jnp.array([1, 0]), **refs)), 4)
      0.6932

    References:
      Wang et al., `Cross-Batch Memory for Embedding Learning
      <https://arxiv.org/abs/1912.06798>`_, 2020. Equivalent to
      ``pytorch_metric_learning.losses.CrossBatchMemory(loss, d,
      memory_size=size)(embeddings, labels)`` with ``loss`` one of the pair
      losses above.
    """

    embeddings: Array
    labels: Array
    filled: Array
    source: Array
    position: Array

    @classmethod
    def init(cls, size: int, dim: int, *, dtype: DTypeLike = jnp.float32,
             label_dtype: DTypeLike = jnp.int32) -> CrossBatchMemory:
        """An empty memory of ``size`` slots for ``dim``-dimensional embeddings.

        Args:
          size: number of slots, a static int ``>= 1``.
          dim: embedding width ``d``, a static int ``>= 1``.
          dtype: dtype of the stored embeddings.
          label_dtype: integer dtype of the stored labels.

        Returns:
          The memory, every slot empty.
        """
        size = _checks.static_int(size, "size", low=1)
        dim = _checks.static_int(dim, "dim", low=1)
        if not jnp.issubdtype(label_dtype, jnp.integer):
            raise TypeError(f"label_dtype must be an integer dtype; got {label_dtype}.")
        return cls(jnp.zeros((size, dim), dtype), jnp.zeros((size,), label_dtype),
                   jnp.zeros((size,), jnp.bool_), jnp.full((size,), -1, jnp.int32),
                   jnp.zeros((), jnp.int32))

    def update(self, embeddings: ArrayLike, labels: ArrayLike, *,
               where: ArrayLike | None = None) -> CrossBatchMemory:
        """Enqueues a batch (as constants: ``stop_gradient``), overwriting the oldest slots.

        Args:
          embeddings: float ``(N, d)`` with ``N <= size``.
          labels: int ``(N,)``.
          where: boolean ``(N,)``: rows to enqueue (default all; PML's
            ``enqueue_mask`` selects rows the same way).

        Returns:
          The new memory; ``source`` marks the slots this batch wrote.

        Raises:
          ValueError: shapes that do not match the memory, or ``N > size``.
          TypeError: integer ``embeddings`` or non-integer ``labels``.
        """
        x, labels, _ = embeddings_and_labels(embeddings, labels)
        size, dim = self.embeddings.shape
        if x.shape[1] != dim:
            raise ValueError(f"embeddings must have shape (N, {dim}) to enter a memory of "
                             f"{dim}-d embeddings; got {x.shape}.")
        if x.shape[0] > size:
            raise ValueError(f"a batch of {x.shape[0]} rows does not fit a memory of {size} "
                             "slots: make the memory at least as large as the batch.")
        n = x.shape[0]
        kept = _reduce.rows_kept(where, None, (n,))
        kept = jnp.ones((n,), jnp.bool_) if kept is None else kept
        order = jnp.cumsum(kept.astype(jnp.int32)) - 1                 # [N] rank among kept
        slots = jnp.where(kept, (self.position + order) % size, size)  # size: dropped
        x = jax.lax.stop_gradient(x).astype(self.embeddings.dtype)
        return CrossBatchMemory(
            self.embeddings.at[slots].set(x, mode="drop"),
            self.labels.at[slots].set(labels.astype(self.labels.dtype), mode="drop"),
            self.filled.at[slots].set(True, mode="drop"),
            jnp.full((size,), -1, jnp.int32).at[slots].set(
                jnp.arange(n, dtype=jnp.int32), mode="drop"),
            (self.position + jnp.sum(kept.astype(jnp.int32))) % size)

    def references(self, num_rows: int) -> dict[str, Array]:
        """The keywords ``ref_embeddings``, ``ref_labels`` and ``ref_where`` of a pair loss
        whose ``num_rows`` anchors are the batch just enqueued by :meth:`update`.

        ``ref_where`` ``(num_rows, size)`` holds the filled slots, without each
        row's own copy (PML's removal of self-comparisons).

        Args:
          num_rows: ``N``, the number of rows of the batch (static).

        Returns:
          A dict to pass as ``**memory.references(N)``.
        """
        n = _checks.static_int(num_rows, "num_rows", low=0)
        own = self.source[None, :] == jnp.arange(n, dtype=jnp.int32)[:, None]  # [N, size]
        return {"ref_embeddings": self.embeddings, "ref_labels": self.labels,
                "ref_where": self.filled[None, :] & ~own}

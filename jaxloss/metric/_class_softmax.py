"""The class-softmax kernel shared by the margin-softmax and proxy losses (private).

Every loss here is a softmax cross-entropy over the cosines between
L2-normalised embeddings ``(N, d)`` and the L2-normalised columns of a class
matrix in the Flax kernel layout ``(d, C * K)`` (column ``c * K + k`` is
sub-centre ``k`` of class ``c``), with a modified target logit and a per-row
logit scale. :func:`class_softmax_values` computes it densely or, with
``block_size``, in a checkpointed scan over blocks of classes with an online
log-sum-exp (:func:`scan_class_blocks`), never holding the ``(N, C)`` logits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _classes, _reduce
from jaxloss.metric._common import (
    embeddings_and_labels,
    l2_normalize,
    logsumexp_finish,
    logsumexp_init,
    logsumexp_update,
)

# A modified target cosine: psi(cos_target (N,), embeddings (N, d)) -> (N,); the embeddings
# only supply the compute dtype of the hyperparameters.
TargetFn = Callable[[Array, Array], Array]
# Pools the cosines of each class's K sub-centres: (N, b, K) -> (N, b).
PoolFn = Callable[[Array], Array]


class Inputs(NamedTuple):
    """Validated, masked inputs of a margin-softmax loss."""

    x: Array              # [N, d] embeddings in the compute dtype, rows ``where`` drops zeroed
    labels: Array         # [N] class indices, clipped to [0, C) for the gathers
    kernel: Array         # [d, C*K] in the compute dtype
    bad: Array | None     # [N] labels out of range (only known under jit), or None
    dtype: jnp.dtype      # result dtype


def prepare(embeddings: ArrayLike, labels: ArrayLike, kernel: ArrayLike, *,
            subcenters: int, where: ArrayLike | None, kernel_name: str = "kernel",
            subcenters_name: str = "num_subcenters") -> Inputs:
    """Validates ``(embeddings, labels, kernel)`` and masks the rows ``where`` drops.

    Labels outside ``[0, C)`` raise when concrete; under ``jit`` they are
    clipped for the gathers and marked in ``bad``, and the kernel's values
    are NaN at those rows (never a plausible wrong number).
    """
    embeddings = _checks.float_input(embeddings, "embeddings")
    kernel = _checks.float_input(kernel, kernel_name)
    x, labels, _ = embeddings_and_labels(embeddings, labels)
    _checks.check_rank(kernel, kernel_name, rank=2)
    d = embeddings.shape[1]
    if kernel.shape[0] != d:
        raise ValueError(
            f"{kernel_name} must have shape (d, classes) = ({d}, C) in the Flax kernel "
            f"layout, matching embeddings of shape {embeddings.shape}; got {kernel.shape}. "
            f"A (classes, d) matrix needs a transpose: pass {kernel_name}.T."
        )
    if kernel.shape[1] == 0 or kernel.shape[1] % subcenters:
        raise ValueError(
            f"{kernel_name} must have C * {subcenters_name} = C * {subcenters} columns "
            f"(C >= 1); got {kernel.shape[1]}."
        )
    num_classes = kernel.shape[1] // subcenters
    _checks.check_labels_in_range(labels, num_classes, "labels")
    bad = _classes.out_of_range(labels, num_classes) if _checks.is_traced(labels) else None
    compute, dtype = _checks.compute_dtype(embeddings, kernel)
    labels = jnp.clip(labels, 0, num_classes - 1)
    (x,) = _reduce.mask_rows(where, x.astype(compute))
    return Inputs(x, labels, kernel.astype(compute), bad, dtype)


def class_cosines(x_hat: Array, columns: Array, subcenters: int,
                  pool: PoolFn | None = None) -> Array:
    """Cosines of normalised rows ``x_hat (N, d)`` with raw kernel ``columns`` ``(d, b*K)``:
    ``(N, b)``, pooled over each class's ``K`` sub-centres by ``pool`` (default: the
    largest)."""
    cos = x_hat @ l2_normalize(columns, axis=0)                       # [N, b*K]
    if subcenters == 1:
        return cos
    cos = cos.reshape(cos.shape[0], -1, subcenters)                   # [N, b, K]
    return jnp.max(cos, axis=-1) if pool is None else pool(cos)      # [N, b]


def class_softmax_values(
    inputs: Inputs,
    *,
    target_fn: TargetFn,
    row_scale_fn: Callable[[Array], Array],
    subcenters: int,
    block_size: int | None,
    pool: PoolFn | None = None,
) -> Array:
    """``softplus(logsumexp_{j != y} s_i cos_ij - s_i psi(cos_iy))`` per row ``(N,)``.

    ``target_fn(cos_target, x)`` is psi (``x`` gives the compute dtype); ``row_scale_fn(x)``
    gives each row's logit scale ``s_i`` ``(N,)`` (``scale``, or ``scale * ||x_i||`` for
    SphereFace). NaN at the rows whose label is out of range (under ``jit``).
    """
    x, labels, kernel = inputs.x, inputs.labels, inputs.kernel
    n = x.shape[0]
    x_hat = l2_normalize(x)
    row_scale = row_scale_fn(x)                                      # [N]

    def fold(carry, columns_block, class_ids, valid):
        """Adds one block of classes (``columns_block`` ``(d, b*K)``) to the online
        log-sum-exp of the non-target logits, and picks up the target cosines it holds.

        The target cosine comes out of the same block (each row's target lies in
        exactly one block), so the kernel's gradient flows through one path only.
        """
        state, target_cos = carry
        cos = class_cosines(x_hat, columns_block, subcenters, pool)        # [N, b]
        is_target = class_ids[None, :] == labels[:, None]             # [N, b]
        target_cos = target_cos + jnp.sum(
            jnp.where(is_target & valid[None, :], cos, jnp.zeros_like(cos)), axis=-1)
        others = valid[None, :] & ~is_target
        # Excluded entries (the target, padding) become -inf before the update: there
        # exp(logit - max) is 0 and so is its derivative. Left as they are, a target logit
        # far above the others (large scale) overflows exp and its masked gradient is NaN.
        logits = jnp.where(others, row_scale[:, None] * cos, -jnp.inf)
        return logsumexp_update(state, logits, others), target_cos

    carry = (logsumexp_init(n, x.dtype), jnp.zeros((n,), x.dtype))
    num_classes = kernel.shape[1] // subcenters
    if block_size is None:
        carry = fold(carry, kernel, jnp.arange(num_classes), jnp.ones((num_classes,), bool))
    else:
        carry = scan_class_blocks(fold, carry, kernel, block_size=block_size,
                                   subcenters=subcenters)
    state, target_cos = carry
    target_logit = row_scale * target_fn(target_cos, x)               # [N]
    others = logsumexp_finish(state)                                 # [N], -inf if C == 1
    # -log softmax_y = log(1 + sum_{j != y} exp(l_j - l_y)): a softplus, which keeps its
    # relative precision when the loss is tiny (lse - l_y would cancel).
    values = jax.nn.softplus(others - target_logit)
    return values if inputs.bad is None else _classes.poison(values, inputs.bad)


def scan_class_blocks(fold, state, kernel: Array, *, block_size: int, subcenters: int):
    """Runs ``state = fold(state, columns (d, b*K), class_ids (b,), valid (b,))`` over blocks
    of ``b`` classes of ``kernel`` ``(d, C*K)``, in a checkpointed scan.

    The blocks are ``dynamic_slice``-s of the kernel in its own ``(d, C)`` layout, so
    neither a transposed nor a padded copy of the kernel is made (with a million
    classes either is gigabytes): when ``b`` does not divide ``C`` the last block
    starts at ``C - b`` and ``valid`` drops the classes an earlier block already saw.
    In the backward pass XLA accumulates the kernel's gradient in place, block by
    block, and ``jax.checkpoint`` recomputes each ``(N, b)`` block of logits instead
    of storing it.
    """
    num_classes = kernel.shape[1] // subcenters
    size = min(block_size, num_classes)
    blocks = -(-num_classes // size)

    @jax.checkpoint
    def step(state, index):
        first = index * size
        start = jnp.minimum(first, num_classes - size)
        columns = jax.lax.dynamic_slice_in_dim(kernel, start * subcenters, size * subcenters,
                                               axis=1)                    # [d, b*K]
        ids = start + jnp.arange(size)
        return fold(state, columns, ids, ids >= first), None

    state, _ = jax.lax.scan(step, state, jnp.arange(blocks))
    return state


def scalar(value: ArrayLike, name: str, like: Array) -> Array:
    """A float or traced hyperparameter in the compute dtype of ``like``."""
    return _checks.hyperparameter(value, name, like.dtype)


def constant_scale(scale: ArrayLike) -> Callable[[Array], Array]:
    """``row_scale_fn`` of a constant logit scale (float or traced scalar)."""
    def row_scale(x: Array) -> Array:
        return jnp.broadcast_to(scalar(scale, "scale", x), x.shape[:1])

    return row_scale

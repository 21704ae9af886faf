"""The blockwise online log-sum-exp shared by the chunked metric losses."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss.metric._common import (
    distance_matrix,
    l2_normalize,
    logsumexp_finish,
    logsumexp_init,
    logsumexp_update,
    scan_column_blocks,
)


def _chunked(q, k, block_size, scale=3.0):
    def body(state, key_block, columns, valid):
        mask = jnp.broadcast_to(valid[None, :], (q.shape[0], key_block.shape[0]))
        return logsumexp_update(state, scale * q @ key_block.T, mask)

    state = scan_column_blocks(body, logsumexp_init(q.shape[0], q.dtype), k,
                               block_size=block_size)
    return logsumexp_finish(state)


@pytest.mark.parametrize("block_size", [1, 7, 16, 53, 64])
def test_chunked_logsumexp_equals_dense_in_value_and_gradient(block_size):
    q = jax.random.normal(jax.random.key(0), (37, 8))
    k = jax.random.normal(jax.random.key(1), (53, 8))

    def dense(q, k):
        return jax.nn.logsumexp(3.0 * q @ k.T, axis=-1)

    np.testing.assert_allclose(_chunked(q, k, block_size), dense(q, k), rtol=1e-5)
    got = jax.grad(lambda a, b: jnp.sum(_chunked(a, b, block_size)), argnums=(0, 1))(q, k)
    want = jax.grad(lambda a, b: jnp.sum(dense(a, b)), argnums=(0, 1))(q, k)
    for g, w in zip(got, want, strict=True):
        # Summation order differs between blocks: compare at the scale of the gradient.
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(w))))


def test_fully_masked_rows_and_huge_logits():
    q = jnp.array([[1e4, 0.0], [0.0, 0.0]])
    k = jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])

    def body(state, key_block, columns, valid):
        mask = valid[None, :] & (jnp.arange(2)[:, None] == 0)  # row 1 sees nothing
        return logsumexp_update(state, q @ key_block.T, mask)

    out = logsumexp_finish(scan_column_blocks(body, logsumexp_init(2, q.dtype), k,
                                              block_size=2))
    np.testing.assert_allclose(out[0], 1e4, rtol=1e-6)
    assert out[1] == -jnp.inf


def _temp_bytes(n: int) -> int:
    q = jnp.ones((n, 32))
    return jax.jit(jax.value_and_grad(lambda x: jnp.sum(_chunked(x, x, 256)))).lower(
        q).compile().memory_analysis().temp_size_in_bytes


def test_chunked_memory_is_linear_in_n():
    small, large = _temp_bytes(2048), _temp_bytes(8192)
    assert large < 8192 * 8192 * 4 / 4, large  # well below one dense N x N float32 matrix
    assert large < 6 * small, (small, large)  # x4 rows: linear growth, not x16


def test_normalize_and_distances_finite_at_zero():
    zero = jnp.zeros((2, 3))
    grad = jax.grad(lambda x: jnp.sum(l2_normalize(x)))(zero)
    assert np.all(np.isfinite(grad))
    for distance in ("euclidean", "squared", "cosine"):
        grad = jax.grad(lambda x, d=distance: jnp.sum(distance_matrix(x, x, distance=d)))(zero)
        assert np.all(np.isfinite(grad))
    a = jax.random.normal(jax.random.key(2), (5, 4))
    np.testing.assert_allclose(distance_matrix(a, a, distance="euclidean"),
                               np.linalg.norm(np.asarray(a)[:, None] - np.asarray(a)[None],
                                              axis=-1), atol=1e-3)


def test_masked_entry_far_above_the_rest_gives_finite_gradient():
    logits = jnp.array([[100.0, -100.0, -101.0]])
    mask = jnp.array([[False, True, True]])

    def lse(x):
        return logsumexp_finish(logsumexp_update(logsumexp_init(1, x.dtype), x, mask))[0]

    grad = jax.grad(lse)(logits)
    assert np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_allclose(grad, [[0.0, 0.7310586, 0.2689414]], rtol=1e-6)

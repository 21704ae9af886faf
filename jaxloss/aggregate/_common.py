"""Private helpers shared by the aggregators: task-Jacobian pytrees, the Gram matrix,
PRNG keys and the small nonnegative QP solver (see the package docstring for the
conventions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array
from jax.typing import ArrayLike

from jaxloss._numerics import safe_div

F32 = jnp.dtype(jnp.float32)


class KeyState(NamedTuple):
    """State of a random aggregator: the PRNG key of the next update."""

    key: Array


# ----------------------------------------------------------------------------- pytree helpers


def task_leaves(updates: Any, name: str = "updates") -> tuple[list[Array], Any, int]:
    """Leaves of a task-Jacobian pytree, its treedef and the static task count K."""
    leaves, treedef = jax.tree_util.tree_flatten(updates)
    if not leaves:
        raise ValueError(f"{name} is an empty pytree; expected leaves with a leading task axis.")
    arrays = [jnp.asarray(leaf) for leaf in leaves]
    for leaf in arrays:
        if leaf.ndim == 0:
            raise ValueError(
                f"every leaf of {name} needs a leading task axis (what jax.jacrev of a (K,) "
                f"vector of task losses gives); got a scalar leaf."
            )
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(f"{name} leaves must be floating-point; got dtype {leaf.dtype}.")
    tasks = {leaf.shape[0] for leaf in arrays}
    if len(tasks) != 1:
        raise ValueError(
            f"every leaf of {name} must have the same leading task axis K; got leading sizes "
            f"{sorted(tasks)}. Pass jax.jacrev(task_losses)(params) with task_losses returning "
            "a (K,) vector."
        )
    return arrays, treedef, tasks.pop()


def work_dtype(leaf: Array) -> jnp.dtype:
    return F32 if leaf.dtype.itemsize < 4 else jnp.dtype(jnp.promote_types(leaf.dtype, F32))


def gram_matrix(leaves: list[Array]) -> Array:
    """``J J^T`` of the flattened ``(K, P)`` Jacobian, in float32, summed leaf by leaf."""
    k = leaves[0].shape[0]
    gram = jnp.zeros((k, k), F32)
    for leaf in leaves:  # a static loop over the pytree's leaves, not over tasks
        flat = leaf.reshape(k, -1)
        gram = gram + jnp.einsum("kp,lp->kl", flat, flat,
                                 preferred_element_type=F32).astype(F32)
    return gram


def combine_tasks(weights: Array, leaves: list[Array], treedef: Any) -> Any:
    """``sum_k weights[k] * leaf[k]`` for every leaf, in the leaf's dtype."""
    out = []
    for leaf in leaves:
        dtype = work_dtype(leaf)
        out.append(jnp.tensordot(weights.astype(dtype), leaf.astype(dtype), axes=1)
                   .astype(leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, out)


def as_key(key: ArrayLike | int) -> Array:
    if isinstance(key, (int,)) and not isinstance(key, bool):
        return jax.random.key(key)
    array = jnp.asarray(key)
    if jnp.issubdtype(array.dtype, jax.dtypes.prng_key):
        return array
    if array.dtype == jnp.uint32 and array.shape == (2,):
        return jax.random.wrap_key_data(array)
    raise TypeError(f"key must be an int seed or a jax.random key; got {key!r}.")


def gram_weighted(weight_fn: Callable[[Array], Array]) -> optax.GradientTransformation:
    """A deterministic aggregator whose output is ``J^T weight_fn(J J^T)``."""

    def init_fn(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: Any, state: optax.EmptyState, params: Any = None) -> tuple[Any, Any]:
        del params
        leaves, treedef, _ = task_leaves(updates)
        weights = jax.lax.stop_gradient(weight_fn(gram_matrix(leaves)))
        return combine_tasks(weights, leaves, treedef), state

    return optax.GradientTransformation(init_fn, update_fn)


def normalized_gram(gram: Array, reg_eps: float) -> Array:
    """``G / trace(G) + reg_eps I`` (torchjd's normalize + regularize); ``reg_eps I`` if G = 0."""
    k = gram.shape[0]
    return safe_div(gram, jnp.trace(gram)) + reg_eps * jnp.eye(k, dtype=gram.dtype)


# ----------------------------------------------------------------------------- small QP solvers


def nonnegative_qp(q: Array, c: Array, iterations: int) -> Array:
    """``argmin_{x >= 0} 1/2 x^T Q x + c^T x`` for a positive definite ``K x K`` matrix Q.

    Lawson & Hanson's active-set method (the NNLS algorithm, written for the
    Gram form), flattened into one ``while_loop`` of at most ``iterations``
    steps: each step solves the unconstrained problem on the current free
    ("passive") set; a feasible solution is accepted and the most violated
    KKT multiplier joins the free set, an infeasible one is cut back at the
    boundary and the variables that hit zero leave. It terminates exactly,
    typically after about K steps.
    """
    k = q.shape[0]
    eye = jnp.eye(k, dtype=q.dtype)
    scale = jnp.max(jnp.abs(c)) + jnp.max(jnp.abs(q))
    tol = 1e-6 * scale

    def subproblem(passive: Array) -> Array:
        both = passive[:, None] & passive[None, :]
        matrix = jnp.where(both, q, 0.0) + jnp.where(passive, 0.0, 1.0)[:, None] * eye
        s = jnp.linalg.solve(matrix, jnp.where(passive, -c, 0.0))
        return jnp.where(passive, s, 0.0)

    def cond(state: tuple[Array, Array, Array, Array]) -> Array:
        _, _, step, done = state
        return (step < iterations) & ~done

    def body(state: tuple[Array, Array, Array, Array]) -> tuple[Array, Array, Array, Array]:
        x, passive, step, done = state
        s = subproblem(passive)
        infeasible = passive & (s <= 0.0)
        feasible = ~jnp.any(infeasible)
        # feasible: accept s, add the most violated multiplier (or stop)
        multiplier = -(q @ s + c)
        candidate = jnp.where(passive, -jnp.inf, multiplier)
        j = jnp.argmax(candidate)
        add = candidate[j] > tol
        passive_f = passive | (add & (jnp.arange(k) == j))
        # infeasible: step from x toward s until the first variable hits zero
        ratio = jnp.where(infeasible, safe_div(x, x - s), jnp.inf)
        i = jnp.argmin(ratio)
        alpha = jnp.clip(ratio[i], 0.0, 1.0)
        x_i = x + alpha * (s - x)
        passive_i = passive & (x_i > 0.0) & (jnp.arange(k) != i)
        x_i = jnp.where(passive_i, x_i, 0.0)
        x = jnp.where(feasible, s, x_i)
        passive = jnp.where(feasible, passive_f, passive_i)
        done = feasible & ~add
        return x, passive, step + 1, done

    init = (jnp.zeros((k,), q.dtype), jnp.zeros((k,), bool), jnp.asarray(0), jnp.asarray(False))
    x, _, _, _ = jax.lax.while_loop(cond, body, init)
    return x


def default_iterations(iterations: int | None, k: int) -> int:
    return 3 * k + 10 if iterations is None else iterations


def project_simplex(v: Array) -> Array:
    """Euclidean projection onto the probability simplex (sort-based, Held et al. 1974)."""
    k = v.shape[-1]
    u = jnp.sort(v)[::-1]
    cumulative = jnp.cumsum(u) - 1.0
    index = jnp.arange(1, k + 1, dtype=v.dtype)
    positive = u - cumulative / index > 0
    rho = jnp.sum(positive.astype(jnp.int32))
    theta = cumulative[rho - 1] / rho.astype(v.dtype)
    return jnp.maximum(v - theta, 0.0)

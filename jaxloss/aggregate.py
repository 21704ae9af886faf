"""Gradient-level multi-task aggregators as ``optax.GradientTransformation`` s.

Conventions, once for the whole module:

* The ``updates`` an aggregator receives are a **task Jacobian**: a pytree
  shaped like the parameters whose every leaf has an extra leading task axis
  ``K`` -- what ``jax.jacrev(task_losses)(params)`` gives for a function
  returning the ``(K,)`` vector of task losses. The aggregator returns one
  update shaped like the parameters (the task axis removed), so it chains in
  front of any optax optimizer::

      tx = optax.chain(jaxloss.aggregate.pcgrad(), optax.adam(1e-3))
      jac = jax.jacrev(task_losses)(params)          # leaves (K, *param.shape)
      updates, state = tx.update(jac, state, params)

* Every aggregator is linear in the task gradients with weights computed from
  the ``K x K`` Gram matrix ``G = J J^T`` of the flattened ``(K, P)`` Jacobian
  ``J`` (except GradDrop, which is elementwise). ``G`` is accumulated leaf by
  leaf (``sum_leaves einsum("k...,l...->kl")``, exactly the Gram matrix of the
  ``ravel_pytree`` concatenation) and the weights are applied leaf by leaf, so
  the ``(K, P)`` matrix is never copied into one buffer.
* Solvers work on the small ``K x K`` problem with a fixed maximum number of
  iterations (``lax.fori_loop`` / ``lax.while_loop``), no Python control flow
  on values, so every aggregator runs inside ``jax.jit``.
* Computation is in float32 (or the leaves' dtype when wider); each output
  leaf has its input leaf's dtype.
* Random aggregators (PCGrad's task order, GradDrop's sign draws) keep a PRNG
  key in their state and split it at every update.
* Zero, aligned and exactly opposite gradients give finite outputs.

The scale of the result follows each paper's reference code (sum of the
projected gradients for PCGrad and GradDrop, a convex combination for MGDA,
the average of the projections for UPGrad, ...); each docstring says which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._numerics import safe_div, safe_sqrt

__all__ = [
    "aligned_mtl",
    "cagrad",
    "graddrop",
    "imtl_g",
    "mean",
    "mgda",
    "mgda_ub",
    "mgda_weights",
    "nash_mtl",
    "pcgrad",
    "sum",
    "upgrad",
]

_F32 = jnp.dtype(jnp.float32)


class KeyState(NamedTuple):
    """State of a random aggregator: the PRNG key of the next update."""

    key: Array


# ----------------------------------------------------------------------------- pytree helpers


def _leaves(updates: Any, name: str = "updates") -> tuple[list[Array], Any, int]:
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


def _work_dtype(leaf: Array) -> jnp.dtype:
    return _F32 if leaf.dtype.itemsize < 4 else jnp.dtype(jnp.promote_types(leaf.dtype, _F32))


def _gram(leaves: list[Array]) -> Array:
    """``J J^T`` of the flattened ``(K, P)`` Jacobian, in float32, summed leaf by leaf."""
    k = leaves[0].shape[0]
    gram = jnp.zeros((k, k), _F32)
    for leaf in leaves:  # a static loop over the pytree's leaves, not over tasks
        flat = leaf.reshape(k, -1)
        gram = gram + jnp.einsum("kp,lp->kl", flat, flat,
                                 preferred_element_type=_F32).astype(_F32)
    return gram


def _combine(weights: Array, leaves: list[Array], treedef: Any) -> Any:
    """``sum_k weights[k] * leaf[k]`` for every leaf, in the leaf's dtype."""
    out = []
    for leaf in leaves:
        dtype = _work_dtype(leaf)
        out.append(jnp.tensordot(weights.astype(dtype), leaf.astype(dtype), axes=1)
                   .astype(leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, out)


def _as_key(key: ArrayLike | int) -> Array:
    if isinstance(key, (int,)) and not isinstance(key, bool):
        return jax.random.key(key)
    array = jnp.asarray(key)
    if jnp.issubdtype(array.dtype, jax.dtypes.prng_key):
        return array
    if array.dtype == jnp.uint32 and array.shape == (2,):
        return jax.random.wrap_key_data(array)
    raise TypeError(f"key must be an int seed or a jax.random key; got {key!r}.")


def _weighted(weight_fn: Callable[[Array], Array]) -> optax.GradientTransformation:
    """A deterministic aggregator whose output is ``J^T weight_fn(J J^T)``."""

    def init_fn(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: Any, state: optax.EmptyState, params: Any = None) -> tuple[Any, Any]:
        del params
        leaves, treedef, _ = _leaves(updates)
        weights = jax.lax.stop_gradient(weight_fn(_gram(leaves)))
        return _combine(weights, leaves, treedef), state

    return optax.GradientTransformation(init_fn, update_fn)


def _normalized_gram(gram: Array, reg_eps: float) -> Array:
    """``G / trace(G) + reg_eps I`` (torchjd's normalize + regularize); ``reg_eps I`` if G = 0."""
    k = gram.shape[0]
    return safe_div(gram, jnp.trace(gram)) + reg_eps * jnp.eye(k, dtype=gram.dtype)


# ----------------------------------------------------------------------------- small QP solvers


def _nonnegative_qp(q: Array, c: Array, iterations: int) -> Array:
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


def _default_iterations(iterations: int | None, k: int) -> int:
    return 3 * k + 10 if iterations is None else iterations


def _project_simplex(v: Array) -> Array:
    """Euclidean projection onto the probability simplex (sort-based, Held et al. 1974)."""
    k = v.shape[-1]
    u = jnp.sort(v)[::-1]
    cumulative = jnp.cumsum(u) - 1.0
    index = jnp.arange(1, k + 1, dtype=v.dtype)
    positive = u - cumulative / index > 0
    rho = jnp.sum(positive.astype(jnp.int32))
    theta = cumulative[rho - 1] / rho.astype(v.dtype)
    return jnp.maximum(v - theta, 0.0)


# ----------------------------------------------------------------------------- weight rules


def _mgda_from_gram(gram: Array, iterations: int | None, reg_eps: float) -> Array:
    # min_{w in simplex} w^T G w via the nonnegative problem min_{x>=0} 1/2 x^T G x - 1^T x,
    # whose solution is x* = w* / |g_w*|^2 (KKT: (G x)_k >= 1, equality on the support).
    k = gram.shape[0]
    q = _normalized_gram(gram, reg_eps)
    x = _nonnegative_qp(q, -jnp.ones((k,), q.dtype), _default_iterations(iterations, k))
    return x / jnp.sum(x)  # sum(x) > 0: the first active-set step always adds a task


def _upgrad_from_gram(gram: Array, iterations: int | None, reg_eps: float) -> Array:
    # weights of the projection of J^T u_i (u_i = e_i / K) onto the dual cone {x: J x >= 0}:
    # v_i = argmin_{v >= u_i} v^T G v  (Quinton & Rey, Prop. 1), v_i = u_i + lambda_i with
    # lambda_i = argmin_{l >= 0} 1/2 l^T G l + (G u_i)^T l. The update is J^T sum_i v_i.
    k = gram.shape[0]
    q = _normalized_gram(gram, reg_eps)
    prefs = jnp.eye(k, dtype=q.dtype) / k
    steps = _default_iterations(iterations, k)
    lambdas = jax.vmap(lambda u: _nonnegative_qp(q, q @ u, steps))(prefs)
    return jnp.sum(prefs + lambdas, axis=0)


def _pcgrad_from_gram(gram: Array, orders: Array) -> Array:
    # PCGrad's projected gradients are linear combinations of the originals,
    # g_i^PC = sum_m C[i, m] g_m, so every inner product the paper needs is
    # (C G)[i, j]: the K projection steps run on the K x K coefficient matrix,
    # vectorised over the tasks i (one step projects every task at once).
    k = gram.shape[0]
    squared_norms = jnp.diagonal(gram)

    def step(s: int, coeffs: Array) -> Array:
        j = orders[:, s]                                  # [K] task projected on, per task
        dots = jnp.sum(coeffs * gram[j], axis=1)          # g_i^PC . g_j
        factor = jnp.where(dots < 0.0, safe_div(dots, squared_norms[j]), 0.0)
        return coeffs - factor[:, None] * (jnp.arange(k)[None, :] == j[:, None]).astype(gram.dtype)

    coeffs = jax.lax.fori_loop(0, k, step, jnp.eye(k, dtype=gram.dtype))
    return jnp.sum(coeffs, axis=0)


def _pcgrad_orders(key: Array, k: int) -> Array:
    """The random order (a permutation of the K tasks) each task is projected in, ``[K, K]``."""
    # one sort of a [K, K] uniform draw: row i is a uniformly random permutation
    return jnp.argsort(jax.random.uniform(key, (k, k)), axis=1)


def _imtl_g_from_gram(gram: Array) -> Array:
    # alpha_{2..K} = (g_1 U^T)(D U^T)^{-1}, D_i = g_1 - g_i, U_i = u_1 - u_i (unit vectors),
    # alpha_1 = 1 - sum alpha_{2..K}. Every product below is an inner product g_a . u_b
    # = G[a, b] / |g_b|, read off the Gram matrix.
    k = gram.shape[0]
    if k == 1:
        return jnp.ones((1,), gram.dtype)
    inv_norm = safe_div(jnp.ones((k,), gram.dtype), safe_sqrt(jnp.diagonal(gram)))
    gu = gram * inv_norm[None, :]                     # [K, K] g_a . u_b
    # D U^T [i, j] = (g_1 - g_i).(u_1 - u_j), i, j = 2..K
    du = (gu[0, 0] - gu[0, 1:][None, :] - gu[1:, 0][:, None] + gu[1:, 1:])
    g1u = gu[0, 0] - gu[0, 1:]                        # g_1 . (u_1 - u_j)
    alpha = g1u @ jnp.linalg.pinv(du)
    return jnp.concatenate([(1.0 - jnp.sum(alpha))[None], alpha])


def _aligned_mtl_from_gram(gram: Array) -> Array:
    k = gram.shape[0]
    lam, vec = jnp.linalg.eigh(gram)
    tol = jnp.max(lam) * k * jnp.finfo(gram.dtype).eps
    kept = lam > tol
    smallest = jnp.min(jnp.where(kept, lam, jnp.inf))
    smallest = jnp.where(jnp.any(kept), smallest, 0.0)
    inv_sqrt = jnp.where(kept, 1.0 / jnp.sqrt(jnp.where(kept, lam, 1.0)), 0.0)
    b = jnp.sqrt(smallest) * (vec * inv_sqrt[None, :]) @ vec.T
    return jnp.sum(b, axis=0)


def _nash_from_gram(gram: Array, iterations: int, reg_eps: float) -> Array:
    # The bargaining solution solves G alpha = 1 / alpha, alpha > 0 (Navon et al., Thm 5.1):
    # the stationary point of the strictly convex, self-concordant
    # F(a) = 1/2 a^T G a - sum log a. Damped Newton (step / (1 + Newton decrement))
    # stays inside a > 0 and converges quadratically once close, with no line search.
    k = gram.shape[0]
    norm = jnp.sqrt(jnp.sum(gram * gram))             # Frobenius norm, as the reference code
    q = safe_div(gram, norm) + reg_eps * jnp.eye(k, dtype=gram.dtype)

    def step(_: int, a: Array) -> Array:
        grad = q @ a - 1.0 / a
        hess = q + jnp.diag(1.0 / (a * a))
        delta = jnp.linalg.solve(hess, grad)
        decrement = safe_sqrt(jnp.maximum(jnp.dot(grad, delta), 0.0))
        return a - delta / (1.0 + decrement)

    a = jax.lax.fori_loop(0, iterations, step, jnp.ones((k,), gram.dtype))
    # a solves (G / |G|_F) a = 1 / a; a / sqrt(|G|_F) solves G alpha = 1 / alpha
    return jnp.where(norm > 0, a * jax.lax.rsqrt(jnp.where(norm > 0, norm, 1.0)), 0.0)


def _cagrad_from_gram(gram: Array, c: Array, iterations: int, rescale: int) -> Array:
    # min_{w in simplex} g_w . g_0 + c |g_0| |g_w|, by accelerated projected gradient on the
    # simplex with a local Lipschitz step; then d = g_0 + c |g_0| g_w / |g_w|.
    k = gram.shape[0]
    q = safe_div(gram, jnp.trace(gram))               # scale-free; the weights do not change
    b = jnp.full((k,), 1.0 / k, gram.dtype)
    qb = q @ b
    radius = c * safe_sqrt(jnp.dot(b, qb))
    top = jnp.max(jnp.linalg.eigvalsh(q))
    delta = 1e-8

    def objective(w: Array) -> Array:
        return jnp.dot(w, qb) + radius * jnp.sqrt(jnp.dot(w, q @ w) + delta)

    def step(_: int, carry: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        # accelerated projected gradient (FISTA) with an adaptive restart when the
        # objective goes up (O'Donoghue & Candes, 2015)
        w, y, t = carry
        qy = q @ y
        norm = jnp.sqrt(jnp.dot(y, qy) + delta)
        grad = qb + radius * qy / norm
        lipschitz = top * (1.0 + radius / norm) + 1e-12
        w_next = _project_simplex(y - grad / lipschitz)
        restart = objective(w_next) > objective(w)
        t_next = jnp.where(restart, 1.0, 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t)))
        y_next = jnp.where(restart, w, w_next + ((t - 1.0) / t_next) * (w_next - w))
        w_next = jnp.where(restart, w, w_next)
        return w_next, y_next, t_next

    w, _, _ = jax.lax.fori_loop(0, iterations, step, (b, b, jnp.ones((), gram.dtype)))
    g0_norm = jnp.sqrt(jnp.dot(b, gram @ b) + 1e-8)   # LibMTL's eps placement
    gw_norm = safe_sqrt(jnp.dot(w, gram @ w))
    lam = (c * g0_norm + 1e-8) / (gw_norm + 1e-8)
    weights = b + lam * w
    divisor = {0: 1.0, 1: 1.0 + c * c, 2: 1.0 + c}[rescale]
    return weights / divisor


# ----------------------------------------------------------------------------- public API


def mean() -> optax.GradientTransformation:
    r"""Averages the task gradients: :math:`d = \frac{1}{K}\sum_i g_i`.

    Returns:
      An ``optax.GradientTransformation`` taking updates whose leaves have a
      leading task axis ``K`` and returning their mean over it.

    Example:
      >>> import jax.numpy as jnp, optax, jaxloss.aggregate as agg
      >>> tx = agg.mean()
      >>> jac = {"w": jnp.array([[1.0, 0.0], [0.0, 1.0]])}
      >>> out, _ = tx.update(jac, tx.init({"w": jnp.zeros(2)}))
      >>> out["w"].tolist()
      [0.5, 0.5]

    References:
      Linear scalarisation; LibMTL ``EW`` (up to the factor K), torchjd
      ``aggregation.Mean``.
    """

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params
        leaves, treedef, k = _leaves(updates)
        # a contraction with constant weights (a dot), which XLA:CPU runs faster than a
        # reduction over the leading axis
        return _combine(jnp.full((k,), 1.0 / k, _F32), leaves, treedef), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def sum() -> optax.GradientTransformation:
    r"""Sums the task gradients: :math:`d = \sum_i g_i` (the gradient of the summed loss).

    Returns:
      An ``optax.GradientTransformation`` taking updates whose leaves have a
      leading task axis ``K`` and returning their sum over it.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.sum()
      >>> out, _ = tx.update(jnp.array([[1.0, 2.0], [3.0, -1.0]]), tx.init(None))
      >>> out.tolist()
      [4.0, 1.0]

    References:
      Linear scalarisation; LibMTL ``EW``, torchjd ``aggregation.Sum``.
    """

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params
        leaves, treedef, k = _leaves(updates)
        return _combine(jnp.ones((k,), _F32), leaves, treedef), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def pcgrad(*, key: ArrayLike | int = 0) -> optax.GradientTransformation:
    r"""PCGrad: projects each task gradient off the gradients it conflicts with, then sums.

    For every task ``i``, in a random order of the tasks ``j`` (a fresh order
    per task and per step, as in the paper's code),

    .. math::
        g_i^{PC} \leftarrow g_i^{PC} - \frac{\min(0, g_i^{PC} \cdot g_j)}{\|g_j\|^2} g_j,
        \qquad d = \sum_i g_i^{PC},

    with the original ``g_j``. Gradients that conflict with no other pass
    unchanged (then ``d`` is the plain sum). The projections run on the
    ``K x K`` Gram matrix (each ``g_i^{PC}`` is a combination of the ``g_j``),
    one ``fori_loop`` step per position of the order, vectorised over tasks.

    Args:
      key: PRNG key or integer seed of the task orders; it is kept in the
        state (:class:`KeyState`) and split at every update.

    Returns:
      An ``optax.GradientTransformation`` over task Jacobians.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.pcgrad()
      >>> jac = jnp.array([[1.0, 0.0], [-1.0, 1.0]])   # g1 . g2 = -1: they conflict
      >>> out, _ = tx.update(jac, tx.init(None))
      >>> out.round(4).tolist()   # [0.5, 0.5] + [0, 1]
      [0.5, 1.5]

    References:
      Yu et al., `Gradient Surgery for Multi-Task Learning
      <https://arxiv.org/abs/2001.06782>`_, 2020 (Algorithm 1). LibMTL
      ``weighting.PCGrad``; torchjd ``aggregation.PCGrad`` (fixed order).
    """
    key0 = _as_key(key)

    def init_fn(params: Any) -> KeyState:
        del params
        return KeyState(key=key0)

    def update_fn(updates: Any, state: KeyState, params: Any = None) -> tuple[Any, KeyState]:
        del params
        leaves, treedef, k = _leaves(updates)
        next_key, sub = jax.random.split(state.key)
        weights = _pcgrad_from_gram(jax.lax.stop_gradient(_gram(leaves)), _pcgrad_orders(sub, k))
        return _combine(weights, leaves, treedef), KeyState(key=next_key)

    return optax.GradientTransformation(init_fn, update_fn)


def mgda_weights(jacobian: Any, *, iterations: int | None = None,
                 reg_eps: float = 1e-6) -> Array:
    r"""MGDA's weights: the convex combination of the task gradients with the least norm.

    .. math::
        w = \arg\min_{w \ge 0,\ \sum_i w_i = 1} \Big\|\sum_i w_i g_i\Big\|^2

    Solved exactly (up to float32) on the ``K x K`` Gram matrix: the simplex
    problem is rewritten as the nonnegative problem
    :math:`\min_{x\ge0} \tfrac12 x^T G x - 1^T x` (whose solution is
    :math:`w / \|g_w\|^2`), solved by Lawson-Hanson's active-set method,
    and normalised. The paper's Frank-Wolfe iteration converges to the same
    point.

    This is also the entry point of **MGDA-UB**: pass the Jacobian of the task
    losses with respect to the *shared representation* (e.g.
    ``jax.jacrev(lambda z: task_losses(heads, z))(features)``, leaves
    ``(K, *features.shape)``), then apply the weights to the losses
    (``jax.grad(lambda p: w @ task_losses(p))``) or to the parameter Jacobian
    (:func:`mgda_ub`).

    Args:
      jacobian: pytree whose leaves have a leading task axis ``K``.
      iterations: most active-set steps (static); default ``3 K + 10``.
      reg_eps: added to the diagonal of the trace-normalised Gram matrix so
        that the problem stays well posed when 0 lies in the hull.

    Returns:
      ``(K,)`` float32 weights, nonnegative, summing to 1.

    Raises:
      ValueError: leaves without a common leading task axis.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> w = agg.mgda_weights(jnp.array([[1.0, 0.0], [-1.0, 1.0]]))
      >>> w.round(3).tolist()   # min over t of |t g1 + (1 - t) g2|^2: t = 0.6
      [0.6, 0.4]

    References:
      Sener & Koltun, `Multi-Task Learning as Multi-Objective Optimization
      <https://arxiv.org/abs/1810.04650>`_, 2018 (MGDA and MGDA-UB).
      LibMTL ``weighting.MGDA`` (``rep_grad=True`` for UB); torchjd
      ``aggregation.MGDA``.
    """
    leaves, _, _ = _leaves(jacobian, "jacobian")
    _checks.check_range(reg_eps, "reg_eps", low=0.0, low_inclusive=False)
    return _mgda_from_gram(jax.lax.stop_gradient(_gram(leaves)), iterations, reg_eps)


def mgda(*, iterations: int | None = None, reg_eps: float = 1e-6) -> optax.GradientTransformation:
    r"""MGDA: the minimum-norm point of the convex hull of the task gradients.

    .. math::
        d = \sum_i w_i g_i, \quad w = \arg\min_{w \in \Delta_K} \Big\|\sum_i w_i g_i\Big\|^2

    ``d`` is a common descent direction for every task (``g_i . d >= |d|^2``)
    and 0 at a Pareto-stationary point. See :func:`mgda_weights` for the
    solver (exact active set, not the paper's Frank-Wolfe iterations) and
    :func:`mgda_ub` for the shared-representation variant.

    Args:
      iterations: most active-set steps (static); default ``3 K + 10``.
      reg_eps: ridge on the trace-normalised Gram matrix (see :func:`mgda_weights`).

    Returns:
      An ``optax.GradientTransformation`` over task Jacobians.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.mgda()
      >>> out, _ = tx.update(jnp.array([[1.0, 0.0], [-1.0, 1.0]]), tx.init(None))
      >>> out.round(3).tolist()   # 0.6 g1 + 0.4 g2
      [0.2, 0.4]

    References:
      Sener & Koltun, `Multi-Task Learning as Multi-Objective Optimization
      <https://arxiv.org/abs/1810.04650>`_, 2018; Désidéri, MGDA, 2012.
      LibMTL ``weighting.MGDA``; torchjd ``aggregation.MGDA``.
    """
    _checks.check_range(reg_eps, "reg_eps", low=0.0, low_inclusive=False)
    return _weighted(lambda gram: _mgda_from_gram(gram, iterations, reg_eps))


def mgda_ub(*, iterations: int | None = None,
            reg_eps: float = 1e-6) -> optax.GradientTransformationExtraArgs:
    r"""MGDA-UB: MGDA weights from the shared representation, applied to the parameter Jacobian.

    The weights come from the Jacobian of the task losses with respect to the
    shared features ``z`` (:func:`mgda_weights`), an upper bound on the
    parameter-space problem that needs one backward pass through the heads
    only; they multiply the task Jacobian passed as ``updates``. Pass the
    representation Jacobian as the extra argument ``representation_jacobian``
    (``optax.chain`` forwards extra arguments)::

        jz = jax.jacrev(lambda z: head_losses(params, z))(features)   # (K, *z.shape)
        updates, state = tx.update(jac, state, params, representation_jacobian=jz)

    To avoid the parameter Jacobian altogether, use ``mgda_weights(jz)`` and
    differentiate ``weights @ task_losses`` directly.

    Args:
      iterations: most active-set steps (static); default ``3 K + 10``.
      reg_eps: ridge on the trace-normalised Gram matrix.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; ``update`` requires the
      keyword ``representation_jacobian``.

    Raises:
      ValueError: ``representation_jacobian`` missing, or its task axis differs
        from the updates'.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.mgda_ub()
      >>> jz = jnp.array([[1.0, 0.0], [-1.0, 1.0]])    # dL_i/dz: weights 0.6, 0.4
      >>> jac = jnp.array([[1.0, 1.0], [0.0, 1.0]])    # dL_i/dtheta
      >>> out, _ = tx.update(jac, tx.init(None), representation_jacobian=jz)
      >>> out.round(3).tolist()
      [0.6, 1.0]

    References:
      Sener & Koltun, `Multi-Task Learning as Multi-Objective Optimization
      <https://arxiv.org/abs/1810.04650>`_, 2018, Section 3.3. LibMTL
      ``weighting.MGDA`` with ``rep_grad=True``.
    """
    _checks.check_range(reg_eps, "reg_eps", low=0.0, low_inclusive=False)

    def init_fn(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: Any, state: Any, params: Any = None, *,
                  representation_jacobian: Any = None, **extra_args: Any) -> tuple[Any, Any]:
        del params, extra_args
        if representation_jacobian is None:
            raise ValueError(
                "mgda_ub needs the Jacobian of the task losses with respect to the shared "
                "representation: tx.update(jac, state, params, representation_jacobian=jz)."
            )
        leaves, treedef, k = _leaves(updates)
        _, _, kz = _leaves(representation_jacobian, "representation_jacobian")
        if kz != k:
            raise ValueError(
                f"representation_jacobian has {kz} tasks but updates have {k}; both need the "
                "same leading task axis."
            )
        weights = mgda_weights(representation_jacobian, iterations=iterations, reg_eps=reg_eps)
        return _combine(weights, leaves, treedef), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def cagrad(*, c: ArrayLike = 0.4, iterations: int = 100,
           rescale: int = 1) -> optax.GradientTransformation:
    r"""CAGrad: the best worst-case improvement within a ball around the average gradient.

    With :math:`g_0 = \frac1K\sum_i g_i`, solve the dual problem
    :math:`\min_{w\in\Delta_K} g_w\cdot g_0 + c\|g_0\|\|g_w\|` and return

    .. math::
        d = \Big(g_0 + \frac{c\|g_0\|}{\|g_w\|} g_w\Big) / s,
        \qquad s = 1,\ 1 + c^2,\ 1 + c \text{ for } \texttt{rescale} = 0, 1, 2.

    The dual runs as ``iterations`` steps of accelerated projected gradient
    (FISTA with adaptive restart; step ``1/L`` with ``L`` the local curvature
    bound) on the simplex, on the trace-normalised Gram matrix; the reference
    code solves it with SciPy's SLSQP. Within 50 steps the dual objective
    agrees with SLSQP's to ~1e-6 relative on random problems (K = 2..5).
    The eps placements (``1e-8``) follow LibMTL.

    Args:
      c: radius of the ball relative to ``|g_0|``, ``>= 0``; a float or a JAX
        scalar. ``c = 0`` is the mean.
      iterations: projected-gradient steps (static).
      rescale: 0, 1 (default, as LibMTL and the paper's code) or 2.

    Returns:
      An ``optax.GradientTransformation`` over task Jacobians.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.cagrad(c=0.4)
      >>> out, _ = tx.update(jnp.eye(2), tx.init(None))
      >>> out.round(4).tolist()   # w = (1/2, 1/2): g0 (1 + 0.4) / (1 + 0.16)
      [0.6034, 0.6034]

    References:
      Liu et al., `Conflict-Averse Gradient Descent for Multi-task Learning
      <https://arxiv.org/abs/2110.14048>`_, 2021. LibMTL ``weighting.CAGrad``
      (``calpha``, ``rescale``); torchjd ``aggregation.CAGrad``.
    """
    _checks.check_range(c, "c", low=0.0)
    _checks.check_choice(rescale, "rescale", (0, 1, 2))
    steps = _checks.static_int(iterations, "iterations", low=1)

    def weights(gram: Array) -> Array:
        return _cagrad_from_gram(gram, _checks.hyperparameter(c, "c", gram.dtype), steps, rescale)

    return _weighted(weights)


def imtl_g() -> optax.GradientTransformation:
    r"""IMTL-G: the combination whose projections on every task's unit gradient are equal.

    With :math:`u_i = g_i/\|g_i\|`, :math:`D_i = g_1 - g_i`, :math:`U_i = u_1 - u_i`
    (``i = 2..K``): :math:`\alpha_{2:K} = g_1 U^T (D U^T)^{-1}`,
    :math:`\alpha_1 = 1 - \sum_{i\ge2}\alpha_i`, :math:`d = \sum_i \alpha_i g_i`.
    Written on the Gram matrix; the inverse is a pseudo-inverse so that
    aligned or zero gradients stay finite (equal to the inverse when it exists).

    Returns:
      An ``optax.GradientTransformation`` over task Jacobians.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.imtl_g()
      >>> out, _ = tx.update(jnp.array([[2.0, 0.0], [0.0, 1.0]]), tx.init(None))
      >>> out.round(4).tolist()   # (1/3) g1 + (2/3) g2: equal projections 2/3 on u1, u2
      [0.6667, 0.6667]

    References:
      Liu et al., `Towards Impartial Multi-task Learning
      <https://openreview.net/forum?id=IMPnRXEWpvr>`_, ICLR 2021 (IMTL-G).
      LibMTL ``weighting.IMTL`` (gradient part); torchjd ``aggregation.IMTLG``.
    """
    return _weighted(_imtl_g_from_gram)


def aligned_mtl() -> optax.GradientTransformation:
    r"""Aligned-MTL: aligns the principal components of the task gradients, equal weights.

    With the eigendecomposition :math:`G = V \Lambda V^T` (eigenvalues below
    :math:`\lambda_{max} K \epsilon_{f32}` dropped) and
    :math:`B = \sqrt{\lambda_{min}}\, V \Lambda^{-1/2} V^T`, the update is
    :math:`d = \sum_i \alpha_i g_i` with :math:`\alpha = B 1` (task weights 1,
    as LibMTL). The result has a condition number of 1 on the span of the
    gradients.

    Returns:
      An ``optax.GradientTransformation`` over task Jacobians.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.aligned_mtl()
      >>> out, _ = tx.update(jnp.array([[2.0, 0.0], [0.0, 1.0]]), tx.init(None))
      >>> out.round(4).tolist()   # G = diag(4, 1): B = diag(1/2, 1)
      [1.0, 1.0]

    References:
      Senushkin et al., `Independent Component Alignment for Multi-Task
      Learning <https://arxiv.org/abs/2305.19000>`_, CVPR 2023. LibMTL
      ``weighting.Aligned_MTL``; torchjd ``aggregation.AlignedMTL`` (which
      averages: 1/K times this).
    """
    return _weighted(_aligned_mtl_from_gram)


def nash_mtl(*, iterations: int = 20, reg_eps: float = 1e-6) -> optax.GradientTransformation:
    r"""Nash-MTL: the Nash bargaining solution, :math:`d = \sum_i \alpha_i g_i` with
    :math:`G\alpha = 1/\alpha`.

    The paper's solution satisfies :math:`\alpha_i\, (g_i\cdot d) = 1` for every
    task. It is computed here as the minimiser of the self-concordant
    :math:`\tfrac12\alpha^TG\alpha - \sum_i\log\alpha_i` by ``iterations``
    damped Newton steps on the Frobenius-normalised Gram matrix (plus
    ``reg_eps I``), from :math:`\alpha = 1`, then rescaled to the unnormalised
    equations. **Approximation vs the paper:** the reference code runs up to
    20 sequential convex (CCP) sub-problems with CVXPY/ECOS, warm-started from
    the previous step's weights, and clips the shared gradient norm to 1; here
    the same fixed point is reached from a cold start every step, and no
    clipping is applied (chain ``optax.clip_by_global_norm(1.0)`` for it).
    Where no bargaining solution exists (e.g. exactly opposite gradients),
    ``reg_eps`` keeps the weights finite (large). ``update_weights_every``
    is not offered.

    Args:
      iterations: damped Newton steps (static).
      reg_eps: ridge on the normalised Gram matrix.

    Returns:
      An ``optax.GradientTransformation`` over task Jacobians.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.nash_mtl()
      >>> out, _ = tx.update(jnp.array([[2.0, 0.0], [0.0, 1.0]]), tx.init(None))
      >>> out.round(3).tolist()   # alpha = (1/2, 1): alpha_i^2 |g_i|^2 = 1
      [1.0, 1.0]

    References:
      Navon et al., `Multi-Task Learning as a Bargaining Game
      <https://arxiv.org/abs/2202.01017>`_, ICML 2022. LibMTL
      ``weighting.Nash_MTL``; torchjd ``aggregation.NashMTL``.
    """
    steps = _checks.static_int(iterations, "iterations", low=1)
    _checks.check_range(reg_eps, "reg_eps", low=0.0, low_inclusive=False)
    return _weighted(lambda gram: _nash_from_gram(gram, steps, reg_eps))


def upgrad(*, iterations: int | None = None, reg_eps: float = 1e-4) -> optax.GradientTransformation:
    r"""UPGrad: projects every task gradient onto the dual cone of all of them, then averages.

    .. math::
        d = \frac1K\sum_i \pi_J(g_i), \qquad
        \pi_J(x) = \arg\min_{y:\ J y \ge 0} \|y - x\|^2

    so :math:`g_j \cdot d \ge 0` for every task ``j``: no task's loss
    increases to first order. Each projection is the QP
    :math:`\min_{v \ge e_i/K} v^T G v` on the Gram matrix (``G`` trace-normalised
    plus ``reg_eps I``, as torchjd), solved exactly by Lawson-Hanson's
    active-set method (torchjd uses quadprog); the ``K`` problems are vmapped.

    Args:
      iterations: most active-set steps per projection (static); default ``3 K + 10``.
      reg_eps: torchjd's ``reg_eps`` (default the same, 1e-4).

    Returns:
      An ``optax.GradientTransformation`` over task Jacobians.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.upgrad()
      >>> out, _ = tx.update(jnp.array([[1.0, 0.0], [-1.0, 1.0]]), tx.init(None))
      >>> out.round(3).tolist()   # ([0.5, 0.5] + [0, 1]) / 2
      [0.25, 0.75]

    References:
      Quinton & Rey, `Jacobian Descent for Multi-Objective Optimization
      <https://arxiv.org/abs/2406.16232>`_, 2024. torchjd ``aggregation.UPGrad``;
      LibMTL ``weighting.UPGrad``.
    """
    _checks.check_range(reg_eps, "reg_eps", low=0.0, low_inclusive=False)
    return _weighted(lambda gram: _upgrad_from_gram(gram, iterations, reg_eps))


def _graddrop_leaf(leaf: Array, uniform: Array, leak: Array) -> Array:
    dtype = _work_dtype(leaf)
    j = leaf.astype(dtype)                                       # [K, ...]
    purity = 0.5 * (1.0 + safe_div(jnp.sum(j, axis=0), jnp.sum(jnp.abs(j), axis=0)))
    keep = (((purity > uniform)[None] & (j > 0)) | ((purity < uniform)[None] & (j < 0)))
    leak = leak.astype(dtype).reshape((-1,) + (1,) * (j.ndim - 1))
    factor = leak + (1.0 - leak) * keep.astype(dtype)
    return jnp.sum(factor * j, axis=0).astype(leaf.dtype)


def graddrop(*, leak: ArrayLike = 0.0, key: ArrayLike | int = 0) -> optax.GradientTransformation:
    r"""GradDrop: keeps, per coordinate, only the gradients of one randomly chosen sign.

    Per parameter coordinate, with the sign purity
    :math:`P = \frac12\big(1 + \frac{\sum_i g_i}{\sum_i |g_i|}\big)` and
    :math:`U \sim \mathcal U(0, 1)`, task ``i``'s entry is kept if
    :math:`P > U` and :math:`g_i > 0`, or :math:`P < U` and :math:`g_i < 0`:

    .. math::
        d = \sum_i \big(\ell_i + (1 - \ell_i) M_i\big)\, g_i

    (:math:`P = 1/2` where every gradient is 0). Applied elementwise to the
    parameter Jacobian, as torchjd; the paper and LibMTL apply it to
    gradients with respect to activations, summed over the batch.

    Args:
      leak: scalar or ``(K,)`` leak :math:`\ell` in [0, 1]; 0 is the paper's default.
      key: PRNG key or integer seed of ``U``, kept in the state and split at
        every update.

    Returns:
      An ``optax.GradientTransformation`` over task Jacobians.

    Example:
      >>> import jax.numpy as jnp, jaxloss.aggregate as agg
      >>> tx = agg.graddrop()
      >>> jac = jnp.array([[1.0, -2.0], [3.0, -1.0]])  # signs agree per coordinate: all kept
      >>> out, _ = tx.update(jac, tx.init(None))
      >>> out.tolist()
      [4.0, -3.0]

    References:
      Chen et al., `Just Pick a Sign: Optimizing Deep Multitask Models with
      Gradient Sign Dropout <https://arxiv.org/abs/2010.06808>`_, NeurIPS 2020.
      LibMTL ``weighting.GradDrop``; torchjd ``aggregation.GradDrop``.
    """
    _checks.check_range(leak, "leak", low=0.0, high=1.0)
    key0 = _as_key(key)

    def init_fn(params: Any) -> KeyState:
        del params
        return KeyState(key=key0)

    def update_fn(updates: Any, state: KeyState, params: Any = None) -> tuple[Any, KeyState]:
        del params
        leaves, treedef, k = _leaves(updates)
        leak_array = jnp.asarray(leak)
        if leak_array.ndim not in (0, 1) or (leak_array.ndim == 1 and leak_array.shape[0] != k):
            raise ValueError(f"leak must be a scalar or of shape ({k},); got {leak_array.shape}.")
        leak_array = jnp.broadcast_to(leak_array.astype(_F32), (k,))
        next_key, sub = jax.random.split(state.key)
        out = []
        for index, leaf in enumerate(leaves):  # static loop over the pytree's leaves
            uniform = jax.random.uniform(jax.random.fold_in(sub, index), leaf.shape[1:],
                                         _work_dtype(leaf))
            out.append(_graddrop_leaf(jax.lax.stop_gradient(leaf), uniform, leak_array))
        return jax.tree_util.tree_unflatten(treedef, out), KeyState(key=next_key)

    return optax.GradientTransformation(init_fn, update_fn)

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
* Random aggregators (PCGrad's and GradVac's task orders, GradDrop's sign
  draws) keep a PRNG key in their state and split it at every update.
  GradVac also keeps its running cosine targets, a ``(K, K)`` array, so it
  takes the task count ``num_tasks=`` when built.
* Zero, aligned and exactly opposite gradients give finite outputs.

The scale of the result follows each paper's reference code (sum of the
projected gradients for PCGrad and GradDrop, a convex combination for MGDA,
the average of the projections for UPGrad, ...); each docstring says which.

Layout: ``scalarization`` (mean, sum), ``surgery`` (PCGrad, GradDrop),
``min_norm`` (MGDA, MGDA-UB, UPGrad, DualProj), ``balance`` (CAGrad, IMTL-G,
Aligned-MTL, Nash-MTL, FairGrad), ``conflict`` (GradVac, ConFIG); ``_common``
holds the shared pytree helpers and the nonnegative QP solver. Every public name
is re-exported here.
"""

from jaxloss.aggregate._common import KeyState as KeyState
from jaxloss.aggregate.balance import aligned_mtl as aligned_mtl
from jaxloss.aggregate.balance import cagrad as cagrad
from jaxloss.aggregate.balance import fairgrad as fairgrad
from jaxloss.aggregate.balance import imtl_g as imtl_g
from jaxloss.aggregate.balance import nash_mtl as nash_mtl
from jaxloss.aggregate.conflict import GradVacState as GradVacState
from jaxloss.aggregate.conflict import config as config
from jaxloss.aggregate.conflict import gradvac as gradvac
from jaxloss.aggregate.min_norm import dualproj as dualproj
from jaxloss.aggregate.min_norm import mgda as mgda
from jaxloss.aggregate.min_norm import mgda_ub as mgda_ub
from jaxloss.aggregate.min_norm import mgda_weights as mgda_weights
from jaxloss.aggregate.min_norm import upgrad as upgrad
from jaxloss.aggregate.scalarization import mean as mean
from jaxloss.aggregate.scalarization import sum as sum
from jaxloss.aggregate.surgery import graddrop as graddrop
from jaxloss.aggregate.surgery import pcgrad as pcgrad

__all__ = [
    "aligned_mtl",
    "cagrad",
    "config",
    "dualproj",
    "fairgrad",
    "graddrop",
    "gradvac",
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

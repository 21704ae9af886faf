"""Metric-learning and self-supervised losses.

Conventions: embeddings are float ``(N, d)`` with integer labels ``(N,)``;
class matrices of the margin-softmax losses are in the Flax kernel layout
``(d, C)``. Losses that use the whole batch take ``axis_name=None``: inside
``shard_map``/``pmap`` they gather the global batch, so a sharded call equals
the single-device call on the global batch. The all-pairs and many-class
losses take ``block_size=None``: with a block size they never hold the full
``N x N`` (or ``N x C``) matrix (a blockwise online log-sum-exp in a
checkpointed scan), so memory grows as ``O(N d)``.
"""

from jaxloss.metric import margin, pairs, self_supervised
from jaxloss.metric.margin import *  # noqa: F403
from jaxloss.metric.pairs import *  # noqa: F403
from jaxloss.metric.self_supervised import *  # noqa: F403

__all__: list[str] = [
    *margin.__all__,
    *pairs.__all__,
    *self_supervised.__all__,
]
